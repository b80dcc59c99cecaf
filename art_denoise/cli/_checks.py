"""Checks of the command line's options, run before any data is loaded or model trained.

Each subcommand checks its options in one pass (its ``validate(args)``): ranges through the
argparse ``type=`` helpers below, then what depends on several options (an option that
needs another, duplicates, the output directory) through the functions of this module.
Every message names the command-line flag and the value given, in one line; the caller
(:func:`art_denoise.cli.main.main`) prints it and exits with code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DATASET_SHAPES",
    "SEED_LIMIT",
    "check_data_options",
    "check_data_path",
    "check_dataset",
    "check_device",
    "check_linf_eps",
    "check_needs",
    "check_out_dir",
    "check_unique",
    "comma_positive_floats",
    "comma_positive_ints",
    "dataset_not_found",
    "eot_samples",
    "fraction",
    "image_size",
    "non_negative_float",
    "non_negative_int",
    "output_dir",
    "positive_float",
    "positive_int",
    "seed",
    "unit_fraction",
]

#: Seeds are integers in [0, 2**63): every generator of torch and numpy takes them.
SEED_LIMIT = 2**63
#: The image shape (C, H, W) of each dataset, to check a model before the data is read
#: (tests/cli compare it with the loaded datasets). ``folder`` is not here: its shape is
#: known only once the images are read, so the model is checked after loading.
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}


# ------------------------------------------------------------------ argparse types
def _parse(text: str, kind: type, what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _ranged(kind: type, what: str, ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = _parse(text, kind, what)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in some errors
    return parse


#: ``type=`` helpers: the option's value in range, or argparse's one-line error naming
#: the flag ("argument --batch-size: expected an integer >= 1, got '0'").
positive_int = _ranged(int, "an integer >= 1", lambda v: v >= 1)
non_negative_int = _ranged(int, "an integer >= 0", lambda v: v >= 0)
seed = _ranged(int, "an integer in [0, 2**63)", lambda v: 0 <= v < SEED_LIMIT)
positive_float = _ranged(float, "a finite number > 0", lambda v: v > 0)
non_negative_float = _ranged(float, "a finite number >= 0", lambda v: v >= 0)
fraction = _ranged(float, "a number in [0, 1]", lambda v: 0 <= v <= 1)
unit_fraction = _ranged(float, "a number in (0, 1]", lambda v: 0 < v <= 1)
#: EOT draws: 1 would repeat the single-draw attack (duplicate rows).
eot_samples = _ranged(int, "an integer >= 2", lambda v: v >= 2)


def comma_positive_ints(text: str) -> list[int]:
    """``"8,16"`` as ``[8, 16]``: integers >= 1."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    values = [_parse(t, int, "comma-separated integers >= 1") for t in items]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def comma_positive_floats(text: str) -> list[float]:
    """``"0.1,0.2"`` as ``[0.1, 0.2]``: finite numbers > 0."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {text!r}")
    values = [_parse(t, float, "comma-separated finite numbers > 0") for t in items]
    bad = [t for t, v in zip(items, values, strict=True) if v <= 0]
    if bad:
        raise argparse.ArgumentTypeError(f"expected numbers > 0, got {bad[0]!r} in {text!r}")
    return values


def image_size(text: str) -> tuple[int, int]:
    """``"32,40"`` as ``(32, 40)`` (height, width); ``"32"`` as ``(32, 32)``."""
    items = [t.strip() for t in text.split(",")]
    what = "H,W or N: integers >= 1"
    if len(items) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    values = [_parse(t, int, what) for t in items]
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return (values[0], values[-1])


def output_dir(text: str) -> Path:
    """A directory path; ``""`` (which ``Path`` would read as the current directory) refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a directory path, got {text!r}")
    return Path(text)


# --------------------------------------------------------------- option relations
def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _shown(value: Any) -> str:
    if value is True:
        return ""
    if isinstance(value, (list, tuple)):
        return " " + ",".join(str(v) for v in value)
    return f" {value}"


def check_needs(args: argparse.Namespace, needs: Mapping[str, tuple[bool, str]]) -> None:
    """Refuse an option given without the one that gives it a meaning.

    Args:
        args: the parsed options; an option counts as given when it is neither ``None``
            nor ``False`` (the defaults of such options are ``None``).
        needs: option dest -> (whether what it needs is there, what it needs in words).

    Raises:
        ValueError: ``"--rp2-area 0.3 needs --rp2"``.
    """
    for dest, (ok, what) in needs.items():
        value = getattr(args, dest)
        if value is not None and value is not False and not ok:
            raise ValueError(f"{_flag(dest)}{_shown(value)} needs {what}")


