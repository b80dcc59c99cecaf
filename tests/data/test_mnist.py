from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest

from art_denoise.data import (
    ChecksumError,
    DataError,
    DatasetNotFoundError,
    _paths,
    data_search_paths,
    load_dataset,
)
from art_denoise.data import mnist as mnist_module
from art_denoise.data.idx import write_idx
from art_denoise.data.mnist import IDX_FILES

MakeIdx = Callable[..., dict[str, np.ndarray]]
NAMES = ["mnist", "fashion-mnist"]
OFFICIAL = {"mnist": mnist_module.MNIST_MD5, "fashion-mnist": mnist_module.FASHION_MNIST_MD5}
BASE_URL = {"mnist": mnist_module.MNIST_URL, "fashion-mnist": mnist_module.FASHION_MNIST_URL}


def _reference_images(raw: np.ndarray) -> np.ndarray:
    return raw.astype(np.float32)[:, np.newaxis] / np.float32(255.0)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str, gz: bool, tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    raw = make_idx_dir(tmp_path / "files", gz=gz)
    data = load_dataset(name, path=tmp_path / "files")
    assert data.name == name and data.num_classes == 10 and len(data.class_names) == 10
    assert data.input_shape == (1, 28, 28)
    for split, images, labels in [("train", *IDX_FILES[:2]), ("test", *IDX_FILES[2:])]:
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert x.dtype == np.float32 and x.shape == (len(raw[images]), 1, 28, 28)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, _reference_images(raw[images]))
        np.testing.assert_array_equal(y, raw[labels])
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert data.x_train[0, 0, 0, :2].tolist() == [0.0, 1.0]  # exact: 0 / 255 and 255 / 255


