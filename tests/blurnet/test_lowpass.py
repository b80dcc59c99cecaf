from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from scipy import ndimage

from art_denoise.blurnet import LowPass2d, box_kernel2d, gaussian_kernel2d, lowpass2d

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _reference_box(x: torch.Tensor, k: int) -> torch.Tensor:
    """scipy's "mirror" mode is torch's "reflect" padding (d c b | a b c d)."""
    out = ndimage.uniform_filter(x.double().numpy(), size=(1, 1, k, k), mode="mirror")
    return torch.from_numpy(out)


def _reference_correlate(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel ``scipy.ndimage.correlate``; ``kernel`` is (C, 1, k, k)."""
    xs, ks = x.double().numpy(), kernel.double().numpy()
    out = torch.empty(x.shape, dtype=torch.float64)
    for c in range(x.shape[1]):
        ref = ndimage.correlate(xs[:, c], ks[c, 0][None], mode="mirror")
        out[:, c] = torch.from_numpy(ref)
    return out


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_box_layer_matches_scipy_uniform_filter(k: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    out = LowPass2d(3, k, "box").double()(x)
    torch.testing.assert_close(out, _reference_box(x, k))
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("k", [3, 5])
def test_gaussian_layer_matches_scipy_gaussian_filter(k: int) -> None:
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    out = LowPass2d(2, k, "gaussian", sigma=0.9).double()(x)
    ref = ndimage.gaussian_filter(
        x.numpy(), sigma=(0, 0, 0.9, 0.9), mode="mirror", radius=(0, 0, k // 2, k // 2)
    )
    torch.testing.assert_close(out, torch.from_numpy(ref))


def test_function_is_a_correlation_with_any_kernel() -> None:
    """Non-symmetric, per-channel kernels: cross-correlation, as scipy's ``correlate``."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    kernel = torch.randn(3, 1, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(lowpass2d(x, kernel), _reference_correlate(x, kernel))
    shared = torch.randn(5, 5, dtype=torch.float64)
    torch.testing.assert_close(
        lowpass2d(x, shared), _reference_correlate(x, shared.expand(3, 1, 5, 5))
    )


def test_learnable_starts_as_the_fixed_box() -> None:
    x = torch.randn(2, 4, 8, 8)
    learnable = LowPass2d(4, 5, "learnable")
    assert isinstance(learnable.weight, torch.nn.Parameter) and learnable.learnable
    torch.testing.assert_close(learnable(x), LowPass2d(4, 5, "box")(x))
    assert not LowPass2d(4, 5, "box").learnable


def test_module_equals_function() -> None:
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(LowPass2d(3, 3, "box")(x), lowpass2d(x, box_kernel2d(3)))
    torch.testing.assert_close(
        LowPass2d(3, 5, "gaussian", sigma=1.5)(x), lowpass2d(x, gaussian_kernel2d(5, 1.5))
    )


def test_gradcheck_input_and_kernel() -> None:
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lowpass2d, (x, kernel))


def test_learnable_kernel_gets_gradients() -> None:
    layer = LowPass2d(3, 3, "learnable")
    layer(torch.randn(2, 3, 5, 5)).pow(2).sum().backward()
    assert layer.weight.grad is not None and bool(layer.weight.grad.abs().sum() > 0)


@pytest.mark.parametrize("batch", [0, 1, 2])
@pytest.mark.parametrize("kind", ["box", "gaussian", "learnable"])
def test_batch_sizes(batch: int, kind: str) -> None:
    assert LowPass2d(3, 3, kind)(torch.randn(batch, 3, 4, 4)).shape == (batch, 3, 4, 4)


def test_non_contiguous_input() -> None:
    x = torch.randn(2, 6, 3, 8, dtype=torch.float64).transpose(1, 2)[..., ::2]
    assert not x.is_contiguous()
    torch.testing.assert_close(lowpass2d(x, box_kernel2d(3)), _reference_box(x, 3))


