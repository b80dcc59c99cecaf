"""Input checks shared by the feature-map filters (the public boundary of each filter)."""

from __future__ import annotations

from typing import Any

import torch

from art_denoise._validation import check_positive_int

__all__ = ["check_feature_map", "check_kernel_size"]


def check_feature_map(x: Any, *, name: str = "x", channels: int | None = None) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor of shape (B, C, H, W).

    Raises:
        TypeError: ``x`` is not a tensor, or not of a floating dtype.
        ValueError: ``x`` is not 4-D, or has a channel count other than ``channels``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point values, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")
    return x


def check_kernel_size(kernel_size: Any, x: torch.Tensor | None = None) -> int:
    """Return ``kernel_size`` if it is a positive odd ``int`` no larger than ``x``'s map.

    Raises:
        TypeError: ``kernel_size`` is not an int.
        ValueError: ``kernel_size`` is even, < 1, or larger than the height or width of ``x``.
    """
    k = check_positive_int("kernel_size", kernel_size)
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {k}")
    if x is not None and k > min(x.shape[-2], x.shape[-1]):
        raise ValueError(
            f"kernel_size {k} is larger than the {x.shape[-2]}x{x.shape[-1]} feature map"
        )
    return k
