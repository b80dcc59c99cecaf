from __future__ import annotations

import pytest
import torch
from torch import nn

from art_denoise.blurnet import (
    LowPass2d,
    capture_features,
    depthwise_weights,
    insert_lowpass,
    linf_depthwise_penalty,
    total_variation,
    total_variation_penalty,
)
from art_denoise.models import SmallCNN


def _naive_tv(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    out = torch.zeros(n, c, dtype=x.dtype)
    for b in range(n):
        for k in range(c):
            total = 0.0
            for i in range(h):
                for j in range(w):
                    if i + 1 < h:
                        total += abs(float(x[b, k, i + 1, j] - x[b, k, i, j]))
                    if j + 1 < w:
                        total += abs(float(x[b, k, i, j + 1] - x[b, k, i, j]))
            out[b, k] = total
    return out


# --- L-infinity penalty -----------------------------------------------------------------
def test_linf_value_is_alpha_times_mean_of_max_abs() -> None:
    w = torch.tensor([[[[0.1, -0.5], [0.2, 0.3]]], [[[0.25, 0.25], [0.25, 0.25]]]])
    # K = 2 kernels; max |w| = 0.5 and 0.25
    torch.testing.assert_close(linf_depthwise_penalty(w, alpha=2.0), torch.tensor(0.75))


@pytest.mark.parametrize("k", [3, 5, 7])
def test_linf_is_smallest_for_the_box_among_kernels_with_the_same_sum(k: int) -> None:
    torch.manual_seed(k)
    box = LowPass2d(1, k, "learnable").weight.detach()
    box_penalty = linf_depthwise_penalty(box)
    torch.testing.assert_close(box_penalty, torch.tensor(1.0 / (k * k)))
    others = torch.rand(200, 1, k, k) + 0.01
    others = others / others.sum(dim=(-2, -1), keepdim=True)  # each sums to 1, as the box
    penalties = others.abs().flatten(1).amax(dim=1)
    assert bool((penalties > box_penalty).all())
    torch.testing.assert_close(linf_depthwise_penalty(others), penalties.mean())


def test_linf_gradient_descent_moves_a_kernel_towards_the_box() -> None:
    torch.manual_seed(0)
    layer = LowPass2d(2, 3, "learnable")
    with torch.no_grad():
        layer.weight.add_(0.05 * torch.randn_like(layer.weight))
        layer.weight.div_(layer.weight.sum(dim=(-2, -1), keepdim=True))
    start = float((layer.weight.detach() - 1 / 9).abs().max())
    opt = torch.optim.SGD(layer.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        linf_depthwise_penalty(layer, alpha=1.0).backward()
        opt.step()
        with torch.no_grad():  # keep each kernel's sum at 1 (projected gradient)
            layer.weight.add_((1 - layer.weight.sum(dim=(-2, -1), keepdim=True)) / 9)
    assert float((layer.weight.detach() - 1 / 9).abs().max()) < 0.1 * start


def test_linf_finds_learnable_layers_of_a_model() -> None:
    model = insert_lowpass(SmallCNN(input_shape=(1, 8, 8)), kind="learnable", kernel_size=3)
    (weight,) = depthwise_weights(model)
    assert weight is model.stage1[0].lowpass.weight
    penalty = linf_depthwise_penalty(model, alpha=0.1)
    torch.testing.assert_close(penalty, torch.tensor(0.1 / 9), rtol=1e-6, atol=0)
    penalty.backward()
    assert weight.grad is not None and int((weight.grad != 0).sum()) > 0


def test_linf_accepts_depthwise_convs_and_lists() -> None:
    conv = nn.Conv2d(4, 4, 3, groups=4, bias=False)
    layer = LowPass2d(3, 5, "learnable")
    expected = conv.weight.abs().flatten(1).amax(1).mean() + 1 / 25
    torch.testing.assert_close(linf_depthwise_penalty([conv, layer]), expected)


def test_linf_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no learnable depthwise kernel"):
        linf_depthwise_penalty(SmallCNN(input_shape=(1, 8, 8)))
    with pytest.raises(ValueError, match="no learnable depthwise kernel"):
        linf_depthwise_penalty(insert_lowpass(SmallCNN(input_shape=(1, 8, 8)), kind="box"))
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0, got -1.0"):
        linf_depthwise_penalty(LowPass2d(1, 3, "learnable"), alpha=-1.0)
    with pytest.raises(ValueError, match=r"got shape \(3, 3\)"):
        linf_depthwise_penalty(torch.ones(3, 3))
    with pytest.raises(TypeError, match="got str"):
        linf_depthwise_penalty(["conv"])  # type: ignore[list-item]


# --- total variation --------------------------------------------------------------------
def test_tv_of_a_constant_map_is_zero() -> None:
    # exact: every difference of two equal numbers is 0
    assert float(total_variation_penalty(torch.full((2, 3, 5, 4), 0.7), alpha=1.0)) == 0.0
    assert bool((total_variation(torch.full((1, 2, 3, 3), -2.0)) == 0).all())


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 6), (3, 2, 4, 1)])
def test_tv_matches_a_naive_loop(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(total_variation(x), _naive_tv(x))
    n, k = shape[:2]
    expected = 1e-4 / (n * k) * _naive_tv(x).sum()
    torch.testing.assert_close(total_variation_penalty(x, alpha=1e-4), expected)


def test_tv_of_a_list_adds_up_and_empty_batch_is_zero() -> None:
    a, b = torch.randn(2, 3, 4, 4), torch.randn(1, 5, 3, 3)
    total = total_variation_penalty([a, b], alpha=0.5)
    torch.testing.assert_close(
        total, total_variation_penalty(a, alpha=0.5) + total_variation_penalty(b, alpha=0.5)
    )
    assert float(total_variation_penalty(torch.zeros(0, 3, 4, 4))) == 0.0


def test_tv_gradcheck() -> None:
    x = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: total_variation_penalty(a, alpha=0.3), (x,))


