"""What a reproduced table is: its columns, the source's numbers, and the rows to run.

A :class:`Table` describes one result table of a source work. :meth:`Table.jobs` lists
the (row, seed) pairs to train and attack; :meth:`Table.run_row` runs one of them in its
own directory and returns its cells (one number per :class:`Column`). The runner
(:mod:`art_denoise.reproduce.runner`) keeps each finished row on disk, skips it when the
run is resumed, averages the seeds and writes ``results.md`` / ``results.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from art_denoise._validation import check_choice, check_positive_int
from art_denoise.data import Dataset

__all__ = [
    "PRESETS",
    "Column",
    "RowJob",
    "RowResult",
    "Table",
    "TableContext",
    "config_digest",
    "mean_std",
]

#: ``quick``: each table on digits in minutes on 2 CPU cores (the test suite runs it);
#: ``full``: the real study (hours on 2 CPU cores).
PRESETS = ("quick", "full")

_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Args:
        key: the cell's key in :meth:`Table.run_row`'s result (lower case, no spaces).
        label: the header in ``results.md``.
        unit: ``"%"`` (a share in [0, 1], printed as a percentage) or ``""`` (a number).
        signed: print a ``+`` before a positive value (a column of differences).
    """

    key: str
    label: str
    unit: str = "%"
    signed: bool = False

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"column key must be lower case without spaces, got {self.key!r}")
        check_choice("unit", self.unit, ("%", ""))

    def format(self, value: float | None, std: float | None = None) -> str:
        """``value`` (and ``± std``) as the table prints it; ``"-"`` for a missing cell.

        Example:
            >>> Column("gain", "gain", signed=True).format(0.0123, 0.004)
            '+1.2 ± 0.4'
        """
        if value is None:
            return "-"
        scale, digits = (100.0, 1) if self.unit == "%" else (1.0, 3)
        sign = "+" if self.signed else ""
        text = f"{value * scale:{sign}.{digits}f}"
        return text if std is None else f"{text} ± {std * scale:.{digits}f}"


@dataclass(frozen=True)
class RowJob:
    """One row of a table at one seed: what to train and attack.

    Args:
        row: the row's id (lower case, ``-`` and ``_``), shared by its seeds.
        label: the row's name in ``results.md``.
        seed: the seed of its training and attacks.
        config: every setting that decides the row's result, JSON-serialisable; a resumed
            run reuses a finished row only if its config is the same.
    """

    row: str
    label: str
    seed: int
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _KEY.match(self.row):
            raise ValueError(f"row id must be lower case without spaces, got {self.row!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        config_digest(self.config)  # JSON-serialisable, or a TypeError now

    @property
    def key(self) -> str:
        """The row directory's name: ``<row>-seed<seed>``."""
        return f"{self.row}-seed{self.seed}"


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of ``config`` as canonical JSON (sorted keys); a ``TypeError`` if it is not
    JSON-serialisable.

    Example:
        >>> config_digest({"b": 1, "a": [2]}) == config_digest({"a": [2], "b": 1})
        True
    """
    try:
        text = json.dumps(config, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"a row's config must be plain JSON data: {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation over seeds (``None`` for one value).

    Example:
        >>> mean_std([1.0, 3.0])
        (2.0, 1.4142135623730951)
    """
    if len(values) == 0:
        raise ValueError("mean_std needs at least one value")
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


@dataclass(frozen=True)
class RowResult:
    """A finished row at one seed: its cells, extra numbers, and its wall time.

    ``machine`` (:func:`~art_denoise._torch.describe_machine`) and ``finished`` (UTC, ISO
    8601) are filled in by the runner; ``None`` for a row recorded without them.
    """

    job: RowJob
    cells: Mapping[str, float | None]
    extra: Mapping[str, Any]
    seconds: float
    machine: str | None = None
    finished: str | None = None


@dataclass
class TableContext:
    """The run's settings, shared by the rows.

    Args:
        preset: ``"quick"`` or ``"full"``.
        dataset: the dataset's name (:func:`~art_denoise.data.load_dataset`).
        data_path: where its files are (``None``: searched).
        seeds: seeds of the rows averaged over seeds (at least this many).
        device: where to train and attack.
        progress: show progress bars.
        dataset_options: more arguments of ``load_dataset`` (a folder's ``image_size``).
    """

    preset: str
    dataset: str
    data_path: Path | None
    seeds: int
    device: torch.device
    progress: bool = False
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    _data: Dataset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)
        check_positive_int("seeds", self.seeds)

    def data(self) -> Dataset:
        """The dataset, loaded once."""
        if self._data is None:
            from art_denoise.data import load_dataset

            self._data = load_dataset(
                self.dataset, path=self.data_path, **dict(self.dataset_options)
            )
        return self._data


class Table(ABC):
    """A source work's result table, rebuilt: subclass and register in
    :data:`art_denoise.reproduce.TABLES`."""

    #: The name on the command line (``art-denoise reproduce NAME``).
    name: ClassVar[str]
    #: The heading of ``results.md``.
    title: ClassVar[str]
    #: The source: authors, title, table number and link.
    source: ClassVar[str]
    #: The source's setting in words (dataset, model, attack budget).
    source_setting: ClassVar[str]
    #: The columns, in order.
    columns: ClassVar[tuple[Column, ...]]
    #: Datasets this table can run on.
    datasets: ClassVar[tuple[str, ...]] = ("digits", "fashion-mnist", "mnist", "cifar10", "folder")

    def default_dataset(self, preset: str) -> str:
        """The dataset of ``preset`` when ``--dataset`` is not given."""
        return "digits" if preset == "quick" else "fashion-mnist"

    def default_seeds(self, preset: str) -> int:
        """The seeds of ``preset`` when ``--seeds`` is not given."""
        return 1 if preset == "quick" else 3

    def check(self, ctx: TableContext) -> None:
        """Refuse a setting this table cannot run (before anything is trained)."""
        check_choice("dataset", ctx.dataset, self.datasets)

    @abstractmethod
    def jobs(self, ctx: TableContext) -> list[RowJob]:
        """Every (row, seed) to run, in table order."""

    @abstractmethod
    def run_row(self, job: RowJob, ctx: TableContext, row_dir: Path) -> RowResult:
        """Train and attack one row at one seed; ``row_dir`` holds its checkpoint and
        model (a killed row resumes from its checkpoint)."""

    def depends_on(self, job: RowJob) -> tuple[str, ...]:
        """Keys of the rows (``<row>-seed<k>``) that must have finished before ``job``
        runs: the runner never starts ``job`` earlier, also when another process runs
        the same table into the same directory. They come before it in :meth:`jobs`."""
        return ()

    @abstractmethod
    def setting(self, ctx: TableContext) -> str:
        """Our setting in words (dataset, model, training, attacks), for ``results.md``."""

    def source_cells(self) -> Mapping[str, Mapping[str, str]]:
        """The source's numbers: row id -> column key -> the text the source prints."""
        return {}

    def findings(self, rows: Sequence[Mapping[str, Any]], ctx: TableContext) -> list[str]:
        """Sentences comparing our rows with the source's: agreements and disagreements
        said plainly. ``rows`` are the aggregated rows of ``results.json``."""
        return []

    def figures(
        self, results: Sequence[RowResult], ctx: TableContext, out: Path
    ) -> Mapping[str, Callable[[Path], None]]:
        """Figures to write beside ``results.md``: file name -> a function writing the file
        at the path it is given (a staging path: ``out`` is where it ends up)."""
        return {}
