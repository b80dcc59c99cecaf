"""The ``blurnet`` table: the quick preset end to end, and its own logic against references."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import art_denoise.reproduce.blurnet as B
from art_denoise.data import Dataset
from art_denoise.reproduce import ROW_FILE, reproduce
from art_denoise.reproduce.table import RowJob, RowResult, TableContext, config_digest
from art_denoise.spectral import high_frequency_energy_ratio

ROW_IDS = [r.id for r in B.ROWS]
SOURCE_KEYS = ("clean", "rp2_avg", "rp2_worst", "l2")


# ---------------------------------------------------------------- the quick run, once


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("blurnet") / "run"
    results = reproduce("blurnet", out=out, preset="quick", progress=False, device="cpu")
    return out, results


def test_quick_has_every_row_and_finite_cells_in_range(quick: tuple[Path, dict]) -> None:
    _, results = quick
    assert [r["row"] for r in results["rows"]] == ROW_IDS
    units = {c["key"]: c["unit"] for c in results["columns"]}
    for row in results["rows"]:
        assert set(row["cells"]) == set(units)
        for key, cell in row["cells"].items():
            value = cell["mean"]
            assert value is not None and math.isfinite(value), (row["row"], key)
            if units[key] == "%":
                assert 0.0 <= value <= 1.0, (row["row"], key, value)
            else:
                assert value >= 0.0
        # a trained digits classifier, and a worst case over attacks that include PGD
        assert row["cells"]["clean"]["mean"] > 0.8
        assert row["cells"]["worst"]["mean"] <= row["cells"]["pgd"]["mean"] + 1e-12


def test_quick_rp2_summary_matches_its_per_target_table(quick: tuple[Path, dict]) -> None:
    _, results = quick
    for run in results["runs"]:
        per = run["extra"]["rp2_per_target"]
        assert [t["target"] for t in per] == list(range(B.QUICK.rp2_targets or 0))
        success = [t["success"] for t in per]
        assert run["cells"]["rp2_avg"] == pytest.approx(np.mean(success), abs=1e-12)
        assert run["cells"]["rp2_worst"] == pytest.approx(max(success), abs=1e-12)
        l2 = np.mean([t["l2_dissimilarity"] for t in per])
        assert run["cells"]["l2"] == pytest.approx(l2, rel=1e-12)
        # each target attacks the victims of the other classes
        victims = run["extra"]["rp2_victims"]
        assert victims == B.QUICK.rp2_images
        assert all(0 < t["n"] <= victims for t in per)


def test_quick_results_md_shows_the_source_and_our_setting(quick: tuple[Path, dict]) -> None:
    out, _ = quick
    md = (out / "results.md").read_text()
    labels = {c.key: c.label for c in B.BlurNetTable.columns}
    for key in SOURCE_KEYS:
        assert f"{labels[key]} (source)" in md
    assert f"{labels['worst']} (source)" not in md  # the source measured no L-inf attack
    for value in ("49.18", "11.61", "7.92", "0.207", "24.11†"):
        assert value in md
    assert "crude" in md and "## What we find" in md and "RP2 average success" in md


def test_quick_results_json_matches_the_row_files(quick: tuple[Path, dict]) -> None:
    out, results = quick
    assert len(results["runs"]) == len(ROW_IDS)
    for run in results["runs"]:
        record = json.loads(
            (out / "rows" / f"{run['row']}-seed{run['seed']}" / ROW_FILE).read_text()
        )
        assert record["cells"] == run["cells"]
        assert record["config_sha256"] == config_digest(record["config"])
        row = next(r for r in results["rows"] if r["row"] == run["row"])
        for key, value in run["cells"].items():  # one seed: the mean is the run's cell
            assert row["cells"][key]["mean"] == value
            assert row["cells"][key]["std"] is None


def test_quick_writes_the_figure(quick: tuple[Path, dict]) -> None:
    out, _ = quick
    assert (out / "blurnet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the table's own logic


@pytest.mark.parametrize(("p", "n"), [(0.5, 100), (0.2, 144), (0.0, 7), (1.0, 3), (0.37, 1)])
def test_binomial_se_is_the_formula(p: float, n: int) -> None:
    assert B.binomial_se(p, n) == pytest.approx(math.sqrt(p * (1 - p) / n), rel=1e-15)


@pytest.mark.parametrize(("p", "n"), [(-0.1, 10), (1.5, 10), (0.5, 0)])
def test_binomial_se_rejects_bad_input(p: float, n: int) -> None:
    with pytest.raises(ValueError, match=r"p must|n must"):
        B.binomial_se(p, n)


def test_differs_uses_two_standard_errors_of_the_difference() -> None:
    se = 0.03  # the difference's standard error is 0.03 * sqrt(2) = 0.0424
    assert B.differs(0.5, 0.5 - 0.09, se, se)  # 0.09 > 2 * 0.0424
    assert not B.differs(0.5, 0.5 - 0.08, se, se)  # 0.08 < 0.0849
    assert B.differs(0.1, 0.3, 0.05, 0.05) == B.differs(0.3, 0.1, 0.05, 0.05)
    assert not B.differs(0.1, 0.3, 0.05, 0.05, z=3.0)


def test_printable_colors_are_the_corners_and_mid_grey() -> None:
    assert B.printable_colors(1) == [[0.1], [0.9], [0.5]]
    assert B.printable_colors(2) == [[0.1, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.9], [0.5, 0.5]]
    assert len(B.printable_colors(3)) == 9
    with pytest.raises(ValueError, match="channels"):
        B.printable_colors(0)


def test_row_means_averages_seeds_and_skips_missing_cells() -> None:
    jobs = [RowJob(row="a", label="A", seed=s) for s in range(3)]
    values = [0.2, 0.5, 0.65]
    results = [
        RowResult(j, {"x": v, "y": None if s else 1.0}, {}, 1.0)
        for s, (j, v) in enumerate(zip(jobs, values, strict=True))
    ]
    results.append(RowResult(RowJob(row="b", label="B", seed=0), {"x": 0.1}, {}, 1.0))
    means = B.row_means(results)
    assert list(means) == ["a", "b"]
    assert means["a"][0] == "A"
    assert means["a"][1]["x"] == pytest.approx(np.mean(values), rel=1e-15)
    assert means["a"][1]["y"] == 1.0


def test_rp2_pairs_counts_victims_times_targets_of_other_classes() -> None:
    assert B._rp2_pairs(B.QUICK, 10) == round(40 * 4 * 9 / 10)
    assert B._rp2_pairs(B.FULL, 18) == round(50 * 18 * 17 / 18)
    assert B._rp2_pairs(B.QUICK, 2) == round(40 * 2 * 1 / 2)  # only two targets exist


def _ctx(data: Dataset | None = None, seeds: int = 1) -> TableContext:
    ctx = TableContext(
        preset="quick", dataset="folder", data_path=None, seeds=seeds, device=torch.device("cpu")
    )
    ctx._data = data
    return ctx


def test_jobs_one_per_row_and_seed_with_distinct_json_configs() -> None:
    table = B.BlurNetTable()
    jobs = table.jobs(_ctx(seeds=2))
    assert [(j.row, j.seed) for j in jobs] == [(r, s) for r in ROW_IDS for s in (0, 1)]
    digests = {config_digest(j.config) for j in jobs if j.seed == 0}
    assert len(digests) == len(ROW_IDS)
    config = jobs[0].config["preset"]
    assert config["rp2_iter"] == B.QUICK.rp2_iter and config["eps"] == B.QUICK.eps
    assert tuple(config["transforms"]["rotation"]) == B.TRANSFORMS.rotation


def test_check_accepts_folder_and_refuses_unknown_datasets() -> None:
    table = B.BlurNetTable()
    table.check(_ctx())  # "folder": the paper's road signs go through it
    bad = _ctx()
    bad.dataset = "svhn"
    with pytest.raises(ValueError, match="svhn"):
        table.check(bad)


def test_preset_rp2_pins_every_setting() -> None:
    rp2 = B.QUICK.rp2(channels=3, num_classes=2, seed=5)
    assert rp2.targets == (0, 1)  # the first rp2_targets classes that exist
    assert rp2.n_images == B.QUICK.rp2_images and rp2.seed == 5
    assert (rp2.area_fraction, rp2.n_stickers) == (B.QUICK.mask_area, B.QUICK.stickers)
    cfg = rp2.config
    assert cfg.random_seed == 5 and cfg.max_iter == B.QUICK.rp2_iter
    assert cfg.nb_transforms == B.QUICK.rp2_transforms and cfg.transforms == B.TRANSFORMS
    assert cfg.nps_colors == tuple(tuple(c) for c in B.printable_colors(3))
    assert B.FULL.rp2(channels=1, num_classes=18, seed=0).targets is None


def _agg(cells: dict[str, float], label: str, row: str) -> dict[str, Any]:
    return {
        "row": row,
        "label": label,
        "cells": {k: {"mean": v, "std": None, "n": 1} for k, v in cells.items()},
    }


def _rows(rp2: dict[str, float], worst: dict[str, float]) -> list[dict[str, Any]]:
    out = []
    for r in B.ROWS:
        cells = {
            "clean": 0.95,
            "rp2_avg": rp2.get(r.id, 0.5),
            "worst": worst.get(r.id, 0.4),
            "pgd": worst.get(r.id, 0.4) + 0.01,
            "hf_in_clean": 0.3,
            "hf_in_rp2": 0.45,
            "hf_l1_clean": 0.2 if r.id.startswith("box") else 0.45,
            "hf_l1_rp2": 0.25 if r.id.startswith("box") else 0.55,
        }
        out.append(_agg(cells, r.label, r.id))
    return out


def _toy_data(n: int = 10) -> Dataset:
    y = np.arange(n) % 10
    x = np.zeros((n, 1, 8, 8), np.float32)
    return Dataset("toy", x, y, x, y, num_classes=10)


def test_findings_agree_when_every_defended_row_drops_rp2_success() -> None:
    rows = _rows({r: 0.1 for r in ROW_IDS[1:]}, {})
    text = B.BlurNetTable().findings(rows, _ctx(_toy_data()))
    assert "every defended row lowers RP2 success" in text[0]
    assert "Lower RP2 success without higher L-inf robustness" in text[1]
    assert "Their RP2 success drops too" in text[3]


def test_findings_disagree_when_nothing_changes() -> None:
    text = B.BlurNetTable().findings(_rows({}, {}), _ctx(_toy_data()))
    assert "we do not reproduce the drop" in text[0]
    assert "within noise" in text[0]
    assert "removing the high frequencies did not stop the stickers" in text[3]
    assert "TV rows" in text[3] and "none lower" in text[3]
    # a 1-point PGD/worst-case gap on the 10 test images is within noise
    assert "agree within noise" in text[1]


def test_findings_noise_threshold_matches_the_binomial_reference() -> None:
    # 144 pairs: se(0.5) = 0.0417, so a drop must exceed 2 * sqrt(2) * se ~ 0.118
    base = 0.5
    se = math.sqrt(base * (1 - base) / 144)
    small, large = 0.06, 0.16
    for drop, beyond in ((small, False), (large, True)):
        lo = base - drop
        threshold = 2 * math.hypot(se, math.sqrt(lo * (1 - lo) / 144))
        assert (drop > threshold) is beyond
        text = B.BlurNetTable().findings(_rows({"box3": lo}, {}), _ctx(_toy_data()))[0]
        assert ("lower beyond noise: box 3x3" in text) is beyond


def _rgb_data(seed: int = 0) -> Dataset:
    """Four classes of 8x8 RGB images (a "folder"): class k < 3 is bright in channel k,
    class 3 in none (APGD-T needs 4 classes)."""
    rng = np.random.default_rng(seed)
    y = np.arange(120) % 4
    x = rng.uniform(0.0, 0.3, (120, 3, 8, 8)).astype(np.float32)
    bright = y < 3
    x[np.arange(120)[bright], y[bright], 2:6, 2:6] += 0.6
    return Dataset("folder", x[:80], y[:80], x[80:], y[80:], num_classes=4)


TINY = dataclasses.replace(
    B.QUICK,
    widths=(4, 8),
    hidden=8,
    epochs=6,
    batch_size=20,
    lr=1e-2,
    n_test=30,
    pgd_steps=2,
    apgd_steps=2,
    target_classes=9,
    rp2_iter=3,
    rp2_transforms=2,
    rp2_images=6,
    rp2_targets=2,
)


def test_run_row_on_rgb_images_is_seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(B._PRESETS, "quick", TINY)
    table = B.BlurNetTable()
    ctx = _ctx(_rgb_data())
    job = next(j for j in table.jobs(ctx) if j.row == "learnable-linf")
    first = table.run_row(job, ctx, tmp_path / "a")
    again = table.run_row(job, ctx, tmp_path / "b")  # a fresh directory
    resumed = table.run_row(job, ctx, tmp_path / "a")  # the finished checkpoint reused
    assert set(first.cells) == {c.key for c in table.columns}
    assert first.cells == again.cells == resumed.cells
    assert [t["target"] for t in first.extra["rp2_per_target"]] == [0, 1]
    assert first.cells["clean"] > 0.9  # the toy task is learnt
    assert first.extra["attacks"]  # APGD-T ran on its 3 other classes


def test_spectral_cells_measure_rp2_victims(tmp_path: Path) -> None:
    torch.manual_seed(0)
    from art_denoise.models import create_model

    model = create_model("smallcnn", input_shape=(1, 8, 8), num_classes=3, widths=[4, 8]).eval()
    x = torch.rand(20, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::2] = (y[::2] + 1) % 3  # half of them misclassified: not victims
    rp2 = dataclasses.replace(B.QUICK, rp2_iter=2, rp2_images=4).rp2(
        channels=1, num_classes=3, seed=0
    )
    cells = B.spectral_cells(model, rp2, x, y, num_classes=3)
    victims = x[1::2][:4]  # the first four classified right
    reference = float(high_frequency_energy_ratio(victims, B.HF_RADIUS).mean())
    assert cells["hf_in_clean"] == pytest.approx(reference, rel=1e-12)
    assert all(0.0 <= v <= 1.0 for v in cells.values())
