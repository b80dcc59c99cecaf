from __future__ import annotations

import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pytest

from art_denoise.data import ChecksumError, DataError, DatasetNotFoundError, load_dataset
from art_denoise.data import cifar10 as cifar10_module

Batches = dict[str, dict[bytes, Any]]
MakeCifar = Callable[..., Batches]
MakeTar = Callable[[Path, dict[str, bytes]], Path]
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
FILES = [*TRAIN, "test_batch", "batches.meta"]


def _reference_images(rows: np.ndarray) -> np.ndarray:
    """Row layout of the CIFAR page: 1024 red, 1024 green, 1024 blue, each row-major 32x32."""
    out = np.empty((len(rows), 3, 32, 32), np.float32)
    for i, row in enumerate(rows):
        for c in range(3):
            for h in range(32):
                out[i, c, h] = row[c * 1024 + h * 32 : c * 1024 + h * 32 + 32]
    return out / np.float32(255.0)


@pytest.mark.parametrize("layout", ["cifar-10-batches-py", "."], ids=["subfolder", "flat"])
def test_round_trip(layout: str, tmp_path: Path, make_cifar_dir: MakeCifar) -> None:
    batches = make_cifar_dir(tmp_path / layout)
    data = load_dataset("cifar10", path=tmp_path)
    train_rows = np.concatenate([batches[b][b"data"] for b in TRAIN])
    train_labels = [label for b in TRAIN for label in batches[b][b"labels"]]
    assert data.x_train.shape == (10, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    np.testing.assert_array_equal(data.x_train, _reference_images(train_rows))
    np.testing.assert_array_equal(data.y_train, train_labels)
    np.testing.assert_array_equal(data.x_test, _reference_images(batches["test_batch"][b"data"]))
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][b"labels"])
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    names = batches["batches.meta"][b"label_names"]
    assert data.class_names == tuple(n.decode() for n in names)
    assert data.class_names[0] == "airplane"


