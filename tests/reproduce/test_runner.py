"""The reproduce runner: one directory per (row, seed), resumable, seeds averaged, results
written whole. A fake table (cheap, deterministic rows) stands in for the real ones."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from art_denoise._files import exclusive_lock
from art_denoise.cli.main import main
from art_denoise.reproduce import Column, RowJob, RowResult, Table, TableContext, runner


class FakeTable(Table):
    name = "fake"
    title = "A fake table"
    source = "Nobody, 'Nothing' (Table 0)"
    source_setting = "no data"
    columns = (Column("clean", "clean"), Column("norm", "norm", unit=""))
    datasets = ("digits",)
    calls: ClassVar[list[str]] = []
    interrupt_at: ClassVar[str | None] = None
    knob: ClassVar[int] = 1
    deps: ClassVar[dict[str, tuple[str, ...]]] = {}

    def jobs(self, ctx: TableContext) -> list[RowJob]:
        a = [RowJob("base", "baseline", s, {"knob": self.knob}) for s in range(3)]
        return [*a, RowJob("other", "other row", 0, {"k": 2})]

    def depends_on(self, job: RowJob) -> tuple[str, ...]:
        return self.deps.get(job.key, ())

    def run_row(self, job: RowJob, ctx: TableContext, row_dir: Path) -> RowResult:
        if job.key == self.interrupt_at:
            raise KeyboardInterrupt  # a kill in the middle of the run
        self.calls.append(job.key)
        rng = np.random.default_rng(job.seed + 10 * len(job.row))
        clean = float(rng.random())
        (row_dir / "model.txt").write_text(str(clean))
        norm = None if job.row == "other" else float(rng.normal())
        return RowResult(job, {"clean": clean, "norm": norm}, {"seed": job.seed}, 0.0)

    def setting(self, ctx: TableContext) -> str:
        return f"fake on {ctx.dataset}"

    def source_cells(self) -> Mapping[str, Mapping[str, str]]:
        return {"base": {"clean": "52.5"}}

    def findings(self, rows: Sequence[Mapping[str, Any]], ctx: TableContext) -> list[str]:
        base = rows[0]["cells"]["clean"]["mean"]
        return [f"baseline clean accuracy {base:.3f}"]

    def figures(
        self, results: Sequence[RowResult], ctx: TableContext, out: Path
    ) -> Mapping[str, Callable[[Path], None]]:
        return {"fig.txt": lambda p: p.write_text(str(len(results)))}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeTable]]:
    FakeTable.calls = []
    FakeTable.interrupt_at = None
    FakeTable.knob = 1
    FakeTable.deps = {}
    monkeypatch.setattr(runner, "get_table", lambda name: FakeTable())
    yield FakeTable


def _run(out: Path, **kwargs: Any) -> dict[str, Any]:
    return runner.reproduce("fake", out=out, device="cpu", progress=False, **kwargs)


def _without_seconds(content: dict[str, Any]) -> dict[str, Any]:
    """The content without what differs between two runs: times, dates, the out path."""
    text = json.dumps(content)
    c = json.loads(text)
    c.pop("command")
    for r in c["rows"]:
        r.pop("seconds")
    for r in c["runs"]:
        r.pop("seconds")
        r.pop("finished")
    return c


def test_seeds_are_averaged_like_numpy(fake, tmp_path: Path) -> None:
    content = _run(tmp_path / "run")
    base = content["rows"][0]
    values = [r["cells"]["clean"] for r in content["runs"] if r["row"] == "base"]
    assert len(values) == 3 and base["seeds"] == [0, 1, 2]
    assert base["cells"]["clean"]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert base["cells"]["clean"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    other = content["rows"][1]["cells"]
    assert other["clean"]["std"] is None and other["norm"] == {"mean": None, "std": None, "n": 0}
    md = (tmp_path / "run" / "results.md").read_text()
    # our number beside the source's; a cell the row did not fill prints "-"
    mean, std = 100 * base["cells"]["clean"]["mean"], 100 * base["cells"]["clean"]["std"]
    assert f"| baseline | 3 | {mean:.1f} ± {std:.1f} | 52.5 |" in md
    (line,) = [ln for ln in md.splitlines() if ln.startswith("| other row |")]
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[1] == "1" and cells[3:] == ["-", "-"]  # no source number, no norm
    assert "**Our setting (quick preset):** fake on digits" in md
    assert "baseline clean accuracy" in md
    assert (tmp_path / "run" / "fig.txt").read_text() == "4"
    for run in content["runs"]:
        row = json.loads(
            (tmp_path / "run" / "rows" / f"{run['row']}-seed{run['seed']}" / "row.json").read_text()
        )
        assert row["cells"] == run["cells"]


def test_the_run_is_recorded_command_machine_and_dates(fake, tmp_path: Path) -> None:
    from art_denoise._torch import describe_machine

    content = _run(tmp_path / "run", seeds=3)
    command = "art-denoise reproduce fake --preset quick --dataset digits --seeds 3 "
    command += f"--device cpu --out {tmp_path / 'run'}"
    assert content["command"] == command
    machine = describe_machine("cpu")
    assert machine.startswith("CPU ") and "torch " in machine
    assert {r["machine"] for r in content["runs"]} == {machine}
    dates = sorted(r["finished"] for r in content["runs"])
    assert all(len(d) == 20 and d.endswith("Z") for d in dates)
    md = (tmp_path / "run" / "results.md").read_text()
    assert f"- command: `{command}`" in md
    assert f"- machine: {machine}" in md
    assert f"- rows finished from {dates[0]} to {dates[-1]} (UTC)" in md
    # a row recorded before machines were recorded: said so, per row
    path = tmp_path / "run" / "rows" / "other-seed0" / "row.json"
    record = json.loads(path.read_text())
    del record["machine"], record["finished"]
    path.write_text(json.dumps(record))
    _run(tmp_path / "run", seeds=3)
    md = (tmp_path / "run" / "results.md").read_text()
    assert "- machine of other-seed0: not recorded" in md
    assert f"- machine of base-seed0, base-seed1, base-seed2: {machine}" in md


def test_a_killed_run_resumes_without_retraining_and_equals_an_uninterrupted_one(
    fake, tmp_path: Path
) -> None:
    whole = _run(tmp_path / "whole")
    fake.calls = []
    fake.interrupt_at = "base-seed2"
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed")
    assert fake.calls == ["base-seed0", "base-seed1"]
    assert not (tmp_path / "killed" / "results.json").exists()
    assert not (tmp_path / "killed" / "rows" / "base-seed2" / "row.json").exists()
    fake.calls = []
    fake.interrupt_at = None
    resumed = _run(tmp_path / "killed")
    assert fake.calls == ["base-seed2", "other-seed0"]  # finished rows were not run again
    assert _without_seconds(resumed) == _without_seconds(whole)
    fake.calls = []
    again = _run(tmp_path / "killed")  # a finished run: nothing runs, same results
    assert fake.calls == [] and _without_seconds(again) == _without_seconds(whole)


@pytest.mark.parametrize(
    ("second", "match"),
    [
        ({"seeds": 2}, r"other settings \(seeds=3\)"),
        ({"preset": "full", "dataset": "digits"}, r"preset=.quick."),
    ],
)
def test_a_run_with_other_settings_is_refused_before_anything_runs(
    fake, tmp_path: Path, second: dict[str, Any], match: str
) -> None:
    _run(tmp_path / "run", seeds=3)
    fake.calls = []
    before = sorted(p.name for p in (tmp_path / "run" / "rows").iterdir())
    with pytest.raises(ValueError, match=match):
        _run(tmp_path / "run", **second)
    assert fake.calls == []
    assert sorted(p.name for p in (tmp_path / "run" / "rows").iterdir()) == before


def test_a_row_whose_config_changed_is_not_reused(fake, tmp_path: Path) -> None:
    _run(tmp_path / "run")
    fake.knob = 2
    with pytest.raises(ValueError, match=r"base-seed0.*another config.*move that row.json"):
        _run(tmp_path / "run")
    # what the message says works: the changed rows run again, the others are reused
    for k in range(3):
        row = tmp_path / "run" / "rows" / f"base-seed{k}"
        (row / "row.json").rename(row / "row-old.json")
    fake.calls = []
    _run(tmp_path / "run")
    assert fake.calls == ["base-seed0", "base-seed1", "base-seed2"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda r: "{not json", "not a finished row's record: Expecting"),
        (lambda r: "[1, 2]", "a JSON object was expected"),
        (lambda r: {**r, "cells": {**r["cells"], "clean": "0.5"}}, "cell 'clean' is '0.5'"),
        (lambda r: {**r, "cells": {**r["cells"], "clean": True}}, "cell 'clean' is True"),
        (lambda r: {**r, "cells": {**r["cells"], "robust": 0.1}}, "'cells' must map column keys"),
        (lambda r: {**r, "cells": [0.5]}, "'cells' must map column keys"),
        (lambda r: {**r, "seconds": -1.0}, "'seconds' is -1.0"),
        (lambda r: {**r, "seconds": None}, "'seconds' is None"),
        (lambda r: {**r, "extra": [1]}, "'extra' must be a JSON object"),
        (lambda r: {**r, "machine": 3}, "'machine' must be a string"),
    ],
)
def test_a_bad_finished_row_is_refused_before_any_row_runs(
    fake, tmp_path: Path, edit: Callable[[dict[str, Any]], Any], match: str
) -> None:
    _run(tmp_path / "run")
    done = tmp_path / "run" / "rows" / "other-seed0" / "row.json"  # the last row
    record = json.loads(done.read_text())
    (tmp_path / "run" / "rows" / "base-seed0" / "row.json").unlink()  # a row left to run
    bad = edit(record)
    done.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    fake.calls = []
    with pytest.raises(ValueError, match=match) as err:
        _run(tmp_path / "run")
    assert str(done) in str(err.value)
    assert fake.calls == []  # nothing trained before the bad record was found
    assert not (tmp_path / "run" / "rows" / "base-seed0" / "row.json").exists()


@pytest.mark.parametrize(
    ("deps", "events"),
    [
        ({}, ["base-seed0", "base-seed2", "other-seed0", "wait"]),
        # "other" needs base-seed1, which the other process is running: it waits for it
        ({"other-seed0": ("base-seed1",)}, ["base-seed0", "base-seed2", "wait", "other-seed0"]),
    ],
)
def test_a_row_another_process_runs_is_left_to_it_and_read_when_it_is_written(
    fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deps: dict, events: list[str]
) -> None:
    whole = _run(tmp_path / "whole")
    out = tmp_path / "run"
    fake.interrupt_at = "base-seed0"  # a killed run: the manifest and an unlocked .lock
    with pytest.raises(KeyboardInterrupt):
        _run(out)
    fake.interrupt_at, fake.deps, fake.calls = None, deps, []
    theirs = out / "rows" / "base-seed1"
    theirs.mkdir(parents=True)
    other_process = contextlib.ExitStack()
    assert other_process.enter_context(exclusive_lock(theirs / ".lock"))

    def sleep(seconds: float) -> None:  # the other process writes its row, then exits
        fake.calls.append("wait")
        shutil.copy(tmp_path / "whole" / "rows" / "base-seed1" / "row.json", theirs)
        other_process.close()

    monkeypatch.setattr(runner.time, "sleep", sleep)
    content = _run(out)
    assert fake.calls == events  # base-seed1 was never run here
    assert _without_seconds(content) == _without_seconds(whole)


def test_a_row_that_returns_a_non_finite_cell_is_not_recorded(
    fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_row = FakeTable.run_row

    def nan_row(self: FakeTable, job: RowJob, ctx: TableContext, row_dir: Path) -> RowResult:
        result = run_row(self, job, ctx, row_dir)
        return RowResult(job, {**result.cells, "clean": float("nan")}, result.extra, 0.0)

    monkeypatch.setattr(FakeTable, "run_row", nan_row)
    with pytest.raises(RuntimeError, match="base-seed0 returned bad cells: cell 'clean' is nan"):
        _run(tmp_path / "run")
    assert not (tmp_path / "run" / "rows" / "base-seed0" / "row.json").exists()


def test_a_dependency_must_be_a_row_before_it(fake, tmp_path: Path) -> None:
    fake.deps = {"base-seed0": ("other-seed0",)}
    with pytest.raises(RuntimeError, match="base-seed0 depends on other-seed0"):
        _run(tmp_path / "run")
    assert fake.calls == []


def test_a_foreign_directory_is_left_alone(fake, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="not empty and holds no reproduce run"):
        _run(out)
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    with pytest.raises(ValueError, match="is a file"):
        _run(out / "thesis.tex")


def test_row_jobs_and_columns_are_checked() -> None:
    with pytest.raises(ValueError, match="row id"):
        RowJob("Not OK", "x", 0)
    with pytest.raises(ValueError, match="seed"):
        RowJob("ok", "x", -1)
    with pytest.raises(TypeError, match="plain JSON"):
        RowJob("ok", "x", 0, {"model": object()})
    with pytest.raises(ValueError, match="unit"):
        Column("a", "A", unit="px")
    assert Column("a", "A").format(0.1234, 0.01) == "12.3 ± 1.0"
    assert Column("a", "A", unit="").format(0.1234) == "0.123"
    signed = Column("d", "D", signed=True)
    assert (signed.format(0.006), signed.format(-0.006), signed.format(None)) == (
        "+0.6",
        "-0.6",
        "-",
    )


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["reproduce", "nosuch", "--out", "o"], "invalid choice: 'nosuch'"),
        (["reproduce", "xie", "--preset", "huge", "--out", "o"], "invalid choice: 'huge'"),
        (["reproduce", "xie", "--seeds", "0", "--out", "o"], "--seeds"),
        (["reproduce", "xie", "--dataset", "imagenet", "--out", "o"], "unknown dataset 'imagenet'"),
        (["reproduce", "xie", "--device", "tpu", "--out", "o"], "--device 'tpu'"),
        (["reproduce", "blurnet", "--dataset", "folder", "--out", "o"], "needs --data-path"),
        (["reproduce", "xie", "--image-size", "32", "--out", "o"], "add --dataset folder"),
    ],
)
def test_usage_errors_are_one_line_and_create_nothing(
    argv: list[str], match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert match in err
    assert list(tmp_path.iterdir()) == []


def _digits_with_one_pixel_changed() -> Any:
    from art_denoise.data import load_dataset

    data = load_dataset("digits")
    x_test = data.x_test.copy()
    x_test[0, 0, 0, 0] = 1.0 - x_test[0, 0, 0, 0]
    return dataclasses.replace(data, x_test=x_test)


def test_a_run_on_other_data_is_refused_before_anything_runs(
    fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    first = _run(out)
    record = (out / "reproduce.json").read_text()
    assert json.loads(record)["data_sha256"] == first["data_sha256"]
    fake.calls = []
    changed = _digits_with_one_pixel_changed()
    assert changed.fingerprint() != first["data_sha256"]
    import art_denoise.data

    monkeypatch.setattr(art_denoise.data, "load_dataset", lambda *a, **k: changed)
    with pytest.raises(ValueError, match="reproduce run on other data"):
        _run(out)
    assert fake.calls == []
    assert (out / "reproduce.json").read_text() == record


def test_a_run_recorded_without_a_data_fingerprint_is_resumed_and_gets_one(
    fake, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = _run(out)
    path = out / "reproduce.json"
    old = json.loads(path.read_text())
    del old["data_sha256"]  # a run started before fingerprints were recorded
    path.write_text(json.dumps(old))
    fake.calls = []
    again = _run(out)
    assert fake.calls == []
    assert json.loads(path.read_text()) == {**old, "data_sha256": first["data_sha256"]}
    assert _without_seconds(again) == _without_seconds(first)


def test_the_data_is_checked_before_anything_is_written(tmp_path: Path, capsys) -> None:
    from PIL import Image

    data = tmp_path / "signs"
    for c, label in enumerate("ab"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8 + i % 2, 8), 40 * i + c).save(data / label / f"{i}.png")
    out = tmp_path / "run"
    argv = ["reproduce", "blurnet", "--dataset", "folder", "--data-path", str(data)]
    assert main([*argv, "--out", str(out)]) == 2
    assert "--image-size" in capsys.readouterr().err  # the loader's advice ...
    assert not out.exists()  # ... which nothing written stands in the way of
    with pytest.raises(ValueError, match="images differ in size"):
        runner.reproduce("blurnet", out=out, dataset="folder", data_path=data, progress=False)
    assert not out.exists()


def test_an_int_image_size_is_one_setting_with_its_pair() -> None:
    import torch

    assert runner._dataset_options({"image_size": 8}) == {"image_size": (8, 8)}
    assert runner._dataset_options(None) == {}
    with pytest.raises(TypeError, match="dataset_options"):
        runner._dataset_options([("image_size", 8)])  # type: ignore[arg-type]
    table = runner.get_table("blurnet")
    ctx = TableContext(
        "quick", "folder", Path("d"), 1, torch.device("cuda:1"), dataset_options={"image_size": 8}
    )
    line = runner.command_line(table, ctx, Path("o"))
    assert "--image-size 8,8" in line
    assert "--device cuda:1" in line  # the index, not only the kind


def test_a_second_process_waits_for_the_record_the_first_is_writing(fake, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    manifest = runner._manifest(
        FakeTable(),
        TableContext("quick", "digits", None, 1, runner.resolve_device("cpu")),
        "0" * 64,
    )
    writing = threading.Event()

    def first_process() -> None:
        with exclusive_lock(out / ".lock") as held:
            assert held
            tmp = out / ".reproduce.json.abc123.tmp"
            tmp.write_text("{")  # half written
            writing.set()
            time.sleep(0.3)
            tmp.write_text(json.dumps(manifest))
            os.replace(tmp, out / "reproduce.json")

    thread = threading.Thread(target=first_process)
    thread.start()
    writing.wait()
    runner._check_manifest(out, manifest)  # before: "not empty and holds no reproduce run"
    thread.join()
    assert json.loads((out / "reproduce.json").read_text()) == manifest
    other = {**manifest, "seeds": 2}
    with pytest.raises(ValueError, match="other settings"):
        runner._check_manifest(out, other)  # and a second, different command is refused


def test_a_stale_temporary_record_does_not_make_a_new_directory_foreign(
    fake, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / ".reproduce.json.dead00.tmp").write_text("{")  # left by a killed first start
    _run(out)
    assert fake.calls == ["base-seed0", "base-seed1", "base-seed2", "other-seed0"]
