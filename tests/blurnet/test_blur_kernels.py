from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from scipy import ndimage

from art_denoise.blurnet import box_kernel2d, default_sigma, gaussian_kernel2d, lowpass2d


def _reference_gaussian(x: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    out = ndimage.gaussian_filter(
        x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", radius=(0, 0, k // 2, k // 2)
    )
    return torch.from_numpy(out)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_box_sums_to_one_with_equal_weights(k: int) -> None:
    kernel = box_kernel2d(k, dtype=torch.float64)
    assert kernel.shape == (k, k) and kernel.dtype == torch.float64
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert kernel.unique().numel() == 1


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
def test_gaussian_matches_scipy_gaussian_filter(k: int, sigma: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    out = lowpass2d(x, gaussian_kernel2d(k, sigma, dtype=torch.float64))
    torch.testing.assert_close(out, _reference_gaussian(x, k, sigma))


def test_gaussian_matches_scipy_with_truncate() -> None:
    """``radius = int(truncate * sigma + 0.5)`` in scipy: truncate = (k // 2) / sigma."""
    k, sigma = 5, 1.3
    x = np.random.default_rng(0).normal(size=(1, 1, 7, 7))
    ref = ndimage.gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="mirror", truncate=2 / sigma)
    out = lowpass2d(torch.from_numpy(x), gaussian_kernel2d(k, sigma, dtype=torch.float64))
    torch.testing.assert_close(out, torch.from_numpy(ref))


@pytest.mark.parametrize("k", [3, 5, 7])
def test_gaussian_is_normalised_symmetric_and_peaked(k: int) -> None:
    kernel = gaussian_kernel2d(k, 1.0, dtype=torch.float64)
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(kernel, kernel.T)
    torch.testing.assert_close(kernel, kernel.flip(0))
    assert kernel.argmax().item() == (k * k) // 2


def test_default_sigma_is_opencv_rule() -> None:
    assert [round(default_sigma(k), 6) for k in (3, 5, 7)] == [0.8, 1.1, 1.4]
    torch.testing.assert_close(gaussian_kernel2d(5), gaussian_kernel2d(5, 1.1))


def test_large_sigma_tends_to_box() -> None:
    torch.testing.assert_close(gaussian_kernel2d(3, 1e4), box_kernel2d(3), atol=1e-7, rtol=0)


class BadCase(NamedTuple):
    call: object
    error: type[Exception]
    match: str


BAD = {
    "box even": BadCase(lambda: box_kernel2d(4), ValueError, "odd, got 4"),
    "box zero": BadCase(lambda: box_kernel2d(0), ValueError, "got 0"),
    "box negative": BadCase(lambda: box_kernel2d(-3), ValueError, "got -3"),
    "box float": BadCase(lambda: box_kernel2d(3.0), TypeError, "3.0"),
    "gauss even": BadCase(lambda: gaussian_kernel2d(6, 1.0), ValueError, "odd, got 6"),
    "sigma zero": BadCase(lambda: gaussian_kernel2d(3, 0.0), ValueError, "sigma must be > 0"),
    "sigma negative": BadCase(lambda: gaussian_kernel2d(3, -1.0), ValueError, "-1.0"),
    "sigma nan": BadCase(lambda: gaussian_kernel2d(3, float("nan")), ValueError, "nan"),
    "sigma str": BadCase(lambda: gaussian_kernel2d(3, "1"), TypeError, "'1'"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_arguments(case: BadCase) -> None:
    with pytest.raises(case.error, match=case.match):
        case.call()  # type: ignore[operator]
