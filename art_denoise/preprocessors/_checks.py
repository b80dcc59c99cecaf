"""Argument checks shared by the ART preprocessors."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_bool", "check_clip_values"]


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


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value
