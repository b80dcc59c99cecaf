"""Fixtures for the dataset tests: an isolated search path and tiny dataset files.

Every test here runs with ``ART_DENOISE_DATA`` unset, the Debian root and the user cache
pointed into ``tmp_path``, and downloads refused, so no test depends on the machine or
the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from art_denoise.data import _download, _paths
from art_denoise.data.idx import write_idx
from art_denoise.data.mnist import IDX_FILES

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer")
CIFAR_NAMES += ("dog", "frog", "horse", "ship", "truck")


#: The package's own opener, kept before any test replaces it.
_REAL_URLOPEN = _download.urlopen


@pytest.fixture
def real_urlopen() -> Callable[..., Any]:
    """The default opener of :mod:`art_denoise.data._download` (urllib), unpatched."""
    return _REAL_URLOPEN


@pytest.fixture(autouse=True)
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The isolated search locations: ``env`` (not yet set), ``debian`` and ``cache`` roots."""
    ns = SimpleNamespace(
        env=tmp_path / "env", debian=tmp_path / "debian", cache=tmp_path / "xdg-cache"
    )
    monkeypatch.delenv("ART_DENOISE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(ns.cache))
    monkeypatch.setattr(_paths, "DEBIAN_DATA_ROOT", ns.debian)

    def no_network(url: str, **_: Any) -> Any:
        raise AssertionError(f"test tried to open {url}")

    monkeypatch.setattr(_download, "urlopen", no_network)
    return ns


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture
def md5() -> Callable[[Path], str]:
    """MD5 hex digest of a file."""
    return _md5


@pytest.fixture
def make_idx_dir() -> Callable[..., dict[str, np.ndarray]]:
    """Write the four MNIST-style IDX files with random content; return the raw arrays.

    Called as ``make(directory, n_train=6, n_test=4, gz=True, seed=0)``; the arrays come
    back under the file stems of :data:`IDX_FILES`.
    """

    def make(
        directory: Path, *, n_train: int = 6, n_test: int = 4, gz: bool = True, seed: int = 0
    ) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        arrays = {
            IDX_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            IDX_FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
            IDX_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            IDX_FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
        }
        arrays[IDX_FILES[0]][0, 0, :2] = (0, 255)  # both ends of the range are present
        for stem, array in arrays.items():
            write_idx(directory / (f"{stem}.gz" if gz else stem), array)
        return arrays

    return make


def _cifar_batch(rng: np.random.Generator, n: int) -> dict[bytes, Any]:
    return {
        b"batch_label": b"synthetic",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


@pytest.fixture
def make_cifar_dir() -> Callable[..., dict[str, dict[bytes, Any]]]:
    """Write CIFAR-10 pickle batches (2 images each, 3 in the test batch) and the meta file.

    Called as ``make(directory, seed=0)``; returns the pickled dicts by file name.
    """

    def make(directory: Path, *, seed: int = 0) -> dict[str, dict[bytes, Any]]:
        rng = np.random.default_rng(seed)
        batches: dict[str, dict[bytes, Any]] = {name: _cifar_batch(rng, 2) for name in CIFAR_TRAIN}
        batches["test_batch"] = _cifar_batch(rng, 3)
        batches["batches.meta"] = {
            b"label_names": [n.encode() for n in CIFAR_NAMES],
            b"num_vis": 3072,
            b"num_cases_per_batch": 10000,
        }
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in batches.items():
            (directory / name).write_bytes(pickle.dumps(content, protocol=2))
        return batches

    return make


@pytest.fixture
def make_tar() -> Callable[[Path, dict[str, bytes]], Path]:
    """Write a ``.tar.gz`` holding ``{member name: bytes}``; return its path."""

    def make(target: Path, members: dict[str, bytes]) -> Path:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
        return target

    return make


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], list[str]]:
    """Serve a local directory as the web: ``serve(root)`` patches the URL opener.

    A URL is answered with ``root / <last path component>`` (a missing file gives an
    ``OSError``, as a 404 would). The returned list records every URL opened.
    """

    def start(root: Path) -> list[str]:
        opened: list[str] = []

        def fake_urlopen(url: str, *, timeout: float) -> Any:
            opened.append(url)
            return open(root / url.rsplit("/", 1)[-1], "rb")

        monkeypatch.setattr(_download, "urlopen", fake_urlopen)
        return opened

    return start
