from __future__ import annotations

import json
import subprocess
import sys

import pytest

from art_denoise.cli.main import main
from art_denoise.models import load_model


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--epochs",
            "8",
            "--eot",
            "4",
            "--backends",
            "art",
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    return out


def test_demo_end_to_end(demo_dir, capsys) -> None:
    names = sorted(p.name for p in demo_dir.iterdir())
    assert names == [
        "autoencoder.json",
        "autoencoder.safetensors",
        "baseline.json",
        "baseline.safetensors",
        "blurnet.json",
        "blurnet.safetensors",
        "denoise.json",
        "denoise.safetensors",
        "norms.png",  # DeepFool's implied accuracy against eps
        "pgd.json",
        "pgd.safetensors",
        "report.json",
        "report.md",
        "robust_accuracy.png",
    ]
    report = json.loads((demo_dir / "report.json").read_text())
    model, denoise, adv, blur, ae = report["models"]
    assert [m["name"] for m in report["models"]] == [
        "baseline",
        "denoise",
        "pgd",
        "blurnet",
        "autoencoder",
    ]
    # the randomised model is detected and gets EOT-APGD (AutoAttack's "rand" version)
    eot = [r for r in ae["results"] if r["eot_samples"] == 4]
    assert {r["attack"] for r in eot} == {"apgd-ce-linf+eot4", "apgd-dlr-linf+eot4"}
    assert {r["backend"] for r in eot} == {"native"} and len(eot) == 4
    # ... instead of the plain APGD attacks, which follow one noise draw's gradient
    assert not {r["attack"] for r in ae["results"]} & {"apgd-ce-linf", "apgd-t-linf"}
    assert ae["randomized"] and not blur["randomized"]
    for m in (model, denoise, adv, blur):
        assert not any(r["eot_samples"] > 1 for r in m["results"])
    assert ae["clean_accuracy"] > 0.85 and blur["clean_accuracy"] > 0.85
    assert "non-local" in denoise["defense"] and denoise["clean_accuracy"] > 0.85
    assert report["dataset"]["n_samples"] == 360
    keys = {(r["attack"], r["backend"], r["eps"]) for r in model["results"]}
    assert keys == {
        *(
            (a, b, e)
            for e in (0.1, 0.2)
            for a, b in (("pgd-linf", "art"), ("apgd-ce-linf", "native"), ("apgd-t-linf", "native"))
        ),
        ("deepfool-l2", "native", None),  # DeepFool through native (+ foolbox when chosen)
    }
    assert model["clean_accuracy"] > 0.85
    pgd = {r["eps"]: r for r in model["results"] if r["attack"] == "pgd-linf"}
    assert pgd[0.2]["robust_accuracy"] <= pgd[0.1]["robust_accuracy"] < model["clean_accuracy"]
    assert pgd[0.1]["steps"] == 20 and pgd[0.1]["step_size"] == pytest.approx(0.0125)
    # one worst case per threat model, never above any attack at that eps
    for m in report["models"]:
        worst = {t["eps"]: t for t in m["threat_models"]}
        assert sorted(worst) == [0.1, 0.2]
        for r in m["results"]:
            if r["eps"] is not None:
                assert worst[r["eps"]]["robust_accuracy"] <= r["robust_accuracy"] + 1e-12
        assert all(t["parameter_free"] for t in worst.values())
        assert m["status"] in ("verified",) or m["status"].startswith("not verified (checks")
    assert all(t["eot"] for t in ae["threat_models"])
    # the PGD-trained model is much more robust than the baseline at the training eps
    tm = {
        m["name"]: {t["eps"]: t["robust_accuracy"] for t in m["threat_models"]}
        for m in report["models"]
    }
    assert adv["clean_accuracy"] > 0.85
    assert tm["pgd"][0.1] > tm["baseline"][0.1] + 0.1
    # DeepFool: norm quartiles and not-adversarial counts, no robust accuracy headline
    (df,) = [r for r in model["results"] if r["attack"] == "deepfool-l2"]
    stats = df["norm_stats"]
    assert 0 < stats["q1"] <= stats["median"] <= stats["q3"]
    assert stats["n_not_adversarial"] == 0


def test_evaluate_reads_the_demo_model(demo_dir, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--model",
            str(demo_dir / "baseline.safetensors"),
            "--dataset",
            "digits",
            "--attacks",
            "pgd,fgsm",
            "--backends",
            "art",
            "--eps",
            "0.1",
            "--steps",
            "5",
            "--n-samples",
            "50",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["n_samples"] == 50
    assert [r["attack"] for r in report["models"][0]["results"]] == ["pgd-linf", "fgsm-linf"]
    assert report["models"][0]["results"][0]["steps"] == 5
    assert "Linf 0.1" in capsys.readouterr().out  # the summary: one column per threat model
    assert load_model(demo_dir / "baseline.safetensors").input_shape == (1, 8, 8)
    blocks = [
        n
        for n, _ in load_model(demo_dir / "denoise.safetensors").named_modules()
        if n.endswith("denoise")
    ]
    assert blocks == ["stage1.denoise", "stage2.denoise"]


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--attacks", "cw"], 2, "unknown attack 'cw'"),
        (["--eps", "-0.1"], 2, "argument --eps: expected numbers > 0, got '-0.1'"),
        (["--backends", "nope"], 2, "unknown backend 'nope'"),
        (["--dataset", "imagenet"], 2, "unknown dataset 'imagenet'"),
        (["--dataset", "cifar10", "--data-path", "{tmp}"], 1, "cifar10"),
        (["--model", "{tmp}/missing.safetensors"], 1, "no such file or directory"),
        (["--model", "{tmp}/corrupt.safetensors"], 1, "does not match the hash"),
        (["--sweep-eps", "0.05,0.1"], 2, "--sweep-eps 0.05,0.1 needs --sweep eps"),
        (["--sweep", "restarts", "--max-steps", "50"], 2, "--max-steps 50 needs --sweep steps"),
    ],
    ids=[
        "attack",
        "eps",
        "backend",
        "dataset",
        "missing data",
        "missing model",
        "corrupt",
        "sweep-eps alone",
        "max-steps alone",
    ],
)
def test_bad_input_exit_codes(demo_dir, tmp_path, capsys, extra, code, message) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\0" * 8 + (demo_dir / "baseline.safetensors").read_bytes()[8:])
    (tmp_path / "corrupt.json").write_text((demo_dir / "baseline.json").read_text())
    args = {
        "--model": str(demo_dir / "baseline.safetensors"),
        "--dataset": "digits",
        "--out": str(tmp_path / "out"),
    }
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        args[flag] = value
    argv = ["evaluate", "--quiet", "--steps", "2", "--n-samples", "10"]
    for flag, value in args.items():
        argv += [flag, value]
    assert main(argv) == code
    err = capsys.readouterr().err
    first = err.strip().splitlines()[0]
    assert first.startswith("art-denoise evaluate: ")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_argparse_usage_error_exits_2(capsys) -> None:
    assert main(["evaluate", "--dataset", "digits"]) == 2  # --model missing
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err
    with pytest.raises(SystemExit) as exc:  # --help still exits, with 0
        main(["evaluate", "--help"])
    assert exc.value.code == 0


@pytest.mark.slow
def test_full_demo_console_script(tmp_path) -> None:
    """The README's main job: every installed backend, default settings, >= 95% accuracy."""
    proc = subprocess.run(
        [sys.executable, "-m", "art_denoise.cli.main", "demo", "--out", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert all(m["clean_accuracy"] >= 0.95 for m in report["models"])
    assert "status" in proc.stdout and "Linf 0.1" in proc.stdout
