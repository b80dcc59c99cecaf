"""The test set every feature-map filter faces, one table row per filter.

Each :class:`FilterCase` says how to build the ``nn.Module``, how to call the same filter
as a function, what it is checked against (scipy.ndimage or a naive loop, from
``tests/_references.py``) and how close each dtype must come to that float64 reference.
Every case runs through: module == function, function == reference, float64
``gradcheck`` (input and every parameter), batch sizes 0/1/2, non-contiguous input, the
dtypes on each ``device`` (CUDA cases carry the ``cuda`` mark) and the integer-dtype error.

Known values, settings and error messages particular to one filter stay in its own file
(``test_mean.py``, ..., ``tests/blurnet/test_lowpass.py`` for BlurNet's ``LowPass2d``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from torch import nn

from art_denoise.blurnet import LowPass2d, box_kernel2d, gaussian_kernel2d, lowpass2d
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
from tests._references import (
    reference_bilateral,
    reference_correlate,
    reference_gaussian,
    reference_mean,
    reference_median,
    reference_nonlocal,
)

#: Channels of every input map here.
C = 4

Tolerances = dict[torch.dtype, tuple[float, float]]  # dtype -> (atol, rtol)


class FilterCase(NamedTuple):
    id: str
    #: Builds the module for ``C`` channels (parameters, if any, drawn from torch's RNG).
    module: Callable[[int], nn.Module]
    #: The same filter as a function call, given the module (for its parameters).
    function: Callable[[torch.Tensor, nn.Module], torch.Tensor]
    #: The float64 reference, given the input and the module.
    reference: Callable[[torch.Tensor, nn.Module], torch.Tensor]
    #: (atol, rtol) of each reduced dtype against the float64 reference.
    tolerances: Tolerances


def _tol(f16: float, bf16: float, f32: float, *, atol_factor: float = 1.0) -> Tolerances:
    return {
        torch.float16: (f16 * atol_factor, f16),
        torch.bfloat16: (bf16 * atol_factor, bf16),
        torch.float32: (f32 * atol_factor, f32),
    }


def _nonlocal_case(mode: str, embed: bool) -> FilterCase:
    def module(channels: int) -> nn.Module:
        return NonLocalMeans2d(channels, embed=embed, mode=mode)

    def embeddings(x: torch.Tensor, m: nn.Module) -> tuple[torch.Tensor, ...]:
        if not embed:
            return ()
        # a 1x1 conv cannot take integers: let an integer x reach the function's own check
        return (m.theta(x), m.phi(x)) if x.is_floating_point() else (x, x)

    def function(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
        return nonlocal_means2d(x, *embeddings(x, m), mode=mode)

    def reference(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
        return reference_nonlocal(x, *embeddings(x, m.double()), mode=mode)

    name = f"nonlocal-{mode}" + ("-embedded" if embed else "")
    return FilterCase(name, module, function, reference, _tol(1e-2, 5e-2, 1e-5, atol_factor=4))


def _learnable(channels: int) -> nn.Module:
    """A learnable low-pass whose kernel has moved away from the box it starts as."""
    layer = LowPass2d(channels, 3, "learnable")
    with torch.no_grad():
        layer.weight.normal_()
    return layer


CASES = [
    FilterCase(
        "mean",
        lambda c: MeanFilter2d(kernel_size=3),
        lambda x, m: mean_filter2d(x, kernel_size=3),
        lambda x, m: reference_mean(x, 3),
        _tol(5e-3, 3e-2, 1e-6),
    ),
    FilterCase(
        "median",
        lambda c: MedianFilter2d(kernel_size=5),
        lambda x, m: median_filter2d(x, kernel_size=5),
        lambda x, m: reference_median(x, 5),
        _tol(2e-2, 2e-2, 1e-6),
    ),
    FilterCase(
        "bilateral",
        lambda c: BilateralFilter2d(kernel_size=5, sigma_color=2.0, sigma_space=1.5),
        lambda x, m: bilateral_filter2d(x, kernel_size=5, sigma_color=2.0, sigma_space=1.5),
        lambda x, m: reference_bilateral(x, 5, 2.0, 1.5),
        _tol(1e-2, 5e-2, 1e-5, atol_factor=2),
    ),
    _nonlocal_case("gaussian", embed=False),
    _nonlocal_case("dot", embed=False),
    _nonlocal_case("gaussian", embed=True),
    _nonlocal_case("dot", embed=True),
    FilterCase(
        "lowpass-box",
        lambda c: LowPass2d(c, 3, "box"),
        lambda x, m: lowpass2d(x, box_kernel2d(3)),
        lambda x, m: reference_mean(x, 3),
        _tol(5e-3, 3e-2, 1e-6),
    ),
    FilterCase(
        "lowpass-gaussian",
        lambda c: LowPass2d(c, 5, "gaussian", sigma=1.5),
        lambda x, m: lowpass2d(x, gaussian_kernel2d(5, 1.5)),
        lambda x, m: reference_gaussian(x, 5, 1.5),
        _tol(5e-3, 3e-2, 1e-6),
    ),
    FilterCase(
        "lowpass-learnable",
        _learnable,
        lambda x, m: lowpass2d(x, m.weight),
        lambda x, m: reference_correlate(x, m.weight),
        _tol(1e-2, 5e-2, 1e-5, atol_factor=2),
    ),
]
IDS = [c.id for c in CASES]

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _build(case: FilterCase, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return case.module(C).to(dtype)


def _randn(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_module_equals_function(case: FilterCase, device: torch.device) -> None:
    layer = _build(case).to(device)
    x = _randn(2, C, 6, 7, dtype=torch.float32).to(device)
    torch.testing.assert_close(layer(x), case.function(x, layer))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_reference(case: FilterCase) -> None:
    layer = _build(case, torch.float64)
    x = _randn(2, C, 6, 7)
    out = case.function(x, layer)
    torch.testing.assert_close(out, case.reference(x, layer))
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case: FilterCase) -> None:
    """Gradients with respect to the input and to every parameter of the module."""
    layer = _build(case, torch.float64)
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x = _randn(1, C, 5, 6).requires_grad_(True)

    def run(a: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(names, weights, strict=True)), (a,))

    assert torch.autograd.gradcheck(run, (x, *params))


@pytest.mark.parametrize("batch", [0, 1, 2])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_batch_sizes(case: FilterCase, batch: int) -> None:
    layer = _build(case)
    x = _randn(batch, C, 5, 6, dtype=torch.float32)
    assert layer(x).shape == x.shape
    assert case.function(x, layer).shape == x.shape


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_non_contiguous_input(case: FilterCase) -> None:
    layer = _build(case, torch.float64)
    x = _randn(2, 6, C, 14).transpose(1, 2)[..., ::2]  # (2, C, 6, 7)
    assert not x.is_contiguous()
    out = case.function(x, layer)
    torch.testing.assert_close(out, case.reference(x, layer))
    torch.testing.assert_close(layer(x), case.function(x.contiguous(), layer))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dtypes_agree_with_float64(
    case: FilterCase, dtype: torch.dtype, device: torch.device
) -> None:
    layer64 = _build(case, torch.float64)
    layer = copy.deepcopy(layer64).to(device, dtype)
    x64 = _randn(2, C, 6, 6)
    out = case.function(x64.to(device, dtype), layer)
    assert out.dtype == dtype and out.device.type == device.type
    atol, rtol = case.tolerances.get(dtype, (None, None))  # float64: assert_close's default
    torch.testing.assert_close(
        out.double().cpu(), case.reference(x64, layer64), atol=atol, rtol=rtol
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_integer_input_is_refused(case: FilterCase) -> None:
    layer = _build(case)
    x = torch.zeros(1, C, 5, 5, dtype=torch.int64)
    with pytest.raises(TypeError, match="int64"):
        layer(x)
    with pytest.raises(TypeError, match="int64"):
        case.function(x, layer)
