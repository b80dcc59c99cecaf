"""MNIST and Fashion-MNIST from their IDX files.

MNIST: LeCun et al., "Gradient-based learning applied to document recognition", 1998.
Fashion-MNIST: Xiao et al., 2017, https://arxiv.org/abs/1708.07747.

Both ship as the same four IDX files, plain or gzipped::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

Debian's ``dataset-fashion-mnist`` package installs exactly these names in
``/usr/share/datasets/fashion-mnist/`` (recompressed: the ``.gz`` checksums differ from
the official downloads, the decompressed files are identical).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from art_denoise.data._dataset import Dataset
from art_denoise.data._download import download_file
from art_denoise.data._errors import DataError
from art_denoise.data._paths import ENV_VAR, cache_dir, describe_missing, locate
from art_denoise.data.idx import read_idx

__all__ = [
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_URL",
    "IDX_FILES",
    "MNIST_MD5",
    "MNIST_URL",
    "load_fashion_mnist",
    "load_mnist",
]

#: The four files, without the optional ``.gz``: (train images, train labels,
#: test images, test labels).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: MD5 of the official ``.gz`` files (the values torchvision checks).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: MD5 of the official ``.gz`` files (the values torchvision checks).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class _IdxDataset:
    name: str
    base_url: str
    md5: Mapping[str, str]
    class_names: tuple[str, ...]
    debian_package: str | None = None


_MNIST = _IdxDataset("mnist", MNIST_URL, MNIST_MD5, tuple(str(i) for i in range(10)))
_FASHION = _IdxDataset(
    "fashion-mnist", FASHION_MNIST_URL, FASHION_MNIST_MD5, _FASHION_CLASSES, "dataset-fashion-mnist"
)


def load_mnist(*, path: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """Load MNIST: 60000 train and 10000 test handwritten digits.

    Args:
        path: the directory holding the four IDX files; searched for when ``None``
            (see :func:`art_denoise.data.data_search_paths`).
        download: fetch missing files from :data:`MNIST_URL` into ``path`` or the cache,
            checked against :data:`MNIST_MD5`.

    Returns:
        A :class:`Dataset` with images in [0, 1].

    Shape:
        - x_train: (60000, 1, 28, 28), float32
        - x_test: (10000, 1, 28, 28), float32

    Raises:
        DatasetNotFoundError: no directory holds the files and ``download`` is False.
        DataError: a file is malformed, or images and labels disagree.
        ChecksumError: a download does not match its MD5.
    """
    return _load(_MNIST, path, download)


def load_fashion_mnist(
    *, path: str | os.PathLike[str] | None = None, download: bool = False
) -> Dataset:
    """Load Fashion-MNIST: 60000 train and 10000 test 28x28 grey clothing images.

    ``apt-get install dataset-fashion-mnist`` provides the files on Debian and Ubuntu.

    Args:
        path: the directory holding the four IDX files; searched for when ``None``
            (see :func:`art_denoise.data.data_search_paths`).
        download: fetch missing files from :data:`FASHION_MNIST_URL` into ``path`` or the
            cache, checked against :data:`FASHION_MNIST_MD5`.

    Returns:
        A :class:`Dataset` with images in [0, 1] and the ten class names.

    Shape:
        - x_train: (60000, 1, 28, 28), float32
        - x_test: (10000, 1, 28, 28), float32

    Raises:
        DatasetNotFoundError: no directory holds the files and ``download`` is False.
        DataError: a file is malformed, or images and labels disagree.
        ChecksumError: a download does not match its MD5.
    """
    return _load(_FASHION, path, download)


def _load(spec: _IdxDataset, path: str | os.PathLike[str] | None, download: bool) -> Dataset:
    def fetch(target: Path) -> None:
        for stem in IDX_FILES:
            if _find_file(target, stem) is None:
                filename = f"{stem}.gz"
                download_file(spec.base_url + filename, target / filename, md5=spec.md5[filename])

    directory = locate(
        spec.name, path, _probe, download=fetch if download else None, how_to=_how_to(spec)
    )
    # _probe found every file; the .gz fallback only names the path in a late OSError.
    files = [_find_file(directory, stem) or directory / f"{stem}.gz" for stem in IDX_FILES]
    train = _read_pair(files[0], files[1], len(spec.class_names))
    test = _read_pair(files[2], files[3], len(spec.class_names))
    return Dataset(spec.name, *train, *test, len(spec.class_names), spec.class_names)


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _probe(directory: Path) -> Path | str:
    missing = [f"{stem}[.gz]" for stem in IDX_FILES if _find_file(directory, stem) is None]
    return describe_missing(directory, missing) if missing else directory


def _read_pair(images: Path, labels: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(
            f"{images}: expected uint8 images of shape (N, 28, 28), got {x.dtype} {x.shape}"
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise DataError(f"{labels}: expected uint8 labels of shape (N,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    if y.size and int(y.max()) >= num_classes:
        raise DataError(f"{labels}: label {int(y.max())} is not in [0, {num_classes})")
    images_f = x.astype(np.float32)[:, None]
    images_f /= np.float32(255)
    return images_f, y.astype(np.int64)


def _how_to(spec: _IdxDataset) -> list[str]:
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES)
    lines = []
    if spec.debian_package:
        lines.append(f"on Debian/Ubuntu: apt-get install {spec.debian_package}")
    lines += [
        f"put {files} in a directory and pass path=<that directory>",
        f"or put them in $ART_DENOISE_DATA/{spec.name}/ and set {ENV_VAR}",
        f"or pass download=True to fetch them from {spec.base_url} into {cache_dir(spec.name)}",
    ]
    return lines
