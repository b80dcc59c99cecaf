"""Median filter over each channel of a feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._validation import check_feature_map, check_kernel_size

__all__ = ["MedianFilter2d", "median_filter2d"]


def median_filter2d(x: torch.Tensor, *, kernel_size: int = 3) -> torch.Tensor:
    """Median of each channel over a k x k window, with reflect padding.

    The map is padded by ``k // 2`` with torch's ``"reflect"`` mode (d c b | a b c d),
    which is ``scipy.ndimage``'s ``"mirror"`` mode: the result equals
    ``scipy.ndimage.median_filter(x, size=(1, 1, k, k), mode="mirror")``. Computed as
    ``unfold`` + ``median`` (k * k is odd, so the median is one of the window's values);
    the gradient flows to the selected pixel of each window.

    Args:
        x: feature map.
        kernel_size: k, odd, at most the map's height and width.

    Returns:
        The filtered map, same shape and dtype as ``x``; differentiable almost everywhere.

    Raises:
        TypeError: ``x`` is not a floating-point tensor or ``kernel_size`` not an int.
        ValueError: wrong rank, or ``kernel_size`` even, < 1 or larger than the map.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> x = torch.zeros(1, 1, 3, 3)
        >>> x[0, 0, 1, 1] = 9.0  # an isolated spike is removed
        >>> median_filter2d(x, kernel_size=3).abs().max()
        tensor(0.)
    """
    x = check_feature_map(x)
    k = check_kernel_size(kernel_size, x)
    if x.numel() == 0 or k == 1:
        return x.clone()
    b, c, h, w = x.shape
    p = k // 2
    padded = F.pad(x, (p, p, p, p), mode="reflect")
    patches = padded.unfold(2, k, 1).unfold(3, k, 1).reshape(b, c, h, w, k * k)
    return patches.median(dim=-1).values


class MedianFilter2d(nn.Module):
    """Module form of :func:`median_filter2d`.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> MedianFilter2d(kernel_size=3)(torch.randn(1, 4, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = check_kernel_size(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return median_filter2d(x, kernel_size=self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"
