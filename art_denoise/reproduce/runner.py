"""Run a reproduced table: one directory per (row, seed), resumable, then the results.

Layout of ``out``::

    out/reproduce.json          what was asked (table, preset, dataset, seeds) and the data's
                                fingerprint: checked on resume
    out/.lock                   held while reproduce.json is checked or written
    out/rows/<row>-seed<k>/     the row's checkpoint, model and row.json (written last)
    out/results.md              the table: the source's numbers beside ours, our setting named
    out/results.json            every seed's cells, the means and standard deviations
    out/*.png                   the table's figures

A row is finished when its ``row.json`` exists; a resumed run reuses it if its config is
the row's config today, and refuses to mix settings otherwise; nor does it resume on other
data (the loaded dataset's :meth:`~art_denoise.data.Dataset.fingerprint`, also when the
same ``--data-path`` now holds other images). The data is loaded and checked before
anything is written, and every finished row's record is read and checked before any row
runs.

A row runs under a lock (``rows/<key>/.lock``, POSIX ``flock``), so the same command
started twice on one directory never runs a row twice: the second process leaves each
row the first holds to it and takes the next one, waits where it needs a row the other is
running, and writes the same results once every row has finished. A row killed before its
``row.json`` was written runs again (from its training checkpoint where the table keeps
one); every row is seeded, so a resumed run's results equal an uninterrupted run's. A
row's ``seconds`` are those of the attempt that finished it.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from art_denoise._files import atomic_write_files, atomic_write_text, exclusive_lock
from art_denoise._torch import describe_machine, resolve_device
from art_denoise._validation import check_choice, check_positive_int
from art_denoise.reproduce.table import (
    PRESETS,
    RowJob,
    RowResult,
    Table,
    TableContext,
    config_digest,
    mean_std,
)

__all__ = ["RESULT_FILES", "ROW_FILE", "TABLES", "command_line", "get_table", "reproduce"]

#: Table name -> ``module:class`` (imported when used).
TABLES: dict[str, str] = {
    "xie": "art_denoise.reproduce.xie:XieTable",
    "blurnet": "art_denoise.reproduce.blurnet:BlurNetTable",
    "autoencoder": "art_denoise.reproduce.autoencoder_table:AutoencoderTable",
}
#: The file that marks a row as finished.
ROW_FILE = "row.json"
#: The files of the results (besides the figures).
RESULT_FILES = ("results.md", "results.json")
_MANIFEST = "reproduce.json"
#: The lock file of a row being run (``rows/<key>/.lock``).
_LOCK = ".lock"
#: Seconds between looks at rows that another process is running.
POLL_SECONDS = 30.0
_FORMAT = "art-denoise/reproduce/1"
#: The manifest's record of the data (:meth:`~art_denoise.data.Dataset.fingerprint`).
_DATA_KEY = "data_sha256"


def get_table(name: str) -> Table:
    """The table ``name`` (a key of :data:`TABLES`)."""
    import importlib

    check_choice("table", name, TABLES)
    module, cls = TABLES[name].split(":")
    table: Table = getattr(importlib.import_module(module), cls)()
    return table


def reproduce(
    name: str,
    *,
    out: str | os.PathLike[str],
    preset: str = "quick",
    dataset: str | None = None,
    data_path: str | os.PathLike[str] | None = None,
    seeds: int | None = None,
    device: str = "auto",
    progress: bool = True,
    dataset_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rebuild the table ``name`` and attack every row; write the results into ``out``.

    Args:
        name: ``"xie"``, ``"blurnet"`` or ``"autoencoder"`` (:data:`TABLES`).
        out: the run directory (created; a run already there is resumed if it asked
            for the same table, preset, dataset and seeds).
        preset: ``"quick"`` (digits, minutes on a CPU) or ``"full"`` (the study).
        dataset: the dataset (default: the preset's); ``"folder"`` needs ``data_path``.
        data_path: the dataset's files.
        seeds: seeds of the rows averaged over seeds (default: the preset's).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: print a line per row and show progress bars.
        dataset_options: more arguments of ``load_dataset`` (``image_size`` of a folder;
            an int N means (N, N)).

    Returns:
        The content of ``results.json``.

    Raises:
        ValueError: an unknown table, preset or dataset, ``seeds`` < 1, data the loader
            refuses, or ``out`` holding a run of other settings or other data; all before
            anything is written into ``out`` or trained.
        TypeError: ``dataset_options`` is not a mapping with string keys.
    """
    table = get_table(name)
    check_choice("preset", preset, PRESETS)
    if seeds is not None:
        check_positive_int("seeds", seeds)
    ctx = TableContext(
        preset=preset,
        dataset=dataset or table.default_dataset(preset),
        data_path=Path(data_path) if data_path is not None else None,
        seeds=seeds if seeds is not None else table.default_seeds(preset),
        device=resolve_device(device),
        progress=progress,
        dataset_options=_dataset_options(dataset_options),
    )
    table.check(ctx)
    out = Path(out)
    _check_out(out)
    # the data is loaded (and checked) before anything is written into ``out``: a missing
    # dataset or a folder the loader refuses must not leave a run directory behind that the
    # corrected command could not resume
    fingerprint = ctx.data().fingerprint()
    jobs = table.jobs(ctx)
    _check_manifest(out, _manifest(table, ctx, fingerprint))
    # every finished row is read and checked before any row runs: a bad record found after
    # hours of training would end the run without its results
    finished = {job.key: _read_finished(table, job, out) for job in jobs}
    results = _run_jobs(table, jobs, ctx, out, finished)
    return _write_results(table, ctx, results, out, fingerprint)


