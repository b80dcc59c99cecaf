from __future__ import annotations

import pytest
import torch

from art_denoise.autoencoder import ConvAutoencoder, NoisyAutoencoderStack, add_gaussian_noise


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (1, 1), (28, 28)])
def test_autoencoder_keeps_the_shape_and_range(size: tuple[int, int]) -> None:
    out = ConvAutoencoder(3, hidden=4)(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert bool(((out > 0) & (out < 1)).all())


@pytest.mark.parametrize("batch", [0, 1, 2])
def test_batch_sizes(batch: int) -> None:
    stack = NoisyAutoencoderStack(1, n_layers=2, hidden=4)
    assert stack(torch.rand(batch, 1, 8, 8)).shape == (batch, 1, 8, 8)


def test_noise_uses_the_global_rng() -> None:
    stack = NoisyAutoencoderStack(1, n_layers=2, hidden=4, sigma=0.2)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        torch.manual_seed(5)
        a = stack(x)
        b = stack(x)
        torch.manual_seed(5)
        c = stack(x)
    # equal up to float rounding: CPU kernels may split sums differently between calls
    assert float((a - b).abs().max()) > 1e-3
    torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-6)
    stack.noise = False
    torch.testing.assert_close(stack(x), stack(x), rtol=1e-6, atol=1e-6)


def test_noise_is_clipped_with_an_identity_gradient() -> None:
    x = torch.rand(4, 1, 6, 6, requires_grad=True)
    y = add_gaussian_noise(x, 0.5)
    assert float(y.detach().min()) >= 0.0 and float(y.detach().max()) <= 1.0
    assert bool((y == 0).any() or (y == 1).any())  # something was clipped at sigma 0.5
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))
    assert add_gaussian_noise(x, 0.0) is x


def test_generator_makes_noise_reproducible_without_the_global_rng() -> None:
    x = torch.rand(2, 1, 4, 4)
    state = torch.get_rng_state()
    a = add_gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    b = add_gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)


def test_stack_gradients_flow_to_the_input() -> None:
    stack = NoisyAutoencoderStack(1, n_layers=3, hidden=4)
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    stack(x).sum().backward()
    assert (
        x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_layers must be >= 1, got 0"):
        NoisyAutoencoderStack(1, n_layers=0)
    with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0, got -0.1"):
        NoisyAutoencoderStack(1, sigma=-0.1)
    with pytest.raises(ValueError, match="channels must be >= 1, got 0"):
        ConvAutoencoder(0)
    with pytest.raises(ValueError, match="must have 3 channels"):
        ConvAutoencoder(3)(torch.rand(1, 1, 8, 8))