def check_unique(flag: str, values: Iterable[Any]) -> None:
    """Refuse a value named twice (it would give duplicate rows)."""
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{flag} names {v!r} twice")
        seen.add(v)


def check_linf_eps(flag: str, values: Iterable[float], norm: str) -> None:
    """Refuse a Linf budget above 1: images are in [0, 1], so 8 probably meant 8/255."""
    for eps in values:
        if norm == "inf" and eps > 1:
            raise ValueError(
                f"{flag} {eps:g} is larger than the whole [0, 1] input range for --norm inf "
                f"(did you mean {eps:g}/255 = {eps / 255:.6g}?)"
            )


def check_device(device: str) -> Any:
    """``--device`` resolved (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
    from art_denoise._torch import resolve_device

    kind = device.split(":", 1)[0]
    if kind not in ("auto", "cpu", "cuda") or (kind == "auto" and device != "auto"):
        raise ValueError(f"unknown --device {device!r}; expected auto, cpu, cuda or cuda:N")
    try:
        return resolve_device(device)
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"--device {device!r}: {err}") from None


def check_dataset(name: str) -> str:
    """``--dataset`` among the known datasets."""
    from art_denoise.data import DATASETS

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return name


def check_data_path(path: Path | None) -> Path | None:
    """``--data-path``: an existing directory, when given."""
    if path is not None and not path.is_dir():
        what = "a file" if path.exists() else "no such directory"
        raise ValueError(f"--data-path {str(path)!r} is not a directory ({what})")
    return path


def check_data_options(args: argparse.Namespace) -> None:
    """``--dataset``, ``--data-path`` and ``--image-size`` together.

    ``--dataset folder`` reads the user's images, so it needs ``--data-path``;
    ``--image-size`` resizes them, so it needs ``--dataset folder``.
    """
    check_dataset(args.dataset)
    check_data_path(args.data_path)
    folder = args.dataset == "folder"
    if folder and args.data_path is None:
        raise ValueError(
            "--dataset folder needs --data-path DIR, a directory with one sub-folder of "
            "images per class"
        )
    check_needs(args, {"image_size": (folder, "--dataset folder")})


def dataset_not_found(err: Exception, name: str, path: Path | None) -> str:
    """The loader's "not found" message in one line, with the command line's advice."""
    lines = str(err).splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if "Searched" in line)
        last = next(i for i, line in enumerate(lines) if line.startswith("To get it"))
        places = [line.strip().removeprefix("- ") for line in lines[first + 1 : last]]
    except StopIteration:
        places = []
    where = "; ".join(places) if places else lines[0] if lines else ""
    hint = (
        "put its files in that directory"
        if path is not None
        else "pass --data-path DIR holding its files, or set ART_DENOISE_DATA"
    )
    return f"dataset {name!r} not found ({where}); {hint}"


# -------------------------------------------------------------------- --out
def _nearest_existing(path: Path) -> Path:
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            return p
    return Path(".")


def check_out_dir(
    out: Path,
    *,
    writes: Sequence[str] = (),
    overwrite: bool = False,
    flag: str = "--out",
    overwrite_flag: str | None = "--overwrite",
) -> Path:
    """``--out``: a directory that can be created and written, whose files may be replaced.

    Creates nothing. The files in ``writes`` that already exist there are kept unless
    ``overwrite`` (``--overwrite``) is given.

    Args:
        out: the directory.
        writes: the files the command writes there.
        overwrite: whether they may be replaced.
        flag: the option's name, for the messages.
        overwrite_flag: the command's option that allows replacing them, named in the
            message; ``None`` for a command without one (``train``), whose message says
            to choose another ``flag`` or move the files away.

    Raises:
        ValueError: ``out`` is a file or under one, cannot be written, holds a directory
            where a file of ``writes`` goes, or holds one of ``writes`` without ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {str(out)!r} is an existing file, not a directory")
    base = _nearest_existing(out.absolute())
    if not base.is_dir():
        raise ValueError(f"{flag} {str(out)!r} cannot be created: {str(base)!r} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "written" if base == out.absolute() else "created"
        raise ValueError(f"{flag} {str(out)!r} cannot be {what}: {str(base)!r} is not writable")
    existing = [name for name in writes if (out / name).exists() or (out / name).is_symlink()]
    for name in existing:
        target = out / name
        if target.is_symlink() or not target.is_file():
            raise ValueError(
                f"{flag} {str(out)!r} holds {name!r} as something other than a file; move it away"
            )
    if existing and not overwrite:
        advice = (
            f"pass {overwrite_flag} to replace them, or choose another {flag}"
            if overwrite_flag is not None
            else f"choose another {flag} or move those files away"
        )
        raise ValueError(f"{flag} {str(out)!r} already holds {', '.join(existing)}; {advice}")
    return out
