"""Tiny seeded data for the training tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def small_digits(digits) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """400 training and 200 test digits."""
    x_tr, y_tr, x_te, y_te = digits
    return x_tr[:400], y_tr[:400], x_te[:200], y_te[:200]
