"""``art-denoise reproduce autoencoder``: the course report's table, quick preset end to end,
and the table's own pieces against references."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from art_denoise.reproduce import ROW_FILE, get_table, reproduce
from art_denoise.reproduce.autoencoder_table import (
    ROWS,
    SETTINGS,
    findings_from_means,
    gain,
    gain_noise,
    state_sha256,
)
from art_denoise.reproduce.table import RowJob, TableContext

THROUGH = ("fgsm-transfer", "fgsm", "fgsm-eot", "pgd-eot", "apgd-eot", "bpda-eot")


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ae") / "run"
    content = reproduce("autoencoder", out=out, preset="quick", progress=False, device="cpu")
    return out, content


# --------------------------------------------------------------- end to end (quick)
def test_every_row_and_cell(quick) -> None:
    _, content = quick
    table = get_table("autoencoder")
    assert [r["row"] for r in content["rows"]] == [r.row for r in ROWS]
    for row in content["rows"]:
        assert row["seeds"] == [0]
        for c in table.columns:
            value = row["cells"][c.key]["mean"]
            assert value is not None and math.isfinite(value) and 0.0 <= value <= 1.0, (row, c)


def test_worst_case_is_below_every_attack(quick) -> None:
    """The worst case counts an image only if every attack failed on it: at most each
    attack's own accuracy, and at most the suite's worst case."""
    _, content = quick
    for run in content["runs"]:
        cells = run["cells"]
        for key in (*THROUGH, "clean"):
            assert cells["worst"] <= cells[key] + 1e-12, (run["row"], key)
        assert cells["worst"] <= run["extra"]["suite_worst_case"] + 1e-12


def test_no_filter_row_bpda_is_plain_pgd(quick) -> None:
    """Without a purifier the BPDA model is the classifier: the same seeded PGD."""
    _, content = quick
    (none,) = [r for r in content["runs"] if r["row"] == "none"]
    assert none["cells"]["bpda-eot"] == pytest.approx(none["cells"]["pgd-eot"], abs=1e-12)
    assert none["cells"]["fgsm-transfer"] == pytest.approx(none["cells"]["fgsm"], abs=1e-12)


def test_same_classifier_and_nested_autoencoders(quick) -> None:
    """Every row trains the same classifier; a k-stack is the first k layers of the
    4-stack; the deterministic row's autoencoder is the noisy one-layer row's."""
    _, content = quick
    runs = {r["row"]: r["extra"] for r in content["runs"]}
    assert len({e["classifier_sha256"] for e in runs.values()}) == 1
    # trained once, in the no-filter row; the other rows load it from there
    out, _ = quick
    for row in runs:
        trained_here = (out / "rows" / f"{row}-seed0" / "model.safetensors").exists()
        assert trained_here == (row == "none"), row
    four = runs["ae4"]["autoencoder_layer_sha256"]
    assert len(set(four)) == 4
    for k in (1, 2, 3):
        assert runs[f"ae{k}"]["autoencoder_layer_sha256"] == four[:k]
    assert runs["ae1-det"]["autoencoder_layer_sha256"] == four[:1]


def test_results_files_agree(quick) -> None:
    out, content = quick
    assert json.loads((out / "results.json").read_text()) == content
    for run in content["runs"]:
        record = json.loads(
            (out / "rows" / f"{run['row']}-seed{run['seed']}" / ROW_FILE).read_text()
        )
        assert record["cells"] == run["cells"] and record["config"]["layers"] == next(
            r.layers for r in ROWS if r.row == run["row"]
        )
    md = (out / "results.md").read_text()
    for text in ("77.73", "9.57", "9.66", "35.44", "53.32", "65.72", "(source)", "What we find"):
        assert text in md
    assert (out / "autoencoder_layers.png").stat().st_size > 1000
    assert content["findings"] and all(isinstance(f, str) for f in content["findings"])


# ------------------------------------------------------------------------ units
def test_state_sha256_tells_weights_apart() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    assert state_sha256(a) != state_sha256(b)
    b.load_state_dict(a.state_dict())
    assert state_sha256(a) == state_sha256(b)
    with torch.no_grad():
        b.bias[0] += 1e-6
    assert state_sha256(a) != state_sha256(b)


def test_gain_noise_is_two_binomial_standard_errors() -> None:
    p, q, n = 0.1, 0.4, 200
    want = 2 * math.sqrt(p * (1 - p) / n + q * (1 - q) / n)
    assert gain_noise(p, q, n) == pytest.approx(want, rel=1e-12)
    assert gain_noise(0.0, 0.0, 50) == pytest.approx(1 / 50)  # never below one image
    assert gain(None, 0.5) is None and gain(0.25, 0.5) == pytest.approx(0.25)


def _means(transfer: tuple[float, float], worst: tuple[float, float]) -> dict:
    row = {k: 0.3 for k in ("clean", *THROUGH, "worst")}
    return {
        "none": {**row, "fgsm-transfer": transfer[0], "worst": worst[0], "clean": 0.9},
        "ae4": {**row, "fgsm-transfer": transfer[1], "worst": worst[1], "clean": 0.8},
        "ae1-det": {**row, "worst": 0.10},
        "ae1": {**row, "worst": 0.12},
    }


def test_findings_say_when_the_gain_disappears() -> None:
    text = findings_from_means(_means((0.10, 0.53), (0.02, 0.04)), n_images=100)
    joined = " ".join(text)
    assert "+43.0 points" in joined and "a gain, as in the report" in joined
    # 2 points on 100 images: 2 SE = 2 sqrt(.02*.98/100 + .04*.96/100) = 4.8 points
    assert "gain disappears under adaptive attacks: +2.0 points" in joined
    assert "two standard errors: 4.8 points" in joined
    assert "Clean accuracy 90.0% -> 80.0%" in joined
    assert "+2.0 points, within sampling noise" in joined


def test_findings_say_when_part_of_the_gain_survives() -> None:
    joined = " ".join(findings_from_means(_means((0.10, 0.53), (0.0, 0.30)), n_images=1000))
    assert "Part of the gain survives adaptive attacks: +30.0 points" in joined
    assert "disappears" not in joined
    small = " ".join(findings_from_means(_means((0.10, 0.12), (0.0, 0.0)), n_images=100))
    assert "within sampling noise, unlike the report" in small


def test_jobs_pin_every_setting() -> None:
    table = get_table("autoencoder")
    ctx = TableContext(
        preset="quick", dataset="digits", data_path=None, seeds=2, device=torch.device("cpu")
    )
    jobs = table.jobs(ctx)
    assert [(j.row, j.seed) for j in jobs] == [(r.row, s) for r in ROWS for s in (0, 1)]
    s = SETTINGS["quick"]
    for j in jobs:
        assert j.config["eps"] == s.eps and j.config["eot"] == s.eot
        assert j.config["apgd_steps"] == s.apgd_steps and j.config["noise_sigma"] == 0.1
        assert j.config["classifier"]["seed"] == j.seed
    assert SETTINGS["full"].apgd_steps == 100 and SETTINGS["full"].eot == 20
    assert table.default_dataset("full") == "fashion-mnist"


def test_an_autoencoder_row_waits_for_the_classifier_and_the_shared_stack() -> None:
    table = get_table("autoencoder")
    assert table.depends_on(RowJob("none", "", 1)) == ()
    assert table.depends_on(RowJob("ae1-det", "", 1)) == ("none-seed1",)
    assert table.depends_on(RowJob("ae3", "", 2)) == ("none-seed2", "ae1-det-seed2")


# ------------------------------------------------------- resume after a killed save
@pytest.mark.parametrize(
    "broken",
    [("rows/ae1-det-seed0",), ("rows/ae1-det-seed0", "shared/autoencoders-seed0")],
    ids=["row-pair", "row-and-shared-pairs"],
)
def test_a_save_killed_between_its_two_files_is_made_again_on_resume(
    quick, tmp_path, capsys, broken
) -> None:
    """A kill after a save's weights and before its JSON (simulated: the JSON deleted, the
    row not finished) left weights that no resume could load. The pair is now made again
    (taken from the seed's stack, or retrained), replaced, and the resumed run equals the
    uninterrupted one; the finished rows are reused as they were."""
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch

    first, content = quick
    out = tmp_path / "run"
    shutil.copytree(first, out)
    (out / "rows" / "ae1-det-seed0" / ROW_FILE).unlink()  # killed before the row finished
    for folder in broken:
        (out / folder / "autoencoder.json").unlink()
    others = {
        p.parent.name: p.read_bytes()
        for p in (out / "rows").glob(f"*/{ROW_FILE}")
        if p.parent.name != "ae1-det-seed0"
    }
    assert len(others) == len(ROWS) - 1

    again = reproduce("autoencoder", out=out, preset="quick", progress=True, device="cpu")

    printed = capsys.readouterr().out
    for folder in broken:
        assert f"autoencoder: {out / folder / 'autoencoder.safetensors'} does not load" in printed
    assert printed.count("does not load") == len(broken)  # a pair that loads is reused
    assert [(r["row"], r["cells"]) for r in again["runs"]] == [
        (r["row"], r["cells"]) for r in content["runs"]
    ]
    assert [(r["row"], r["cells"]) for r in again["rows"]] == [
        (r["row"], r["cells"]) for r in content["rows"]
    ]
    before = {r["row"]: r["extra"] for r in content["runs"]}
    after = {r["row"]: r["extra"] for r in again["runs"]}
    for key in ("autoencoder_layer_sha256", "classifier_sha256"):
        assert after["ae1-det"][key] == before["ae1-det"][key], key
    # only the unfinished row ran: the others' records are byte for byte the same
    for key, data in others.items():
        assert (out / "rows" / key / ROW_FILE).read_bytes() == data, key
    # the replaced pairs load, holding the stacks the killed run had saved
    want = {
        "rows/ae1-det-seed0": before["ae1-det"]["autoencoder_layer_sha256"],
        "shared/autoencoders-seed0": before["ae4"]["autoencoder_layer_sha256"],
    }
    for folder in want:
        pre = DenoisingAutoencoderPyTorch.load(out / folder / "autoencoder.safetensors")
        assert [state_sha256(m) for m in pre.model.layers] == want[folder], folder
