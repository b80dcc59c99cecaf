from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from art_denoise.data import Dataset, load_dataset


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _reference_split() -> tuple[np.ndarray, ...]:
    bunch = sklearn_digits()
    x = bunch.images.astype(np.float64)[:, None] / 16.0
    return tuple(
        train_test_split(x, bunch.target, test_size=0.2, stratify=bunch.target, random_state=0)
    )


def test_shapes_and_types(digits: Dataset) -> None:
    assert digits.x_train.shape == (1437, 1, 8, 8) and digits.x_test.shape == (360, 1, 8, 8)
    assert digits.y_train.shape == (1437,) and digits.y_test.shape == (360,)
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10 and digits.class_names == tuple("0123456789")
    for x in (digits.x_train, digits.x_test):
        assert x.min() == 0.0 and x.max() == 1.0  # exact: 0 / 16 and 16 / 16


def test_matches_the_sklearn_split(digits: Dataset) -> None:
    x_train, x_test, y_train, y_test = _reference_split()
    np.testing.assert_array_equal(digits.x_train, x_train.astype(np.float32))
    np.testing.assert_array_equal(digits.x_test, x_test.astype(np.float32))
    np.testing.assert_array_equal(digits.y_train, y_train)
    np.testing.assert_array_equal(digits.y_test, y_test)


def test_stratified(digits: Dataset) -> None:
    total = np.bincount(np.concatenate([digits.y_train, digits.y_test]), minlength=10)
    in_test = np.bincount(digits.y_test, minlength=10)
    assert total.sum() == 1797
    np.testing.assert_allclose(in_test, 0.2 * total, atol=1)


def test_deterministic(digits: Dataset) -> None:
    again = load_dataset("digits")
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, field), getattr(digits, field))


def test_no_files_involved(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="digits ships with scikit-learn"):
        load_dataset("digits", path=tmp_path)  # type: ignore[arg-type]
    assert load_dataset("digits", download=True, n_train=5).x_train.shape == (5, 1, 8, 8)
