"""Errors raised while finding, downloading or reading a dataset."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ChecksumError", "DataError", "DatasetNotFoundError"]


class DataError(ValueError):
    """A dataset file exists but its content is wrong: bad header, truncated, inconsistent."""


class ChecksumError(DataError):
    """A downloaded file does not have the checksum of the official release."""


class DatasetNotFoundError(FileNotFoundError):
    """No directory on the search path holds the dataset's files.

    Attributes:
        searched: every directory that was looked at, in search order.
    """

    searched: tuple[Path, ...] = ()
