"""The ``xie`` table: the quick preset end to end, and its own logic against references."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import art_denoise.reproduce.xie as X
from art_denoise.data import Dataset
from art_denoise.evaluation.results import AttackResult, ModelReport
from art_denoise.recipes import ModelRecipe, build_model
from art_denoise.reproduce import ROW_FILE, reproduce
from art_denoise.reproduce.table import RowJob, TableContext

ROW_IDS = [r.id for r in X.ROWS]
ADV = [r.id for r in X.ROWS if r.adversarial]
CLEAN_BLOCKS = [r.id for r in X.ROWS if not r.adversarial and r.filter is not None]
NOISE = {r.id for r in X.ROWS if r.noise}
ATTACK_KEYS = ("tpgd10", "tpgd100", "pgd10", "pgd100", "worst")


# ---------------------------------------------------------------- the quick run, once


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("xie") / "run"
    results = reproduce("xie", out=out, preset="quick", progress=False, device="cpu")
    return out, results


def test_quick_has_every_row_with_its_seeds(quick: tuple[Path, dict]) -> None:
    _, results = quick
    assert [r["row"] for r in results["rows"]] == ROW_IDS
    for row in results["rows"]:
        assert row["seeds"] == list(range(3 if row["row"] in NOISE else 1)), row["row"]
    assert {"baseline", "nonlocal-gaussian", "clean-baseline"} == NOISE


def test_quick_cells_are_finite_and_in_range(quick: tuple[Path, dict]) -> None:
    _, results = quick
    for run in results["runs"]:
        cells, row = run["cells"], run["row"]
        filled = {k for k, v in cells.items() if v is not None}
        if row in ADV:
            assert filled == {"clean", *ATTACK_KEYS}, row
        elif row in CLEAN_BLOCKS:
            assert filled == {"clean", "clean_delta"}, row
        else:
            assert filled == {"clean"}, row
        for key in filled:
            assert math.isfinite(cells[key]), (row, key)
            low = -1.0 if key == "clean_delta" else 0.0
            assert low <= cells[key] <= 1.0, (row, key, cells[key])
        # a trained digits classifier, adversarially trained or not
        assert cells["clean"] > 0.8, row


def test_quick_worst_case_is_below_every_attack_and_clean(quick: tuple[Path, dict]) -> None:
    _, results = quick
    for run in (r for r in results["runs"] if r["row"] in ADV):
        cells, extra = run["cells"], run["extra"]
        subset_clean = extra["subset_clean_accuracy"]
        for key in ATTACK_KEYS:
            assert cells[key] <= subset_clean + 1e-12, (run["row"], key)
            assert cells["worst"] <= cells[key] + 1e-12, (run["row"], key)
        # the suite alone is part of the worst case, so never below it
        assert cells["worst"] <= extra["suite_worst_case"] + 1e-12
        assert extra["suite_worst_case"] <= subset_clean + 1e-12
        assert extra["n_attacked"] == 64
        # robust accuracies are shares of the 64 attacked images
        for key in ATTACK_KEYS:
            assert cells[key] * 64 == pytest.approx(round(cells[key] * 64), abs=1e-9)


def test_quick_clean_delta_is_paired_with_the_baseline_of_its_seed(
    quick: tuple[Path, dict],
) -> None:
    _, results = quick
    base = {r["seed"]: r["cells"]["clean"] for r in results["runs"] if r["row"] == "clean-baseline"}
    for run in (r for r in results["runs"] if r["row"] in CLEAN_BLOCKS):
        expected = run["cells"]["clean"] - base[run["seed"]]
        assert run["cells"]["clean_delta"] == pytest.approx(expected, abs=1e-12)


def test_quick_results_json_matches_the_row_files(quick: tuple[Path, dict]) -> None:
    out, results = quick
    assert json.loads((out / "results.json").read_text()) == results
    dirs = sorted(p.name for p in (out / "rows").iterdir())
    assert dirs == sorted(f"{r['row']}-seed{r['seed']}" for r in results["runs"])
    for run in results["runs"]:
        record = json.loads(
            (out / "rows" / f"{run['row']}-seed{run['seed']}" / ROW_FILE).read_text()
        )
        assert record["cells"] == run["cells"]
        assert record["extra"] == run["extra"]
    for row in results["rows"]:
        runs = [r for r in results["runs"] if r["row"] == row["row"]]
        for key, agg in row["cells"].items():
            values = [r["cells"][key] for r in runs if r["cells"][key] is not None]
            if not values:
                assert agg["mean"] is None
                continue
            assert agg["mean"] == pytest.approx(np.mean(values), abs=1e-12)
            if len(values) > 1:
                assert agg["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)


def test_quick_results_md_shows_the_source_and_our_setting(quick: tuple[Path, dict]) -> None:
    out, results = quick
    md = (out / "results.md").read_text()
    labels = {c.key: c.label for c in X.XieTable.columns}
    for key in ("clean", "tpgd10", "tpgd100", "worst", "clean_delta"):
        assert f"{labels[key]} (source)" in md
    for key in ("pgd10", "pgd100"):  # Xie report only the targeted attack
        assert f"| {labels[key]} (source)" not in md
    for value in ("52.5", "41.7", "55.7", "45.5", "78.91", "+0.17", "-0.12"):
        assert value in md
    assert "## What we find" in md and "digits" in md and "PGD-10 with step eps/10" in md
    assert len(results["findings"]) == 8
    assert any("+3.8" in f for f in results["findings"])
    png = out / "xie.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the table's own logic


def _ctx(
    preset: str, dataset: str, seeds: int = 1, shape: tuple[int, ...] = (1, 8, 8)
) -> TableContext:
    ctx = TableContext(
        preset=preset, dataset=dataset, data_path=None, seeds=seeds, device=torch.device("cpu")
    )
    x = np.zeros((4, *shape), dtype=np.float32)
    y = np.arange(4) % 2
    ctx._data = Dataset(dataset, x, y, x, y, num_classes=10)
    return ctx


def test_difference_beyond_noise_is_twice_the_std_of_a_single_seed_difference() -> None:
    # |d| > 2 * sqrt(sb^2 + sr^2), the row's std standing in for itself when known
    assert X.difference_beyond_noise(0.029, 0.01, 0.01) is True  # 2 * sqrt(2) * 0.01 = 0.0283
    assert X.difference_beyond_noise(0.028, 0.01, 0.01) is False
    assert X.difference_beyond_noise(-0.029, 0.01, None) is True  # baseline's std for both
    assert X.difference_beyond_noise(0.05, 0.01, 0.03) is False  # 2 * sqrt(0.001) = 0.0632
    assert X.difference_beyond_noise(0.5, None, 0.01) is None


def test_quick_jobs_seeds_and_configs() -> None:
    table = X.XieTable()
    jobs = table.jobs(_ctx("quick", "digits", seeds=2))
    seeds: dict[str, list[int]] = {}
    for j in jobs:
        seeds.setdefault(j.row, []).append(j.seed)
    assert list(seeds) == ROW_IDS  # table order: the clean baseline before its blocks
    for row, s in seeds.items():
        assert s == list(range(3 if row in NOISE else 2))
    config = {j.row: j.config for j in jobs}
    assert config["baseline"]["training"]["method"] == "pgd"
    assert config["clean-median"]["training"]["method"] == "none"
    assert "evaluation" not in config["clean-median"]
    assert config["median"]["model"]["denoise_after"] == list(X.SMALLCNN_PRE_POOL)
    assert config["all-nonlocal"]["model"]["denoise_after"] == list(X.SMALLCNN_ALL)
    assert config["nonlocal-dot"]["model"]["denoise_options"] == {"embed": True, "mode": "dot"}
    assert "denoise" not in config["baseline"]["model"]
    ev = config["baseline"]["evaluation"]
    # Xie: step 1/16 of eps, but eps/10 for 10 iterations (Sec. 6.1)
    assert ev["pgd_step_sizes"] == pytest.approx([ev["eps"] / 10, ev["eps"] / 16], rel=1e-12)
    assert ev["pgd_steps"] == [10, 100]
    # every adversarial row shares one training and one evaluation
    for row in ADV:
        assert config[row]["training"] == config["baseline"]["training"]
        assert config[row]["evaluation"] == ev


def test_full_fashion_mnist_is_the_readme_recipe_after_the_stages() -> None:
    jobs = X.XieTable().jobs(_ctx("full", "fashion-mnist", seeds=3, shape=(1, 28, 28)))
    config = {j.row: j.config for j in jobs}
    tr = config["baseline"]["training"]
    expected = {"eps": 0.12, "steps": 2, "step_size": 0.08, "prob_start_from_clean": 0.0}
    assert {k: tr[k] for k in expected} == expected
    assert (tr["epochs"], tr["batch_size"], tr["method"]) == (14, 128, "pgd")
    assert config["baseline"]["model"] == {"model": "smallcnn"}
    assert config["median"]["model"]["denoise_after"] == "stages"
    ev = config["baseline"]["evaluation"]
    assert (ev["eps"], ev["n_test"], ev["apgd_steps"], ev["target_classes"]) == (0.1, 1000, 100, 9)
    assert ev["checks"] is True and "art" in ev["suite_backends"]
    assert len(jobs) == 3 * len(ROW_IDS)


def test_cifar10_jobs_build_preact_resnet18_models() -> None:
    ctx = TableContext(
        preset="full", dataset="cifar10", data_path=None, seeds=1, device=torch.device("cpu")
    )
    table = X.XieTable()
    table.check(ctx)
    jobs = table.jobs(ctx)  # no data needed to list the jobs
    config = {j.row: j.config for j in jobs}
    ev = config["baseline"]["evaluation"]
    assert (
        ev["eps"] == pytest.approx(8 / 255) and config["baseline"]["training"]["eps"] == ev["eps"]
    )
    assert config["all-nonlocal"]["model"]["denoise_after"] == "all-blocks"
    assert "preact-resnet18" in table.setting(ctx)
    built = {}
    for row in ("null", "nonlocal-dot", "median", "all-nonlocal"):
        model = build_model(
            ModelRecipe(**config[row]["model"]), input_shape=(3, 32, 32), num_classes=10, seed=0
        )
        built[row] = [n for n, _ in model.named_modules() if n.endswith(".denoise")]
    assert built["median"] == [f"layer{i}.denoise" for i in range(1, 5)]
    assert len(built["all-nonlocal"]) == 8  # PreAct-ResNet-18's residual blocks


def _result(steps: int, targeted: bool, backend: str, acc: float, mask: str) -> AttackResult:
    return AttackResult(
        attack="pgd-linf",
        backend=backend,
        norm="inf",
        eps=0.1,
        step_size=0.1 / 16 if steps != 20 else 0.1 / 8,
        steps=steps,
        random_start=True,
        restarts=1,
        targeted=targeted,
        robust_accuracy=acc,
        attack_success_rate=0.0,
        l2_dissimilarity=0.0,
        max_perturbation=0.1,
        seconds=0.0,
        robust_examples=mask,
    )


def test_pgd_result_and_suite_worst_case_on_a_hand_made_report() -> None:
    ours = [
        _result(10, True, "native", 0.75, "1110"),
        _result(10, False, "native", 0.50, "1100"),
        _result(100, True, "native", 0.25, "1000"),
    ]
    suite = [_result(20, False, "native", 0.75, "0111"), _result(20, False, "art", 0.5, "0110")]
    report = ModelReport(name="m", defense="none", clean_accuracy=1.0, results=ours + suite)
    kw = {"eps": 0.1, "step_size": 0.1 / 16}
    assert X.pgd_result(report, steps=10, targeted=False, **kw) is ours[1]
    assert X.pgd_result(report, steps=100, targeted=True, **kw) is ours[2]
    with pytest.raises(KeyError, match="PGD-100"):
        X.pgd_result(report, steps=100, targeted=False, **kw)
    # the suite's images standing: 0111 & 0110 = 2 of 4
    assert X.suite_worst_case(report, ours) == pytest.approx(0.5)


def _agg(mean: float, std: float | None, seeds: int) -> dict[str, Any]:
    return {"mean": mean, "std": std, "n": seeds}


def _rows(gain: float, base_std: float | None, deltas: dict[str, float]) -> list[dict[str, Any]]:
    seeds = 3 if base_std is not None else 1
    rows = []
    for r in X.ROWS:
        n = seeds if r.noise else 1
        adv = r.adversarial
        value = 0.5 + (gain if r.id == "nonlocal-gaussian" else 0.0)
        cells = {k: _agg(value, base_std if r.noise else None, n) for k in ATTACK_KEYS}
        cells["clean"] = _agg(0.9, base_std if r.noise else None, n)
        cells["clean_delta"] = _agg(deltas.get(r.id, 0.0), None, 1)
        if not adv:
            cells = {
                k: v if k in ("clean", "clean_delta") else _agg(0, None, 0)
                for k, v in cells.items()
            }
        rows.append({"row": r.id, "label": r.label, "seeds": list(range(n)), "cells": cells})
    return rows


def test_findings_follow_the_numbers() -> None:
    table, ctx = X.XieTable(), _ctx("quick", "digits")
    big = table.findings(_rows(0.1, 0.01, {}), ctx)
    assert "+10.0 points, beyond the seed noise" in big[1] and "+3.8" in big[1]
    assert "1 of 7 block variants gain beyond the seed noise" in big[4]
    small = table.findings(_rows(0.01, 0.01, {}), ctx)
    assert "within the seed noise" in small[1] and "no measurable gain" in small[1]
    loss = table.findings(_rows(-0.1, 0.01, {}), ctx)
    assert "a loss beyond the seed noise" in loss[1]
    unknown = table.findings(_rows(0.1, None, {}), ctx)
    assert "noise is unknown" in unknown[1]
    clean = table.findings(_rows(0.0, 0.01, {"clean-median": -0.05}), ctx)
    assert "-5.0 to +0.0 points" in clean[-1] and "beyond the seed noise" in clean[-1]
    assert "clean-median" in clean[-1] and "= 2.8" in clean[-1]
    # 2.5 points: beyond twice the std (2.0) but within 2 sqrt(2) x the std, the rule of
    # a difference of two single-seed runs that the adversarial rows use too
    within = table.findings(_rows(0.0, 0.01, {"clean-median": -0.025}), ctx)
    assert "all within the seed noise" in within[-1]


def test_paired_baseline_is_required_and_must_match(tmp_path: Path) -> None:
    row_dir = tmp_path / "clean-mean-seed0"
    with pytest.raises(RuntimeError, match="has not run"):
        X._paired_baseline_clean(row_dir, 0, {"epochs": 1})
    base = tmp_path / RowJob("clean-baseline", "", 0).key
    base.mkdir()
    record = {"config": {"training": {"epochs": 2}}, "cells": {"clean": 0.9}}
    (base / ROW_FILE).write_text(json.dumps(record))
    with pytest.raises(RuntimeError, match="trained otherwise"):
        X._paired_baseline_clean(row_dir, 0, {"epochs": 1})
    assert X._paired_baseline_clean(row_dir, 0, {"epochs": 2}) == 0.9


def test_model_recipe_denoise_options_reach_the_filter() -> None:
    recipe = ModelRecipe(
        widths=[4, 8], hidden=8, denoise="nonlocal", denoise_options={"embed": True, "mode": "dot"}
    )
    model = build_model(recipe, input_shape=(1, 8, 8), num_classes=10, seed=0)
    filters = [m.filter for n, m in model.named_modules() if n.endswith(".denoise")]
    assert [(f.mode, f.embed) for f in filters] == [("dot", True), ("dot", True)]
    with pytest.raises(ValueError, match="need a --denoise filter"):
        ModelRecipe(denoise_options={"kernel_size": 3})
    with pytest.raises(TypeError, match="must be a dict"):
        ModelRecipe(denoise="mean", denoise_options=[("kernel_size", 3)])  # type: ignore[arg-type]


def test_a_clean_block_row_waits_for_the_clean_baseline_of_its_seed() -> None:
    table = X.XieTable()
    assert table.depends_on(RowJob("clean-median", "", 2)) == ("clean-baseline-seed2",)
    for row in ("clean-baseline", "baseline", "median", "all-nonlocal"):
        assert table.depends_on(RowJob(row, "", 1)) == ()
    x, y = np.zeros((2, 1, 28, 28), np.float32), np.array([0, 1])
    ctx = TableContext("full", "fashion-mnist", None, 1, torch.device("cpu"))
    ctx._data = Dataset("fashion-mnist", x, y, x, y, num_classes=10)  # shapes only
    keys = [job.key for job in table.jobs(ctx)]
    for i, key in enumerate(keys):  # the runner needs each dependency earlier
        job = RowJob(key.rsplit("-seed", 1)[0], "", int(key.rsplit("-seed", 1)[1]))
        assert all(dep in keys[:i] for dep in table.depends_on(job))
