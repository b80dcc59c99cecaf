"""The folder dataset: the user's own images, one sub-folder per class.

Every test writes its tiny PNG files into ``tmp_path`` with Pillow; the reference for a
loaded image is the file's own pixels (``uint8 / 255``), or Pillow's own conversion and
resize of the file where the loader converts or resizes.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from PIL import Image

from art_denoise.data import DataError, DatasetNotFoundError, load_dataset
from art_denoise.data.folder import load_folder

RNG_SEED = 1234


def _write(file: Path, pixels: np.ndarray) -> np.ndarray:
    """Save ``pixels`` (uint8 HxW or HxWx3/4) as an image file; return them."""
    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(file)
    return pixels


def _random(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _make_classes(
    root: Path, counts: dict[str, int], shape: tuple[int, ...] = (4, 6, 3), seed: int = 0
) -> dict[bytes, tuple[str, np.ndarray]]:
    """``counts[name]`` random images in ``root/name``; pixels (as bytes) -> (class, pixels)."""
    rng = np.random.default_rng(seed)
    written = {}
    for name, n in counts.items():
        for i in range(n):
            pixels = _write(root / name / f"img{i:02d}.png", _random(rng, shape))
            written[pixels.tobytes()] = (name, pixels)
    return written


def _as_hwc_uint8(image: np.ndarray) -> np.ndarray:
    return (
        np.rint(image.transpose(1, 2, 0) * 255)
        .astype(np.uint8)
        .squeeze(-1 if len(image) == 1 else ())
    )


def _match(
    x: np.ndarray, y: np.ndarray, written: dict[bytes, tuple[str, np.ndarray]], names: tuple
) -> list[bytes]:
    """Each loaded image is one written file's pixels / 255, under its class's label."""
    keys = []
    for image, label in zip(x, y, strict=True):
        key = _as_hwc_uint8(image).tobytes()
        assert key in written, "a loaded image is none of the files"
        name, pixels = written[key]
        expected = pixels.astype(np.float32).reshape(image.shape[1], image.shape[2], -1) / 255
        np.testing.assert_allclose(image, expected.transpose(2, 0, 1), rtol=0, atol=1e-7)
        assert names[label] == name
        keys.append(key)
    return keys


# ------------------------------------------------------------------ values
def test_pixels_labels_and_sorted_class_names(tmp_path) -> None:
    written = _make_classes(tmp_path, {"stop": 5, "yield": 5, "30kmh": 5})
    data = load_folder(path=tmp_path)
    assert data.name == "folder"
    assert data.class_names == ("30kmh", "stop", "yield") and data.num_classes == 3
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.shape == (12, 3, 4, 6) and data.x_test.shape == (3, 3, 4, 6)
    assert data.x_train.flags.c_contiguous
    keys = _match(data.x_train, data.y_train, written, data.class_names)
    keys += _match(data.x_test, data.y_test, written, data.class_names)
    assert sorted(keys) == sorted(written), "every file exactly once"
    # the splits come shuffled, so their first images (n_train / n_test) mix the classes
    assert len(set(data.y_train[:6].tolist())) > 1


def test_grey_images_give_one_channel_and_nested_files_belong_to_the_class(tmp_path) -> None:
    written = _make_classes(tmp_path, {"a": 3, "b": 3}, shape=(5, 5))
    rng = np.random.default_rng(7)
    nested = _write(tmp_path / "b" / "more" / "deep.png", _random(rng, (5, 5)))
    written[nested.tobytes()] = ("b", nested)
    data = load_folder(path=tmp_path, test_fraction=0.3)
    assert data.input_shape == (1, 5, 5)
    keys = _match(data.x_train, data.y_train, written, data.class_names)
    keys += _match(data.x_test, data.y_test, written, data.class_names)
    assert sorted(keys) == sorted(written)


# ------------------------------------------------------------------- split
class SplitCase(NamedTuple):
    counts: dict[str, int]
    test_fraction: float
    n_test: dict[str, int]  # round(f * n), at most n - 1


SPLITS = {
    "a fifth": SplitCase({"a": 5, "b": 10}, 0.2, {"a": 1, "b": 2}),
    "half rounds up": SplitCase({"a": 5, "b": 3}, 0.5, {"a": 3, "b": 2}),
    "a single image stays in train": SplitCase({"a": 1, "b": 4}, 0.25, {"a": 0, "b": 1}),
    "one image always trains": SplitCase({"a": 2, "b": 3}, 0.9, {"a": 1, "b": 2}),
}


@pytest.mark.parametrize("case", SPLITS.values(), ids=SPLITS.keys())
def test_split_is_stratified(tmp_path, case: SplitCase) -> None:
    _make_classes(tmp_path, case.counts, shape=(2, 2))
    data = load_folder(path=tmp_path, test_fraction=case.test_fraction)
    names = data.class_names
    assert Counter(names[i] for i in data.y_test.tolist()) == {
        k: v for k, v in case.n_test.items() if v
    }
    assert Counter(names[i] for i in data.y_train.tolist()) == {
        k: case.counts[k] - case.n_test[k] for k in case.counts
    }


def test_split_is_seeded(tmp_path) -> None:
    _make_classes(tmp_path, {"a": 6, "b": 6}, shape=(3, 3))
    first, again = load_folder(path=tmp_path, seed=3), load_folder(path=tmp_path, seed=3)
    other = load_folder(path=tmp_path, seed=4)
    for split in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, split), getattr(again, split))
    assert not np.array_equal(np.sort(first.x_test, axis=0), np.sort(other.x_test, axis=0))


def test_no_test_image_is_an_error(tmp_path) -> None:
    _make_classes(tmp_path, {"a": 1, "b": 1}, shape=(2, 2))
    with pytest.raises(DataError, match=r"test_fraction=0\.2 of 2 images leaves no test image"):
        load_folder(path=tmp_path)


def test_train_and_test_folders_are_kept_as_given(tmp_path) -> None:
    train = _make_classes(tmp_path / "train", {"x": 3, "y": 2}, seed=1)
    test = _make_classes(tmp_path / "test", {"x": 1, "y": 2}, seed=2)
    _make_classes(tmp_path / "val", {"x": 1, "y": 1}, seed=3)  # not read
    data = load_folder(path=tmp_path, test_fraction=0.9)  # no effect here
    assert data.class_names == ("x", "y")
    assert sorted(_match(data.x_train, data.y_train, train, data.class_names)) == sorted(train)
    assert sorted(_match(data.x_test, data.y_test, test, data.class_names)) == sorted(test)


# ------------------------------------------------------- sizes and channels
def test_mixed_sizes_are_refused_naming_both_files(tmp_path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    _write(tmp_path / "a" / "big.png", _random(rng, (6, 8, 3)))
    _write(tmp_path / "b" / "small.png", _random(rng, (4, 5, 3)))
    pattern = r"a/big\.png is \(H, W\) = \(6, 8\) but .*b/small\.png is \(4, 5\).*--image-size"
    with pytest.raises(DataError, match=pattern) as info:
        load_folder(path=tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("image_size", [(5, 7), 5], ids=["HxW", "N"])
def test_image_size_resizes_like_pillow(tmp_path, image_size) -> None:
    rng = np.random.default_rng(RNG_SEED)
    files = []
    for name, shape in (("a", (6, 8, 3)), ("a", (5, 7, 3)), ("b", (9, 4, 3)), ("b", (3, 3, 3))):
        files.append(tmp_path / name / f"{len(files)}.png")
        _write(files[-1], _random(rng, shape))
    h, w = image_size if isinstance(image_size, tuple) else (image_size, image_size)
    data = load_folder(path=tmp_path, image_size=image_size, test_fraction=0.5)
    assert data.input_shape == (3, h, w)
    reference = {}
    for file in files:
        with Image.open(file) as im:
            resized = im.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        reference[file.parent.name + file.name] = np.asarray(resized).transpose(2, 0, 1) / 255
    loaded = [*data.x_train, *data.x_test]
    for expected in reference.values():
        assert any(np.allclose(x, expected, rtol=0, atol=1e-7) for x in loaded)


def test_grey_and_colour_mix_to_rgb_or_to_the_channels_asked(tmp_path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    grey = [_write(tmp_path / "g" / f"{i}.png", _random(rng, (4, 4))) for i in range(2)]
    rgba = [_write(tmp_path / "c" / f"{i}.png", _random(rng, (4, 4, 4))) for i in range(2)]
    data = load_folder(path=tmp_path, test_fraction=0.5)
    assert data.input_shape == (3, 4, 4)
    loaded = [*data.x_train, *data.x_test]
    for g in grey:  # grey repeated in R, G and B
        assert any(np.allclose(x, np.stack([g] * 3) / 255, rtol=0, atol=1e-7) for x in loaded)
    for c in rgba:  # alpha dropped
        expected = c[..., :3].transpose(2, 0, 1) / 255
        assert any(np.allclose(x, expected, rtol=0, atol=1e-7) for x in loaded)
    as_grey = load_folder(path=tmp_path, test_fraction=0.5, channels=1)
    assert as_grey.input_shape == (1, 4, 4)
    loaded = [*as_grey.x_train, *as_grey.x_test]
    for i in range(2):
        with Image.open(tmp_path / "c" / f"{i}.png") as im:
            luma = np.asarray(im.convert("RGB").convert("L")) / 255
        assert any(np.allclose(x[0], luma, rtol=0, atol=1e-7) for x in loaded)


def test_palette_images_are_colour(tmp_path) -> None:
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        for i in range(2):
            (tmp_path / name).mkdir(exist_ok=True)
            Image.new("RGB", (3, 2), colour).convert("P").save(tmp_path / name / f"{i}.gif")
    data = load_folder(path=tmp_path, test_fraction=0.5)
    assert data.input_shape == (3, 2, 3)
    red = data.x_train[data.y_train == data.class_names.index("red")][0]
    np.testing.assert_array_equal(red[:, 0, 0], [1, 0, 0])


# ------------------------------------------------------------ what is skipped
def test_metadata_and_hidden_files_are_skipped(tmp_path) -> None:
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(2, 2))
    for extra in ("a/notes.txt", "a/GT-00000.csv", "b/.DS_Store", "b/labels.json", "README.md"):
        (tmp_path / extra).write_text("not an image\n")
    _make_classes(tmp_path / "b" / ".thumbnails", {"x": 1}, shape=(9, 9))
    _make_classes(tmp_path / ".cache", {"x": 1}, shape=(9, 9))
    data = load_folder(path=tmp_path, test_fraction=0.5)
    assert data.class_names == ("a", "b")
    assert len(data.x_train) + len(data.x_test) == 4


#: The first bytes of a macOS AppleDouble file (``._<name>``): an image name, not an image.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "


def _all_labels(data) -> Counter:
    return Counter(data.class_names[i] for i in [*data.y_train.tolist(), *data.y_test.tolist()])


def test_hidden_files_with_image_names_are_skipped(tmp_path) -> None:
    written = _make_classes(tmp_path, {"a": 3, "b": 2}, shape=(2, 2))
    (tmp_path / "a" / "._0.png").write_bytes(APPLE_DOUBLE)
    (tmp_path / "b" / "._img00.png").write_bytes(APPLE_DOUBLE)
    _write(tmp_path / "b" / ".preview.png", np.full((2, 2), 7, np.uint8))  # a valid image
    _write(tmp_path / ".preview.png", np.full((2, 2), 9, np.uint8))  # hidden: not loose either
    data = load_folder(path=tmp_path, test_fraction=0.5)
    assert data.class_names == ("a", "b")
    assert _all_labels(data) == {"a": 3, "b": 2}
    keys = _match(data.x_train, data.y_train, written, data.class_names)
    keys += _match(data.x_test, data.y_test, written, data.class_names)
    assert sorted(keys) == sorted(written), "the visible files, each once"


# ------------------------------------------- links, unreadable folders, loose images
def _symlink(link: Path, target: Path) -> None:
    """``link`` -> the folder ``target``; the test is skipped where links are not allowed."""
    try:
        link.symlink_to(target, target_is_directory=True)
    except (OSError, NotImplementedError) as exc:
        pytest.skip(f"cannot make a symbolic link here: {exc}")


def test_linked_sub_folders_of_a_class_are_read(tmp_path) -> None:
    root = tmp_path / "signs"
    written = _make_classes(root, {"a": 2})
    elsewhere = _make_classes(tmp_path / "elsewhere", {"lisa": 3, "b": 2}, seed=5)
    _symlink(root / "a" / "lisa", tmp_path / "elsewhere" / "lisa")
    (root / "b").mkdir()
    _symlink(root / "b" / "all", tmp_path / "elsewhere" / "b")  # a class of links only
    for key, (name, pixels) in elsewhere.items():
        written[key] = ("a" if name == "lisa" else name, pixels)
    data = load_folder(path=root, test_fraction=0.4)
    assert data.class_names == ("a", "b")
    assert _all_labels(data) == {"a": 5, "b": 2}
    keys = _match(data.x_train, data.y_train, written, data.class_names)
    keys += _match(data.x_test, data.y_test, written, data.class_names)
    assert sorted(keys) == sorted(written), "every file exactly once"


def test_a_link_loop_is_refused_naming_it(tmp_path) -> None:
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(2, 2))
    _symlink(tmp_path / "a" / "again", tmp_path / "a")
    with pytest.raises(DataError, match=r"a/again is the same folder as .*a symbolic link loop"):
        load_folder(path=tmp_path)


def test_one_folder_reached_twice_through_links_is_refused_naming_both(tmp_path) -> None:
    root = tmp_path / "signs"
    _make_classes(root, {"a": 2, "b": 2}, shape=(2, 2))
    _make_classes(tmp_path / "elsewhere", {"shared": 2}, shape=(2, 2), seed=1)
    _symlink(root / "a" / "x", tmp_path / "elsewhere" / "shared")
    _symlink(root / "b" / "y", tmp_path / "elsewhere" / "shared")
    with pytest.raises(DataError, match=r"b/y is the same folder as .*a/x \(one folder reached"):
        load_folder(path=root)
    (root / "b" / "y").unlink()
    _symlink(root / "c", root / "a")  # a class folder that is another one
    with pytest.raises(DataError, match=r"signs/c is the same folder as .*signs/a \(one folder"):
        load_folder(path=root)


def test_a_folder_that_cannot_be_listed_is_refused(tmp_path, monkeypatch) -> None:
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(2, 2))
    locked = tmp_path / "b" / "locked"
    _write(locked / "img.png", np.zeros((2, 2), np.uint8))
    real = os.scandir

    def refuse(path="."):  # as a folder without read permission does, even for root
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", refuse)
    pattern = r"folder .*b/locked cannot be read \(Permission denied\), so its images would be"
    with pytest.raises(DataError, match=pattern) as info:
        load_folder(path=tmp_path)
    assert "\n" not in str(info.value)


def test_an_unreadable_sub_folder_is_refused(tmp_path) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        pytest.skip("needs POSIX permissions and a user other than root (root reads anything)")
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(2, 2))
    locked = tmp_path / "b" / "locked"
    _write(locked / "img.png", np.zeros((2, 2), np.uint8))
    locked.chmod(0)
    try:
        with pytest.raises(DataError, match=r"folder .*b/locked cannot be read \(Permission"):
            load_folder(path=tmp_path)
    finally:
        locked.chmod(0o755)


def test_images_next_to_the_class_folders_are_refused_naming_them(tmp_path) -> None:
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(2, 2))
    (tmp_path / "._stray.png").write_bytes(APPLE_DOUBLE)  # hidden: neither read nor named
    _write(tmp_path / "stray.png", np.zeros((2, 2), np.uint8))
    pattern = (
        r"holds 1 image file\(s\) next to the class folders, which would not be read: "
        r"stray\.png; images must be inside class folders"
    )
    with pytest.raises(DataError, match=pattern) as info:
        load_folder(path=tmp_path)
    assert "._stray" not in str(info.value) and "\n" not in str(info.value)
    for i in range(4):
        _write(tmp_path / f"m{i}.png", np.zeros((2, 2), np.uint8))
    pattern = r"holds 5 image file\(s\) .*: m0\.png, m1\.png, m2\.png and 2 more;"
    with pytest.raises(DataError, match=pattern):
        load_folder(path=tmp_path)


def test_images_next_to_train_and_test_or_their_class_folders_are_refused(tmp_path) -> None:
    _make_classes(tmp_path / "train", {"a": 2, "b": 2}, shape=(2, 2))
    _make_classes(tmp_path / "test", {"a": 1, "b": 1}, shape=(2, 2), seed=1)
    _write(tmp_path / "test" / "odd.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"/test holds 1 image file\(s\) next to the class fold"):
        load_folder(path=tmp_path)
    (tmp_path / "test" / "odd.png").rename(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"holds 1 image file\(s\) next to train/ and test/, .*odd"):
        load_folder(path=tmp_path)
    (tmp_path / "odd.png").unlink()
    data = load_folder(path=tmp_path)
    assert _all_labels(data) == {"a": 3, "b": 3} and len(data.x_test) == 2


# ------------------------------------------------------------------ refusals
def _eps(file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 2 2\nshowpage\n")


def _truncated(file: Path) -> None:
    _write(file, np.zeros((2, 2), np.uint8))
    file.write_bytes(file.read_bytes()[:40])


def _sixteen_bit(file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((2, 2), 40000, np.uint16)).save(file)


class Refusal(NamedTuple):
    make: object  # (root) -> None, on top of classes a (2 images) and b (2 images)
    error: type[Exception]
    pattern: str


REFUSALS = {
    "empty class": Refusal(
        lambda r: (r / "c").mkdir(), DataError, r"class folder .*/c holds no image files"
    ),
    "text under an image name": Refusal(
        lambda r: (r / "a" / "x.png").write_text("hello"),
        DataError,
        r"a/x\.png: cannot be read as an image",
    ),
    "EPS under an image name is never interpreted": Refusal(
        lambda r: _eps(r / "a" / "x.png"), DataError, r"a/x\.png: cannot be read as an image"
    ),
    "truncated png": Refusal(
        lambda r: _truncated(r / "b" / "t.png"), DataError, r"b/t\.png: cannot be"
    ),
    "unknown kind of file": Refusal(
        lambda r: (r / "a" / "run.py").write_text("import os"),
        DataError,
        r"a/run\.py: not an image file \(expected one of \.png",
    ),
    "16-bit image": Refusal(
        lambda r: _sixteen_bit(r / "a" / "deep.png"), DataError, r"a/deep\.png: image mode .*16-bit"
    ),
    "only train/": Refusal(
        lambda r: _make_classes(r / "train", {"a": 1, "b": 1}),
        DataError,
        r"has train/ but no test/",
    ),
    "different classes in train/ and test/": Refusal(
        lambda r: (
            _make_classes(r / "train", {"a": 1, "b": 1}),
            _make_classes(r / "test", {"a": 1, "c": 1}),
        ),
        DataError,
        r"only in train/: \['b'\], only in test/: \['c'\]",
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_bad_files_are_refused_in_one_line_naming_them(tmp_path, case: Refusal) -> None:
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(2, 2))
    case.make(tmp_path)  # type: ignore[operator]
    with pytest.raises(case.error, match=case.pattern) as info:
        load_folder(path=tmp_path)
    assert "\n" not in str(info.value)


def test_class_folder_counts(tmp_path) -> None:
    with pytest.raises(DataError, match=r"has no class folders: expected one sub-folder per"):
        load_folder(path=tmp_path)
    _write(tmp_path / "loose.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"holds 1 image file\(s\) directly: point at the folder"):
        load_folder(path=tmp_path)
    _make_classes(tmp_path, {"only": 2})
    with pytest.raises(DataError, match=r"holds one class folder \('only'\); .* at least two"):
        load_folder(path=tmp_path)


def test_decompression_bombs_are_refused(tmp_path, monkeypatch) -> None:
    _make_classes(tmp_path, {"a": 2, "b": 2}, shape=(4, 6))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 24 pixels: Pillow's warning
    with pytest.raises(DataError, match=r"img00\.png: refused as a possible decompression bomb"):
        load_folder(path=tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # over twice the limit: Pillow's error
    with pytest.raises(DataError, match=r"decompression bomb"):
        load_folder(path=tmp_path)


class BadArgument(NamedTuple):
    kwargs: dict
    error: type[Exception]
    pattern: str


BAD_ARGUMENTS = {
    "no path": BadArgument({"path": None}, ValueError, r"'folder' needs path=DIR"),
    "path int": BadArgument({"path": 3}, TypeError, r"path must be a str or os\.PathLike"),
    "missing": BadArgument({"path": "{tmp}/nope"}, DatasetNotFoundError, r"nope' is no such dir"),
    "a file": BadArgument({"path": "{tmp}/f.txt"}, DatasetNotFoundError, r"a file, not a dir"),
    "download": BadArgument({"download": True}, ValueError, r"got download=True"),
    "channels 2": BadArgument({"channels": 2}, ValueError, r"channels must be 1, 3 or None"),
    "fraction 1": BadArgument({"test_fraction": 1.0}, ValueError, r"test_fraction must be in"),
    "fraction str": BadArgument({"test_fraction": "0.2"}, TypeError, r"must be a number, got str"),
    "seed -1": BadArgument({"seed": -1}, ValueError, r"seed must be an int >= 0, got -1"),
    "size 0": BadArgument({"image_size": (0, 4)}, ValueError, r"image_size must be >= 1"),
    "size triple": BadArgument({"image_size": (2, 2, 2)}, TypeError, r"a pair of ints"),
    "size float": BadArgument({"image_size": 2.5}, TypeError, r"got 2\.5"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_arguments_are_checked(tmp_path, case: BadArgument) -> None:
    (tmp_path / "f.txt").write_text("x")
    kwargs = {"path": str(tmp_path), **case.kwargs}
    if isinstance(kwargs["path"], str):
        kwargs["path"] = kwargs["path"].replace("{tmp}", str(tmp_path))
    with pytest.raises(case.error, match=case.pattern):
        load_folder(**kwargs)


# ------------------------------------------------------------- load_dataset
def test_load_dataset_passes_the_folder_options(tmp_path) -> None:
    _make_classes(tmp_path, {"a": 4, "b": 4}, shape=(6, 6, 3))
    data = load_dataset("folder", path=tmp_path, image_size=(3, 2), channels=1, n_train=2)
    assert data.input_shape == (1, 3, 2) and len(data.x_train) == 2
    direct = load_folder(path=tmp_path, image_size=(3, 2), channels=1)
    np.testing.assert_array_equal(data.x_train, direct.x_train[:2])
    with pytest.raises(TypeError, match=r"'folder' does not take option 'size' \(its options"):
        load_dataset("folder", path=tmp_path, size=3)
    with pytest.raises(TypeError, match=r"'digits' does not take option 'image_size' \(it takes"):
        load_dataset("digits", image_size=3)
    with pytest.raises(ValueError, match=r"'folder' needs path=DIR"):
        load_dataset("folder")
