"""The user's own images: one sub-folder per class, read with Pillow.

The layout is torchvision's ``ImageFolder``: ``DIR/<class>/<image>``. Class names are
the sub-folder names, sorted; a class's label is its index in that order. Either ``DIR``
holds ``train/`` and ``test/``, each with the same class folders (other folders beside
them, such as ``val/``, are not read), or it holds the class folders directly and each
class is split in a seeded, stratified way: ``round(test_fraction * n)`` of its ``n``
images (at most ``n - 1``) go to the test split. Images in sub-folders of a class folder
belong to that class. Symbolic links to folders are followed wherever they are (a class
folder or a sub-folder of one may be a link); a folder reached twice (a link loop, or
two links to one folder, even across classes or splits) is an error naming both paths,
since its images would count more than once. Each split comes in a seeded random order,
so its first images (``n_train`` / ``n_test`` of :func:`art_denoise.data.load_dataset`)
mix the classes.

What is read:

- Files ending in ``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.ppm``, ``.pgm``, ``.pbm``,
  ``.pnm``, ``.gif`` (first frame), ``.tif`` or ``.tiff`` (any case). Pillow opens them
  with only the PNG, JPEG, BMP, PPM, GIF and TIFF decoders enabled, so a file that is
  something else under an image name (an EPS, which Pillow would hand to Ghostscript)
  is refused, never interpreted. Images larger than ``PIL.Image.MAX_IMAGE_PIXELS``
  (decompression bombs) are refused too.
- Hidden files and folders (any name starting with ``.``, image names included:
  ``.DS_Store``, ``.ipynb_checkpoints``, macOS's AppleDouble ``._0001.png``, a
  ``.preview.png``), ``Thumbs.db`` and annotation files (``.txt``, ``.csv``, ``.json``,
  ``.md``, ``.xml``, ``.yaml``, ``.yml``; GTSRB ships a ``GT-*.csv`` in each class
  folder) are skipped. Any other file is an error naming it: data is never dropped
  without a word. Image files lying next to the class folders (directly in ``DIR``, in
  ``train/`` or ``test/``, or in ``DIR`` beside ``train/`` and ``test/``) belong to no
  class and are an error naming them too, as is a folder that cannot be listed.
- Grey images (modes ``1``, ``L``, ``LA``) give one channel, colour ones (``RGB``,
  ``RGBA``, palette, ``CMYK``, ...) three; an alpha channel is dropped, not
  composited. A mix gives three channels unless ``channels`` says otherwise (colour to
  grey is Pillow's ITU-R 601-2 luma). 16-bit and float images are refused.
- All images must have one size, or ``image_size`` resizes each one (after its
  conversion to the output channels) with Pillow's bilinear filter.

Pixel values are ``uint8 / 255`` as float32, all held in memory (4 bytes per pixel and
channel: 40000 RGB images of 32x32 take 0.5 GB). Every file's header is read before any
pixel is decoded, so a bad file, size or mode fails fast.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from art_denoise.data._dataset import Dataset
from art_denoise.data._errors import DataError, DatasetNotFoundError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "METADATA_EXTENSIONS", "load_folder"]

#: File name endings read as images (compared in lower case).
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".gif",
    ".tif",
    ".tiff",
)
#: File name endings skipped as annotations or notes (as are hidden files and Thumbs.db).
METADATA_EXTENSIONS = (".txt", ".csv", ".json", ".md", ".xml", ".yaml", ".yml")

#: The only Pillow decoders ever used (``Image.open(..., formats=...)``).
_FORMATS = ("PNG", "JPEG", "BMP", "PPM", "GIF", "TIFF")
_GREY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_SPLITS = ("train", "test")

#: A file and its label.
_Labelled = tuple[Path, int]


@dataclass(frozen=True)
class _Header:
    """What :func:`_read_header` learns from a file without decoding its pixels."""

    file: Path
    size: tuple[int, int]  # (H, W)
    colour: bool


def load_folder(
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = False,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Load a folder of images with one sub-folder per class (see the module docstring).

    Args:
        path: the directory holding the class folders, or ``train/`` and ``test/``
            each holding them. Required: a folder dataset is never searched for.
        download: must be False: there is nothing to download.
        image_size: resize every image to ``(H, W)`` (an int ``N`` means ``(N, N)``);
            ``None`` requires all images to have one size.
        channels: 1 (grey) or 3 (RGB); ``None`` gives 3 if any image is in colour,
            else 1.
        test_fraction: the share of each class held out for testing, in (0, 1), when
            ``path`` has no ``train/`` and ``test/``.
        seed: seeds the split and the order of the images in each split.

    Returns:
        A :class:`Dataset` named ``"folder"`` with the class folders' names.

    Shape:
        - x_train: (N_train, C, H, W), float32 in [0, 1]
        - x_test: (N_test, C, H, W), float32 in [0, 1]

    Raises:
        ValueError: ``path`` is missing, ``download`` is True, or an option is out of
            range.
        TypeError: an option has the wrong type.
        DatasetNotFoundError: ``path`` is not a directory.
        DataError: fewer than two class folders, an empty class folder, a file that is
            not an image, image files next to the class folders, a folder that cannot
            be listed or is reached twice through symbolic links (a loop, or two links
            to one folder), images of different sizes without ``image_size``, or a split
            that leaves the test set empty.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for name, value in (("cat", 0), ("dog", 255)):
        ...     (root / name).mkdir()
        ...     for i in range(5):
        ...         Image.new("L", (4, 3), value).save(root / name / f"{i}.png")
        >>> data = load_folder(path=root)
        >>> data.class_names, data.x_train.shape, data.x_test.shape
        (('cat', 'dog'), (8, 1, 3, 4), (2, 1, 3, 4))
        >>> import shutil; shutil.rmtree(root)
    """
    root = _check_arguments(path, download, channels, test_fraction, seed)
    size = _check_image_size(image_size)
    classes, train_files, test_files = _list_files(root)
    headers = [_read_header(f) for f in (*train_files, *test_files)]
    shape = _output_size(headers, size)
    colour = any(h.colour for h in headers) if channels is None else channels == 3
    rng = np.random.default_rng(seed)
    if test_files:
        train = _order(train_files, rng)
        test = _order(test_files, rng)
    else:
        train, test = _split(train_files, test_fraction, rng)
    x_train, y_train = _read_split(train, shape, colour)
    x_test, y_test = _read_split(test, shape, colour)
    return Dataset("folder", x_train, y_train, x_test, y_test, len(classes), classes)


