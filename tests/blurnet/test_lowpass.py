"""BlurNet's LowPass2d: known values, state and settings.

The checks every filter faces (module == function, reference, gradcheck, batch sizes,
non-contiguous input, dtypes and devices) run on its box, Gaussian and learnable kinds in
``tests/filters/test_contract.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from art_denoise.blurnet import LowPass2d, box_kernel2d, lowpass2d
from tests._references import reference_correlate, reference_gaussian, reference_mean


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_box_layer_matches_scipy_uniform_filter(k: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    out = LowPass2d(3, k, "box").double()(x)
    torch.testing.assert_close(out, reference_mean(x, k))
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("k", [3, 5])
def test_gaussian_layer_matches_scipy_gaussian_filter(k: int) -> None:
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    out = LowPass2d(2, k, "gaussian", sigma=0.9).double()(x)
    torch.testing.assert_close(out, reference_gaussian(x, k, 0.9))


def test_function_is_a_correlation_with_any_kernel() -> None:
    """Non-symmetric, per-channel kernels: cross-correlation, as scipy's ``correlate``."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    kernel = torch.randn(3, 1, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(lowpass2d(x, kernel), reference_correlate(x, kernel))
    shared = torch.randn(5, 5, dtype=torch.float64)
    torch.testing.assert_close(
        lowpass2d(x, shared), reference_correlate(x, shared.expand(3, 1, 5, 5))
    )


def test_learnable_starts_as_the_fixed_box() -> None:
    x = torch.randn(2, 4, 8, 8)
    learnable = LowPass2d(4, 5, "learnable")
    assert isinstance(learnable.weight, torch.nn.Parameter) and learnable.learnable
    torch.testing.assert_close(learnable(x), LowPass2d(4, 5, "box")(x))
    assert not LowPass2d(4, 5, "box").learnable


def test_learnable_kernel_gets_gradients() -> None:
    layer = LowPass2d(3, 3, "learnable")
    layer(torch.randn(2, 3, 5, 5)).pow(2).sum().backward()
    assert layer.weight.grad is not None and bool(layer.weight.grad.abs().sum() > 0)


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
