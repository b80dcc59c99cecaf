"""The IDX file format of MNIST and Fashion-MNIST: reader and writer.

An IDX file is a big-endian header followed by the raw array::

    magic   = 0x00 0x00 <dtype code> <number of dimensions>
    dims    = one uint32 per dimension
    data    = prod(dims) values of the dtype, big-endian, C order

Files may be gzip-compressed; the reader tells by the content, not the name.
See http://yann.lecun.com/exdb/mnist/ (section "File formats").
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from art_denoise._files import atomic_write_bytes
from art_denoise.data._errors import DataError

__all__ = ["IDX_DTYPES", "parse_idx", "read_idx", "to_idx_bytes", "write_idx"]

#: IDX dtype code -> numpy dtype (big-endian, as stored).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file.

    Args:
        data: the whole file.
        source: the file's name, used in error messages.

    Returns:
        A new native-endian array with the shape recorded in the header, e.g.
        (N, 28, 28) uint8 for images and (N,) uint8 for labels.

    Raises:
        DataError: bad magic number, unknown dtype code, no dimensions, or a body
            shorter or longer than the header says.

    Example:
        >>> parse_idx(to_idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        hint = " (gzip data: is the file compressed twice?)" if data[:2] == _GZIP_MAGIC else ""
        raise DataError(
            f"{source}: bad IDX magic number 0x{magic:08X}; expected 0x0000TTDD with "
            f"dtype code TT in {{{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}}} "
            f"and DD >= 1 dimensions{hint}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{source}: {what}: {len(data)} bytes, expected {expected} for a "
            f"{dtype.newbyteorder('=').name} array of shape {dims}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not.

    Raises:
        DataError: the file is a broken gzip stream or a malformed IDX file (see
            :func:`parse_idx`); the message names the file.
        OSError: the file cannot be read.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc})") from exc
    return parse_idx(data, source=str(path))


def to_idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX bytes (header and big-endian body).

    Raises:
        TypeError: ``array`` is not a numpy array of a dtype IDX can store
            (uint8, int8, int16, int32, float32, float64).
        ValueError: ``array`` is 0-dimensional or has more than 255 dimensions.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy array, got {type(array).__name__}")
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        names = ", ".join(d.name for d in _CODES)
        raise TypeError(f"IDX cannot store dtype {array.dtype}; expected one of {names}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got shape {array.shape}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, _CODES[native], array.ndim, *array.shape)
    body = np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    return header + body


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    The file is written atomically; compression is reproducible (no timestamp).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError, ValueError: see :func:`to_idx_bytes`.
    """
    path = Path(path)
    data = to_idx_bytes(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
    return path
