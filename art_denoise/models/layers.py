"""Small building blocks shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Normalize", "check_normalization"]


def check_normalization(
    input_shape: tuple[int, int, int], mean: Sequence[float], std: Sequence[float]
) -> None:
    """Raise a ``ValueError`` unless ``mean`` and ``std`` have one value per input channel.

    Example:
        >>> check_normalization((1, 28, 28), [0.4914, 0.4822, 0.4465], [0.25] * 3)
        Traceback (most recent call last):
        ...
        ValueError: mean and std have 3 values but input_shape (1, 28, 28) has 1 channel(s); pass mean= and std= with 1 value(s)
    """  # noqa: E501
    channels = input_shape[0]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean and std have {len(mean)} values but input_shape {tuple(input_shape)} has "
            f"{channels} channel(s); pass mean= and std= with {channels} value(s)"
        )


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` inside the model, so attacks see [0, 1] inputs.

    Images of another channel count are refused (broadcasting would silently turn a grey
    image into three channels for a colour normalisation).

    Raises:
        ValueError: in ``forward``, ``x`` is not (B, C, H, W) with C = ``len(mean)``.

    Example:
        >>> Normalize([0.5] * 3, [0.25] * 3)(torch.zeros(2, 1, 4, 4))
        Traceback (most recent call last):
        ...
        ValueError: the model normalises 3-channel images but got 1 channel(s): shape (2, 1, 4, 4)

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std differ in length: {len(mean)} vs {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {list(std)}")
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.mean.shape[1]
        if x.ndim != 4:
            raise ValueError(
                f"the model normalises (B, {channels}, H, W) images but got shape {tuple(x.shape)}"
            )
        if x.shape[1] != channels:
            raise ValueError(
                f"the model normalises {channels}-channel images but got {x.shape[1]} "
                f"channel(s): shape {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
