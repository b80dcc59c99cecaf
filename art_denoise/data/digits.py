"""scikit-learn's 8x8 handwritten digits, with a fixed stratified split.

Alpaydin and Kaynak, "Optical Recognition of Handwritten Digits" (UCI), 1998. The 1797
images ship with scikit-learn, so this dataset never needs a download: it is the one the
tests and the demo use.
"""

from __future__ import annotations

import os

import numpy as np

from art_denoise.data._dataset import Dataset

__all__ = ["load_digits"]


def load_digits(*, path: str | os.PathLike[str] | None = None, download: bool = False) -> Dataset:
    """Load the digits, split by ``train_test_split(test_size=0.2, stratify=y, random_state=0)``.

    Args:
        path: must be ``None``: the data comes with scikit-learn.
        download: ignored, for the same reason.

    Returns:
        A :class:`Dataset`; pixel values (0 to 16 in the source) divided by 16.

    Shape:
        - x_train: (1437, 1, 8, 8), float32
        - x_test: (360, 1, 8, 8), float32

    Raises:
        ValueError: ``path`` is given.

    Example:
        >>> load_digits().x_test.shape
        (360, 1, 8, 8)
    """
    if path is not None:
        raise ValueError(f"digits ships with scikit-learn and reads no files; got path={path!r}")
    # scikit-learn takes seconds to import, so only this loader pays for it.
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    return Dataset("digits", x_train, y_train, x_test, y_test, 10, tuple(str(i) for i in range(10)))