def _run_jobs(
    table: Table,
    jobs: Sequence[RowJob],
    ctx: TableContext,
    out: Path,
    finished: Mapping[str, RowResult | None],
) -> list[RowResult]:
    """Every job's result, running the unfinished ones in table order.

    A row is run under a lock on ``rows/<key>/.lock``; a row locked by another process
    (the same command started twice on this directory) is left to it, and so is a row
    whose :meth:`~Table.depends_on` rows have not finished. When every row left is in
    another process's hands, this one waits (polling every :data:`POLL_SECONDS`) and
    reads their ``row.json`` once they are written. A process that dies drops its locks,
    so its rows are then run here.
    """
    order = {job.key: i for i, job in enumerate(jobs)}
    for job in jobs:
        for key in table.depends_on(job):
            if order.get(key, len(jobs)) >= order[job.key]:
                raise RuntimeError(f"{job.key} depends on {key}, which is not a row before it")
    results: dict[str, RowResult | None] = dict(finished)
    pending = [job for job in jobs if results[job.key] is None]
    busy: set[str] = set()
    waiting = False
    while pending:
        ran = _next_job(table, pending, results, ctx, out, busy)
        if ran is None:
            if ctx.progress and not waiting:
                keys = ", ".join(j.key for j in pending)
                print(f"{table.name}: waiting for rows run by another process ({keys})")
            waiting = True
            time.sleep(POLL_SECONDS)
            for j in list(pending):
                if (r := _read_finished(table, j, out)) is not None:
                    results[j.key] = r
                    pending.remove(j)
            continue
        waiting = False
        pending.remove(ran)
    return [r for job in jobs if (r := results[job.key]) is not None]


def _next_job(
    table: Table,
    pending: Sequence[RowJob],
    results: dict[str, RowResult | None],
    ctx: TableContext,
    out: Path,
    busy: set[str],
) -> RowJob | None:
    """Run (or read, if another process finished it) the first pending job that is ready
    and not locked; the job, or ``None`` if there is none. Keys found locked are added to
    ``busy`` (each is reported once)."""
    for job in pending:
        if any(results.get(key) is None for key in table.depends_on(job)):
            continue
        row_dir = out / "rows" / job.key
        row_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(row_dir / _LOCK) as held:
            if not held:
                if ctx.progress and job.key not in busy:
                    print(f"{table.name}: {job.key} is run by another process; going on")
                busy.add(job.key)
                continue
            results[job.key] = _run_job(table, job, ctx, out, _read_finished(table, job, out))
        return job
    return None


