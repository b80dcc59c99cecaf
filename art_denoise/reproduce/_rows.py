"""What the tables' rows share: training a recipe in the row's directory (resumable) and
reading the cells of a row out of an evaluation report."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from art_denoise.evaluation.results import ModelReport
from art_denoise.recipes import (
    ModelRecipe,
    TrainedRun,
    TrainingRecipe,
    clean_accuracy,
    train_recipe,
)
from art_denoise.reproduce.table import TableContext
from art_denoise.training.loop import CHECKPOINT_NAME

__all__ = ["attack_accuracy", "evaluate_row", "train_row", "worst_case"]


def train_row(
    recipe: ModelRecipe, training: TrainingRecipe, ctx: TableContext, row_dir: Path
) -> TrainedRun:
    """Train ``recipe`` on the context's dataset with its checkpoint in ``row_dir``: a row
    killed while training continues from its checkpoint (same weights as a run that was
    not killed); the trained model is saved there as ``model.safetensors``."""
    resume = (row_dir / CHECKPOINT_NAME).exists()
    data = ctx.data()
    run = train_recipe(
        recipe,
        training,
        data,
        device=ctx.device,
        checkpoint_dir=row_dir,
        resume=resume,
        progress=ctx.progress,
    )
    run.model.eval()
    accuracy = clean_accuracy(run.model, data.x_test, data.y_test, ctx.device)
    run.save(row_dir, test_accuracy=accuracy)
    return run


def evaluate_row(
    model: nn.Module,
    ctx: TableContext,
    *,
    n_test: int,
    seed: int,
    **kwargs: Any,
) -> ModelReport:
    """``evaluate`` on the first ``n_test`` test images, quietly, warnings kept in the
    report (a randomised model is attacked with EOT by the default suite)."""
    from art_denoise.evaluation import evaluate

    data = ctx.data()
    n = min(n_test, len(data.x_test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = evaluate(
            model,
            data.x_test[:n],
            data.y_test[:n],
            device=ctx.device,
            seed=seed,
            progress=False,
            dataset=ctx.dataset,
            **kwargs,
        )
    return report.models[0]


def worst_case(report: ModelReport, eps: float, norm: str = "inf") -> float:
    """The worst case over every attack and backend at (``norm``, ``eps``)."""
    for t in report.threat_models:
        if t.norm == norm and abs(t.eps - eps) < 1e-12:
            return t.robust_accuracy
    have = [(t.norm, t.eps) for t in report.threat_models]
    raise KeyError(f"no threat model ({norm}, {eps}) in the report; it has {have}")


def attack_accuracy(report: ModelReport, attack: str, eps: float | None = None) -> float:
    """The lowest robust accuracy of the rows of ``attack`` (its label without backend,
    e.g. ``"pgd-linf"``) at ``eps``, over the backends that ran it."""
    values = [
        r.robust_accuracy
        for r in report.results
        if r.attack == attack and (eps is None or (r.eps is not None and abs(r.eps - eps) < 1e-12))
    ]
    if not values:
        raise KeyError(f"no result of {attack!r} at eps {eps} in the report")
    return min(values)


def as_plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` with tensors and numpy numbers as Python numbers (for ``row.json``)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        if isinstance(v, torch.Tensor):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out
