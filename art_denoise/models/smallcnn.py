"""A small CNN for 8x8 and 28x28 grey images (digits, MNIST, Fashion-MNIST)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from art_denoise.models.layers import Normalize, check_normalization

__all__ = ["SmallCNN"]


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Two conv stages and a two-layer head, with named stages for later insertions.

    ``normalize -> stage1 -> stage2 -> head``; each stage is conv3x3 -> BN -> ReLU ->
    maxpool2, so an 8x8 input leaves ``stage2`` as 2x2 and a 28x28 input as 7x7.

    Args:
        input_shape: (C, H, W) with H, W divisible by 4.
        num_classes: number of logits.
        widths: channels of the two stages.
        hidden: width of the hidden fully-connected layer.
        mean, std: per-channel normalisation applied inside the model.

    Shape:
        - Input: (B, C, H, W) in [0, 1]
        - Output: (B, num_classes) logits

    Example:
        >>> model = SmallCNN(input_shape=(1, 28, 28))
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    stages = ("stage1", "stage2")

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64),
        hidden: int = 128,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        c, h, w = (int(v) for v in input_shape)
        if h % 4 or w % 4:
            raise ValueError(
                f"SmallCNN needs H and W divisible by 4, got input_shape {tuple(input_shape)}"
            )
        if len(widths) != 2 or min(widths) < 1:
            raise ValueError(f"widths must be 2 channel counts >= 1, got {list(widths)}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.input_shape = (c, h, w)
        self.num_classes = int(num_classes)
        mean = list(mean) if mean is not None else [0.5] * c
        std = list(std) if std is not None else [0.5] * c
        check_normalization((c, h, w), mean, std)
        self._config: dict[str, Any] = {
            "input_shape": [c, h, w],
            "num_classes": self.num_classes,
            "widths": [int(v) for v in widths],
            "hidden": int(hidden),
            "mean": mean,
            "std": std,
        }
        self.normalize = Normalize(mean, std)
        self.stage1 = _stage(c, widths[0])
        self.stage2 = _stage(widths[0], widths[1])
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[1] * (h // 4) * (w // 4), hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this architecture."""
        return dict(self._config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage2(self.stage1(self.normalize(x))))
