"""A hostile user at the command line (issue 17): nothing run, nothing lost, nothing wrong.

One table per root cause. Every refused case asserts the exit code, that stderr is one
line naming the flag or the value, and that no file in the working directory was
created, changed or left behind (tree and mtimes compared). The refusals come from the
validation pass of each subcommand, before any data is read or model trained, so each
case takes well under a second.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from art_denoise._files import FileWriteError, atomic_write_files
from art_denoise.cli import demo, evaluate_cmd
from art_denoise.cli._checks import DATASET_SHAPES
from art_denoise.cli.main import build_parser, main
from art_denoise.evaluation.report import AttackResult, ModelReport, Report
from art_denoise.models import SmallCNN, save_model


# ---------------------------------------------------------------------- helpers
def _snapshot(root: Path, *, itself: bool = True) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root`` (itself included unless not ``itself``) with its kind,
    size and mtime. A report is staged in a folder beside ``--out``, so a failed write
    changes the mtime of ``--out``'s parent (``itself=False`` there) and nothing else."""
    paths = [root, *root.rglob("*")] if itself else list(root.rglob("*"))
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in paths
    }


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A working directory: a run (``run/model.*``), a demo-like folder, an autoencoder,
    an existing report, an existing spectrum, a file, and a report.json that is a folder."""
    root = tmp_path_factory.mktemp("hostile")
    model = SmallCNN(input_shape=(1, 8, 8), widths=[4, 8], hidden=8).eval()
    save_model(model, root / "run" / "model.safetensors", metadata={})
    save_model(model, root / "models" / "baseline.safetensors", metadata={})
    (root / "run" / "history.json").write_text('{"history": [], "train_seconds": 1.0}\n')
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("a file\n")
    (root / "report").mkdir()
    for name in ("report.json", "report.md", "robust_accuracy.png"):
        (root / "report" / name).write_text(f"old {name}\n")
    (root / "spectra").mkdir()
    (root / "spectra" / "spectrum.json").write_text("{}\n")
    (root / "blocked" / "report.json").mkdir(parents=True)
    corrupt = root / "corrupt"
    corrupt.mkdir()
    data = bytearray((root / "run" / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (corrupt / "model.safetensors").write_bytes(bytes(data))
    (corrupt / "model.json").write_text((root / "run" / "model.json").read_text())
    (root / "weights-only").mkdir()
    (root / "weights-only" / "model.safetensors").write_bytes(data)
    ae = root / "ae"
    ae.mkdir()
    description = {"schema": "art-denoise/autoencoder/1", "config": {}, "sha256": "0"}
    (ae / "autoencoder.safetensors").write_bytes(b"\0" * 16)
    (ae / "autoencoder.json").write_text(json.dumps(description))
    return root


class DataLoaded(BaseException):
    """Raised if a refused command reads its dataset (main() does not catch it)."""


@pytest.fixture
def cli(ws, capsys, monkeypatch) -> Iterator:
    """Run ``art-denoise`` in ``ws``; check that nothing there changed and no data was
    read; return (exit code, stderr)."""
    import art_denoise.data

    def no_data(*args, **kwargs):
        raise DataLoaded(args)

    monkeypatch.chdir(ws)
    monkeypatch.setattr(art_denoise.data, "load_dataset", no_data)

    def run(*argv: str) -> tuple[int, str]:
        argv = tuple(a.replace("{ws}", str(ws)) for a in argv)
        before = _snapshot(ws)
        started = time.perf_counter()
        code = main(list(argv))
        seconds = time.perf_counter() - started
        err = capsys.readouterr().err
        assert _snapshot(ws) == before, "a file was created, changed or left behind"
        assert seconds < 15, f"{argv} took {seconds:.1f} s: work before validation?"
        return code, err

    yield run


def _one_line(err: str, command: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"art-denoise {command}: "), err
    assert "Traceback" not in err
    return err


class Case(NamedTuple):
    argv: tuple[str, ...]
    code: int
    needle: str  # the flag or value the one-line message must name
    absent: str = "\0"  # a phrase it must not contain


EVALUATE = ("evaluate", "--model", "run", "--dataset", "digits", "--quiet", "--device", "cpu")
TRAIN = ("train", "--dataset", "digits", "--out", "new-run", "--quiet", "--device", "cpu")
DEMO = ("demo", "--out", "new-demo", "--quiet", "--device", "cpu")
SPECTRUM = ("spectrum", "--model", "run", "--dataset", "digits", "--out", "sp", "--quiet")


def _check(cli, case: Case) -> None:
    code, err = cli(*case.argv)
    assert code == case.code, err
    _one_line(err, case.argv[0])
    assert case.needle in err, err
    assert case.absent not in err, err


# ------------------------------------------------------------- root 1: ranges
RANGES = {
    "evaluate batch 0": Case((*EVALUATE, "--batch-size", "0"), 2, "--batch-size"),
    "evaluate batch -5": Case((*EVALUATE, "--batch-size", "-5"), 2, "'-5'", "total_steps"),
    "evaluate steps -1": Case((*EVALUATE, "--steps", "-1"), 2, "--steps", "step size"),
    "evaluate step 0": Case((*EVALUATE, "--step-size", "0"), 2, "--step-size"),
    "evaluate eps 0": Case((*EVALUATE, "--eps", "0"), 2, "--eps", "step_size"),
    "evaluate eps 8": Case((*EVALUATE, "--eps", "8"), 2, "--eps 8", "eps="),
    "evaluate eps nan": Case((*EVALUATE, "--eps", "nan"), 2, "--eps"),
    "evaluate n 0": Case((*EVALUATE, "--n-samples", "0"), 2, "--n-samples", "n_test"),
    "evaluate restarts 0": Case((*EVALUATE, "--restarts", "0"), 2, "--restarts"),
    "evaluate restarts, one start": Case(
        (*EVALUATE, "--restarts", "5", "--no-random-start"), 2, "without a random start"
    ),
    "evaluate eot 1": Case((*EVALUATE, "--eot", "1"), 2, "--eot"),
    "evaluate seed -1": Case((*EVALUATE, "--seed", "-1"), 2, "--seed"),
    "evaluate overshoot": Case(
        (*EVALUATE, "--attacks", "deepfool", "--overshoot", "-1"), 2, "--overshoot"
    ),
    "evaluate rp2 area 0": Case((*EVALUATE, "--rp2", "--rp2-area", "0"), 2, "--rp2-area"),
    "evaluate max-steps 5": Case(
        (*EVALUATE, "--sweep", "steps", "--max-steps", "5"), 2, "--max-steps 5", "max_value"
    ),
    "evaluate sweep-eps 2": Case(
        (*EVALUATE, "--sweep", "eps", "--sweep-eps", "0.1,2"), 2, "--sweep-eps 2"
    ),
    "train batch 0": Case((*TRAIN, "--batch-size", "0"), 2, "--batch-size"),
    "train batch -5": Case((*TRAIN, "--batch-size", "-5"), 2, "--batch-size", "total_steps"),
    "train train-size -10": Case((*TRAIN, "--train-size", "-10"), 2, "--train-size"),
    "train val-size -10": Case((*TRAIN, "--val-size", "-10"), 2, "--val-size"),
    "train step 0": Case((*TRAIN, "--method", "pgd", "--step-size", "0"), 2, "--step-size"),
    "train steps -1": Case((*TRAIN, "--steps", "-1"), 2, "--steps", "-0.25"),
    "train epochs 0": Case((*TRAIN, "--epochs", "0"), 2, "--epochs"),
    "train lr 0": Case((*TRAIN, "--lr", "0"), 2, "--lr"),
    "train eps 8": Case((*TRAIN, "--eps", "8"), 2, "--eps 8"),
    "train checkpoint 0": Case((*TRAIN, "--checkpoint-every", "0"), 2, "--checkpoint-every"),
    "train clean prob 2": Case((*TRAIN, "--prob-start-from-clean", "2"), 2, "--prob-start"),
    "train widths 0": Case((*TRAIN, "--widths", "8,0"), 2, "--widths"),
    "train fp16 on cpu": Case((*TRAIN, "--amp", "fp16"), 2, "--amp fp16", "amp="),
    "demo epochs 0": Case((*DEMO, "--epochs", "0"), 2, "--epochs"),
    "demo eot 1": Case((*DEMO, "--eot", "1"), 2, "--eot"),
    "spectrum radius 0.8": Case((*SPECTRUM, "--radius", "0.8"), 2, "--radius 0.8"),
    "spectrum radius corner": Case((*SPECTRUM, "--radius", "0.7072"), 2, "--radius 0.7072"),
    "spectrum radius -1": Case((*SPECTRUM, "--radius", "-1"), 2, "--radius"),
    "spectrum steps -1": Case((*SPECTRUM, "--steps", "-1"), 2, "--steps"),
    "spectrum n 0": Case((*SPECTRUM, "--n-samples", "0"), 2, "--n-samples"),
}


@pytest.mark.parametrize("case", RANGES.values(), ids=RANGES.keys())
def test_values_out_of_range_are_refused_before_work(cli, case) -> None:
    _check(cli, case)


# ------------------------------------- root 2: options that need another option
NEEDS = {
    "rp2-area without rp2": Case((*EVALUATE, "--rp2-area", "0.3"), 2, "--rp2-area 0.3 needs --rp2"),
    "rp2-iter without rp2": Case((*EVALUATE, "--rp2-iter", "5"), 2, "--rp2-iter 5 needs --rp2"),
    "step-size with fgsm": Case(
        (*EVALUATE, "--attacks", "fgsm", "--step-size", "0.01"), 2, "--step-size 0.01 needs pgd"
    ),
    "deepfool-steps without deepfool": Case(
        (*EVALUATE, "--deepfool-steps", "9"), 2, "--deepfool-steps 9 needs deepfool"
    ),
    "aa-steps without autoattack": Case(
        (*EVALUATE, "--aa-steps", "9"), 2, "--aa-steps 9 needs --autoattack"
    ),
    "max-restarts without sweep": Case(
        (*EVALUATE, "--max-restarts", "2"), 2, "--max-restarts 2 needs --sweep restarts"
    ),
    "max-steps without sweep": Case(
        (*EVALUATE, "--max-steps", "50"), 2, "--max-steps 50 needs --sweep steps"
    ),
    "eps with deepfool only": Case(
        (*EVALUATE, "--attacks", "deepfool", "--norm", "2", "--eps", "0.5"), 2, "--eps 0.5"
    ),
    "denoise-after without denoise": Case(
        (*TRAIN, "--denoise-after", "stages"), 2, "--denoise-after stages needs --denoise"
    ),
    "steps with method none": Case(
        (*TRAIN, "--method", "none", "--steps", "3"), 2, "--steps 3 needs --method pgd"
    ),
    "eps with method none": Case(
        (*TRAIN, "--method", "none", "--eps", "0.1"), 2, "--eps 0.1 needs --method"
    ),
    "mix-alpha with pgd": Case((*TRAIN, "--mix-alpha", "0.3"), 2, "--mix-alpha 0.3 needs"),
    "steps with mix fgsm": Case((*TRAIN, "--method", "mix", "--steps", "3"), 2, "--mix-attack"),
    "overfit-drop with pgd": Case((*TRAIN, "--overfit-drop", "0.1"), 2, "--overfit-drop 0.1"),
    "overfit-drop without val": Case(
        (*TRAIN, "--method", "fast", "--overfit-drop", "0.1", "--val-size", "0"), 2, "--val-size"
    ),
    "pcl-layers without pcl": Case((*TRAIN, "--pcl-layers", "stage1"), 2, "--pcl-layers stage1"),
    "spectrum step-size with fgsm": Case(
        (*SPECTRUM, "--attack", "fgsm", "--step-size", "0.01"), 2, "--step-size 0.01 needs"
    ),
}


@pytest.mark.parametrize("case", NEEDS.values(), ids=NEEDS.keys())
def test_an_option_without_the_one_it_needs_is_refused(cli, case) -> None:
    _check(cli, case)


# ------------------------------------------------ root 3: duplicates, names
NAMES = {
    "attacks twice": Case((*EVALUATE, "--attacks", "pgd,pgd"), 2, "--attacks names 'pgd' twice"),
    "backends twice": Case((*EVALUATE, "--backends", "art,art"), 2, "--backends names 'art'"),
    "eps twice": Case((*EVALUATE, "--eps", "0.1,0.1"), 2, "--eps names 0.1 twice"),
    "sweep twice": Case((*EVALUATE, "--sweep", "steps,steps"), 2, "--sweep names 'steps'"),
    "autoattack twice": Case(
        (*EVALUATE, "--attacks", "pgd,autoattack", "--autoattack"), 2, "--autoattack"
    ),
    "demo backends twice": Case((*DEMO, "--backends", "art,art"), 2, "--backends names 'art'"),
    "demo unknown backend": Case((*DEMO, "--backends", "nosuchlib"), 2, "'nosuchlib'"),
    "evaluate unknown backend": Case((*EVALUATE, "--backends", "nosuchlib"), 2, "'nosuchlib'"),
    "unknown attack": Case((*EVALUATE, "--attacks", "cw"), 2, "unknown attack 'cw' in --attacks"),
    "unknown dataset": Case(
        ("evaluate", "--model", "run", "--dataset", "imagenet"), 2, "unknown dataset 'imagenet'"
    ),
    "unknown device": Case((*EVALUATE, "--device", "tpu"), 2, "--device 'tpu'"),
    "data-path a file": Case((*EVALUATE, "--data-path", "notes.txt"), 2, "--data-path"),
    "spectrum unknown layer": Case((*SPECTRUM, "--layer", "nope"), 2, "--layer 'nope'"),
    "train unknown model": Case((*TRAIN, "--model", "nosuchnet"), 2, "nosuchnet"),
    "train unknown pcl layer": Case(
        (*TRAIN, "--method", "pcl", "--pcl-layers", "nope"), 2, "'nope' in --pcl-layers"
    ),
    "train unknown denoise-after": Case(
        (*TRAIN, "--denoise", "nonlocal", "--denoise-after", "nope"), 2, "nope"
    ),
    "deepfool linf where no backend runs it": Case(
        (*EVALUATE, "--attacks", "deepfool", "--norm", "inf", "--backends", "art"),
        2,
        "deepfool-linf",
    ),
}


@pytest.mark.parametrize("case", NAMES.values(), ids=NAMES.keys())
def test_duplicates_and_unknown_names_are_refused_before_work(cli, case) -> None:
    _check(cli, case)


# --------------------------------------------------------------- root 4: --out
OUT = {
    "evaluate out is a file": Case((*EVALUATE, "--out", "notes.txt"), 2, "existing file"),
    "evaluate out under a file": Case((*EVALUATE, "--out", "notes.txt/r"), 2, "is a file"),
    "evaluate out empty": Case((*EVALUATE, "--out", ""), 2, "--out"),
    "evaluate out holds a report": Case((*EVALUATE, "--out", "report"), 2, "--overwrite"),
    "evaluate report.json a directory": Case(
        (*EVALUATE, "--out", "blocked", "--overwrite"), 2, "'report.json'"
    ),
    "demo out holds a report": Case((*DEMO[:1], "--out", "report", "--quiet"), 2, "--overwrite"),
    "demo out is a file": Case((*DEMO[:1], "--out", "notes.txt"), 2, "existing file"),
    "spectrum out holds spectra": Case(
        ("spectrum", "--model", "run", "--dataset", "digits", "--out", "spectra"), 2, "--overwrite"
    ),
    "train out is a file": Case((*TRAIN, "--out", "notes.txt"), 2, "existing file"),
    "train out empty": Case((*TRAIN, "--out", " "), 2, "--out"),
}


@pytest.mark.parametrize("case", OUT.values(), ids=OUT.keys())
def test_out_that_cannot_be_written_or_holds_a_report_is_refused(cli, case) -> None:
    _check(cli, case)


def test_an_unwritable_parent_is_refused_before_work(cli, monkeypatch) -> None:
    import art_denoise.cli._checks as checks

    monkeypatch.setattr(checks.os, "access", lambda path, mode: False)  # root ignores modes
    code, err = cli(*EVALUATE, "--out", "{ws}/empty/sub")
    assert code == 2 and "not writable" in _one_line(err, "evaluate")
    assert "empty/sub" in err


def test_evaluate_does_not_default_to_the_demo_directory() -> None:
    parser = build_parser()
    ev = parser.parse_args(["evaluate", "--model", "m", "--dataset", "digits"])
    dm = parser.parse_args(["demo"])
    assert ev.out != dm.out and str(ev.out) == evaluate_cmd.DEFAULT_OUT


# --------------------------------------------------- root 5: --model forms
MODEL_FORMS = {
    "directory without a model": Case(
        (*EVALUATE[:1], "--model", "empty", "--dataset", "digits"), 1, "directory without a model"
    ),
    "directory of other models": Case(
        (*EVALUATE[:1], "--model", "models", "--dataset", "digits"), 1, "baseline.safetensors"
    ),
    "missing": Case((*EVALUATE[:1], "--model", "nope", "--dataset", "digits"), 1, "no such file"),
    "wrong kind: text": Case(
        (*EVALUATE[:1], "--model", "notes.txt", "--dataset", "digits"), 2, "is not a model file"
    ),
    "wrong kind: history.json": Case(
        (*EVALUATE[:1], "--model", "run/history.json", "--dataset", "digits"),
        2,
        "is not a model file",
    ),
    "wrong kind: an autoencoder": Case(
        (*EVALUATE[:1], "--model", "ae", "--dataset", "digits"), 2, "pass it as --autoencoder"
    ),
    "wrong kind: a model as autoencoder": Case(
        (*EVALUATE, "--autoencoder", "run/model.json"), 2, "pass it as --model"
    ),
    "autoencoder directory without one": Case(
        (*EVALUATE, "--autoencoder", "empty"), 1, "directory without an autoencoder"
    ),
    "autoencoder given a run directory": Case(
        (*EVALUATE, "--autoencoder", "run"), 2, "holds a model (model.safetensors)"
    ),
    "weights without description": Case(
        (*EVALUATE[:1], "--model", "weights-only", "--dataset", "digits"), 1, "no description"
    ),
    "corrupt": Case(
        (*EVALUATE[:1], "--model", "corrupt", "--dataset", "digits"), 1, "cannot be loaded"
    ),
    "spectrum corrupt": Case(
        ("spectrum", "--model", "corrupt/model.json", "--dataset", "digits", "--out", "s"),
        1,
        "cannot be loaded",
    ),
}


@pytest.mark.parametrize("case", MODEL_FORMS.values(), ids=MODEL_FORMS.keys())
def test_model_forms_have_three_distinct_messages(cli, case) -> None:
    _check(cli, case)


@pytest.mark.parametrize("form", ["run", "run/model.safetensors", "run/model.json"])
def test_model_accepts_a_run_directory_its_file_or_its_description(ws, tmp_path, form) -> None:
    out = tmp_path / "r"
    argv = [*EVALUATE[:1], "--model", str(ws / form), "--dataset", "digits", "--quiet"]
    argv += ["--attacks", "fgsm", "--backends", "art", "--n-samples", "8", "--no-checks"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["models"][0]["name"] == ("run" if form == "run" else "model")


def test_dataset_shapes_match_the_loaded_datasets() -> None:
    from art_denoise.data import load_dataset

    assert load_dataset("digits").input_shape == DATASET_SHAPES["digits"]
    for name in ("mnist", "fashion-mnist", "cifar10"):
        try:
            data = load_dataset(name, n_train=1, n_test=1)
        except FileNotFoundError:
            continue
        assert data.input_shape == DATASET_SHAPES[name]


# -------------------------------------------- root 6: whole or nothing on disk
def _report() -> Report:
    result = AttackResult(
        attack="fgsm-linf", backend="art", norm="inf", eps=0.1, step_size=0.1, steps=1,
        random_start=False, restarts=1, targeted=False, robust_accuracy=0.5,
        attack_success_rate=0.5, l2_dissimilarity=0.1, max_perturbation=0.1, seconds=0.1,
    )  # fmt: skip
    model = ModelReport(
        name="m", defense="none", clean_accuracy=0.9, results=[result], all_or_nothing_accuracy=0.5
    )
    return Report(dataset={"name": "digits", "split": "test", "n_samples": 8}, models=[model],
                  environment={"torch": "x"})  # fmt: skip


def _disk_full(self, fname, *args, **kwargs) -> None:
    Path(fname).write_bytes(b"\x89PNG partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_leaves_the_previous_report_and_names_the_file(ws, monkeypatch) -> None:
    import matplotlib.figure

    before = _snapshot(ws, itself=False)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _disk_full)
    with pytest.raises(FileWriteError) as err:
        _report().save(ws / "report")
    message = str(err.value)
    assert "\n" not in message
    assert str(ws / "report" / "robust_accuracy.png") in message and "No space left" in message
    assert _snapshot(ws, itself=False) == before


def test_a_report_into_a_new_directory_is_all_or_nothing(tmp_path, monkeypatch) -> None:
    import matplotlib.figure

    out = tmp_path / "a" / "b" / "report"
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _disk_full)
    with pytest.raises(FileWriteError):
        _report().save(out)
    assert list(tmp_path.iterdir()) == []  # not even the parents it made
    monkeypatch.undo()
    _report().save(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "report.md",
        "robust_accuracy.png",
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]  # no staging left


def test_a_directory_in_the_way_is_named_and_nothing_changes(ws) -> None:
    before = _snapshot(ws)
    with pytest.raises(FileWriteError, match=r"report\.json"):
        _report().save(ws / "blocked")
    assert _snapshot(ws) == before  # refused before the staging folder is made


def test_an_unwritable_parent_is_named(tmp_path, monkeypatch) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(FileWriteError, match="Permission denied") as err:
        _report().save(tmp_path / "x" / "report")
    assert str(tmp_path / "x" / "report") in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_swap_puts_the_old_files_back(tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b", "keep"):
        (out / name).write_text(f"old {name}")
    real, calls = os.rename, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 4:  # a: old aside, new in; b: old aside, then new in fails
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(src, dst)

    monkeypatch.setattr(os, "rename", flaky)
    writers = {n: (lambda p, n=n: p.write_text(f"new {n}")) for n in ("a", "b")}
    with pytest.raises(FileWriteError, match="Input/output error"):
        atomic_write_files(out, writers)
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "a": "old a", "b": "old b", "keep": "old keep"
    }  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_stale_sweep_chart_is_removed_with_the_new_report(tmp_path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "sweeps.png").write_bytes(b"old")
    (out / "notes.txt").write_text("kept")
    _report().save(out)
    assert not (out / "sweeps.png").exists() and (out / "notes.txt").read_text() == "kept"
    with pytest.raises(FileExistsError):
        _report().save(out, overwrite=False)


def test_evaluate_that_cannot_write_fails_in_one_line_and_keeps_the_report(
    ws, capsys, monkeypatch
) -> None:
    import matplotlib.figure

    monkeypatch.chdir(ws)
    before = _snapshot(ws, itself=False)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _disk_full)
    argv = [*EVALUATE, "--attacks", "fgsm", "--backends", "art", "--n-samples", "8"]
    assert main([*argv, "--no-checks", "--out", "report", "--overwrite"]) == 1
    err = capsys.readouterr().err
    _one_line(err, "evaluate")
    assert "report/robust_accuracy.png" in err and "No space left on device" in err
    assert _snapshot(ws, itself=False) == before


# --------------------------------------- root 7: never replace what the user has
def test_deepfool_runs_in_the_chosen_norm_and_backends_that_cannot_are_listed(ws, tmp_path) -> None:
    pytest.importorskip("foolbox")
    out = tmp_path / "df"
    argv = [
        *EVALUATE,
        "--model",
        str(ws / "run"),
        "--attacks",
        "deepfool",
        "--norm",
        "inf",
        "--backends",
        "art,foolbox",
    ]
    argv += ["--deepfool-steps", "3", "--n-samples", "8", "--no-checks", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["attack"], r["backend"]) for r in report["models"][0]["results"]] == [
        ("deepfool-linf", "foolbox")
    ]
    assert [(s["attack"], s["backend"]) for s in report["skipped"]] == [
        ("deepfool-linf@unbounded", "art")
    ]


def test_demo_saves_each_model_as_soon_as_it_is_trained(tmp_path, monkeypatch, capsys) -> None:
    import art_denoise.evaluation as evaluation

    def fail(*args, **kwargs):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr(evaluation, "evaluate", fail)
    monkeypatch.setattr(demo, "DEMO_MODELS", {"baseline": demo.DEMO_MODELS["baseline"]})
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--backends", "art", "--quiet"]) == 1
    assert "the evaluation broke" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "autoencoder.json", "autoencoder.safetensors", "baseline.json", "baseline.safetensors"
    ]  # fmt: skip


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--method", "none", "--epochs", "1", "--quiet"]
    argv += ["--train-size", "200", "--val-size", "50", "--device", "cpu", "--out", str(out)]
    argv += ["--lr-schedule", "constant"]
    assert main(argv) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert _snapshot(out) == before


@pytest.mark.parametrize("form", ["dir", "autoencoder.safetensors", "autoencoder.json"])
def test_autoencoder_forms_put_the_filter_in_front(ws, tmp_path, form) -> None:
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch

    folder = tmp_path / "ae"
    autoencoder = DenoisingAutoencoderPyTorch((1, 8, 8), n_layers=1)
    autoencoder.save(folder / "autoencoder.safetensors")
    argv = [*EVALUATE, "--model", str(ws / "run"), "--out", str(tmp_path / "r")]
    code = main([*argv, "--autoencoder", str(folder)])
    assert code == 2 and not (tmp_path / "r").exists()  # an untrained filter is refused
    autoencoder.fit(np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32), nb_epochs=1)
    autoencoder.save(folder / "autoencoder.safetensors")
    given = folder if form == "dir" else folder / form
    out = tmp_path / "r"
    argv = [*EVALUATE, "--model", str(ws / "run"), "--autoencoder", str(given)]
    argv += ["--attacks", "fgsm", "--backends", "art", "--n-samples", "8", "--no-checks"]
    assert main([*argv, "--out", str(out)]) == 0
    (model,) = json.loads((out / "report.json").read_text())["models"]
    assert model["name"] == "run+autoencoder" and "autoencoder" in model["defense"]


def test_data_messages_name_the_flags_not_python_arguments(ws, tmp_path, capsys) -> None:
    argv = [*EVALUATE, "--model", str(ws / "run"), "--out", str(tmp_path / "r")]
    assert main([*argv, "--n-samples", "100000"]) == 2
    err = _one_line(capsys.readouterr().err, "evaluate")
    assert "--n-samples 100000 is more than the 360 test images" in err and "n_test" not in err
    bad = [a if a != "digits" else "mnist" for a in argv]
    assert main([*bad, "--data-path", str(ws / "empty")]) == 1
    err = _one_line(capsys.readouterr().err, "evaluate")
    assert "dataset 'mnist' not found" in err and str(ws / "empty") in err
    assert "download=True" not in err and "path=" not in err
    assert not (tmp_path / "r").exists()
