"""CIFAR-10 from the "python version" pickle batches.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009,
https://www.cs.toronto.edu/~kriz/cifar.html.

The files are ``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and ``batches.meta``,
in a ``cifar-10-batches-py/`` folder (as the archive extracts) or directly in the
directory. Each batch is a pickled dict: ``b"data"``, a (10000, 3072) uint8 array whose
rows are the 1024 red, then green, then blue pixels of a 32x32 image, and
``b"labels"``, a list of ints in [0, 10).

Pickle is the format of this dataset, and a plain unpickler runs whatever code a file
names. These batches are read by :class:`_BatchUnpickler`, which builds only what a
CIFAR-10 batch holds (dicts, lists, bytes, strings, numbers and numpy arrays) and refuses
any other class or function with a :class:`DataError` naming the file, before calling it.
A download is also unpacked only after its MD5 matched the official archive.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from art_denoise.data._dataset import Dataset
from art_denoise.data._download import download_file
from art_denoise.data._errors import DataError
from art_denoise.data._paths import ENV_VAR, cache_dir, describe_missing, locate

__all__ = ["CIFAR10_MD5", "CIFAR10_URL", "load_cifar10"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: MD5 of the official archive (the value torchvision checks).
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

_FOLDER = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_META = "batches.meta"
_FILES = (*_TRAIN, _TEST, _META)
_NUM_CLASSES = 10


def load_cifar10(*, path: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """Load CIFAR-10: 50000 train and 10000 test 32x32 colour images in 10 classes.

    Args:
        path: a directory holding the batches, directly or in ``cifar-10-batches-py/``;
            searched for when ``None`` (see :func:`art_denoise.data.data_search_paths`).
        download: fetch :data:`CIFAR10_URL` into ``path`` or the cache, check it against
            :data:`CIFAR10_MD5` and unpack it.

    Returns:
        A :class:`Dataset` with images in [0, 1] and the class names of ``batches.meta``.

    Shape:
        - x_train: (50000, 3, 32, 32), float32
        - x_test: (10000, 3, 32, 32), float32

    Raises:
        DatasetNotFoundError: no directory holds the files and ``download`` is False.
        DataError: a batch is malformed, or the archive holds unsafe paths.
        ChecksumError: the download does not match its MD5.
    """
    directory = locate(
        "cifar10", path, _probe, download=_fetch if download else None, how_to=_how_to()
    )
    train = [_read_batch(directory / name) for name in _TRAIN]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    x_test, y_test = _read_batch(directory / _TEST)
    return Dataset("cifar10", x_train, y_train, x_test, y_test, _NUM_CLASSES, _read_meta(directory))


def _probe(directory: Path) -> Path | str:
    for candidate in (directory / _FOLDER, directory):
        if all((candidate / name).is_file() for name in _FILES):
            return candidate
    missing = [name for name in _FILES if not (directory / name).is_file()]
    return describe_missing(directory, missing) + f" (also looked in {_FOLDER}/)"


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol 2, for latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"refusing _codecs.encode({type(text).__name__}, {encoding!r})"
        )
    return text.encode("latin1")


def _numpy_core(module: str) -> Any:
    """``numpy._core.<module>`` (numpy 2), else ``numpy.core.<module>`` (numpy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{module}")
    except ImportError:  # pragma: no cover - numpy 1
        return importlib.import_module(f"numpy.core.{module}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """What a CIFAR-10 batch may name, by (module, name) as pickles write them."""
    reconstruct = _numpy_core("multiarray")._reconstruct
    frombuffer = _numpy_core("numeric")._frombuffer
    found: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):  # numpy 1 and 2 write different names
        found[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{package}.numeric", "_frombuffer")] = frombuffer
    for module in ("builtins", "__builtin__"):  # Python 3 and 2 names
        for kind in (dict, list, str, bytes, int, float):
            found[(module, kind.__name__)] = kind
    return found


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR-10 batch holds.

    ``find_class`` admits the builtin ``dict``, ``list``, ``str``, ``bytes``, ``int`` and
    ``float``, numpy's array reconstruction (``numpy.ndarray``, ``numpy.dtype``,
    ``multiarray._reconstruct`` and, for protocol 5, ``numeric._frombuffer``, under
    numpy 1's ``numpy.core`` and numpy 2's ``numpy._core``) and ``_codecs.encode`` with the
    latin-1 codec (how Python 3 pickles ``bytes`` at protocol 2). Anything else is refused
    before it is looked up, let alone called.
    """

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_globals().get((module, name))
        if found is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return found


class _RefusedGlobal(pickle.UnpicklingError):
    """A batch names a class or function outside what CIFAR-10 batches hold."""


def _unpickle(file: Path) -> dict[Any, Any]:
    try:
        with open(file, "rb") as fh:
            content = _BatchUnpickler(fh, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise DataError(
            f"{file}: refusing to unpickle {exc}: a CIFAR-10 batch holds only dicts, lists, "
            "bytes, strings, numbers and numpy arrays (the file may carry code)"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
        ImportError,
    ) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{file}: not a CIFAR-10 pickle batch ({first})") from exc
    if not isinstance(content, dict):
        raise DataError(f"{file}: expected a pickled dict, got {type(content).__name__}")
    return content


def _read_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(file)
    if b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{file}: missing key b'data' or b'labels'; keys are {list(batch)}")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{file}: b'data' must be a uint8 array of shape (N, 3072)")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{file}: b'data' has shape {data.shape}, expected (N, 3072)")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{file}: {len(data)} images but b'labels' is {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        raise DataError(f"{file}: labels in [{labels.min()}, {labels.max()}], expected [0, 10)")
    images = data.reshape(-1, 3, 32, 32).astype(np.float32)
    images /= np.float32(255)
    return images, labels.astype(np.int64)


def _read_meta(directory: Path) -> tuple[str, ...]:
    file = directory / _META
    names = _unpickle(file).get(b"label_names")
    if not isinstance(names, list) or len(names) != _NUM_CLASSES:
        raise DataError(f"{file}: b'label_names' must list {_NUM_CLASSES} names, got {names!r}")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _fetch(target: Path) -> None:
    """Download the archive into ``target``, unpack ``cifar-10-batches-py/``, drop the archive."""
    destination = target / _FOLDER
    if destination.exists():
        raise DataError(f"{destination} exists but is incomplete; remove it and download again")
    archive = download_file(CIFAR10_URL, target / "cifar-10-python.tar.gz", md5=CIFAR10_MD5)
    staging = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=target))
    try:
        _safe_extract(archive, staging)
        if not (staging / _FOLDER).is_dir():
            raise DataError(f"{archive}: no {_FOLDER}/ folder in the archive")
        os.replace(staging / _FOLDER, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()


def _safe_extract(archive: Path, into: Path) -> None:
    """Extract regular files and folders only, refusing absolute paths and ``..``."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            parts = PurePosixPath(member.name).parts
            if member.name.startswith(("/", "\\")) or ".." in parts or ":" in member.name:
                raise DataError(f"{archive}: refusing unsafe member path {member.name!r}")
            if not (member.isfile() or member.isdir()):
                raise DataError(f"{archive}: refusing link or special file {member.name!r}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
            tar.extractall(into, members=members, filter="data")
        else:  # pragma: no cover - members were checked above
            tar.extractall(into, members=members)


def _how_to() -> list[str]:
    files = ", ".join(_FILES)
    return [
        f"put {files} (or the {_FOLDER}/ folder) in a directory and pass path=<that directory>",
        f"or put them in $ART_DENOISE_DATA/cifar10/ and set {ENV_VAR}",
        f"or pass download=True to fetch {CIFAR10_URL} into {cache_dir('cifar10')}",
    ]
