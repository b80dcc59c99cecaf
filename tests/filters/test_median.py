from __future__ import annotations

import pytest
import torch
from scipy import ndimage

from art_denoise.filters import MedianFilter2d, median_filter2d

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _reference_median(x: torch.Tensor, k: int) -> torch.Tensor:
    """scipy's "mirror" mode is torch's "reflect" padding (d c b | a b c d)."""
    out = ndimage.median_filter(x.double().numpy(), size=(1, 1, k, k), mode="mirror")
    return torch.from_numpy(out)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 6, 5)])
def test_matches_scipy_mirror(k: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    out = median_filter2d(x, kernel_size=k)
    torch.testing.assert_close(out, _reference_median(x, k))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_removes_a_spike_and_keeps_a_constant() -> None:
    x = torch.full((1, 1, 5, 5), 2.0)
    x[0, 0, 2, 2] = 100.0
    assert torch.equal(median_filter2d(x, kernel_size=3), torch.full_like(x, 2.0))


def test_gradcheck() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: median_filter2d(a, kernel_size=3), (x,))


def test_module_equals_function() -> None:
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(MedianFilter2d(kernel_size=5)(x), median_filter2d(x, kernel_size=5))
    assert repr(MedianFilter2d(kernel_size=5)) == "MedianFilter2d(kernel_size=5)"


@pytest.mark.parametrize("batch", [0, 1, 2])
def test_batch_sizes(batch: int) -> None:
    assert median_filter2d(torch.randn(batch, 3, 4, 4), kernel_size=3).shape == (batch, 3, 4, 4)


def test_non_contiguous_input() -> None:
    x = torch.randn(2, 6, 3, 8).transpose(1, 2)[..., ::2]
    assert not x.is_contiguous()
    torch.testing.assert_close(median_filter2d(x, kernel_size=3), _reference_median(x, 3).float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtypes_agree_with_float64(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    out = median_filter2d(x.to(dtype), kernel_size=3)
    assert out.dtype == dtype
    # a median picks one of the (rounded) inputs: exact up to that rounding
    torch.testing.assert_close(out.double(), _reference_median(x.to(dtype), 3))
    torch.testing.assert_close(out.double(), _reference_median(x, 3), atol=2e-2, rtol=2e-2)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 9, 9, dtype=dtype)
    out = median_filter2d(x.cuda(), kernel_size=3)
    torch.testing.assert_close(out.cpu(), median_filter2d(x, kernel_size=3))
