"""Downloading one file, checked against a known MD5 and written atomically."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO

from art_denoise._files import atomic_path
from art_denoise.data._errors import ChecksumError

__all__ = ["Opener", "download_file", "md5_of", "urlopen"]

#: Opens a URL for reading: called as ``opener(url, timeout=seconds)``.
Opener = Callable[..., AbstractContextManager[IO[bytes]]]


def urlopen(url: str, *, timeout: float) -> AbstractContextManager[IO[bytes]]:
    """The default opener, :func:`urllib.request.urlopen`.

    It is looked up on every download, so tests can replace it with
    ``monkeypatch.setattr("art_denoise.data._download.urlopen", ...)``.
    """
    import urllib.request  # pulls in http and ssl: only paid for by a download

    return urllib.request.urlopen(url, timeout=timeout)  # type: ignore[no-any-return]


_CHUNK = 1 << 20


def download_file(
    url: str,
    target: str | os.PathLike[str],
    *,
    md5: str,
    opener: Opener | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``target`` if its MD5 is ``md5``.

    The bytes go to a temporary file beside ``target``, which replaces ``target`` only
    once the checksum matches; on any failure nothing is left behind.

    Args:
        url: where to fetch from (``https://``, ``http://`` or ``file://``).
        target: the file to write.
        md5: the expected MD5 hex digest of the whole file.
        opener: opens the URL; :data:`urlopen` when ``None``.
        timeout: seconds to wait for the server.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.

    Raises:
        ChecksumError: the downloaded bytes have another MD5.
        OSError: the download itself failed.
    """
    target = Path(target)
    open_url = opener if opener is not None else urlopen
    digest = hashlib.md5(usedforsecurity=False)
    with atomic_path(target) as tmp:
        try:
            with open_url(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as exc:
            raise OSError(f"could not download {url} to {target}: {exc}") from exc
        if digest.hexdigest() != md5.lower():
            raise ChecksumError(
                f"{url}: MD5 is {digest.hexdigest()}, expected {md5.lower()}; "
                f"the download was discarded and {target} not written"
            )
    return target


def md5_of(path: str | os.PathLike[str]) -> str:
    """The MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
