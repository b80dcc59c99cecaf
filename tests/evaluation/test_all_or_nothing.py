"""All-or-nothing sequences, RP2 inside evaluate, and the evaluate CLI's new options."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from art_denoise.attacks.rp2 import RP2Config
from art_denoise.attacks.spec import AttackSpec
from art_denoise.cli.main import main
from art_denoise.evaluation import Report, evaluate
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.models import save_model

N = 120
# no random start: per-image results do not depend on which other images share the batch
ATTACKS = [
    AttackSpec(attack="fgsm", eps=0.1),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=10),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.005, steps=30),
]


@pytest.fixture
def data(digits) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, x_te, y_te = digits
    return torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])


def test_sequence_equals_full_runs_and_attacks_only_survivors(digits_model, data) -> None:
    x, y = data
    kwargs = {"attacks": ATTACKS, "backends": ["art"], "progress": False, "checks": False}
    # the finer PGD breaks images the first one left (measured 2.5 points): a warning
    with pytest.warns(RuntimeWarning, match="had not converged"):
        full = evaluate(digits_model, x, y, **kwargs).models[0]
    with pytest.warns(RuntimeWarning, match="had not converged"):
        seq_report = evaluate(digits_model, x, y, all_or_nothing=True, **kwargs)
    seq = seq_report.models[0]
    # same worst case: an image counts only if every attack failed on it
    (tm_full,), (tm_seq,) = full.threat_models, seq.threat_models
    assert tm_seq.robust_examples == tm_full.robust_examples
    assert tm_seq.robust_accuracy == pytest.approx(tm_full.robust_accuracy)
    assert seq.all_or_nothing_accuracy == pytest.approx(full.all_or_nothing_accuracy)
    # each later attack ran on exactly the images still standing
    clean_n = round(full.clean_accuracy * N)
    attacked = [r.n_attacked for r in seq.results]
    standing = [round(r.robust_accuracy * N) for r in seq.results]
    assert attacked == [clean_n, *standing[:-1]]
    assert all(b <= a for a, b in itertools.pairwise(standing))
    assert seq.results[-1].robust_accuracy == pytest.approx(tm_seq.robust_accuracy)
    assert all(r.sequential for r in seq.results) and not any(r.sequential for r in full.results)
    # and the full run's per-attack numbers are never below the cumulative ones
    for f, s in zip(full.results, seq.results, strict=True):
        assert s.robust_accuracy <= f.robust_accuracy + 1e-9
    md = seq_report.to_markdown()
    assert "All-or-nothing run" in md and "attacked" in md
    assert json.loads(seq_report.to_json())["all_or_nothing"] is True


def test_rp2_inside_evaluate(digits_model, data, tmp_path) -> None:
    x, y = data
    rp2 = RP2Evaluation(config=RP2Config(max_iter=30, nb_transforms=2), n_images=30, targets=(0, 3))
    report = evaluate(
        digits_model,
        x,
        y,
        attacks=[ATTACKS[0]],
        backends=["art"],
        rp2=rp2,
        checks=False,
        progress=False,
    )
    r = report.models[0].rp2
    assert r is not None
    assert r["mask_fraction"] == pytest.approx(0.25, abs=0.02)
    assert [t["target"] for t in r["per_target"]] == [0, 3]
    # measured: 1.0 (target 0, 29 images) and 0.958 (target 3, 24 images)
    assert r["average"] >= 0.8 and r["worst"] == max(t["success"] for t in r["per_target"])
    assert 0 < r["l2_dissimilarity"] < 1
    mask = rp2.mask((8, 8))
    assert mask.shape == (8, 8) and set(np.unique(mask)) <= {0, 1}
    report.save(tmp_path)
    assert "RP2 stickers" in (tmp_path / "report.md").read_text()
    assert Report.load(tmp_path).models[0].rp2 == json.loads(json.dumps(r))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"area_fraction": 0}, "area_fraction"),
        ({"area_fraction": 1.5}, "area_fraction"),
        ({"n_images": 0}, "n_images"),
        ({"config": {"max_iter": 3}}, "RP2Config"),
    ],
)
def test_bad_rp2_evaluation(kwargs, match) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        RP2Evaluation(**kwargs)


def test_cli_sweeps_autoattack_all_or_nothing_rp2(digits_model, tmp_path) -> None:
    pytest.importorskip("torchattacks")
    save_model(digits_model, tmp_path / "m.safetensors")
    out = tmp_path / "out"
    argv = ["evaluate", "--model", str(tmp_path / "m.safetensors"), "--dataset", "digits"]
    argv += ["--n-samples", "40", "--quiet", "--out", str(out), "--steps", "10"]
    # an explicit list: AutoAttack through every backend that has it (foolbox skipped)
    argv += ["--attacks", "pgd", "--backends", "art,torchattacks,foolbox", "--autoattack"]
    argv += ["--aa-steps", "10"]
    argv += ["--aa-queries", "100", "--sweep", "steps,eps,restarts", "--max-steps", "20"]
    argv += ["--max-restarts", "2", "--sweep-eps", "0.05,0.1", "--all-or-nothing"]
    argv += ["--rp2", "--rp2-iter", "5", "--rp2-images", "10", "--no-checks"]
    assert main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    (m,) = rep["models"]
    assert rep["all_or_nothing"] is True
    assert [s["kind"] for s in m["sweeps"]] == ["steps", "eps", "restarts"]
    assert m["sweeps"][0]["values"] == [10, 20] and m["sweeps"][2]["values"] == [1, 2]
    assert {(r["attack"], r["backend"]) for r in m["results"]} >= {
        ("autoattack-linf", "art"),
        ("autoattack-linf", "torchattacks"),
    }
    assert m["results"][-1]["attack"] == "autoattack-linf"  # AutoAttack runs last
    if any(s["backend"] == "foolbox" for s in rep["skipped"]):
        assert rep["skipped"] == [
            {
                "attack": "autoattack-linf@0.1",
                "backend": "foolbox",
                "reason": rep["skipped"][0]["reason"],
            }
        ]
    assert m["rp2"]["n_images"] == 10 and (out / "sweeps.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sweep", "iterations"], "unknown sweep 'iterations'"),
        (["--sweep", "steps", "--attacks", "fgsm"], "needs pgd"),
        (["--sweep", "steps", "--max-steps", "5"], "leaves no steps value"),
        (["--rp2", "--rp2-area", "2"], "--rp2-area"),
    ],
)
def test_cli_bad_options(digits_model, tmp_path, capsys, extra, message) -> None:
    save_model(digits_model, tmp_path / "m.safetensors")
    argv = ["evaluate", "--model", str(tmp_path / "m.safetensors"), "--dataset", "digits"]
    argv += ["--n-samples", "10", "--quiet", "--backends", "art", "--out", str(tmp_path / "o")]
    assert main([*argv, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "report.json").exists()
