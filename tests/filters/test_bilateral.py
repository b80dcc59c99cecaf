"""Known values of the bilateral filter; the shared checks are in ``test_contract.py``."""

from __future__ import annotations

import pytest
import torch

from art_denoise.filters import bilateral_filter2d, mean_filter2d
from tests._references import reference_bilateral


@pytest.mark.parametrize(("k", "sc", "ss"), [(3, 1.0, 1.0), (3, 0.5, 2.0), (5, 2.0, 0.7)])
def test_matches_direct_loop(k: int, sc: float, ss: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    out = bilateral_filter2d(x, kernel_size=k, sigma_color=sc, sigma_space=ss)
    torch.testing.assert_close(out, reference_bilateral(x, k, sc, ss))
    assert out.dtype == x.dtype


def test_large_sigmas_give_the_mean_filter_and_k1_the_identity() -> None:
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    out = bilateral_filter2d(x, kernel_size=3, sigma_color=1e8, sigma_space=1e8)
    torch.testing.assert_close(out, mean_filter2d(x, kernel_size=3))
    torch.testing.assert_close(bilateral_filter2d(x, kernel_size=1), x)


def test_far_features_do_not_mix() -> None:
    """An edge between two flat regions survives a small sigma_color (unlike a mean)."""
    x = torch.zeros(1, 1, 4, 6)
    x[..., 3:] = 10.0
    torch.testing.assert_close(bilateral_filter2d(x, kernel_size=3, sigma_color=0.5), x)