def test_fashion_class_names(tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    make_idx_dir(tmp_path)
    names = load_dataset("fashion-mnist", path=tmp_path).class_names
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    assert load_dataset("mnist", path=tmp_path).class_names == tuple("0123456789")


def test_mixed_plain_and_gz_files(tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    raw = make_idx_dir(tmp_path)
    gz = tmp_path / f"{IDX_FILES[3]}.gz"
    (tmp_path / IDX_FILES[3]).write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    np.testing.assert_array_equal(load_dataset("mnist", path=tmp_path).y_test, raw[IDX_FILES[3]])


class Order(NamedTuple):
    id: str
    present: tuple[str, ...]  # where copies exist; each has a different train size
    explicit: bool
    winner: str


SIZES = {"explicit": 1, "env/name": 2, "env": 3, "debian": 4, "cache": 5}
ORDERS = [
    Order("explicit beats all", ("explicit", "env/name", "debian", "cache"), True, "explicit"),
    Order("env/name beats env", ("env/name", "env", "debian", "cache"), False, "env/name"),
    Order("env beats debian", ("env", "debian", "cache"), False, "env"),
    Order("debian beats cache", ("debian", "cache"), False, "debian"),
    Order("cache last", ("cache",), False, "cache"),
]


@pytest.mark.parametrize("case", ORDERS, ids=lambda c: c.id)
def test_search_order(
    case: Order,
    tmp_path: Path,
    places: SimpleNamespace,
    make_idx_dir: MakeIdx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dirs = {
        "explicit": tmp_path / "explicit",
        "env/name": places.env / "fashion-mnist",
        "env": places.env,
        "debian": places.debian / "fashion-mnist",
        "cache": places.cache / "art-denoise" / "fashion-mnist",
    }
    for where in case.present:
        make_idx_dir(dirs[where], n_train=SIZES[where])
    places.env.mkdir(exist_ok=True)
    monkeypatch.setenv("ART_DENOISE_DATA", str(places.env))
    path = dirs["explicit"] if case.explicit else None
    data = load_dataset("fashion-mnist", path=path)
    assert len(data.x_train) == SIZES[case.winner]


def test_search_paths(places: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    debian = places.debian / "mnist"
    cache = places.cache / "art-denoise" / "mnist"
    assert data_search_paths("mnist") == [debian, cache]
    monkeypatch.setenv("ART_DENOISE_DATA", str(places.env))
    assert data_search_paths("mnist") == [places.env / "mnist", places.env, debian, cache]
    assert data_search_paths("mnist", "/somewhere") == [Path("/somewhere")]


def test_cache_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for xdg in ("", "relative/dir"):
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        expected = tmp_path / ".cache" / "art-denoise" / "mnist"
        assert data_search_paths("mnist")[-1] == expected


def test_explicit_path_is_the_only_place(
    tmp_path: Path, places: SimpleNamespace, make_idx_dir: MakeIdx
) -> None:
    make_idx_dir(places.debian / "fashion-mnist")
    load_dataset("fashion-mnist")  # found in the Debian directory...
    with pytest.raises(DatasetNotFoundError) as info:  # ...but a wrong path is not ignored
        load_dataset("fashion-mnist", path=tmp_path / "typo")
    assert info.value.searched == (tmp_path / "typo",)


@pytest.mark.parametrize("name", NAMES)
def test_not_found_names_every_place(
    name: str, places: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ART_DENOISE_DATA", str(places.env))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.searched == tuple(data_search_paths(name))
    assert len(info.value.searched) == 4
    for place in info.value.searched:
        assert f"{place}: no such directory" in message
    assert "ART_DENOISE_DATA" in message and "download=True" in message and "path=" in message
    assert BASE_URL[name] in message
    has_apt = "apt-get install dataset-fashion-mnist" in message
    assert has_apt == (name == "fashion-mnist")


def test_not_found_names_missing_files(tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    make_idx_dir(tmp_path)
    (tmp_path / f"{IDX_FILES[3]}.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"{tmp_path}: missing {IDX_FILES[3]}\[.gz\]"):
        load_dataset("mnist", path=tmp_path)


class Broken(NamedTuple):
    id: str
    stem: str
    array: np.ndarray
    match: str


BROKEN = [
    Broken("count mismatch", IDX_FILES[1], np.zeros(5, np.uint8), "has 6 images but .* 5 labels"),
    Broken("label range", IDX_FILES[3], np.full(4, 10, np.uint8), r"label 10 is not in \[0, 10\)"),
    Broken("image size", IDX_FILES[2], np.zeros((4, 8, 8), np.uint8), r"\(N, 28, 28\)"),
    Broken("image dtype", IDX_FILES[0], np.zeros((6, 28, 28), np.int16), "uint8 images"),
    Broken("label rank", IDX_FILES[1], np.zeros((6, 1), np.uint8), r"labels of shape \(N,\)"),
]


@pytest.mark.parametrize("case", BROKEN, ids=lambda c: c.id)
def test_inconsistent_files(case: Broken, tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    make_idx_dir(tmp_path)
    write_idx(tmp_path / f"{case.stem}.gz", case.array)
    with pytest.raises(DataError, match=case.match) as info:
        load_dataset("mnist", path=tmp_path)
    assert case.stem in str(info.value)


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda b: b"\x08\x03" + b[2:], "bad IDX magic number"),
        (lambda b: b[:-100], "truncated"),
    ],
    ids=["bad magic", "truncated"],
)
def test_corrupt_file(
    corrupt: Callable[[bytes], bytes], match: str, tmp_path: Path, make_idx_dir: MakeIdx
) -> None:
    make_idx_dir(tmp_path, gz=False)
    target = tmp_path / IDX_FILES[0]
    target.write_bytes(corrupt(target.read_bytes()))
    with pytest.raises(DataError, match=match) as info:
        load_dataset("fashion-mnist", path=tmp_path)
    assert str(target) in str(info.value)


@pytest.fixture
def server(tmp_path: Path, make_idx_dir: MakeIdx) -> tuple[Path, dict[str, np.ndarray]]:
    """A directory with the four .gz files, as the official server would hand them out."""
    return tmp_path / "server", make_idx_dir(tmp_path / "server", seed=7)


@pytest.mark.parametrize("name", NAMES)
def test_download(
    name: str,
    server: tuple[Path, dict[str, np.ndarray]],
    serve: Callable[[Path], list[str]],
    places: SimpleNamespace,
    md5: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, raw = server
    for file in root.iterdir():
        monkeypatch.setitem(OFFICIAL[name], file.name, md5(file))
    opened = serve(root)
    data = load_dataset(name, download=True)
    np.testing.assert_array_equal(data.x_test, _reference_images(raw[IDX_FILES[2]]))
    assert sorted(opened) == sorted(BASE_URL[name] + f"{stem}.gz" for stem in IDX_FILES)
    cache = places.cache / "art-denoise" / name
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in IDX_FILES)
    load_dataset(name, download=True)  # now cached: nothing is fetched again
    assert len(opened) == 4


def test_download_fetches_only_missing_files_into_path(
    tmp_path: Path,
    server: tuple[Path, dict[str, np.ndarray]],
    serve: Callable[[Path], list[str]],
    md5: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, raw = server
    for file in root.iterdir():
        monkeypatch.setitem(mnist_module.MNIST_MD5, file.name, md5(file))
    target = tmp_path / "mine"
    target.mkdir()
    for stem in IDX_FILES[:2]:
        (target / f"{stem}.gz").write_bytes((root / f"{stem}.gz").read_bytes())
    opened = serve(root)
    data = load_dataset("mnist", path=target, download=True)
    assert [url.rsplit("/", 1)[1] for url in opened] == [f"{s}.gz" for s in IDX_FILES[2:]]
    np.testing.assert_array_equal(data.y_test, raw[IDX_FILES[3]])


@pytest.mark.parametrize("name", NAMES)
def test_download_with_wrong_checksum_leaves_nothing(
    name: str,
    server: tuple[Path, dict[str, np.ndarray]],
    serve: Callable[[Path], list[str]],
    places: SimpleNamespace,
) -> None:
    serve(server[0])  # the files do not have the official checksums
    with pytest.raises(ChecksumError, match=f"expected {OFFICIAL[name][f'{IDX_FILES[0]}.gz']}"):
        load_dataset(name, download=True)
    cache = places.cache / "art-denoise" / name
    assert not cache.exists() or not list(cache.iterdir())


def test_official_checksums_are_distinct() -> None:
    values = [*mnist_module.MNIST_MD5.values(), *mnist_module.FASHION_MNIST_MD5.values()]
    assert len(set(values)) == 8
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in values)
    for table in OFFICIAL.values():
        assert sorted(table) == sorted(f"{stem}.gz" for stem in IDX_FILES)


class Count(NamedTuple):
    id: str
    kwargs: dict[str, object]
    error: type[Exception]
    match: str


BAD_COUNTS = [
    Count("zero", {"n_train": 0}, ValueError, "n_train must be >= 1, got 0"),
    Count("negative", {"n_test": -3}, ValueError, "n_test must be >= 1, got -3"),
    Count("float", {"n_train": 2.0}, TypeError, "n_train must be an int, got float"),
    Count("bool", {"n_test": True}, TypeError, "n_test must be an int, got bool"),
    Count("too many", {"n_train": 7}, ValueError, "n_train=7 is more than the 6 examples"),
]


@pytest.mark.parametrize("case", BAD_COUNTS, ids=lambda c: c.id)
def test_bad_counts(case: Count, tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    make_idx_dir(tmp_path)
    with pytest.raises(case.error, match=case.match):
        load_dataset("mnist", path=tmp_path, **case.kwargs)  # type: ignore[arg-type]


def test_first_examples_are_kept(tmp_path: Path, make_idx_dir: MakeIdx) -> None:
    make_idx_dir(tmp_path)
    full = load_dataset("mnist", path=tmp_path)
    part = load_dataset("mnist", path=tmp_path, n_train=3, n_test=2)
    np.testing.assert_array_equal(part.x_train, full.x_train[:3])
    np.testing.assert_array_equal(part.y_test, full.y_test[:2])
    assert part.x_train.flags.owndata and part.x_train.flags.c_contiguous


# MD5 of the decompressed official files: the .gz files of Debian's package are
# recompressed (their MD5s differ from the downloads), the IDX content is the same.
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
DEBIAN_ROOT = Path("/usr/share/datasets")


def test_real_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = DEBIAN_ROOT / "fashion-mnist"
    if not all((directory / f"{stem}.gz").is_file() for stem in IDX_FILES):
        reason = f"Fashion-MNIST not in {directory} (apt-get install dataset-fashion-mnist)"
        if os.environ.get("ART_DENOISE_REQUIRE_REAL_DATA") == "1":
            pytest.fail(f"ART_DENOISE_REQUIRE_REAL_DATA=1 but {reason}")
        pytest.skip(reason)
    monkeypatch.setattr(_paths, "DEBIAN_DATA_ROOT", DEBIAN_ROOT)
    for stem, expected in FASHION_RAW_MD5.items():
        content = gzip.decompress((directory / f"{stem}.gz").read_bytes())
        assert hashlib.md5(content, usedforsecurity=False).hexdigest() == expected, stem
    data = load_dataset("fashion-mnist")  # found through the search path
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.num_classes == 10
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    # exact: 0 / 255 and 255 / 255
    assert float(data.x_test.min()) == 0.0 and float(data.x_test.max()) == 1.0
