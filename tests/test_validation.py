from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from art_denoise._validation import (
    as_float_images,
    as_labels,
    check_bool,
    check_clip_values,
    check_norm,
)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (np.zeros((2, 8, 8), np.float32), ValueError, r"shape \(B, C, H, W\)"),
        (np.zeros((2, 1, 8, 8), np.int64), TypeError, "floating-point"),
        (np.full((2, 1, 8, 8), np.nan, np.float32), ValueError, "NaN or inf"),
        (np.full((2, 1, 8, 8), np.inf, np.float32), ValueError, "NaN or inf"),
        (np.full((2, 1, 8, 8), 1.5, np.float32), ValueError, "outside clip_values"),
        (np.full((2, 1, 8, 8), -0.1, np.float32), ValueError, "outside clip_values"),
        ([[0.0]], TypeError, "numpy array or torch tensor"),
    ],
    ids=["rank", "int dtype", "nan", "inf", "above", "below", "list"],
)
def test_bad_images(x: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        as_float_images(x)


def test_channels_last_is_named() -> None:
    with pytest.raises(ValueError, match="channels-last"):
        as_float_images(np.zeros((2, 8, 8, 1), np.float32), channels=1)


def test_images_are_copied_not_modified() -> None:
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float64)
    before = x.copy()
    t = as_float_images(x)
    t += 1
    assert t.dtype == torch.float32
    np.testing.assert_array_equal(x, before)


def test_labels_int_and_one_hot() -> None:
    y = np.array([0, 2, 1])
    np.testing.assert_array_equal(as_labels(y, n=3, num_classes=3).numpy(), y)
    np.testing.assert_array_equal(as_labels(np.eye(3)[y], n=3, num_classes=3).numpy(), y)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.array([0, 3]), r"labels must be in \[0, 3\)"),
        (np.array([-1, 0]), "labels must be in"),
        (np.array([0, 1, 2]), "3 labels but x has 2"),
        (np.array([[0.5, 0.5, 0.0]] * 2), "one-hot"),
        (np.zeros((2, 1, 1), np.int64), "shape"),
    ],
    ids=["too large", "negative", "length", "soft labels", "rank"],
)
def test_bad_labels(y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        as_labels(y, n=2, num_classes=3)


def test_fractional_labels_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="integer class labels"):
        as_labels(np.array([0.5, 1.0]))


@pytest.mark.parametrize(
    ("value", "allowed", "expected"),
    [
        (np.inf, ("inf", "2"), "inf"),
        (float("inf"), ("inf", "2"), "inf"),
        ("linf", ("inf", "2"), "inf"),
        ("Linf", ("inf", "2"), "inf"),
        (2, ("inf", "2"), "2"),
        (2.0, ("inf", "2"), "2"),
        (np.int64(2), ("inf", "2"), "2"),
        ("l2", ("inf", "2"), "2"),
        (1, ("1", "2", "inf"), "1"),
        ("l1", ("1", "2", "inf"), "1"),
    ],
)
def test_check_norm_spellings(value: object, allowed: tuple[str, ...], expected: str) -> None:
    assert check_norm(value, allowed=allowed) == expected


@pytest.mark.parametrize("value", [1, 3, -np.inf, "l3", True, None, [2]])
def test_check_norm_refuses(value: object) -> None:
    with pytest.raises(ValueError, match=rf"unknown norm {re.escape(repr(value))}; expected"):
        check_norm(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [("ab", TypeError), ((0, "x"), TypeError), ((1, 0), ValueError), ((0, np.inf), ValueError)],
)
def test_check_clip_values_refuses(value: object, error: type) -> None:
    with pytest.raises(error, match="clip_values"):
        check_clip_values(value)


def test_check_clip_values_and_bool() -> None:
    assert check_clip_values([0, 1]) == (0.0, 1.0)
    assert check_clip_values(None) is None
    assert check_bool("flag", True) is True
    with pytest.raises(TypeError, match="flag must be True or False, got int 1"):
        check_bool("flag", 1)
