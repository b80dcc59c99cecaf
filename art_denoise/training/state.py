"""What the training loop carries from step to step, and its checkpoint form.

:class:`Trainables` are the objects a step updates (model, optimiser, scheduler, PCL
centres and their optimiser, AMP scaler, weight average); :class:`LoopState` adds the
loop's own position and records (epoch, step, data order, running sums, history, best
epoch, the data generator). :meth:`LoopState.to_checkpoint` and
:meth:`LoopState.restore` turn it into the checkpoint dict and back; the dict's keys and
their order are the on-disk format (:mod:`art_denoise.training.checkpoint`), so keep
them as they are: checkpoints written by earlier versions must resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from art_denoise.training.averaging import WeightAverage
from art_denoise.training.early_stopping import new_best
from art_denoise.training.pcl import PrototypeConformityLoss

__all__ = ["LoopState", "Trainables", "new_sums"]


def new_sums(device: torch.device) -> torch.Tensor:
    """The epoch's running sums: loss, clean hits, adversarial hits, examples, clean examples."""
    return torch.zeros(5, dtype=torch.float64, device=device)


@dataclass(frozen=True)
class Trainables:
    """The objects a training step updates; a checkpoint keeps their ``state_dict``."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    pcl: PrototypeConformityLoss | None = None
    pcl_optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    averager: WeightAverage | None = None

    def state_dicts(self) -> dict[str, Any]:
        """Their states under the checkpoint's keys (``None`` for the absent ones)."""
        parts = {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "pcl": self.pcl,
            "pcl_optimizer": self.pcl_optimizer,
            "scaler": self.scaler,
            "ema": self.averager,
        }
        return {key: part.state_dict() if part is not None else None for key, part in parts.items()}

    def load_state_dicts(self, checkpoint: dict[str, Any]) -> None:
        """Load their states from a checkpoint (those it holds for the parts present)."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scheduler is not None and checkpoint.get("scheduler") is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.pcl is not None:
            self.pcl.load_state_dict(checkpoint["pcl"])
            if self.pcl_optimizer is not None:
                self.pcl_optimizer.load_state_dict(checkpoint["pcl_optimizer"])
        if self.scaler is not None and checkpoint.get("scaler") is not None:
            self.scaler.load_state_dict(checkpoint["scaler"])
        if self.averager is not None:
            self.averager.load_state_dict(checkpoint["ema"])


@dataclass
class LoopState:
    """Everything that changes while :func:`~art_denoise.training.loop.fit` runs.

    Attributes:
        parts: the model, optimisers and the other trained objects.
        generator: draws the data order and the method's randomness.
        sums: the epoch's running sums (:func:`new_sums`), on the device.
        epoch: epochs finished (the 0-based index of the one running).
        step_in_epoch: steps of this epoch finished.
        global_step: optimiser steps in total, including before a resume.
        order: this epoch's data order (``None`` between epochs and with ``batches``).
        history: one dict per finished epoch.
        best: the best validated epoch (:func:`~art_denoise.training.early_stopping.
            update_best`).
        stopped: early stopping ended the run (a resumed run then trains no further).
    """

    parts: Trainables
    generator: torch.Generator
    sums: torch.Tensor
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    order: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=new_best)
    stopped: bool = False

    def end_epoch(self) -> None:
        """Move to the start of the next epoch: new order, zero sums."""
        self.sums.zero_()
        self.order, self.step_in_epoch = None, 0
        self.epoch += 1

    def to_checkpoint(
        self, *, signature: dict[str, list[int]], settings: dict[str, Any], rng: dict[str, Any]
    ) -> dict[str, Any]:
        """The checkpoint dict (without the format tag :func:`save_checkpoint` adds).

        Args:
            signature: the model's :func:`~art_denoise.training.checkpoint.model_signature`.
            settings: the run's training settings a resumed run must match.
            rng: the global random state, as the loop saves it.
        """
        return {
            "signature": signature,
            "settings": settings,
            **self.parts.state_dicts(),
            "generator": self.generator.get_state(),
            "rng": rng,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "order": self.order,
            "sums": self.sums.cpu(),
            "history": self.history,
            "best": self.best,
            "stopped": self.stopped,
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint dict (all but the global random state, in place)."""
        self.parts.load_state_dicts(checkpoint)
        # an RNG state is a CPU byte tensor; a checkpoint loaded onto a GPU moved it there
        self.generator.set_state(checkpoint["generator"].cpu())
        self.epoch = int(checkpoint["epoch"])
        self.step_in_epoch = int(checkpoint["step_in_epoch"])
        self.order = checkpoint["order"]
        self.sums = checkpoint["sums"].to(self.sums.device)
        self.history = list(checkpoint["history"])
        self.global_step = int(checkpoint["global_step"])
        self.best = dict(checkpoint["best"])
        # checkpoints written before this field existed never record a stop
        self.stopped = bool(checkpoint.get("stopped", False))
