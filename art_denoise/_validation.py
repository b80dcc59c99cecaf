"""Input checks shared by every public entry point.

Each helper raises :class:`TypeError` or :class:`ValueError` naming the value it got,
so that a user's mistake is reported in one line at the public boundary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = [
    "NORM_ALIASES",
    "as_float_images",
    "as_labels",
    "check_bool",
    "check_choice",
    "check_clip_values",
    "check_feature_map",
    "check_kernel_size",
    "check_non_negative",
    "check_norm",
    "check_positive",
    "check_positive_int",
]

#: Spellings of a norm -> its canonical name (ART writes ``np.inf`` and ``2``).
NORM_ALIASES: dict[str, str] = {
    "inf": "inf",
    "linf": "inf",
    "Linf": "inf",
    "2": "2",
    "l2": "2",
    "L2": "2",
    "1": "1",
    "l1": "1",
    "L1": "1",
}


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` listing them."""
    options = sorted(choices)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(options)}")
    return value


def check_non_negative(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and ``> 0``."""
    value = check_non_negative(name, value)
    if value == 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def as_float_images(
    x: Any,
    *,
    name: str = "x",
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    channels: int | None = None,
) -> torch.Tensor:
    """Check a batch of images and return it as a float32 NCHW tensor.

    Args:
        x: numpy array or tensor of shape (B, C, H, W).
        name: name used in error messages.
        clip_values: the valid range; values outside it raise a ``ValueError``.
        channels: the expected channel count, if known. A last axis of that size with a
            different second axis is reported as channels-last data.

    Returns:
        A float32 tensor on the input's device (numpy input gives a CPU tensor). The
        caller's array is never modified.

    Raises:
        TypeError: ``x`` is not an array or tensor of a floating dtype.
        ValueError: wrong rank, wrong channel count, NaN/inf, or values outside ``clip_values``.
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name} must hold floating-point values, got dtype {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name} must hold floating-point values, got dtype {x.dtype}")
        t = x.detach()
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if t.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(t.shape)}")
    if channels is not None and t.shape[1] != channels:
        hint = " (channels-last data? transpose to NCHW)" if t.shape[-1] == channels else ""
        raise ValueError(
            f"{name} must have {channels} channels on axis 1, got shape {tuple(t.shape)}{hint}"
        )
    t = t.to(torch.float32)
    if t.numel():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf values")
        if clip_values is not None:
            lo, hi = float(t.min()), float(t.max())
            if lo < clip_values[0] or hi > clip_values[1]:
                raise ValueError(
                    f"{name} has values in [{lo:.4g}, {hi:.4g}], outside clip_values {clip_values}"
                )
    return t


def as_labels(y: Any, *, n: int | None = None, num_classes: int | None = None) -> torch.Tensor:
    """Check labels and return them as an int64 tensor of shape (B,).

    Integer labels of shape (B,) and one-hot labels of shape (B, num_classes) are accepted.

    Raises:
        TypeError: not an array/tensor, or a float array that is not one-hot.
        ValueError: wrong shape, length different from ``n``, or a label out of range.
    """
    if isinstance(y, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(y))
    elif isinstance(y, torch.Tensor):
        t = y.detach()
    else:
        raise TypeError(f"y must be a numpy array or torch tensor, got {type(y).__name__}")
    if t.ndim == 2:
        is_one_hot = bool(((t == 0) | (t == 1)).all()) and bool((t.sum(dim=1) == 1).all())
        if not is_one_hot:
            raise ValueError(f"2-D labels must be one-hot, got shape {tuple(t.shape)}")
        if num_classes is not None and t.shape[1] != num_classes:
            raise ValueError(f"one-hot labels have {t.shape[1]} columns, model has {num_classes}")
        t = t.argmax(dim=1)
    elif t.ndim != 1:
        raise ValueError(f"y must have shape (B,) or (B, classes), got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool:
        if t.is_floating_point() and bool((t == t.round()).all()):
            t = t.round()
        else:
            raise TypeError(f"y must hold integer class labels, got dtype {t.dtype}")
    t = t.to(torch.int64)
    if n is not None and t.shape[0] != n:
        raise ValueError(f"y has {t.shape[0]} labels but x has {n} images")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise ValueError(f"labels must be in {bound}, got values in [{lo}, {hi}]")
    return t


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_norm(value: Any, *, allowed: tuple[str, ...] = ("inf", "2")) -> str:
    """Return the canonical name (``"inf"``, ``"2"`` or ``"1"``) of a norm among ``allowed``.

    Accepts ART's spellings (``np.inf``, ``2``, ``1``) and the strings of
    :data:`NORM_ALIASES` (``"inf"``, ``"linf"``, ``"l2"``, ...). The one norm parser of the
    package: the threat model, the trainers and RP2 all use it.

    Raises:
        ValueError: not a norm, or a norm outside ``allowed``; the message lists them.

    Example:
        >>> check_norm(np.inf), check_norm("l2"), check_norm(1, allowed=("1", "2", "inf"))
        ('inf', '2', '1')
    """
    name: str | None = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if math.isinf(value) and value > 0:
            name = "inf"
        elif value in (1, 2):
            name = str(int(value))
    elif isinstance(value, str):
        name = NORM_ALIASES.get(value)
    if name is None or name not in allowed:
        raise ValueError(f"unknown norm {value!r}; expected one of {', '.join(allowed)}")
    return name


def check_clip_values(value: Any, *, allow_none: bool = True) -> tuple[float, float] | None:
    """Return ``value`` as ``(low, high)`` floats with ``low < high``, both finite."""
    if value is None and allow_none:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"clip_values must be a pair of numbers (min, max), got {value!r}")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(
            f"clip_values must be a pair of numbers (min, max), got {value!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"clip_values must be finite with min < max, got {value!r}")
    return low, high


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