def _dataset_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``options`` with an int ``image_size`` N written as (N, N), as the folder
    loader reads it: one setting has one record in ``reproduce.json``."""
    if options is None:
        return {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise TypeError(f"dataset_options must be a mapping of names to values, got {options!r}")
    out = dict(options)
    size = out.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool):
        out["image_size"] = (size, size)
    return out


def _manifest(table: Table, ctx: TableContext, fingerprint: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "table": table.name,
        "preset": ctx.preset,
        "dataset": ctx.dataset,
        "data_path": str(ctx.data_path) if ctx.data_path is not None else None,
        "seeds": ctx.seeds,
        "dataset_options": {
            k: list(v) if isinstance(v, tuple) else v for k, v in ctx.dataset_options.items()
        },
        _DATA_KEY: fingerprint,
    }


def _own_file(name: str) -> bool:
    """Whether ``name`` in a run directory is the runner's lock or a manifest being written."""
    return name == _LOCK or (name.startswith(f".{_MANIFEST}.") and name.endswith(".tmp"))


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a directory of other things than a run."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} is a file, not a directory")
    if (
        out.is_dir()
        and not (out / _MANIFEST).exists()
        and any(not _own_file(p.name) for p in out.iterdir())
    ):
        raise ValueError(f"{out} is not empty and holds no reproduce run; choose another out")


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``reproduce.json``, or check that the run in ``out`` asked for the same.

    Both happen under ``out/.lock``, so two processes started at once on a new directory
    do not take each other's half-written record for a foreign file. A run recorded
    before data fingerprints were (no ``data_sha256``) is resumed, and the fingerprint of
    the data loaded now is added to its record.
    """
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / _MANIFEST
    with exclusive_lock(out / _LOCK, wait=True):
        _check_out(out)
        if not path.exists():
            atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
            return
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path} is not a reproduce run's record: {err}") from None
        if not isinstance(old, dict):
            raise ValueError(f"{path} is not a reproduce run's record: not a JSON object")
        diff = [k for k in manifest if k != _DATA_KEY and old.get(k) != manifest[k]]
        if diff:
            was = ", ".join(f"{k}={old.get(k)!r}" for k in diff)
            raise ValueError(
                f"{out} holds a reproduce run with other settings ({was}); resume it with "
                "those settings or choose another out directory"
            )
        recorded, now = old.get(_DATA_KEY), manifest[_DATA_KEY]
        if recorded is None:
            atomic_write_text(path, json.dumps({**old, _DATA_KEY: now}, indent=2) + "\n")
        elif recorded != now:
            raise ValueError(
                f"{out} holds a reproduce run on other data: its rows were trained on "
                f"{manifest['dataset']} with fingerprint {str(recorded)[:12]}, the data "
                f"loaded now has {now[:12]}; resume it with the same files or choose "
                "another out directory"
            )


def _read_finished(table: Table, job: RowJob, out: Path) -> RowResult | None:
    """The row's result from its ``row.json``, or ``None`` if the row has not finished.

    Raises:
        ValueError: the record is not JSON, was run with another config than the row's
            today, or holds cells, seconds, a machine or a date that a finished row of
            this table cannot have; the message names the file.
    """
    done = out / "rows" / job.key / ROW_FILE
    if not done.exists():
        return None
    try:
        record = json.loads(done.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{done} is not a finished row's record: {err}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{done} is not a finished row's record: a JSON object was expected")
    if record.get("config_sha256") != config_digest(job.config):
        raise ValueError(
            f"{done} was run with another config than today's row {job.row!r}; "
            "choose another out directory, or move that row.json away to run the row "
            "again with today's config (a row whose training is unchanged resumes from "
            "its checkpoint: only what changed is run again)"
        )
    cells: Any = record.get("cells")
    extra, seconds = record.get("extra", {}), record.get("seconds")
    problem = _cells_problem(table, cells)
    if problem:
        raise ValueError(f"{done}: {problem}")
    if not isinstance(extra, dict):
        raise ValueError(f"{done}: 'extra' must be a JSON object, got {type(extra).__name__}")
    if (
        not isinstance(seconds, (int, float))
        or isinstance(seconds, bool)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise ValueError(f"{done}: 'seconds' is {seconds!r}, not a finite number >= 0")
    for name in ("machine", "finished"):
        if not isinstance(record.get(name), (str, type(None))):
            raise ValueError(f"{done}: {name!r} must be a string, got {record.get(name)!r}")
    return RowResult(
        job, cells, extra, float(seconds), record.get("machine"), record.get("finished")
    )


def _run_job(
    table: Table, job: RowJob, ctx: TableContext, out: Path, finished: RowResult | None
) -> RowResult:
    """The row's result: ``finished`` (read from its ``row.json``), else run and written."""
    if finished is not None:
        if ctx.progress:
            print(f"{table.name}: {job.key} finished earlier, reused")
        return finished
    row_dir = out / "rows" / job.key
    done = row_dir / ROW_FILE
    digest = config_digest(job.config)
    row_dir.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    result = table.run_row(job, ctx, row_dir)
    seconds = time.perf_counter() - tic
    _check_cells(table, job, result.cells)
    record: dict[str, Any] = {
        "row": job.row,
        "label": job.label,
        "seed": job.seed,
        "config": dict(job.config),
        "config_sha256": digest,
        "cells": dict(result.cells),
        "extra": dict(result.extra),
        "seconds": seconds,
        "machine": describe_machine(ctx.device),
        "finished": _now(),
    }
    atomic_write_text(done, json.dumps(record, indent=2, allow_nan=False) + "\n")
    if ctx.progress:
        print(f"{table.name}: {job.key} done in {seconds:.0f} s")
    return RowResult(
        job, record["cells"], record["extra"], seconds, record["machine"], record["finished"]
    )


