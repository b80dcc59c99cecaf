from __future__ import annotations

import math

import pytest
import torch

from art_denoise.filters import BilateralFilter2d, bilateral_filter2d, mean_filter2d

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _mirror(i: int, n: int) -> int:
    """torch "reflect" / scipy "mirror" index: -1 -> 1, n -> n - 2."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


def _reference_bilateral(x: torch.Tensor, k: int, sc: float, ss: float) -> torch.Tensor:
    """The docstring's formula, one position at a time, in float64."""
    x = x.double()
    b, c, h, w = x.shape
    p = k // 2
    out = torch.zeros_like(x)
    for bi in range(b):
        for i in range(h):
            for j in range(w):
                num, den = torch.zeros(c, dtype=torch.float64), 0.0
                for di in range(-p, p + 1):
                    for dj in range(-p, p + 1):
                        xj = x[bi, :, _mirror(i + di, h), _mirror(j + dj, w)]
                        color = float(((x[bi, :, i, j] - xj) ** 2).sum())
                        weight = math.exp(-color / (2 * sc**2)) * math.exp(
                            -(di**2 + dj**2) / (2 * ss**2)
                        )
                        num += weight * xj
                        den += weight
                out[bi, :, i, j] = num / den
    return out


@pytest.mark.parametrize(("k", "sc", "ss"), [(3, 1.0, 1.0), (3, 0.5, 2.0), (5, 2.0, 0.7)])
def test_matches_direct_loop(k: int, sc: float, ss: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    out = bilateral_filter2d(x, kernel_size=k, sigma_color=sc, sigma_space=ss)
    torch.testing.assert_close(out, _reference_bilateral(x, k, sc, ss))
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


def test_gradcheck() -> None:
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: bilateral_filter2d(a, kernel_size=3, sigma_color=1.5), (x,)
    )


def test_module_equals_function() -> None:
    x = torch.randn(2, 3, 6, 6)
    layer = BilateralFilter2d(kernel_size=5, sigma_color=2.0, sigma_space=1.5)
    expected = bilateral_filter2d(x, kernel_size=5, sigma_color=2.0, sigma_space=1.5)
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("batch", [0, 1, 2])
def test_batch_sizes(batch: int) -> None:
    assert bilateral_filter2d(torch.randn(batch, 3, 4, 4)).shape == (batch, 3, 4, 4)


def test_non_contiguous_input() -> None:
    x = torch.randn(2, 6, 3, 8, dtype=torch.float64).transpose(1, 2)[..., ::2]
    assert not x.is_contiguous()
    torch.testing.assert_close(bilateral_filter2d(x), _reference_bilateral(x, 3, 1.0, 1.0))


@pytest.mark.parametrize(
    ("dtype", "tol"),
    [(torch.float16, 1e-2), (torch.bfloat16, 5e-2), (torch.float32, 1e-5)],
    ids=["float16", "bfloat16", "float32"],
)
def test_dtypes_agree_with_float64(dtype: torch.dtype, tol: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    out = bilateral_filter2d(x.to(dtype), sigma_color=2.0)
    assert out.dtype == dtype
    torch.testing.assert_close(
        out.double(), bilateral_filter2d(x, sigma_color=2.0), atol=tol * 2, rtol=tol
    )


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    out = bilateral_filter2d(x.to("cuda", dtype), kernel_size=5, sigma_color=2.0)
    expected = bilateral_filter2d(x, kernel_size=5, sigma_color=2.0)
    torch.testing.assert_close(out.double().cpu(), expected, atol=2e-2, rtol=2e-2)
