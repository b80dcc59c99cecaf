"""Bilateral filter over feature maps: Gaussian weights on feature similarity and distance.

Used as a local denoising operation in Xie et al., "Feature Denoising for Improving
Adversarial Robustness", CVPR 2019, https://arxiv.org/abs/1812.03411.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._validation import check_feature_map, check_kernel_size, check_positive

__all__ = ["BilateralFilter2d", "bilateral_filter2d"]


def bilateral_filter2d(
    x: torch.Tensor,
    *,
    kernel_size: int = 3,
    sigma_color: float = 1.0,
    sigma_space: float = 1.0,
) -> torch.Tensor:
    r"""Bilateral filter of a feature map over a k x k window, with channel-wise similarity.

    For each position :math:`p_i`, with :math:`x_i \in \mathbb{R}^C` the feature vector
    there and :math:`\Omega_i` the k x k window centred on it,

    .. math::
        y_i = \frac{\sum_{j \in \Omega_i} w_{ij} x_j}{\sum_{j \in \Omega_i} w_{ij}},\quad
        w_{ij} = \exp\Big(-\frac{\lVert x_i - x_j \rVert^2}{2\sigma_c^2}\Big)
                 \exp\Big(-\frac{\lVert p_i - p_j \rVert^2}{2\sigma_s^2}\Big),

    where :math:`\lVert x_i - x_j \rVert^2` sums over all C channels (so all channels of a
    position share one weight, as in the non-local block) and
    :math:`\lVert p_i - p_j \rVert^2` is the squared pixel offset. The map is padded by
    ``k // 2`` with torch's ``"reflect"`` mode (d c b | a b c d, ``scipy.ndimage``'s
    ``"mirror"``). The weights are normalised through a softmax of their logarithms, so
    they never underflow to 0 / 0.

    Args:
        x: feature map.
        kernel_size: k, odd, at most the map's height and width.
        sigma_color: :math:`\sigma_c > 0`, the scale of feature distances.
        sigma_space: :math:`\sigma_s > 0`, the scale of pixel distances.

    Returns:
        The filtered map, same shape and dtype as ``x``; differentiable.

    Raises:
        TypeError: ``x`` is not a floating-point tensor or ``kernel_size`` not an int.
        ValueError: wrong rank, ``kernel_size`` even, < 1 or larger than the map, or a
            sigma <= 0.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> x = torch.randn(2, 4, 6, 6)
        >>> bilateral_filter2d(x, kernel_size=3, sigma_color=2.0).shape
        torch.Size([2, 4, 6, 6])
    """
    x = check_feature_map(x)
    k = check_kernel_size(kernel_size, x)
    sc = check_positive("sigma_color", sigma_color)
    ss = check_positive("sigma_space", sigma_space)
    if x.numel() == 0:
        return x.clone()
    b, c, h, w = x.shape
    p = k // 2
    padded = F.pad(x, (p, p, p, p), mode="reflect") if p else x
    patches = padded.unfold(2, k, 1).unfold(3, k, 1).reshape(b, c, h, w, k * k)
    color = (patches - x.unsqueeze(-1)).pow(2).sum(dim=1)  # (B, H, W, k*k)
    offsets = torch.arange(-p, p + 1, device=x.device, dtype=torch.float64)
    space = (offsets[:, None] ** 2 + offsets[None, :] ** 2).reshape(k * k) / (2 * ss * ss)
    logits = color * (-0.5 / (sc * sc)) - space.to(x.dtype)
    weights = logits.softmax(dim=-1)  # (B, H, W, k*k)
    return (patches * weights.unsqueeze(1)).sum(dim=-1)


class BilateralFilter2d(nn.Module):
    """Module form of :func:`bilateral_filter2d`, keeping its settings.

    Args:
        kernel_size: odd window size k.
        sigma_color: scale of feature (channel-vector) distances.
        sigma_space: scale of pixel distances.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> BilateralFilter2d(kernel_size=3)(torch.randn(1, 4, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(
        self, *, kernel_size: int = 3, sigma_color: float = 1.0, sigma_space: float = 1.0
    ) -> None:
        super().__init__()
        self.kernel_size = check_kernel_size(kernel_size)
        self.sigma_color = check_positive("sigma_color", sigma_color)
        self.sigma_space = check_positive("sigma_space", sigma_space)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bilateral_filter2d(
            x,
            kernel_size=self.kernel_size,
            sigma_color=self.sigma_color,
            sigma_space=self.sigma_space,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, sigma_color={self.sigma_color}, "
            f"sigma_space={self.sigma_space}"
        )
