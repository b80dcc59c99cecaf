"""Training (torch only; the ART trainers in :mod:`art_denoise.defences.trainer` wrap it).

- :func:`train_standard`: the plain baseline.
- :func:`fit`: the one robust-training loop (methods, PCL, checkpoints, DDP, AMP); its
  options as one value: :class:`FitConfig`.
- :mod:`~art_denoise.training.methods`: standard, PGD (Madry / Xie), mix, fast.
- :class:`PrototypeConformityLoss`: Mustafa et al.'s class centres.
- :class:`WeightAverage`: a moving average of the weights (``fit(..., ema_decay=...)``).
"""

from __future__ import annotations

from art_denoise.training.averaging import WeightAverage
from art_denoise.training.checkpoint import CheckpointError
from art_denoise.training.config import FitConfig
from art_denoise.training.loop import FitResult, ValidationAttack, fit
from art_denoise.training.methods import (
    METHODS,
    FastTraining,
    MixTraining,
    PGDTraining,
    StandardTraining,
    TrainingMethod,
    create_method,
)
from art_denoise.training.pcl import PrototypeConformityLoss
from art_denoise.training.standard import train_standard

__all__ = [
    "METHODS",
    "CheckpointError",
    "FastTraining",
    "FitConfig",
    "FitResult",
    "MixTraining",
    "PGDTraining",
    "PrototypeConformityLoss",
    "StandardTraining",
    "TrainingMethod",
    "ValidationAttack",
    "WeightAverage",
    "create_method",
    "fit",
    "train_standard",
]
