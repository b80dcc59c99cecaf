"""Datasets as float32 NCHW arrays in [0, 1] with int64 labels, found locally or downloaded.

``load_dataset(name)`` picks a loader from :data:`DATASETS`:

- ``"digits"``: scikit-learn's 8x8 digits (always available, no files needed).
- ``"mnist"``, ``"fashion-mnist"``: the IDX files, plain or gzipped.
- ``"cifar10"``: the python pickle batches.
- ``"folder"``: your own images, one sub-folder per class (:func:`load_folder`); it needs
  ``path`` and takes options, e.g. ``load_dataset("folder", path=d, image_size=(32, 32))``.

The files of the others are looked for in an explicit ``path``, else
``$ART_DENOISE_DATA/<name>``, ``$ART_DENOISE_DATA``, ``/usr/share/datasets/<name>``
(Debian's ``dataset-fashion-mnist`` installs Fashion-MNIST there) and
``~/.cache/art-denoise/<name>``; ``download=True`` fetches missing files into the cache,
checked against the official MD5 sums.

Example:
    >>> data = load_dataset("digits", n_test=100)
    >>> data.x_test.shape, data.y_test.dtype
    ((100, 1, 8, 8), dtype('int64'))
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from art_denoise.data import _paths
from art_denoise.data._dataset import Dataset
from art_denoise.data._errors import ChecksumError, DataError, DatasetNotFoundError
from art_denoise.data.cifar10 import load_cifar10
from art_denoise.data.digits import load_digits
from art_denoise.data.folder import load_folder
from art_denoise.data.mnist import load_fashion_mnist, load_mnist

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "data_search_paths",
    "load_dataset",
    "load_folder",
]

#: Dataset name -> loader, called as ``loader(path=..., download=..., **options)``; a
#: loader's options are its keyword-only parameters other than ``path`` and ``download``.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "folder": load_folder,
}


def load_dataset(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    **options: Any,
) -> Dataset:
    """Load the dataset ``name``, optionally keeping only its first examples.

    Args:
        name: a key of :data:`DATASETS`.
        path: the directory holding the files; searched for when ``None`` (see
            :func:`data_search_paths`).
        download: fetch missing files into ``path`` or the user cache, checked
            against the official checksums.
        n_train: keep the first ``n_train`` training examples (all when ``None``).
        n_test: keep the first ``n_test`` test examples (all when ``None``).
        **options: the loader's own options, checked by it: ``"folder"`` takes
            ``image_size``, ``channels``, ``test_fraction`` and ``seed`` (see
            :func:`load_folder`); the other datasets take none.

    Returns:
        A :class:`Dataset`.

    Shape:
        - x_train: (n_train, C, H, W), float32 in [0, 1]
        - y_train: (n_train,), int64
        - x_test: (n_test, C, H, W), float32 in [0, 1]
        - y_test: (n_test,), int64

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones), or a count
            < 1 or larger than its split.
        TypeError: ``download`` is not a bool, a count is not an int, or an option is
            not one of the loader's.
        DatasetNotFoundError: the files are nowhere and ``download`` is False; the
            message lists every place searched and how to get the files.
        DataError: a file is malformed (a :class:`ChecksumError` for a bad download).

    Example:
        >>> load_dataset("digits").input_shape
        (1, 8, 8)
    """
    _check_name(name)
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__} {download!r}")
    from art_denoise._validation import check_positive_int

    for arg, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None:
            check_positive_int(arg, value)
    _check_options(name, options)
    data = DATASETS[name](path=path, download=download, **options)
    return data.subset(n_train=n_train, n_test=n_test)


def data_search_paths(name: str, path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories searched for dataset ``name``, in order; the first complete one wins.

    An explicit ``path`` is the only place searched (a mistyped path fails instead of
    silently loading another copy). Otherwise: ``$ART_DENOISE_DATA/<name>``,
    ``$ART_DENOISE_DATA``, ``/usr/share/datasets/<name>``, then
    ``$XDG_CACHE_HOME/art-denoise/<name>`` (``~/.cache/art-denoise/<name>``).

    Raises:
        ValueError: unknown ``name``.
        TypeError: ``path`` is not a string or path.

    Example:
        >>> data_search_paths("mnist", "/data/mnist")
        [PosixPath('/data/mnist')]
    """
    _check_name(name)
    return _paths.data_search_paths(name, path)


def _check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse an option that the loader of ``name`` does not take, naming those it takes."""
    params = inspect.signature(DATASETS[name]).parameters.values()
    known = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    known = [k for k in known if k not in ("path", "download")]
    for option in options:
        if option not in known:
            takes = f"its options are {', '.join(known)}" if known else "it takes none"
            raise TypeError(f"dataset {name!r} does not take option {option!r} ({takes})")


def _check_name(name: str) -> None:
    # Imported here: art_denoise._validation imports torch, which loading data does not need.
    from art_denoise._validation import check_choice

    check_choice("dataset", name, DATASETS)
