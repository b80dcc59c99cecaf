"""The settings of an RP2 attack: :class:`RP2Config`, checked on construction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from art_denoise._validation import (
    check_non_negative,
    check_norm,
    check_positive,
    check_positive_int,
)
from art_denoise.attacks._transforms import TransformRanges, check_range

__all__ = ["NORMS", "RP2Config"]

#: The norms of the regulariser: canonical name (see :func:`check_norm`) -> ``vector_norm``'s ord.
NORMS: dict[str, float] = {"1": 1.0, "2": 2.0, "inf": math.inf}


def _check_norm(value: Any) -> float:
    """The ``ord`` of ``vector_norm`` for an RP2 norm (1, 2, ``np.inf``; or ``"l1"``, ...)."""
    return NORMS[check_norm(value, allowed=tuple(NORMS))]


def _check_colors(value: Any, clip_values: tuple[float, float]) -> tuple[tuple[float, ...], ...]:
    """``nps_colors`` as a tuple of (K) colour tuples of C floats within ``clip_values``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes)):
        raise TypeError(f"nps_colors must be a (K, C) array of colours, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"nps_colors must be a (K, C) array of colours, got {value!r}") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"nps_colors must have shape (K, C) with K >= 1, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("nps_colors contains NaN or inf values")
    lo, hi = clip_values
    if arr.min() < lo or arr.max() > hi:
        raise ValueError(
            f"nps_colors has values in [{arr.min():.4g}, {arr.max():.4g}], "
            f"outside clip_values {clip_values}"
        )
    return tuple(tuple(float(v) for v in row) for row in arr)


def _check_clip(value: Any) -> tuple[float, float]:
    """``clip_values`` as a ``(min, max)`` pair of floats with ``min < max``."""
    clip = check_range("clip_values", value)
    if not clip[0] < clip[1]:
        raise ValueError(f"clip_values must have min < max, got {value!r}")
    return clip


@dataclass(frozen=True)
class RP2Config:
    """The settings of an RP2 attack, checked on construction.

    Args:
        max_iter: Adam steps per batch.
        learning_rate: Adam's step size (in input units).
        lambda_reg: weight ``lambda`` of the perturbation norm, ``>= 0``.
        norm: ``p`` of ``||M * delta||_p``: 1, 2 or ``np.inf`` (``"inf"`` also accepted);
            stored as a float.
        nb_transforms: samples of the transformation distribution per step.
        transforms: the ranges of the transformation distribution (identity by default).
        nps_colors: optional printable colours, shape (K, C), within ``clip_values``; when
            given, the non-printability score is added with weight ``nps_weight``. Stored
            as a tuple of tuples.
        nps_weight: weight of the non-printability score, ``>= 0``.
        clip_values: the valid input range ``(min, max)``.
        batch_size: images optimised together (each has its own ``delta``).
        random_seed: seeds the transformation samples.

    Raises:
        TypeError, ValueError: a setting of the wrong type or out of range; the message
            names it and the value received.
    """

    max_iter: int = 100
    learning_rate: float = 0.1
    lambda_reg: float = 0.002
    norm: float | str = 2.0
    nb_transforms: int = 8
    transforms: TransformRanges = field(default_factory=TransformRanges)
    nps_colors: np.ndarray | Sequence[Sequence[float]] | None = None
    nps_weight: float = 1.0
    clip_values: tuple[float, float] = (0.0, 1.0)
    batch_size: int = 128
    random_seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_iter", check_positive_int("max_iter", self.max_iter))
        set_(self, "learning_rate", check_positive("learning_rate", self.learning_rate))
        set_(self, "lambda_reg", check_non_negative("lambda_reg", self.lambda_reg))
        set_(self, "norm", _check_norm(self.norm))
        set_(self, "nb_transforms", check_positive_int("nb_transforms", self.nb_transforms))
        if not isinstance(self.transforms, TransformRanges):
            raise TypeError(
                f"transforms must be a TransformRanges, got {type(self.transforms).__name__}"
            )
        set_(self, "clip_values", _check_clip(self.clip_values))
        set_(self, "nps_weight", check_non_negative("nps_weight", self.nps_weight))
        if self.nps_colors is not None:
            set_(self, "nps_colors", _check_colors(self.nps_colors, self.clip_values))
        set_(self, "batch_size", check_positive_int("batch_size", self.batch_size))
        set_(self, "random_seed", check_positive_int("random_seed", self.random_seed, minimum=0))