def test_state_dict_round_trip() -> None:
    torch.manual_seed(2)
    trained = LowPass2d(3, 5, "learnable")
    with torch.no_grad():
        trained.weight.normal_()
    fresh = LowPass2d(3, 5, "learnable")
    fresh.load_state_dict(trained.state_dict())
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(fresh(x), trained(x))
    fixed = LowPass2d(3, 5, "gaussian")
    assert list(fixed.state_dict()) == []  # the fixed kernel is a non-persistent buffer
    assert [n for n, _ in fixed.named_buffers()] == ["weight"]
    LowPass2d(3, 5, "gaussian").load_state_dict(fixed.state_dict(), strict=True)


def test_to_dtype_moves_the_kernel() -> None:
    layer = LowPass2d(2, 3, "gaussian").to(torch.float64)
    assert layer.weight.dtype == torch.float64
    assert layer(torch.randn(1, 2, 4, 4, dtype=torch.float64)).dtype == torch.float64


def test_repr() -> None:
    assert repr(LowPass2d(8, 3, "box")) == "LowPass2d(8, kernel_size=3, kind='box')"
    assert "sigma=0.8" in repr(LowPass2d(8, 3, "gaussian"))


class BadCase(NamedTuple):
    call: object
    error: type[Exception]
    match: str


BAD = {
    "channels 0": BadCase(lambda: LowPass2d(0), ValueError, "channels must be >= 1, got 0"),
    "kernel even": BadCase(lambda: LowPass2d(3, 4), ValueError, "odd, got 4"),
    "kernel 0": BadCase(lambda: LowPass2d(3, 0), ValueError, "got 0"),
    "kernel negative": BadCase(lambda: LowPass2d(3, -5), ValueError, "got -5"),
    "kernel float": BadCase(lambda: LowPass2d(3, 3.0), TypeError, "3.0"),
    "kind": BadCase(lambda: LowPass2d(3, 3, "blur"), ValueError, "'blur'.*box, gaussian"),
    "sigma negative": BadCase(lambda: LowPass2d(3, 3, "gaussian", sigma=-0.5), ValueError, "-0.5"),
    "sigma zero": BadCase(lambda: LowPass2d(3, 3, "gaussian", sigma=0), ValueError, "> 0"),
    "sigma with box": BadCase(lambda: LowPass2d(3, 3, "box", sigma=1.0), ValueError, "sigma=1.0"),
    "wrong channels": BadCase(
        lambda: LowPass2d(3, 3)(torch.randn(1, 2, 5, 5)), ValueError, "3 channels"
    ),
    "kernel larger than map": BadCase(
        lambda: LowPass2d(1, 5)(torch.randn(1, 1, 4, 9)), ValueError, "larger than the 4x9"
    ),
    "int input": BadCase(
        lambda: LowPass2d(1, 3)(torch.ones(1, 1, 4, 4, dtype=torch.int64)), TypeError, "int64"
    ),
    "3-D input": BadCase(
        lambda: lowpass2d(torch.ones(1, 4, 4), box_kernel2d(3)), ValueError, "got shape"
    ),
    "kernel shape": BadCase(
        lambda: lowpass2d(torch.ones(1, 2, 4, 4), torch.ones(3, 1, 3, 3)),
        ValueError,
        "(3, 1, 3, 3)",
    ),
    "kernel not square": BadCase(
        lambda: lowpass2d(torch.ones(1, 2, 4, 4), torch.ones(3, 1)), ValueError, "square"
    ),
    "kernel int": BadCase(
        lambda: lowpass2d(torch.ones(1, 2, 4, 4), torch.ones(3, 3, dtype=torch.int64)),
        TypeError,
        "int64",
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_arguments(case: BadCase) -> None:
    with pytest.raises(case.error, match=case.match):
        case.call()  # type: ignore[operator]


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu() -> None:
    x = torch.randn(2, 3, 9, 9)
    layer = LowPass2d(3, 5, "gaussian")
    out = layer.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(out, layer.cpu()(x), atol=1e-5, rtol=1e-5)
