"""Mean (box) filter over each channel of a feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._validation import check_feature_map, check_kernel_size

__all__ = ["MeanFilter2d", "mean_filter2d"]


def mean_filter2d(x: torch.Tensor, *, kernel_size: int = 3) -> torch.Tensor:
    """Mean of each channel over a k x k window, with reflect padding.

    The map is padded by ``k // 2`` with torch's ``"reflect"`` mode (d c b | a b c d, the
    border pixel is not repeated), which is ``scipy.ndimage``'s ``"mirror"`` mode: the
    result equals ``scipy.ndimage.uniform_filter(x, size=(1, 1, k, k), mode="mirror")``.

    Args:
        x: feature map.
        kernel_size: k, odd, at most the map's height and width.

    Returns:
        The filtered map, same shape and dtype as ``x``; differentiable.

    Raises:
        TypeError: ``x`` is not a floating-point tensor or ``kernel_size`` not an int.
        ValueError: wrong rank, or ``kernel_size`` even, < 1 or larger than the map.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> mean_filter2d(torch.ones(1, 2, 4, 4), kernel_size=3).unique()
        tensor([1.])
    """
    x = check_feature_map(x)
    k = check_kernel_size(kernel_size, x)
    if x.numel() == 0:
        return x.clone()
    p = k // 2
    padded = F.pad(x, (p, p, p, p), mode="reflect") if p else x
    return F.avg_pool2d(padded, k, stride=1)


class MeanFilter2d(nn.Module):
    """Module form of :func:`mean_filter2d`.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> MeanFilter2d(kernel_size=3)(torch.randn(1, 4, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, *, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = check_kernel_size(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_filter2d(x, kernel_size=self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"
