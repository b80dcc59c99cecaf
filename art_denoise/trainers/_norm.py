"""ART spells norms as ``np.inf`` / ``2``; the torch layer as ``"inf"`` / ``"2"``."""

from __future__ import annotations

from typing import Any

import numpy as np


def norm_name(norm: Any) -> str:
    """Map ``np.inf``, ``"inf"``, ``2``, ``"2"`` to ``"inf"`` or ``"2"``."""
    if isinstance(norm, str) and norm in ("inf", "2"):
        return norm
    if isinstance(norm, (int, float)) and not isinstance(norm, bool):
        if norm == np.inf:
            return "inf"
        if norm == 2:
            return "2"
    raise ValueError(f"unknown norm {norm!r}; expected np.inf or 2")
