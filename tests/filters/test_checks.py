"""Bad input, one table for every filter: each error names the value it got."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch

from art_denoise.filters import (
    BilateralFilter2d,
    MeanFilter2d,
    MedianFilter2d,
    NonLocalMeans2d,
    bilateral_filter2d,
    mean_filter2d,
    median_filter2d,
    nonlocal_means2d,
)

FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "nonlocal": nonlocal_means2d,
    "bilateral": bilateral_filter2d,
    "mean": mean_filter2d,
    "median": median_filter2d,
}
WINDOWED = {"bilateral": bilateral_filter2d, "mean": mean_filter2d, "median": median_filter2d}
MODULES = {"bilateral": BilateralFilter2d, "mean": MeanFilter2d, "median": MedianFilter2d}


class Bad(NamedTuple):
    x: object
    kwargs: dict
    error: type[Exception]
    match: str


INPUTS = {
    "rank-3": Bad(torch.zeros(4, 5, 5), {}, ValueError, r"\(B, C, H, W\).*\(4, 5, 5\)"),
    "rank-5": Bad(torch.zeros(1, 1, 4, 5, 5), {}, ValueError, r"\(1, 1, 4, 5, 5\)"),
    "int-dtype": Bad(torch.zeros(1, 2, 5, 5, dtype=torch.int64), {}, TypeError, "int64"),
    "not-a-tensor": Bad([[1.0]], {}, TypeError, "list"),
}
KERNELS = {
    "even": Bad(torch.zeros(1, 2, 5, 5), {"kernel_size": 2}, ValueError, "odd, got 2"),
    "zero": Bad(torch.zeros(1, 2, 5, 5), {"kernel_size": 0}, ValueError, ">= 1, got 0"),
    "negative": Bad(torch.zeros(1, 2, 5, 5), {"kernel_size": -3}, ValueError, "-3"),
    "float": Bad(torch.zeros(1, 2, 5, 5), {"kernel_size": 3.0}, TypeError, "3.0"),
    "larger-than-map": Bad(
        torch.zeros(1, 2, 5, 7), {"kernel_size": 7}, ValueError, "7 is larger than the 5x7"
    ),
}
SIGMAS = {
    "sigma-color-zero": Bad(torch.zeros(1, 2, 5, 5), {"sigma_color": 0}, ValueError, "sigma_color"),
    "sigma-space-nan": Bad(
        torch.zeros(1, 2, 5, 5), {"sigma_space": float("nan")}, ValueError, "nan"
    ),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("case", list(INPUTS.values()), ids=list(INPUTS))
def test_bad_feature_map(name: str, case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        FUNCTIONS[name](case.x, **case.kwargs)


@pytest.mark.parametrize("name", list(WINDOWED))
@pytest.mark.parametrize("case", list(KERNELS.values()), ids=list(KERNELS))
def test_bad_kernel_size(name: str, case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        WINDOWED[name](case.x, **case.kwargs)


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize(
    "case",
    [c for k, c in KERNELS.items() if k != "larger-than-map"],
    ids=[k for k in KERNELS if k != "larger-than-map"],
)
def test_bad_kernel_size_in_module(name: str, case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        MODULES[name](**case.kwargs)


@pytest.mark.parametrize("case", list(SIGMAS.values()), ids=list(SIGMAS))
def test_bad_sigma(case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        bilateral_filter2d(case.x, **case.kwargs)
    with pytest.raises(case.error, match=case.match):
        BilateralFilter2d(**case.kwargs)


def test_channel_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match=r"must have 6 channels, got shape \(1, 4, 5, 5\)"):
        NonLocalMeans2d(6)(torch.zeros(1, 4, 5, 5))
