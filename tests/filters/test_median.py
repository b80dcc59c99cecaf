"""Known values of the median filter; the shared checks are in ``test_contract.py``."""

from __future__ import annotations

import pytest
import torch

from art_denoise.filters import MedianFilter2d, median_filter2d
from tests._references import reference_median


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 6, 5)])
def test_matches_scipy_mirror(k: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    out = median_filter2d(x, kernel_size=k)
    torch.testing.assert_close(out, reference_median(x, k))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_removes_a_spike_and_keeps_a_constant() -> None:
    x = torch.full((1, 1, 5, 5), 2.0)
    x[0, 0, 2, 2] = 100.0
    # exact: a median picks one of its inputs
    assert torch.equal(median_filter2d(x, kernel_size=3), torch.full_like(x, 2.0))


def test_repr() -> None:
    assert repr(MedianFilter2d(kernel_size=5)) == "MedianFilter2d(kernel_size=5)"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtypes_exact_up_to_rounding(dtype: torch.dtype, device: torch.device) -> None:
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    out = median_filter2d(x.to(device, dtype), kernel_size=3)
    assert out.dtype == dtype
    # a median picks one of the (rounded) inputs: exact up to that rounding, on any device
    torch.testing.assert_close(out.double().cpu(), reference_median(x.to(dtype), 3))