def test_tv_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0, got -0.1"):
        total_variation_penalty(torch.ones(1, 1, 2, 2), alpha=-0.1)
    with pytest.raises(ValueError, match=r"feature_maps must have shape \(B, C, H, W\)"):
        total_variation_penalty(torch.ones(2, 2))
    with pytest.raises(ValueError, match="empty"):
        total_variation_penalty([])
    with pytest.raises(TypeError, match="int64"):
        total_variation_penalty(torch.ones(1, 1, 2, 2, dtype=torch.int64))


# --- capture_features --------------------------------------------------------------------
def test_capture_fills_on_forward_and_removes_its_hook() -> None:
    model = SmallCNN(input_shape=(1, 8, 8)).train()
    conv = model.stage1[0]
    with capture_features(model, "stage1.0") as maps:
        logits = model(torch.rand(4, 1, 8, 8))
        assert len(conv._forward_hooks) == 1
    assert len(conv._forward_hooks) == 0 and len(maps) == 1
    assert maps[0].shape == (4, 32, 8, 8) and maps[0].requires_grad
    loss = logits.logsumexp(1).mean() + total_variation_penalty(maps, alpha=1e-2)
    loss.backward()
    assert conv.weight.grad is not None
    model(torch.rand(1, 1, 8, 8))
    assert len(maps) == 1  # nothing captured after the context


def test_capture_detached_and_hook_removed_on_error() -> None:
    model = SmallCNN(input_shape=(1, 8, 8))
    with pytest.raises(RuntimeError, match="boom"), capture_features(model, "stage2") as maps:
        model(torch.rand(2, 1, 8, 8))
        raise RuntimeError("boom")
    assert not model.stage2._forward_hooks and maps[0].requires_grad
    with capture_features(model, "stage2", detach=True) as maps:
        model(torch.rand(2, 1, 8, 8))
    assert not maps[0].requires_grad


def test_capture_unknown_layer_lists_names() -> None:
    model = SmallCNN(input_shape=(1, 8, 8))
    with (
        pytest.raises(ValueError, match="unknown layer 'conv1'; valid names are: normalize"),
        capture_features(model, "conv1"),
    ):
        pass
