from __future__ import annotations

import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest

from art_denoise.data import DATASETS, Dataset, data_search_paths, load_dataset

X = np.zeros((4, 1, 8, 8), np.float32)
Y = np.array([0, 1, 2, 1], np.int64)


def test_registry_and_unknown_name() -> None:
    assert sorted(DATASETS) == ["cifar10", "digits", "fashion-mnist", "folder", "mnist"]
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; expected one of cifar10, digits"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="unknown dataset 'MNIST'"):
        data_search_paths("MNIST")


def test_argument_types() -> None:
    with pytest.raises(TypeError, match="download must be a bool, got str 'yes'"):
        load_dataset("digits", download="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got int"):
        load_dataset("mnist", path=3)  # type: ignore[arg-type]


def test_counts_are_checked_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(**_: object) -> Dataset:
        raise AssertionError("loaded before checking n_train")

    monkeypatch.setitem(DATASETS, "digits", fail)
    with pytest.raises(ValueError, match="n_train must be >= 1, got 0"):
        load_dataset("digits", n_train=0)


def test_dataset_record() -> None:
    data = Dataset("toy", X, Y, X[:2], Y[:2], num_classes=3)
    assert data.input_shape == (1, 8, 8)
    assert data.class_names == ("0", "1", "2")
    assert repr(data) == (
        "Dataset(name='toy', n_train=4, n_test=2, input_shape=(1, 8, 8), num_classes=3)"
    )
    with pytest.raises(AttributeError):
        data.name = "other"  # type: ignore[misc]
    part = data.subset(n_train=1)
    assert len(part.x_train) == 1 and part.x_test is data.x_test


class Bad(NamedTuple):
    id: str
    args: tuple[object, ...]
    error: type[Exception]
    match: str


BAD = [
    Bad("float64 x", (X.astype(np.float64), Y, X, Y, 3), TypeError, "x_train must be a float32"),
    Bad("3-D x", (X[:, 0], Y, X, Y, 3), TypeError, r"shape \(4, 8, 8\)"),
    Bad("int32 y", (X, Y, X, Y.astype(np.int32), 3), TypeError, "y_test must be an int64"),
    Bad("list y", (X, list(Y), X, Y, 3), TypeError, "got list"),
    Bad("lengths", (X, Y[:3], X, Y, 3), ValueError, "x_train has 4 images but y_train has 3"),
    Bad("image shapes", (X, Y, X[..., :4], Y, 3), ValueError, "differ in shape"),
    Bad("names", (X, Y, X, Y, 3, ("a", "b")), ValueError, "2 names but num_classes is 3"),
    Bad("num_classes", (X, Y, X, Y, 3.0), TypeError, "num_classes must be an int, got 3.0"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_dataset_rejects(case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        Dataset("toy", *case.args)  # type: ignore[arg-type]


def test_import_is_light() -> None:
    heavy = "{'torch', 'sklearn', 'ssl'}"
    code = f"import sys, art_denoise.data; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