def _now() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_line(table: Table, ctx: TableContext, out: Path) -> str:
    """The ``art-denoise reproduce`` command that runs (or resumes) this table into ``out``.

    Example:
        >>> import torch
        >>> from art_denoise.reproduce.runner import get_table
        >>> ctx = TableContext("quick", "digits", None, 1, torch.device("cpu"))
        >>> print(command_line(get_table("xie"), ctx, Path("runs/x")).replace(" --", "\\n--"))
        art-denoise reproduce xie
        --preset quick
        --dataset digits
        --seeds 1
        --device cpu
        --out runs/x
    """
    parts = ["art-denoise", "reproduce", table.name, "--preset", ctx.preset]
    parts += ["--dataset", ctx.dataset]
    if ctx.data_path is not None:
        parts += ["--data-path", str(ctx.data_path)]
    size = ctx.dataset_options.get("image_size")
    if isinstance(size, int):
        size = (size, size)
    if size is not None:
        parts += ["--image-size", ",".join(str(int(v)) for v in size)]
    parts += ["--seeds", str(ctx.seeds), "--device", str(ctx.device), "--out", str(out)]
    return shlex.join(parts)


def _cells_problem(table: Table, cells: Any) -> str | None:
    """What is wrong with a row's ``cells`` (a run's result or a read ``row.json``), or
    ``None``: they must map column keys to finite numbers or ``None``."""
    keys = {c.key for c in table.columns}
    if not isinstance(cells, Mapping) or not set(cells) <= keys:
        return f"'cells' must map column keys ({', '.join(sorted(keys))})"
    for key, value in cells.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value)):
            return f"cell {key!r} is {value!r}, not a finite number or null"
    return None


def _check_cells(table: Table, job: RowJob, cells: Mapping[str, float | None]) -> None:
    problem = _cells_problem(table, cells)
    if problem:
        raise RuntimeError(f"row {job.key} returned bad cells: {problem}")


def _aggregate(table: Table, results: Sequence[RowResult]) -> list[dict[str, Any]]:
    """One entry per row id (table order): the mean and standard deviation over seeds."""
    rows: dict[str, list[RowResult]] = {}
    for r in results:
        rows.setdefault(r.job.row, []).append(r)
    out = []
    for row, runs in rows.items():
        cells: dict[str, dict[str, float | None]] = {}
        for c in table.columns:
            values = [float(v) for r in runs if (v := r.cells.get(c.key)) is not None]
            mean, std = mean_std(values) if values else (None, None)
            cells[c.key] = {"mean": mean, "std": std, "n": len(values)}
        out.append(
            {
                "row": row,
                "label": runs[0].job.label,
                "seeds": [r.job.seed for r in runs],
                "cells": cells,
                "seconds": [r.seconds for r in runs],
            }
        )
    return out


