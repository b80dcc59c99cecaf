"""``art-denoise train``: the run directory, resume, refusal to overwrite, evaluate reads it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from art_denoise.cli.main import main
from art_denoise.models import load_model

TINY = [
    "--dataset",
    "digits",
    "--model",
    "smallcnn",
    "--batch-size",
    "64",
    "--train-size",
    "400",
    "--val-size",
    "100",
    "--lr-schedule",
    "constant",
    "--quiet",
    "--device",
    "cpu",
]


#: PGD-2 at eps 0.1 (the attack options are only accepted with a method that attacks).
PGD = ("--method", "pgd", "--eps", "0.1", "--steps", "2")


def _train(out: Path, *extra: str) -> int:
    return main(["train", *TINY, "--out", str(out), *extra])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pgd_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "pgd"
    assert _train(out, *PGD, "--epochs", "2") == 0
    return out


def test_train_writes_a_run_that_evaluate_reads(pgd_run, tmp_path, capsys) -> None:
    assert sorted(p.name for p in pgd_run.iterdir()) == [
        "checkpoint.pt",
        "history.json",
        "model.json",
        "model.safetensors",
    ]
    history = json.loads((pgd_run / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0.0 <= h["adv_acc"] <= h["clean_acc"] + 0.2 for h in history)
    assert "val_adv" in history[-1]
    meta = json.loads((pgd_run / "model.json").read_text())
    assert meta["metadata"]["training"]["method"] == "pgd"
    assert meta["metadata"]["training"]["eps"] == pytest.approx(0.1)
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--model",
            str(pgd_run / "model.safetensors"),
            "--dataset",
            "digits",
            "--attacks",
            "pgd",
            "--eps",
            "0.1",
            "--steps",
            "5",
            "--backends",
            "art",
            "--n-samples",
            "60",
            "--out",
            str(tmp_path / "report"),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    (model,) = report["models"]
    assert 0.0 <= model["results"][0]["robust_accuracy"] <= model["clean_accuracy"]


def test_an_existing_run_is_never_overwritten(pgd_run) -> None:
    before = {p.name: _sha(p) for p in pgd_run.iterdir()}
    assert _train(pgd_run, *PGD, "--epochs", "2") == 2
    assert {p.name: _sha(p) for p in pgd_run.iterdir()} == before


def test_resume_with_another_model_is_refused_and_leaves_the_checkpoint(pgd_run) -> None:
    before = _sha(pgd_run / "checkpoint.pt")
    code = _train(
        pgd_run,
        *PGD,
        "--epochs",
        "3",
        "--denoise",
        "nonlocal",
        "--resume",
    )
    assert code == 1
    assert _sha(pgd_run / "checkpoint.pt") == before


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path) -> None:
    common = ("--method", "fast", "--eps", "0.1", "--seed", "3")
    assert _train(tmp_path / "full", *common, "--epochs", "2") == 0
    assert _train(tmp_path / "part", *common, "--epochs", "1") == 0
    assert _train(tmp_path / "part", *common, "--epochs", "2", "--resume") == 0
    full = load_file(str(tmp_path / "full" / "model.safetensors"))
    part = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert full.keys() == part.keys()
    for name, value in full.items():
        assert (part[name] == value).all(), name


def test_denoise_blocks_are_trained_and_recorded(tmp_path) -> None:
    out = tmp_path / "den"
    code = _train(
        out,
        "--method",
        "none",
        "--epochs",
        "1",
        "--denoise",
        "nonlocal",
        "--denoise-after",
        "stages",
    )
    assert code == 0
    model = load_model(out / "model.safetensors")
    blocks = [n for n, m in model.named_modules() if type(m).__name__ == "DenoisingBlock"]
    assert len(blocks) == 2
    # the blocks' BatchNorm started at gamma = 0 and was trained away from it
    gammas = [p for n, p in model.named_parameters() if n.endswith("denoise.bn.weight")]
    assert any(float(g.detach().abs().max()) > 0 for g in gammas)


def test_widths_and_hidden_size_the_smallcnn(tmp_path) -> None:
    out = tmp_path / "wide"
    code = _train(out, "--method", "none", "--epochs", "1", "--widths", "8,24", "--hidden", "40")
    assert code == 0
    config = json.loads((out / "model.json").read_text())["config"]
    assert config["widths"] == [8, 24] and config["hidden"] == 40
    model = load_model(out / "model.safetensors")
    assert model.stage1[0].out_channels == 8 and model.stage2[0].out_channels == 24
    head = [p.shape[0] for n, p in model.named_parameters() if n.startswith("head")]
    assert head == [40, 40, 10, 10]


def test_ema_saves_the_averaged_weights(tmp_path) -> None:
    import torch

    out = tmp_path / "ema"
    assert _train(out, *PGD, "--epochs", "1", "--ema", "0.9") == 0
    meta = json.loads((out / "model.json").read_text())["metadata"]
    assert meta["ema_decay"] == pytest.approx(0.9)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["ema"]["updates"] == 5  # 300 images, batch 64
    saved = load_file(str(out / "model.safetensors"))
    for name, value in saved.items():  # the model file holds the average, not the last step
        torch.testing.assert_close(value, state["ema"]["shadow"][name])
    assert not torch.equal(saved["head.3.weight"], state["model"]["head.3.weight"])


@pytest.mark.parametrize(
    "extra",
    [
        ("--method", "pgd", "--eps", "-0.1"),
        ("--method", "pgd", "--ema", "1.0"),
        ("--method", "none", "--widths", "16"),
        ("--method", "none", "--widths", "16,0"),
        ("--method", "none", "--hidden", "0"),
        ("--method", "none", "--model", "preact-resnet18", "--hidden", "64"),
        ("--method", "pgd", "--eps", "0.1", "--epochs", "0"),
        ("--method", "pcl", "--pcl"),
        ("--method", "pgd", "--val-size", "400"),
    ],
    ids=[
        "negative eps",
        "ema of 1",
        "one width",
        "zero width",
        "zero hidden",
        "hidden for resnet",
        "zero epochs",
        "pcl twice",
        "val too large",
    ],
)
def test_usage_errors_exit_2_and_write_nothing(tmp_path, extra, capsys) -> None:
    out = tmp_path / "bad"
    assert _train(out, *extra) == 2
    assert not out.exists() or not any(out.iterdir())
    assert "error" in capsys.readouterr().err.lower()
