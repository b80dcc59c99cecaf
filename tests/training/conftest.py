"""Tiny seeded data and models for the training tests (single-threaded for determinism)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def small_digits(digits) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """400 training and 200 test digits."""
    x_tr, y_tr, x_te, y_te = digits
    return x_tr[:400], y_tr[:400], x_te[:200], y_te[:200]


def tiny_net(seed: int = 0) -> nn.Module:
    """A BatchNorm-free CNN for 8x8 digits (DDP equals one process exactly without BN)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 16, 10),
    )
    net.num_classes = 10  # type: ignore[assignment]
    return net
