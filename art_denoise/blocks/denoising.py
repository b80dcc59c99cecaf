"""The feature-denoising block: filter -> 1x1 conv -> BatchNorm (gamma = 0) -> residual add.

Xie, Wu, van der Maaten, Yuille, He, "Feature Denoising for Improving Adversarial
Robustness", CVPR 2019, https://arxiv.org/abs/1812.03411, Figure 4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from art_denoise._validation import check_choice, check_feature_map, check_positive_int
from art_denoise.filters import (
    BilateralFilter2d,
    MeanFilter2d,
    MedianFilter2d,
    NonLocalMeans2d,
)

__all__ = ["FILTERS", "DenoisingBlock", "create_filter"]


def _nonlocal(channels: int, **kwargs: Any) -> nn.Module:
    return NonLocalMeans2d(channels, **kwargs)


def _bilateral(channels: int, **kwargs: Any) -> nn.Module:
    return BilateralFilter2d(**kwargs)


def _mean(channels: int, **kwargs: Any) -> nn.Module:
    return MeanFilter2d(**kwargs)


def _median(channels: int, **kwargs: Any) -> nn.Module:
    return MedianFilter2d(**kwargs)


def _none(channels: int, **kwargs: Any) -> nn.Module:
    if kwargs:
        raise TypeError(f"filter 'none' takes no settings, got {sorted(kwargs)}")
    return nn.Identity()


#: Filter name -> factory ``(channels, **settings) -> nn.Module``. ``"none"`` is the
#: paper's "null (1x1 only)" ablation. Register new filters here.
FILTERS: dict[str, Callable[..., nn.Module]] = {
    "nonlocal": _nonlocal,
    "bilateral": _bilateral,
    "mean": _mean,
    "median": _median,
    "none": _none,
}


def create_filter(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Build the filter ``name`` (a key of :data:`FILTERS`) for ``channels`` channels.

    Unknown settings are rejected by the filter's constructor with a ``TypeError``.

    Example:
        >>> create_filter("median", 16, kernel_size=3)
        MedianFilter2d(kernel_size=3)
    """
    check_choice("filter", name, FILTERS)
    return FILTERS[name](channels, **kwargs)


class DenoisingBlock(nn.Module):
    """``y = x + BN(conv1x1(filter(x)))``, with BN's gamma at 0: a new block is the identity.

    The filter denoises, the 1x1 convolution weighs the denoised features, and the
    residual keeps the signal (the paper could not train the block without it). The
    ablations are options: ``filter="none"`` (1x1 only) and ``residual=False``
    (``y = BN(conv1x1(filter(x)))``; BN's gamma then starts at 1, since 0 would make the
    block output zeros).

    Args:
        channels: C, the channels of the feature map.
        filter: a key of :data:`FILTERS`: ``"nonlocal"`` (default, Gaussian, not
            embedded; pass ``embed=True`` for learned theta / phi), ``"bilateral"``,
            ``"mean"``, ``"median"`` or ``"none"``.
        residual: add the input back (the paper's block).
        **filter_kwargs: settings of the filter, e.g. ``mode="dot"``, ``kernel_size=3``.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> block = DenoisingBlock(16, "nonlocal", embed=True)
        >>> x = torch.randn(2, 16, 7, 7)
        >>> torch.equal(block(x), x)  # identity at initialisation
        True
    """

    def __init__(
        self,
        channels: int,
        filter: str = "nonlocal",
        *,
        residual: bool = True,
        **filter_kwargs: Any,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.filter_name = check_choice("filter", filter, FILTERS)
        self.residual = bool(residual)
        self.filter = create_filter(filter, self.channels, **filter_kwargs)
        self.conv = nn.Conv2d(self.channels, self.channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(self.channels)
        if self.residual:
            nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_feature_map(x, channels=self.channels)
        out = self.bn(self.conv(self.filter(x)))
        return x + out if self.residual else out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, filter={self.filter_name!r}, residual={self.residual}"
