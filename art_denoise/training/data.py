"""The training loop's data: tensors on the device, walked in a seeded order, or batches.

:class:`TrainData` holds the training set as tensors on the device (no numpy round trip
per batch), or a function returning the next global batch (ART's
``DataGenerator.get_batch``), and hands the loop one global batch per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from art_denoise._validation import as_float_images, as_labels

__all__ = ["TrainData", "as_validation"]


@dataclass(frozen=True)
class TrainData:
    """The training set on the device, or a source of global batches.

    Attributes:
        x, y: the images and integer labels on the device (empty with ``batches``).
        size: examples per epoch.
        batch_size: the global batch size.
        steps_per_epoch: batches per epoch.
        num_classes: the number of classes.
        clip: the images' (min, max) range.
        device: where the batches go.
        batches: the function returning the next global batch, if any.
    """

    x: torch.Tensor
    y: torch.Tensor
    size: int
    batch_size: int
    steps_per_epoch: int
    num_classes: int
    clip: Any
    device: torch.device
    batches: Callable[[], tuple[Any, Any]] | None = None

    @classmethod
    def from_arrays(
        cls,
        x: Any,
        y: Any,
        *,
        batch_size: int,
        num_classes: int | None,
        clip: Any,
        device: torch.device,
    ) -> TrainData:
        """Images and labels (numpy or tensors, labels integer or one-hot) on ``device``."""
        xt = as_float_images(x, clip_values=clip).to(device)
        if len(xt) == 0:
            raise ValueError("x holds no training images")
        yt = as_labels(y, n=len(xt), num_classes=num_classes).to(device)
        k = int(num_classes) if num_classes is not None else int(yt.max()) + 1
        steps = math.ceil(len(xt) / batch_size)
        return cls(xt, yt, len(xt), batch_size, steps, k, clip, device)

    @classmethod
    def from_batches(
        cls,
        batches: Callable[[], tuple[Any, Any]],
        *,
        steps_per_epoch: int,
        batch_size: int,
        num_classes: int,
        clip: Any,
        device: torch.device,
    ) -> TrainData:
        """A function returning the next global batch, ``steps_per_epoch`` per epoch."""
        empty_x = torch.empty(0, device=device)
        empty_y = torch.empty(0, dtype=torch.int64, device=device)
        size = steps_per_epoch * batch_size
        k = int(num_classes)
        return cls(empty_x, empty_y, size, batch_size, steps_per_epoch, k, clip, device, batches)

    def start_epoch(
        self, order: torch.Tensor | None, step: int, generator: torch.Generator
    ) -> torch.Tensor | None:
        """The epoch's order: ``order`` when resuming one, else a new permutation.

        With ``batches`` there is no order; a run resumed at ``step`` of the epoch skips
        the batches already seen instead.
        """
        if self.batches is not None:
            for _ in range(step):
                self.batches()
            return None
        if order is None:
            order = torch.randperm(self.size, generator=generator)
        return order

    def batch(self, order: torch.Tensor | None, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch (x, y) of ``step``, on the device."""
        if self.batches is None:
            assert order is not None
            idx = order[step * self.batch_size : (step + 1) * self.batch_size].to(self.device)
            return self.x[idx], self.y[idx]
        xb_raw, yb_raw = self.batches()
        xb = as_float_images(xb_raw, clip_values=self.clip).to(self.device)
        return xb, as_labels(yb_raw, n=len(xb), num_classes=self.num_classes).to(self.device)


def as_validation(
    validation: tuple[Any, Any], *, num_classes: int, clip: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out (x, y) as images and integer labels on ``device``."""
    xv = as_float_images(validation[0], name="validation x", clip_values=clip).to(device)
    return xv, as_labels(validation[1], n=len(xv), num_classes=num_classes).to(device)
