from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from art_denoise.data import ChecksumError, DataError, _download
from art_denoise.data._download import download_file, md5_of

PAYLOAD = bytes(range(256)) * 5000  # > 1 MiB: read in several chunks
PAYLOAD_MD5 = hashlib.md5(PAYLOAD, usedforsecurity=False).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "server" / "file.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def test_file_url_through_the_default_opener(
    source: Path,
    tmp_path: Path,
    real_urlopen: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_download, "urlopen", real_urlopen)  # file:// needs no network
    target = download_file(source.as_uri(), tmp_path / "out" / "file.bin", md5=PAYLOAD_MD5.upper())
    assert target.read_bytes() == PAYLOAD
    assert md5_of(target) == PAYLOAD_MD5
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_wrong_checksum_keeps_the_old_file(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def opener(url: str, timeout: float) -> Any:
        return open(source, "rb")

    with pytest.raises(ChecksumError, match=f"MD5 is {PAYLOAD_MD5}, expected 0{{32}}") as info:
        download_file("https://example.org/file.bin", target, md5="0" * 32, opener=opener)
    assert isinstance(info.value, DataError) and "https://example.org/file.bin" in str(info.value)
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_failed_connection_names_the_url(tmp_path: Path) -> None:
    def opener(url: str, timeout: float) -> Any:
        raise ConnectionResetError("peer went away")

    with pytest.raises(
        OSError, match=r"could not download https://example\.org/x .*peer went away"
    ):
        download_file("https://example.org/x", tmp_path / "x", md5="0" * 32, opener=opener)
    assert not list(tmp_path.iterdir())


def test_broken_stream_leaves_nothing(tmp_path: Path) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell():
                raise TimeoutError("read timed out")
            return super().read(size)

    def opener(url: str, timeout: float) -> Any:
        return Broken(PAYLOAD)

    with pytest.raises(OSError, match="read timed out"):
        download_file("https://example.org/x", tmp_path / "x", md5=PAYLOAD_MD5, opener=opener)
    assert not list(tmp_path.iterdir())
