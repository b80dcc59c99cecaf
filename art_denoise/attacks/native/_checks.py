"""Input checks shared by the native attacks (one place, at their public boundary)."""

from __future__ import annotations

import torch
from torch import nn

from art_denoise._validation import as_labels

__all__ = ["check_batch"]


def check_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``model``, a batch ``x`` (B, ...) and its labels ``y`` (B,); return them detached.

    ``x`` stays on its device and in its dtype; the labels become int64 on ``x``'s device.
    No value check runs on ``x`` (a device sync per batch): the backends check the range.

    Raises:
        TypeError: ``model`` is not a module, ``x`` not a floating tensor.
        ValueError: ``x`` has no batch axis, or ``y`` is not one label per image.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point torch tensor, got {kind}")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (B, ...), got shape {tuple(x.shape)}")
    labels = as_labels(y, n=x.shape[0]).to(x.device)
    return x.detach(), labels