# ------------------------------------------------------------------ arguments
def _check_arguments(
    path: str | os.PathLike[str] | None,
    download: object,
    channels: object,
    test_fraction: object,
    seed: object,
) -> Path:
    if path is None:
        raise ValueError(
            "dataset 'folder' needs path=DIR, a directory with one sub-folder of images per class"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if download is not False:
        raise ValueError(f"dataset 'folder' reads your own images; got download={download!r}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"test_fraction must be a number, got {type(test_fraction).__name__}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    root = Path(path).expanduser()
    if not root.is_dir():
        what = "a file, not a directory" if root.exists() else "no such directory"
        error = DatasetNotFoundError(f"dataset 'folder': {str(root)!r} is {what}")
        error.searched = (root,)
        raise error
    return root


def _check_image_size(image_size: object) -> tuple[int, int] | None:
    """``image_size`` as ``(H, W)``; ``N`` means ``(N, N)``."""
    if image_size is None:
        return None
    pair = (image_size, image_size) if not isinstance(image_size, (tuple, list)) else image_size
    ok = len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    if not ok:
        raise TypeError(f"image_size must be an int or a pair of ints (H, W), got {image_size!r}")
    if min(pair) < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size!r}")
    return (int(pair[0]), int(pair[1]))


# ------------------------------------------------------------------- listing
#: Each folder listed so far, by identity ``(st_dev, st_ino)``, and the path it was reached by.
_Seen = dict[tuple[int, int], Path]


def _hidden(name: str) -> bool:
    """Hidden files and folders (a name starting with ``.``) are never read."""
    return name.startswith(".")


def _visible_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not _hidden(p.name))


