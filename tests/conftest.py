"""Shared fixtures: one torch thread, the ``cuda`` mark and ``device``, the digits data and a
small CNN trained on it, both seeded."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from art_denoise.models import create_model
from art_denoise.training import train_standard


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test marked ``cuda`` (the one mark for GPU tests) on a machine without one."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device a test should pass on: the CPU, and CUDA (marked ``cuda``)."""
    return torch.device(request.param)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on 2 shared cores torch's default threads fight each other
    (a 3-epoch autoencoder fit took 2.4 s with one thread, 56 s with two)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): sklearn digits, float32 NCHW in [0, 1]."""
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return x_tr, y_tr, x_te, y_te


@pytest.fixture(scope="session")
def _trained_state(digits) -> dict[str, torch.Tensor]:
    x_tr, y_tr, _, _ = digits
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    train_standard(model, x_tr, y_tr, epochs=25, seed=0, progress=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def digits_model(_trained_state) -> nn.Module:
    """A fresh copy of a small CNN trained on digits (about 97% test accuracy), eval mode."""
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    model.load_state_dict(_trained_state)
    return model.eval()