def _markdown(
    table: Table,
    ctx: TableContext,
    rows: Sequence[dict[str, Any]],
    results: Sequence[RowResult],
    out: Path,
) -> str:
    source = table.source_cells()
    header = ["row", "seeds"]
    for c in table.columns:
        header.append(f"{c.label} (ours)")
        if any(c.key in cells for cells in source.values()):
            header.append(f"{c.label} (source)")
    lines = [
        f"# {table.title}",
        "",
        f"Source: {table.source}",
        "",
        f"**Source setting:** {table.source_setting}",
        "",
        f"**Our setting ({ctx.preset} preset):** {table.setting(ctx)}",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        cells = [row["label"], str(len(row["seeds"]))]
        for c in table.columns:
            agg = row["cells"][c.key]
            cells.append(c.format(agg["mean"], agg["std"]))
            if any(c.key in s for s in source.values()):
                cells.append(source.get(row["row"], {}).get(c.key, "-"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± standard deviation over seeds (no ± with one seed); - : not reported."]
    findings = table.findings(rows, ctx)
    if findings:
        lines += ["", "## What we find", ""] + [f"- {f}" for f in findings]
    return "\n".join(lines + _run_lines(table, ctx, rows, results, out)) + "\n"


def _run_lines(
    table: Table,
    ctx: TableContext,
    rows: Sequence[dict[str, Any]],
    results: Sequence[RowResult],
    out: Path,
) -> list[str]:
    """The "Run" section: the command, the machines, when the rows finished, their times."""
    machines: dict[str, list[str]] = {}
    for r in results:
        machines.setdefault(r.machine or "not recorded", []).append(r.job.key)
    if len(machines) == 1:
        machine_lines = [f"- machine: {next(iter(machines))}"]
    else:
        machine_lines = [f"- machine of {', '.join(k)}: {m}" for m, k in machines.items()]
    finished = sorted(r.finished for r in results if r.finished)
    when = [f"- rows finished from {finished[0]} to {finished[-1]} (UTC)"] if finished else []
    total = sum(sum(r["seconds"]) for r in rows)
    return [
        "",
        "## Run",
        "",
        f"- command: `{command_line(table, ctx, out)}` (a killed run resumes with the same "
        "command)",
        *machine_lines,
        *when,
        f"- wall time of the rows: {_duration(total)} in all (each row's time is that of the "
        "attempt that finished it)",
        *(f"  - {r['label']}: {', '.join(_duration(s) for s in r['seconds'])}" for r in rows),
    ]


def _duration(seconds: float) -> str:
    """``41 s``, ``12.5 min`` or ``3.2 h``.

    Example:
        >>> _duration(41.2), _duration(750), _duration(11520)
        ('41 s', '12.5 min', '3.2 h')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _write_results(
    table: Table, ctx: TableContext, results: Sequence[RowResult], out: Path, fingerprint: str
) -> dict[str, Any]:
    rows = _aggregate(table, results)
    content: dict[str, Any] = {
        **_manifest(table, ctx, fingerprint),
        "title": table.title,
        "source": table.source,
        "source_setting": table.source_setting,
        "setting": table.setting(ctx),
        "device": str(ctx.device),
        "command": command_line(table, ctx, out),
        "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in table.columns],
        "source_cells": {k: dict(v) for k, v in table.source_cells().items()},
        "rows": rows,
        "runs": [
            {
                "row": r.job.row,
                "seed": r.job.seed,
                "cells": dict(r.cells),
                "extra": dict(r.extra),
                "seconds": r.seconds,
                "machine": r.machine,
                "finished": r.finished,
            }
            for r in results
        ],
        "findings": table.findings(rows, ctx),
    }
    text = json.dumps(content, indent=2, allow_nan=False) + "\n"
    markdown = _markdown(table, ctx, rows, results, out)
    writers: dict[str, Callable[[Path], None]] = {
        "results.json": lambda p: _write(p, text),
        "results.md": lambda p: _write(p, markdown),
        **table.figures(results, ctx, out),
    }
    atomic_write_files(out, writers, overwrite=True)
    return content


def _write(path: Path, text: str) -> None:
    path.write_text(text)
