"""The epoch-end check on held-out data, and the early-stopping decision it feeds.

:class:`ValidationAttack` measures clean and PGD accuracy on the held-out slice;
:func:`update_best` keeps the best epoch's weights and says when the PGD accuracy has
fallen far enough below its best to stop (catastrophic overfitting of fast adversarial
training).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from art_denoise._torch import random_ball
from art_denoise.training.adversarial_examples import pgd_examples
from art_denoise.training.distributed import DistContext, all_reduce_sum, shard

__all__ = ["ValidationAttack", "new_best", "update_best"]


@dataclass(frozen=True)
class ValidationAttack:
    """The PGD run on the held-out slice at each epoch end (for early stopping)."""

    eps: float
    steps: int = 10
    step_size: float | None = None
    norm: str = "inf"
    seed: int = 12345

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: DistContext, clip: Any
    ) -> tuple[float, float]:
        """(clean accuracy, PGD accuracy) of ``model`` in eval mode on (x, y)."""
        was_training = model.training
        model.eval()
        gen = torch.Generator().manual_seed(self.seed)
        noise = shard(random_ball(tuple(x.shape), self.eps, self.norm, gen), ctx)
        xs, ys = shard(x, ctx), shard(y, ctx)
        step = self.step_size if self.step_size is not None else self.eps / 4
        counts = torch.zeros(3, dtype=torch.float64, device=x.device)
        for start in range(0, len(xs), 512):
            xb, yb = xs[start : start + 512], ys[start : start + 512]
            with torch.no_grad():
                clean = model(xb).argmax(1) == yb
            adv = pgd_examples(
                model,
                xb,
                yb,
                eps=self.eps,
                step_size=step,
                steps=self.steps,
                norm=self.norm,
                generator=gen,
                noise=noise[start : start + 512],
                clip_values=clip,
            )
            with torch.no_grad():
                robust = (model(adv).argmax(1) == yb) & clean
            counts += torch.stack([clean.sum(), robust.sum(), torch.tensor(len(yb))]).to(counts)
        model.train(was_training)
        all_reduce_sum(counts, ctx)
        n = max(float(counts[2]), 1.0)
        return float(counts[0]) / n, float(counts[1]) / n


def new_best() -> dict[str, Any]:
    """The best-epoch record before any validation: no accuracy, epoch or weights yet."""
    return {"acc": None, "epoch": None, "state": None}


def update_best(
    best: dict[str, Any],
    val_adv: float,
    epoch: int,
    weights: Mapping[str, torch.Tensor],
    drop: float,
) -> tuple[dict[str, Any], bool]:
    """The best-epoch record after an epoch, and whether to stop training.

    Args:
        best: ``{"acc", "epoch", "state"}``: the best validation PGD accuracy so far, its
            (1-based) epoch and a CPU copy of its weights (as saved in checkpoints).
        val_adv: this epoch's validation PGD accuracy.
        epoch: this epoch's number (1-based).
        weights: the weights validated this epoch (the average, when averaging).
        drop: stop when ``val_adv`` is more than this below the best accuracy.

    Returns:
        A new record holding a copy of ``weights`` when this epoch is the best so far
        (never a stop), else ``best`` itself and whether the accuracy fell too far.
    """
    if best["acc"] is None or val_adv > best["acc"]:
        state = {name: t.detach().cpu().clone() for name, t in weights.items()}
        return {"acc": val_adv, "epoch": epoch, "state": state}, False
    return best, val_adv < best["acc"] - drop
