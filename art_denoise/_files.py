"""Files: atomic writing (a file is either the old one or the complete new one) and hashes.

:func:`atomic_write_files` extends this to a set of files in one directory (a report and
its figures): they are written into a staging directory beside it and moved into place
only once every one of them is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

__all__ = [
    "FileWriteError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_text",
    "atomic_write_with",
    "exclusive_lock",
    "sha256_file",
]


class FileWriteError(OSError):
    """Files could not be written; the message names the file and the reason, in one line.

    The directory written to is left as it was before the attempt.
    """


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would have
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], *, wait: bool = False) -> Iterator[bool]:
    """Hold an advisory lock on ``path`` (created if missing) while the block runs.

    Yields ``True`` with the lock held, or ``False`` at once, without waiting, when another
    process holds it; with ``wait=True`` it waits for the lock and always yields ``True``.
    The lock is POSIX ``flock``: the kernel drops it when the block ends or the process
    dies, so a killed process leaves no stale lock behind. Where ``fcntl`` does not exist
    (Windows) it yields ``True`` without locking.

    Example:
        >>> import tempfile
        >>> lock = Path(tempfile.mkdtemp()) / ".lock"
        >>> with exclusive_lock(lock) as mine, exclusive_lock(lock) as theirs:
        ...     (mine, theirs)
        (True, False)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield True
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_with(target: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        write(tmp)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(err: OSError) -> str:
    """The operating system's reason for ``err`` (``"No space left on device"``)."""
    return err.strerror or str(err) or type(err).__name__


def _missing_parents(directory: Path) -> list[Path]:
    """The ancestors of ``directory`` (itself included) that do not exist, outermost first."""
    missing = []
    for d in [directory, *directory.parents]:
        if d.exists():
            break
        missing.append(d)
    return missing[::-1]


def _check_targets(out: Path, names: Sequence[str], remove: Sequence[str], overwrite: bool) -> None:
    """Refuse, before writing anything: ``out`` a file, a target that is not a plain file,
    or (without ``overwrite``) a target that exists."""
    if out.exists() and not out.is_dir():
        raise FileWriteError(f"cannot write into {out}: it is a file, not a directory")
    for name in [*names, *remove]:
        if Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(f"file names must be plain names without a folder, got {name!r}")
        target = out / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise FileWriteError(f"cannot write {target}: something that is not a file is there")
        if not overwrite and name in names and target.exists():
            raise FileExistsError(f"{target} already exists (pass overwrite=True to replace it)")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_staged(stage: Path, out: Path, writers: Mapping[str, Callable[[Path], None]]) -> None:
    """Call every writer on its file in ``stage``; an ``OSError`` names the file in ``out``."""
    for name, write in writers.items():
        try:
            write(stage / name)
            _fsync(stage / name)
        except OSError as err:
            raise FileWriteError(
                f"cannot write {out / name}: {_reason(err)} ({out} left as it was)"
            ) from err


def _move_into_place(stage: Path, out: Path, names: Sequence[str], remove: Sequence[str]) -> None:
    """Swap the staged files into the existing ``out``; on failure put the old ones back."""
    backup = stage / ".replaced"
    backup.mkdir()
    done: list[tuple[str, bool]] = []  # (name, whether an old file was moved aside)
    current = ""
    try:
        for name in [*names, *remove]:
            current = name
            had_old = (out / name).exists()
            if had_old:
                os.rename(out / name, backup / name)
            done.append((name, had_old))
            if name in names:
                os.rename(stage / name, out / name)
    except OSError as err:
        for name, had_old in reversed(done):
            with contextlib.suppress(OSError):
                if name in names and (out / name).exists() and not (stage / name).exists():
                    os.rename(out / name, stage / name)
                if had_old:
                    os.rename(backup / name, out / name)
        raise FileWriteError(
            f"cannot write {out / current}: {_reason(err)} ({out} left as it was)"
        ) from err


def atomic_write_files(
    out_dir: str | os.PathLike[str],
    writers: Mapping[str, Callable[[Path], None]],
    *,
    remove: Sequence[str] = (),
    overwrite: bool = True,
) -> Path:
    """Write a set of files into ``out_dir``, all of them or none.

    Each ``writers[name](path)`` writes one file at ``path`` in a staging directory beside
    ``out_dir``. Only when every file is complete are they moved into ``out_dir`` (the
    staging directory itself becomes ``out_dir`` when that does not exist yet), replacing
    files of the same names and removing the files named in ``remove`` (stale parts of an
    older set); other files in ``out_dir`` are left alone. If anything fails, ``out_dir``
    and its parents are as they were, no staging file is left behind, and the error names
    the file and the reason.

    Args:
        out_dir: the directory (created with its parents when missing).
        writers: file name (no folder) -> a function writing that file at the path given.
        remove: file names to delete from ``out_dir`` along with the swap.
        overwrite: replace existing files of the same names (else ``FileExistsError``).

    Returns:
        ``out_dir`` as a path.

    Raises:
        FileWriteError: ``out_dir`` is a file, a target is a directory, or writing or
            moving failed (disk full, no permission); the message names the path.
        FileExistsError: a file exists and ``overwrite`` is False.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "report"
        >>> _ = atomic_write_files(out, {"a.txt": lambda p: p.write_text("A")})
        >>> sorted(p.name for p in out.iterdir())
        ['a.txt']
    """
    out = Path(out_dir)
    names = list(writers)
    _check_targets(out, names, remove, overwrite)
    created = _missing_parents(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as err:
        _remove_empty(created)
        raise FileWriteError(f"cannot write into {out}: {_reason(err)}") from err
    try:
        _write_staged(stage, out, writers)
        if out.exists():
            _move_into_place(stage, out, names, [r for r in remove if r not in names])
        else:
            os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it 0700
            os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(created)
        raise
    shutil.rmtree(stage, ignore_errors=True)  # what the swap left (the old files)
    return out


def _remove_empty(directories: Sequence[Path]) -> None:
    """Remove the directories this call created (innermost first) if they are empty."""
    for d in reversed(directories):
        with contextlib.suppress(OSError):
            d.rmdir()
