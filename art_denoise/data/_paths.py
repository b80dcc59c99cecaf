"""Where dataset files are looked for, and the error that lists those places."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from art_denoise.data._errors import DatasetNotFoundError

__all__ = [
    "DEBIAN_DATA_ROOT",
    "ENV_VAR",
    "cache_dir",
    "data_search_paths",
    "describe_missing",
    "locate",
]

#: Environment variable naming a directory that holds ``<name>/`` dataset folders.
ENV_VAR = "ART_DENOISE_DATA"

#: Where Debian's ``dataset-*`` packages install their files (``dataset-fashion-mnist``
#: installs ``/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz`` etc.).
DEBIAN_DATA_ROOT = Path("/usr/share/datasets")

#: A probe looks at one directory and returns the directory holding the files, or a
#: short reason why this one does not.
Probe = Callable[[Path], Path | str]


def cache_dir(name: str) -> Path:
    """The per-user cache directory for ``name``: ``$XDG_CACHE_HOME/art-denoise/<name>``.

    ``~/.cache`` stands in when ``XDG_CACHE_HOME`` is unset or relative (as the XDG
    specification asks).
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "art-denoise" / name


def data_search_paths(name: str, path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories searched for dataset ``name``, first match wins.

    An explicit ``path`` is the only place searched: a mistyped path fails loudly
    instead of silently loading a copy from somewhere else. Without it the order is
    ``$ART_DENOISE_DATA/<name>``, ``$ART_DENOISE_DATA``, ``/usr/share/datasets/<name>``
    (Debian packages), then :func:`cache_dir`.

    Raises:
        TypeError: ``path`` is not a string or path.
    """
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        return [Path(path).expanduser()]
    paths: list[Path] = []
    env = os.environ.get(ENV_VAR, "")
    if env:
        root = Path(env).expanduser()
        paths += [root / name, root]
    paths += [DEBIAN_DATA_ROOT / name, cache_dir(name)]
    return paths


def locate(
    name: str,
    path: str | os.PathLike[str] | None,
    probe: Probe,
    *,
    download: Callable[[Path], None] | None,
    how_to: Sequence[str],
) -> Path:
    """Find the directory holding ``name``'s files, downloading them if allowed.

    Args:
        name: the dataset name.
        path: an explicit directory, or ``None`` to search.
        probe: checks one directory (see :data:`Probe`).
        download: fetches the files into the directory it is given (``path`` if set,
            else the cache); ``None`` when downloading is not asked for.
        how_to: lines telling the user how to get the files, put in the error.

    Raises:
        DatasetNotFoundError: nothing found and ``download`` is ``None``.
    """
    searched: list[tuple[Path, str]] = []
    for directory in data_search_paths(name, path):
        found = probe(directory)
        if isinstance(found, Path):
            return found
        searched.append((directory, found))
    if download is not None:
        target = Path(path).expanduser() if path is not None else cache_dir(name)
        download(target)
        found = probe(target)
        if isinstance(found, Path):
            return found
        searched.append((target, f"after download: {found}"))
    places = "\n".join(f"  - {d}: {why}" for d, why in searched)
    steps = "\n".join(f"  - {line}" for line in how_to)
    error = DatasetNotFoundError(
        f"dataset {name!r} not found. Searched, in order:\n{places}\nTo get it:\n{steps}"
    )
    error.searched = tuple(d for d, _ in searched)
    raise error


def describe_missing(directory: Path, missing: Sequence[str]) -> str:
    """The reason a probe gives: the directory is absent, or these files are missing."""
    if not directory.is_dir():
        return "no such directory"
    return "missing " + ", ".join(missing)