def _loose_images(directory: Path) -> list[Path]:
    """The files with an image name directly in ``directory`` (hidden ones not), sorted."""
    return sorted(
        p
        for p in directory.iterdir()
        if not _hidden(p.name) and p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir()
    )


def _list_files(root: Path) -> tuple[tuple[str, ...], list[_Labelled], list[_Labelled]]:
    """The class names and the (file, label) pairs of train and test (empty: to split)."""
    has = {split: (root / split).is_dir() for split in _SPLITS}
    if has["train"] != has["test"]:
        one, other = ("train", "test") if has["train"] else ("test", "train")
        raise DataError(
            f"{root} has {one}/ but no {other}/: give both, each with one folder per class, "
            "or put the class folders directly in it"
        )
    seen: _Seen = {}
    if not has["train"]:
        classes = _class_folders(root)
        return tuple(c.name for c in classes), _labelled(classes, seen), []
    _refuse_loose_images(root, "train/ and test/")
    train, test = _class_folders(root / "train"), _class_folders(root / "test")
    names = tuple(c.name for c in train)
    if names != tuple(c.name for c in test):
        only_train = sorted(set(names) - {c.name for c in test})
        only_test = sorted({c.name for c in test} - set(names))
        raise DataError(
            f"{root}: train/ and test/ must hold the same class folders; only in train/: "
            f"{only_train or 'none'}, only in test/: {only_test or 'none'}"
        )
    return names, _labelled(train, seen), _labelled(test, seen)


def _class_folders(directory: Path) -> list[Path]:
    classes = _visible_dirs(directory)
    if len(classes) >= 2:
        _refuse_loose_images(directory, "the class folders")
        return classes
    if classes:
        raise DataError(
            f"{directory} holds one class folder ({classes[0].name!r}); a classifier needs "
            "at least two, one sub-folder of images per class"
        )
    loose = len(_loose_images(directory))
    hint = (
        f" (it holds {loose} image file(s) directly: point at the folder above it)" if loose else ""
    )
    raise DataError(f"{directory} has no class folders: expected one sub-folder per class{hint}")


def _refuse_loose_images(directory: Path, beside: str) -> None:
    """An error naming the image files (the first three) directly in ``directory``."""
    loose = _loose_images(directory)
    if not loose:
        return
    shown = ", ".join(p.name for p in loose[:3])
    more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
    raise DataError(
        f"{directory} holds {len(loose)} image file(s) next to {beside}, which would not be "
        f"read: {shown}{more}; images must be inside class folders: move them into their "
        "class folder, or out of this folder"
    )


def _labelled(classes: list[Path], seen: _Seen) -> list[_Labelled]:
    return [(file, label) for label, folder in enumerate(classes) for file in _images(folder, seen)]


def _images(folder: Path, seen: _Seen) -> list[Path]:
    """The image files under ``folder``, sorted; an error for an unknown kind of file.

    Links to folders are followed. Every folder listed is recorded in ``seen``: one
    reached again (a link loop, or two links to one folder) is an error, as is a folder
    that cannot be listed.
    """
    found: list[Path] = []
    for current, dirs, files in os.walk(folder, onerror=_unreadable, followlinks=True):
        _visit(Path(current), seen)
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            if _hidden(name):
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix in IMAGE_EXTENSIONS:
                found.append(Path(current) / name)
            elif not _skipped(name, suffix):
                raise DataError(
                    f"{Path(current) / name}: not an image file (expected one of "
                    f"{', '.join(IMAGE_EXTENSIONS)}); move it out of the class folder"
                )
    if not found:
        raise DataError(f"class folder {folder} holds no image files")
    return found


def _visit(directory: Path, seen: _Seen) -> None:
    """Record ``directory`` in ``seen``; an error naming both paths if it is there already."""
    try:
        info = directory.stat()
    except OSError as exc:
        raise DataError(f"folder {directory} cannot be read ({_first_line(exc)})") from None
    key = (info.st_dev, info.st_ino)
    first = seen.get(key)
    if first is None:
        seen[key] = directory
        return
    what = (
        "a symbolic link loop"
        if directory.is_relative_to(first)
        else "one folder reached twice through symbolic links"
    )
    raise DataError(
        f"{directory} is the same folder as {first} ({what}): its images would be read "
        "more than once; remove the link"
    )


