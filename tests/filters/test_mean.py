"""Known values of the mean filter; the shared checks are in ``test_contract.py``."""

from __future__ import annotations

import pytest
import torch
from scipy import ndimage

from art_denoise.filters import mean_filter2d
from tests._references import reference_mean


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 6, 5)])
def test_matches_scipy_mirror(k: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    out = mean_filter2d(x, kernel_size=k)
    torch.testing.assert_close(out, reference_mean(x, k))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_reflect_is_not_scipy_reflect() -> None:
    """The padding is documented as torch-reflect = scipy-mirror; scipy-reflect differs."""
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4) ** 2
    scipy_reflect = ndimage.uniform_filter(x.numpy(), size=(1, 1, 3, 3), mode="reflect")
    assert not torch.allclose(mean_filter2d(x, kernel_size=3), torch.from_numpy(scipy_reflect))