def test_found_through_env_var(
    places: SimpleNamespace, make_cifar_dir: MakeCifar, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_cifar_dir(places.env / "cifar10" / "cifar-10-batches-py")
    make_cifar_dir(places.cache / "art-denoise" / "cifar10", seed=1)
    monkeypatch.setenv("ART_DENOISE_DATA", str(places.env))
    expected = load_dataset("cifar10", path=places.env / "cifar10")
    np.testing.assert_array_equal(load_dataset("cifar10").x_test, expected.x_test)


def test_not_found(places: SimpleNamespace, tmp_path: Path, make_cifar_dir: MakeCifar) -> None:
    (tmp_path / "partial").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert info.value.searched == (places.debian / "cifar10", places.cache / "art-denoise/cifar10")
    for place in info.value.searched:
        assert str(place) in message
    assert cifar10_module.CIFAR10_URL in message and "download=True" in message
    assert "apt-get" not in message
    make_cifar_dir(tmp_path / "partial")
    (tmp_path / "partial" / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing test_batch"):
        load_dataset("cifar10", path=tmp_path / "partial")


class Broken(NamedTuple):
    id: str
    file: str
    content: bytes
    match: str


def _pickled(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


_ROWS = np.zeros((2, 3072), np.uint8)
BROKEN = [
    Broken("not a pickle", "data_batch_3", b"garbage", "not a CIFAR-10 pickle batch"),
    Broken("empty", "test_batch", b"", "not a CIFAR-10 pickle batch"),
    Broken("a list", "data_batch_1", _pickled([1, 2]), "expected a pickled dict, got list"),
    Broken("no labels", "data_batch_2", _pickled({b"data": _ROWS}), "missing key b'data' or"),
    Broken(
        "row size",
        "data_batch_4",
        _pickled({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}),
        r"shape \(2, 1024\), expected \(N, 3072\)",
    ),
    Broken(
        "float data",
        "data_batch_5",
        _pickled({b"data": _ROWS.astype(np.float32), b"labels": [0, 1]}),
        "must be a uint8 array",
    ),
    Broken(
        "label count",
        "test_batch",
        _pickled({b"data": _ROWS, b"labels": [0]}),
        "2 images but b'labels' is",
    ),
    Broken(
        "label range",
        "test_batch",
        _pickled({b"data": _ROWS, b"labels": [0, 10]}),
        r"labels in \[0, 10\], expected \[0, 10\)",
    ),
    Broken("meta", "batches.meta", _pickled({b"label_names": [b"cat"]}), "must list 10 names"),
]


@pytest.mark.parametrize("case", BROKEN, ids=lambda c: c.id)
def test_broken_batch(case: Broken, tmp_path: Path, make_cifar_dir: MakeCifar) -> None:
    make_cifar_dir(tmp_path)
    (tmp_path / case.file).write_bytes(case.content)
    with pytest.raises(DataError, match=case.match) as info:
        load_dataset("cifar10", path=tmp_path)
    assert str(tmp_path / case.file) in str(info.value)


@pytest.fixture
def archive(tmp_path: Path, make_cifar_dir: MakeCifar, make_tar: MakeTar) -> tuple[Path, Batches]:
    """The official archive's layout, with tiny batches, in ``tmp_path/server``."""
    batches = make_cifar_dir(tmp_path / "made")
    members = {"cifar-10-batches-py/readme.html": b"<html></html>"}
    members |= {f"cifar-10-batches-py/{f}": (tmp_path / "made" / f).read_bytes() for f in FILES}
    return make_tar(tmp_path / "server" / "cifar-10-python.tar.gz", members), batches


def test_download(
    archive: tuple[Path, Batches],
    serve: Callable[[Path], list[str]],
    places: SimpleNamespace,
    md5: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar, batches = archive
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", md5(tar))
    opened = serve(tar.parent)
    data = load_dataset("cifar10", download=True)
    assert opened == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][b"labels"])
    cache = places.cache / "art-denoise" / "cifar10"
    assert [p.name for p in cache.iterdir()] == ["cifar-10-batches-py"]  # archive removed
    assert sorted(p.name for p in (cache / "cifar-10-batches-py").iterdir()) == sorted(
        [*FILES, "readme.html"]
    )
    load_dataset("cifar10", download=True)
    assert len(opened) == 1


def test_download_with_wrong_checksum_leaves_nothing(
    archive: tuple[Path, Batches], serve: Callable[[Path], list[str]], places: SimpleNamespace
) -> None:
    serve(archive[0].parent)
    with pytest.raises(ChecksumError, match=f"expected {cifar10_module.CIFAR10_MD5}"):
        load_dataset("cifar10", download=True)
    cache = places.cache / "art-denoise" / "cifar10"
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize(
    ("member", "match"),
    [
        ("../escaped", "unsafe member path '../escaped'"),
        ("cifar-10-batches-py/../../escaped", "unsafe member path"),
        ("/tmp/escaped", "unsafe member path '/tmp/escaped'"),
    ],
    ids=["dotdot", "nested dotdot", "absolute"],
)
def test_unsafe_archive_is_refused(
    member: str,
    match: str,
    tmp_path: Path,
    make_tar: MakeTar,
    serve: Callable[[Path], list[str]],
    places: SimpleNamespace,
    md5: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar = make_tar(tmp_path / "server" / "cifar-10-python.tar.gz", {member: b"evil"})
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", md5(tar))
    serve(tar.parent)
    with pytest.raises(DataError, match=match):
        load_dataset("cifar10", download=True)
    cache = places.cache / "art-denoise" / "cifar10"
    assert not (tmp_path / "escaped").exists() and not (places.cache / "escaped").exists()
    assert [p.name for p in cache.iterdir()] == ["cifar-10-python.tar.gz"]


def test_links_in_archive_are_refused(
    tmp_path: Path,
    serve: Callable[[Path], list[str]],
    md5: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar_path = tmp_path / "server" / "cifar-10-python.tar.gz"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", md5(tar_path))
    serve(tar_path.parent)
    with pytest.raises(DataError, match="refusing link or special file"):
        load_dataset("cifar10", download=True)


# --------------------------------------------------------------- no code from data


class _RunsCode:
    """Unpickling this calls ``function(*args)``: what a crafted batch would do."""

    def __init__(self, function: Any, *args: Any) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.args


class CodeCarrying(NamedTuple):
    id: str
    build: Callable[[Path], object]  # marker path -> the object to pickle
    protocol: int
    refused: str  # the global named in the message


CODE_CARRYING = [
    CodeCarrying(
        "a codec other than latin-1",
        lambda m: {b"data": _RunsCode(__import__("_codecs").encode, "x", "rot13"), b"labels": []},
        2,
        "_codecs.encode(str, 'rot13')",
    ),
    CodeCarrying("open() as the batch", lambda m: _RunsCode(open, str(m), "w"), 2, "io.open"),
    CodeCarrying(
        "os.system in b'data'",
        lambda m: {b"data": _RunsCode(__import__("os").system, f"touch {m}"), b"labels": []},
        4,
        "system",
    ),
    CodeCarrying(
        "exec in the labels",
        lambda m: {b"data": _ROWS, b"labels": [_RunsCode(exec, f"open({str(m)!r}, 'w')")]},
        5,
        "builtins.exec",
    ),
    CodeCarrying(
        "Path.touch inside an object array",
        lambda m: {b"data": np.array([_RunsCode(Path.touch, m)], dtype=object), b"labels": [0]},
        2,
        "getattr",
    ),
]


@pytest.mark.parametrize("case", CODE_CARRYING, ids=lambda c: c.id)
def test_code_carrying_batch_is_refused_before_running(
    case: CodeCarrying, tmp_path: Path, make_cifar_dir: MakeCifar
) -> None:
    data_dir, marker = tmp_path / "data", tmp_path / "marker"
    make_cifar_dir(data_dir)
    bad = data_dir / "data_batch_1"
    bad.write_bytes(pickle.dumps(case.build(marker), protocol=case.protocol))
    before = {p: p.read_bytes() for p in data_dir.iterdir()}
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", path=data_dir)
    message = str(info.value)
    assert "\n" not in message
    assert str(bad) in message and case.refused in message and "refusing" in message
    assert not marker.exists()  # nothing ran
    assert {p: p.read_bytes() for p in data_dir.iterdir()} == before  # nothing written
    assert sorted(tmp_path.iterdir()) == [data_dir]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_genuine_batches_load_at_every_protocol(
    protocol: int, tmp_path: Path, make_cifar_dir: MakeCifar
) -> None:
    batches = make_cifar_dir(tmp_path)
    rows = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072) % 256
    batch = {b"batch_label": b"mine", b"data": rows.astype(np.uint8), b"labels": [3, 9]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=protocol))
    names = [n.decode() for n in batches["batches.meta"][b"label_names"]]
    meta = {**batches["batches.meta"], b"label_names": names}  # str, not bytes
    (tmp_path / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    data = load_dataset("cifar10", path=tmp_path)
    np.testing.assert_array_equal(data.x_train[:2], _reference_images(batch[b"data"]))
    np.testing.assert_array_equal(data.y_train[:2], [3, 9])
    assert data.class_names == tuple(names)