def _unreadable(error: OSError) -> NoReturn:
    """``os.walk``'s ``onerror``: a folder that cannot be listed is an error, never skipped."""
    where = error.filename if error.filename is not None else "a folder in the class folders"
    reason = error.strerror or _first_line(error)
    raise DataError(
        f"folder {where} cannot be read ({reason}), so its images would be left out; "
        "fix its permissions or move it out of the class folder"
    ) from None


def _skipped(name: str, suffix: str) -> bool:
    return name.lower() in _SKIPPED_NAMES or suffix in METADATA_EXTENSIONS


# ---------------------------------------------------------------- decoding
def _open(file: Path) -> Image.Image:
    """Open ``file`` with the image decoders only; decompression bombs refused."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(file, formats=_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(f"{file}: refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{file}: cannot be read as an image ({_first_line(exc)})") from None


def _read_header(item: _Labelled) -> _Header:
    file = item[0]
    with _open(file) as image:
        mode, (width, height) = image.mode, image.size
    if mode not in _GREY_MODES and mode not in _COLOUR_MODES:
        raise DataError(
            f"{file}: image mode {mode!r} (16-bit or float) is not supported; "
            "convert it to 8-bit grey or RGB"
        )
    return _Header(file, (height, width), mode not in _GREY_MODES)


def _output_size(headers: list[_Header], size: tuple[int, int] | None) -> tuple[int, int]:
    """``size`` if given, else the one size of all images (an error naming two that differ)."""
    if size is not None:
        return size
    first = headers[0]
    for h in headers[1:]:
        if h.size != first.size:
            raise DataError(
                f"images differ in size: {first.file} is (H, W) = {first.size} but {h.file} "
                f"is {h.size}; pass image_size=(H, W) (--image-size H,W) to resize them"
            )
    return first.size


def _read_split(
    items: list[_Labelled], size: tuple[int, int], colour: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``items`` into float32 (N, C, H, W) in [0, 1] and int64 labels."""
    from PIL import Image

    mode, c = ("RGB", 3) if colour else ("L", 1)
    pixels = np.empty((len(items), size[0], size[1], c), np.uint8)
    for i, (file, _) in enumerate(items):
        with _open(file) as image:
            converted = _convert(file, image, mode)
        if converted.size != (size[1], size[0]):
            converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels[i] = np.asarray(converted).reshape(size[0], size[1], c)
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32, order="C")
    x /= np.float32(255)
    return x, np.array([label for _, label in items], np.int64)


def _convert(file: Path, image: Image.Image, mode: str) -> Image.Image:
    """Decode ``image`` as ``mode`` (``"L"`` or ``"RGB"``); colour goes through RGB."""
    try:
        image.load()  # decodes now, while the file is open
        if image.mode not in _GREY_MODES and image.mode != "RGB":
            image = image.convert("RGB")
        return image if image.mode == mode else image.convert(mode)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{file}: cannot be decoded ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------ splitting
def _order(items: list[_Labelled], rng: np.random.Generator) -> list[_Labelled]:
    return [items[i] for i in rng.permutation(len(items))]


def _split(
    items: list[_Labelled], test_fraction: float, rng: np.random.Generator
) -> tuple[list[_Labelled], list[_Labelled]]:
    """Stratified: ``round(test_fraction * n)`` (at most ``n - 1``) of each class to test."""
    train: list[_Labelled] = []
    test: list[_Labelled] = []
    for label in sorted({lab for _, lab in items}):
        members = [item for item in items if item[1] == label]
        n = len(members)
        n_test = min(n - 1, math.floor(test_fraction * n + 0.5))
        chosen = set(rng.permutation(n)[:n_test].tolist())
        for i, item in enumerate(members):
            (test if i in chosen else train).append(item)
    if not test:
        raise DataError(
            f"test_fraction={test_fraction} of {len(items)} images leaves no test image; "
            "add images or raise test_fraction"
        )
    return _order(train, rng), _order(test, rng)
