from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from art_denoise.data import DataError
from art_denoise.data.idx import parse_idx, read_idx, to_idx_bytes, write_idx


def _reference_idx(array: np.ndarray, code: int) -> bytes:
    """The IDX bytes written out by hand from the format description."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


class RoundTrip(NamedTuple):
    dtype: str
    code: int
    shape: tuple[int, ...]


ROUND_TRIPS = [
    RoundTrip("uint8", 0x08, (3, 28, 28)),
    RoundTrip("uint8", 0x08, (7,)),
    RoundTrip("uint8", 0x08, (0, 28, 28)),
    RoundTrip("int8", 0x09, (4, 5)),
    RoundTrip("int16", 0x0B, (2, 3, 4)),
    RoundTrip("int32", 0x0C, (5,)),
    RoundTrip("float32", 0x0D, (2, 2, 2, 2)),
    RoundTrip("float64", 0x0E, (3, 1)),
]


@pytest.mark.parametrize(
    "case", ROUND_TRIPS, ids=lambda c: f"{c.dtype}-{'x'.join(map(str, c.shape))}"
)
@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["plain", "gz"])
def test_round_trip(case: RoundTrip, suffix: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    array = (rng.random(case.shape) * 200 - 100).astype(case.dtype)
    if case.dtype == "uint8":
        array = rng.integers(0, 256, case.shape, dtype=np.uint8)
    path = write_idx(tmp_path / f"a-idx{suffix}", array)
    raw = path.read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")
    assert (gzip.decompress(raw) if suffix else raw) == _reference_idx(array, case.code)
    back = read_idx(path)
    assert back.dtype == np.dtype(case.dtype) and back.dtype.isnative
    assert back.shape == case.shape
    np.testing.assert_array_equal(back, array)


def test_known_bytes() -> None:
    data = bytes.fromhex("000008020000000200000003") + bytes(range(6))
    np.testing.assert_array_equal(parse_idx(data), [[0, 1, 2], [3, 4, 5]])
    big_endian = bytes.fromhex("00000B01000000020102FFFE")
    np.testing.assert_array_equal(parse_idx(big_endian), np.array([258, -2], np.int16))


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    plain_named = tmp_path / "labels-idx1-ubyte"
    plain_named.write_bytes(gzip.compress(to_idx_bytes(array)))
    gz_named = tmp_path / "labels-idx1-ubyte.gz"
    gz_named.write_bytes(to_idx_bytes(array))
    np.testing.assert_array_equal(read_idx(plain_named), array)
    np.testing.assert_array_equal(read_idx(gz_named), array)


def test_gz_output_is_reproducible(tmp_path: Path) -> None:
    array = np.arange(100, dtype=np.uint8)
    first = write_idx(tmp_path / "a.gz", array).read_bytes()
    assert write_idx(tmp_path / "b.gz", array).read_bytes() == first


_GOOD = to_idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


class Corrupt(NamedTuple):
    id: str
    data: bytes
    match: str


CORRUPT = [
    Corrupt("empty", b"", "too short for an IDX header"),
    Corrupt("bad magic", b"\x01" + _GOOD[1:], "bad IDX magic number 0x01000802"),
    Corrupt("unknown dtype", _GOOD[:2] + b"\x07" + _GOOD[3:], "bad IDX magic number 0x00000702"),
    Corrupt("no dimensions", b"\x00\x00\x08\x00", "bad IDX magic number 0x00000800"),
    Corrupt("gzip twice", gzip.compress(gzip.compress(_GOOD)), "compressed twice"),
    Corrupt("truncated header", _GOOD[:9], r"truncated IDX header \(9 of 12 bytes\)"),
    Corrupt("truncated body", _GOOD[:-1], r"truncated: 23 bytes, expected 24 .* shape \(3, 4\)"),
    Corrupt("trailing bytes", _GOOD + b"\x00", "has trailing bytes: 25 bytes, expected 24"),
    Corrupt("broken gzip", gzip.compress(_GOOD)[:-6], "not a valid gzip file"),
]


@pytest.mark.parametrize("case", CORRUPT, ids=lambda c: c.id)
def test_corrupt_file_is_named(case: Corrupt, tmp_path: Path) -> None:
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(case.data)
    with pytest.raises(DataError, match=case.match) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros(3, np.int64), TypeError, "IDX cannot store dtype int64"),
        (np.zeros(3, bool), TypeError, "IDX cannot store dtype bool"),
        ([1, 2, 3], TypeError, "must be a numpy array, got list"),
        (np.array(5, np.uint8), ValueError, r"1 to 255 dimensions, got shape \(\)"),
    ],
    ids=["int64", "bool", "list", "0-d"],
)
def test_write_rejects(array: object, error: type[Exception], match: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=match):
        write_idx(tmp_path / "x", array)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_big_endian_input_is_written_correctly(tmp_path: Path) -> None:
    array = np.array([1, -2, 300], dtype=">i4")
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x", array)), [1, -2, 300])
    native = np.array([1, -2, 300], dtype="<i4")
    assert to_idx_bytes(array) == to_idx_bytes(native)
