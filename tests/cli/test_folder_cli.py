"""``--dataset folder --data-path DIR [--image-size H,W]`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image

from art_denoise.cli.main import main
from art_denoise.models import SmallCNN, load_model, save_model

CPU = ("--quiet", "--device", "cpu")


@pytest.fixture(scope="module")
def signs(tmp_path_factory) -> Path:
    """Two classes of grey images of mixed sizes: dark squares and bright ones."""
    root = tmp_path_factory.mktemp("signs")
    rng = np.random.default_rng(0)
    for name, low in (("dark", 0), ("bright", 160)):
        (root / name).mkdir()
        for i in range(12):
            size = (8, 8) if i % 2 else (10, 9)
            pixels = rng.integers(low, low + 96, size=size, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def model_8x8(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("m") / "model.safetensors"
    save_model(SmallCNN(input_shape=(1, 8, 8), widths=[4, 8], hidden=8), path, metadata={})
    return path


class Usage(NamedTuple):
    argv: tuple[str, ...]
    needle: str


def _usage_cases() -> dict[str, Usage]:
    train = ("train", "--out", "{tmp}/run", *CPU)
    evaluate = ("evaluate", "--model", "{model}", "--out", "{tmp}/r", *CPU)
    spectrum = ("spectrum", "--model", "{model}", "--out", "{tmp}/s", *CPU)
    need_path = "--dataset folder needs --data-path DIR"
    return {
        "train folder without path": Usage((*train, "--dataset", "folder"), need_path),
        "evaluate folder without path": Usage((*evaluate, "--dataset", "folder"), need_path),
        "spectrum folder without path": Usage((*spectrum, "--dataset", "folder"), need_path),
        "image size without folder": Usage(
            (*evaluate, "--dataset", "digits", "--image-size", "8"),
            "--image-size 8,8 needs --dataset folder",
        ),
        "image size 0": Usage(
            (*train, "--dataset", "folder", "--data-path", "{tmp}", "--image-size", "0,4"),
            "argument --image-size: expected H,W or N: integers >= 1, got '0,4'",
        ),
        "image size three numbers": Usage(
            (*train, "--dataset", "folder", "--data-path", "{tmp}", "--image-size", "2,2,2"),
            "argument --image-size",
        ),
    }


USAGE = _usage_cases()


@pytest.mark.parametrize("case", USAGE.values(), ids=USAGE.keys())
def test_usage_errors_exit_2_in_one_line_before_any_data(
    case: Usage, tmp_path, model_8x8, capsys, monkeypatch
) -> None:
    import art_denoise.data

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("data loaded before the options were checked")

    monkeypatch.setattr(art_denoise.data, "load_dataset", no_data)
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{model}", str(model_8x8)) for a in case.argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and case.needle in err, err
    assert not any(tmp_path.iterdir()), "nothing written"


def test_train_then_evaluate_on_a_folder(signs, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    train = ["train", "--dataset", "folder", "--data-path", str(signs), "--image-size", "8"]
    train += ["--method", "none", "--epochs", "20", "--batch-size", "8", "--val-size", "0"]
    train += ["--lr", "0.01", "--lr-schedule", "constant"]
    train += ["--widths", "4,8", "--hidden", "8", "--out", str(out), *CPU]
    assert main(train) == 0, capsys.readouterr().err
    model = load_model(out / "model.safetensors")
    assert tuple(model.input_shape) == (1, 8, 8)
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 2), "two classes, two logits"
    report_dir = tmp_path / "report"
    evaluate = ["evaluate", "--model", str(out), "--dataset", "folder", "--data-path", str(signs)]
    evaluate += ["--image-size", "8,8", "--attacks", "fgsm", "--eps", "0.05", "--backends", "art"]
    evaluate += ["--no-checks", "--out", str(report_dir), *CPU]
    assert main(evaluate) == 0, capsys.readouterr().err
    report = json.loads((report_dir / "report.json").read_text())
    (row,) = report["models"]
    # 2 test images per class of 12 (round(0.2 * 12) = 2): bright vs dark is learnable
    assert row["clean_accuracy"] >= 0.75
    assert report["dataset"]["name"] == "folder"


def test_mixed_sizes_without_image_size_name_the_flag(signs, tmp_path, capsys) -> None:
    argv = ["train", "--dataset", "folder", "--data-path", str(signs), "--out", str(tmp_path / "r")]
    assert main([*argv, "--epochs", "1", *CPU]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "images differ in size" in err and "--image-size" in err


def test_model_settings_are_checked_once_the_folder_is_read(signs, tmp_path, capsys) -> None:
    argv = ["train", "--dataset", "folder", "--data-path", str(signs), "--image-size", "8"]
    argv += ["--method", "pcl", "--pcl-layers", "nope", "--out", str(tmp_path / "r"), *CPU]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'nope' in --pcl-layers" in err


def test_a_model_of_another_size_is_refused(signs, model_8x8, tmp_path, capsys) -> None:
    argv = ["evaluate", "--model", str(model_8x8), "--dataset", "folder", "--data-path", str(signs)]
    argv += ["--image-size", "6", "--attacks", "fgsm", "--out", str(tmp_path / "r"), *CPU]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "expects inputs (1, 8, 8), dataset 'folder' has (1, 6, 6)" in err
