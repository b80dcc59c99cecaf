"""The :class:`Dataset` record every loader returns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test split of images and labels, ready for a classifier.

    Args:
        name: the registry name, e.g. ``"fashion-mnist"``.
        x_train: training images, float32 in [0, 1].
        y_train: training labels, int64 in ``[0, num_classes)``.
        x_test: test images, float32 in [0, 1].
        y_test: test labels, int64 in ``[0, num_classes)``.
        num_classes: number of classes.
        class_names: one name per class; ``"0"``, ``"1"``, ... when left empty.

    Shape:
        - x_train: (N_train, C, H, W)
        - y_train: (N_train,)
        - x_test: (N_test, C, H, W)
        - y_test: (N_test,)

    Raises:
        TypeError: an array is not a numpy array of the dtype above.
        ValueError: shapes disagree, or ``class_names`` does not have ``num_classes`` names.

    Example:
        >>> x = np.zeros((2, 1, 8, 8), np.float32)
        >>> y = np.array([0, 1])
        >>> Dataset("toy", x, y, x, y, num_classes=2).input_shape
        (1, 8, 8)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
                raise TypeError(
                    f"x_{split} must be a float32 array of shape (N, C, H, W), got {_describe(x)}"
                )
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
                raise TypeError(
                    f"y_{split} must be an int64 array of shape (N,), got {_describe(y)}"
                )
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise TypeError(f"num_classes must be an int, got {self.num_classes!r}")
        names = tuple(self.class_names) or tuple(str(i) for i in range(self.num_classes))
        if len(names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(names)} names but num_classes is {self.num_classes}"
            )
        object.__setattr__(self, "class_names", names)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the name, the classes and every array's dtype, shape and bytes.

        Two loads of the same files give the same fingerprint; a changed, added or removed
        image (or label) gives another. ``reproduce`` records it to refuse resuming a run
        on other data.

        Example:
            >>> x = np.zeros((2, 1, 8, 8), np.float32)
            >>> y = np.array([0, 1])
            >>> a = Dataset("toy", x, y, x, y, num_classes=2)
            >>> b = Dataset("toy", x, y, x + 0.5, y, num_classes=2)
            >>> a.fingerprint() == Dataset("toy", x, y, x, y, num_classes=2).fingerprint()
            True
            >>> a.fingerprint() == b.fingerprint()
            False
        """
        digest = hashlib.sha256()
        head = {"name": self.name, "num_classes": self.num_classes, "classes": self.class_names}
        digest.update(json.dumps(head, sort_keys=True).encode())
        for name in ("x_train", "y_train", "x_test", "y_test"):
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.reshape(-1).view(np.uint8).data)
        return digest.hexdigest()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one image, (C, H, W)."""
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    def subset(self, *, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """Keep the first ``n_train`` training and ``n_test`` test examples.

        ``None`` keeps a split whole. The kept arrays are copies, so the full arrays can
        be freed.

        Raises:
            TypeError: a count is not an int.
            ValueError: a count is < 1 or larger than the split.
        """
        x_train, y_train = _head(self.x_train, self.y_train, n_train, "n_train", self.name)
        x_test, y_test = _head(self.x_test, self.y_test, n_test, "n_test", self.name)
        return dataclasses.replace(
            self, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={len(self.x_train)}, "
            f"n_test={len(self.x_test)}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )


def _head(
    x: np.ndarray, y: np.ndarray, n: int | None, arg: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    if n is None:
        return x, y
    # Imported here: art_denoise._validation imports torch, which this package does not need.
    from art_denoise._validation import check_positive_int

    n = check_positive_int(arg, n)
    if n > len(x):
        raise ValueError(f"{arg}={n} is more than the {len(x)} examples of {name!r}")
    return x[:n].copy(), y[:n].copy()


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
