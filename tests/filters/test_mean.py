from __future__ import annotations

import pytest
import torch
from scipy import ndimage

from art_denoise.filters import MeanFilter2d, mean_filter2d

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _reference_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """scipy's "mirror" mode is torch's "reflect" padding (d c b | a b c d)."""
    out = ndimage.uniform_filter(x.double().numpy(), size=(1, 1, k, k), mode="mirror")
    return torch.from_numpy(out)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 6, 5)])
def test_matches_scipy_mirror(k: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    out = mean_filter2d(x, kernel_size=k)
    torch.testing.assert_close(out, _reference_mean(x, k))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_reflect_is_not_scipy_reflect() -> None:
    """The padding is documented as torch-reflect = scipy-mirror; scipy-reflect differs."""
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4) ** 2
    scipy_reflect = ndimage.uniform_filter(x.numpy(), size=(1, 1, 3, 3), mode="reflect")
    assert not torch.allclose(mean_filter2d(x, kernel_size=3), torch.from_numpy(scipy_reflect))


def test_gradcheck() -> None:
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: mean_filter2d(a, kernel_size=3), (x,))


def test_module_equals_function() -> None:
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(MeanFilter2d(kernel_size=3)(x), mean_filter2d(x, kernel_size=3))


@pytest.mark.parametrize("batch", [0, 1, 2])
def test_batch_sizes(batch: int) -> None:
    assert mean_filter2d(torch.randn(batch, 3, 4, 4), kernel_size=3).shape == (batch, 3, 4, 4)


def test_non_contiguous_input() -> None:
    x = torch.randn(2, 6, 3, 8, dtype=torch.float64).transpose(1, 2)[..., ::2]
    assert not x.is_contiguous()
    torch.testing.assert_close(mean_filter2d(x, kernel_size=3), _reference_mean(x, 3))


@pytest.mark.parametrize(
    ("dtype", "tol"),
    [(torch.float16, 5e-3), (torch.bfloat16, 3e-2), (torch.float32, 1e-6)],
    ids=["float16", "bfloat16", "float32"],
)
def test_dtypes_agree_with_float64(dtype: torch.dtype, tol: float) -> None:
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    out = mean_filter2d(x.to(dtype), kernel_size=3)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), _reference_mean(x, 3), atol=tol, rtol=tol)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 9, 9, dtype=dtype)
    out = mean_filter2d(x.cuda(), kernel_size=5)
    torch.testing.assert_close(out.cpu(), mean_filter2d(x, kernel_size=5), atol=1e-3, rtol=1e-3)
