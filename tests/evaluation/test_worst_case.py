"""One worst case per threat model, the convergence warning, the status, DeepFool's norms."""

from __future__ import annotations

import json
import warnings
from typing import NamedTuple

import numpy as np
import pytest
import torch

from art_denoise.attacks.backends import get_backend
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation import Report, evaluate
from art_denoise.evaluation.checks import check_convergence
from art_denoise.evaluation.metrics import predict
from art_denoise.evaluation.results import (
    AttackResult,
    Check,
    ModelReport,
    NormStats,
    ThreatModelResult,
    mask_to_str,
    str_to_mask,
)
from art_denoise.evaluation.worst_case import mixed_accuracy, threat_models

N = 100
FGSM1 = AttackSpec(attack="fgsm", eps=0.1)
PGD1 = AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20, random_start=True)
PGD2 = AttackSpec(attack="pgd", eps=0.2, step_size=0.025, steps=20, random_start=True)
PGD_L2 = AttackSpec(attack="pgd", norm="2", eps=0.6, step_size=0.1, steps=20)
DEEPFOOL = AttackSpec(attack="deepfool", norm="2", eps=None, steps=50)


@pytest.fixture
def data(digits) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, x_te, y_te = digits
    return torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])


def _result(
    attack: str,
    robust: str,
    *,
    eps: float | None = 0.1,
    norm: str = "inf",
    backend: str = "art",
    eot: int = 1,
    norms: tuple[float | None, ...] | None = None,
) -> AttackResult:
    mask = str_to_mask(robust)
    return AttackResult(
        attack=attack,
        backend=backend,
        norm=norm,
        eps=eps,
        step_size=None,
        steps=10,
        random_start=False,
        restarts=1,
        targeted=False,
        robust_accuracy=float(mask.mean()),
        attack_success_rate=0.0,
        l2_dissimilarity=0.0,
        max_perturbation=0.0,
        seconds=0.0,
        eot_samples=eot,
        robust_examples=robust,
        perturbation_norms=norms,
    )


# ------------------------------------------------------------------ worst case, by hand


def test_worst_case_is_the_per_example_minimum_of_hand_made_outcomes() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((4, 50)) < 0.7
    rows = [
        _result("pgd-linf", mask_to_str(masks[0])),
        _result("pgd-linf", mask_to_str(masks[1]), backend="foolbox"),
        _result("pgd-linf", mask_to_str(masks[2]), eps=0.2),
        _result("apgd-ce-linf", mask_to_str(masks[3])),
    ]
    tm1, tm2 = threat_models(rows)
    expected = masks[[0, 1, 3]].min(axis=0)  # the minimum over every attack at eps 0.1
    assert (tm1.norm, tm1.eps) == ("inf", 0.1) and (tm2.norm, tm2.eps) == ("inf", 0.2)
    assert np.array_equal(str_to_mask(tm1.robust_examples), expected)
    assert tm1.robust_accuracy == pytest.approx(expected.mean())
    assert tm1.attacks == ("pgd-linf/art", "pgd-linf/foolbox", "apgd-ce-linf/art")
    running = [masks[0], masks[0] & masks[1], masks[0] & masks[1] & masks[3]]
    assert tm1.running_accuracy == pytest.approx([m.mean() for m in running])
    assert tm1.own_accuracy == pytest.approx([masks[i].mean() for i in (0, 1, 3)])
    assert tm1.parameter_free and not tm1.eot
    # eps 0.2 is its own threat model: never mixed with 0.1
    assert np.array_equal(str_to_mask(tm2.robust_examples), masks[2]) and not tm2.parameter_free
    assert tm1.strongest == rows[int(np.argmin([masks[i].mean() for i in (0, 1, 3)]))].label
    # the deprecated number mixes every budget
    assert mixed_accuracy(rows) == pytest.approx(masks.min(axis=0).mean())


def test_deepfool_counts_within_eps_of_its_norm_only() -> None:
    # four images: DeepFool broke image 0 with 0.3 and image 3 with 0.9; image 1 misclassified
    # clean; image 2 not adversarial
    df = _result("deepfool-l2", "0010", eps=None, norm="2", norms=(0.3, None, None, 0.9))
    pgd = _result("pgd-l2", "1011", eps=0.5, norm="2")
    pgd_big = _result("pgd-l2", "1011", eps=1.0, norm="2")
    linf = _result("pgd-linf", "1011", eps=0.5, norm="inf")
    tms = {(t.norm, t.eps): t for t in threat_models([pgd, pgd_big, linf, df])}
    assert tms[("2", 0.5)].robust_examples == "0011"  # only the 0.3 counts within 0.5
    assert tms[("2", 1.0)].robust_examples == "0010"  # both count within 1.0
    assert tms[("inf", 0.5)].robust_examples == "1011"  # another norm: DeepFool L2 ignored
    assert tms[("2", 0.5)].attacks == ("pgd-l2/art", "deepfool-l2/art")
    # DeepFool's own at 0.5: image 2 not adversarial, image 3 needed more than 0.5
    assert tms[("2", 0.5)].own_accuracy == pytest.approx([0.75, 0.5])
    # no threat model of DeepFool's own: it has no budget
    assert len(tms) == 3


def test_worst_case_of_an_evaluation_equals_separate_runs(digits_model, data) -> None:
    x, y = data
    attacks = [FGSM1, PGD1, PGD2]
    report = evaluate(
        digits_model, x, y, attacks=attacks, backends=["art"], checks=False, progress=False
    )
    (m,) = report.models
    clean = predict(digits_model, x) == y
    art = get_backend("art")
    outcome = {}
    for spec in attacks:  # the same seeded calls, one by one
        adv = art.run(digits_model, x, y, spec, seed=0)
        outcome[spec] = ((predict(digits_model, adv) == y) & clean).numpy()
    for spec, r in zip(attacks, m.results, strict=True):
        assert np.array_equal(str_to_mask(r.robust_examples or ""), outcome[spec])
    tm1, tm2 = m.threat_models
    by_hand = outcome[FGSM1] & outcome[PGD1]
    assert np.array_equal(str_to_mask(tm1.robust_examples), by_hand)
    assert tm1.robust_accuracy == pytest.approx(by_hand.mean())
    assert tm2.robust_accuracy == pytest.approx(outcome[PGD2].mean())
    assert tm1.robust_accuracy <= min(r.robust_accuracy for r in m.results[:2])


def test_all_or_nothing_runs_within_each_threat_model(digits_model, data) -> None:
    x, y = data
    # no random start: per-image results do not depend on which images share the batch
    fixed1, fixed2 = PGD1.replace(random_start=False), PGD2.replace(random_start=False)
    attacks = [fixed1, fixed2, fixed1.replace(step_size=0.005, steps=30)]
    kwargs = {"attacks": attacks, "backends": ["art"], "checks": False, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the convergence warning
        full = evaluate(digits_model, x, y, **kwargs).models[0]
        seq = evaluate(digits_model, x, y, all_or_nothing=True, **kwargs).models[0]
    clean_n = round(full.clean_accuracy * N)
    # PGD at 0.2 ran on every clean-correct image, not on the survivors of PGD at 0.1
    assert [r.n_attacked for r in seq.results][:2] == [clean_n, clean_n]
    assert seq.results[2].n_attacked == round(seq.results[0].robust_accuracy * N)
    for t_full, t_seq in zip(full.threat_models, seq.threat_models, strict=True):
        assert t_seq.robust_examples == t_full.robust_examples


# ------------------------------------------------------------------ convergence


def _tm(attacks: tuple[str, ...], running: tuple[float, ...]) -> ThreatModelResult:
    return ThreatModelResult(
        norm="inf",
        eps=0.1,
        robust_accuracy=running[-1],
        attacks=attacks,
        running_accuracy=running,
        own_accuracy=running,
        parameter_free=False,
        eot=False,
        robust_examples="",
    )


class ConvergenceCase(NamedTuple):
    tm: ThreatModelResult
    status: str
    detail: str


CONVERGENCE = {
    "lowered by 2 points": ConvergenceCase(
        _tm(("pgd-linf/art", "apgd-ce-linf/native"), (0.50, 0.48)),
        "warn",
        "apgd-ce-linf lowered 50.0% to 48.0% (2.0 points)",
    ),
    "lowered by 1 point": ConvergenceCase(
        _tm(("pgd-linf/art", "apgd-ce-linf/native"), (0.50, 0.49)), "pass", "no later attack"
    ),
    "exactly 1.5 points": ConvergenceCase(
        _tm(("pgd-linf/art", "apgd-ce-linf/native"), (0.500, 0.485)), "pass", "1.5 points"
    ),
    "after fgsm only": ConvergenceCase(
        _tm(("fgsm-linf/art", "pgd-linf/art"), (0.80, 0.50)), "pass", "2 attacks"
    ),
    "after fgsm then pgd": ConvergenceCase(
        _tm(("fgsm-linf/art", "pgd-linf/art", "apgd-t-linf/native"), (0.8, 0.5, 0.4)),
        "warn",
        "apgd-t-linf lowered 50.0% to 40.0%",
    ),
    "the same attack through another backend": ConvergenceCase(
        _tm(("pgd-linf/art", "pgd-linf/native"), (0.50, 0.45)), "pass", "no later attack"
    ),
    "a backend group, then a stronger attack": ConvergenceCase(
        _tm(("pgd-linf/art", "pgd-linf/native", "apgd-ce-linf/native"), (0.50, 0.45, 0.40)),
        "warn",
        "apgd-ce-linf lowered 45.0% to 40.0% (5.0 points)",
    ),
    "the same attack again through one backend": ConvergenceCase(
        _tm(("pgd-linf/art", "pgd-linf/art"), (0.50, 0.45)),
        "warn",
        "pgd-linf lowered 50.0% to 45.0%",
    ),
}


@pytest.mark.parametrize("case", CONVERGENCE.values(), ids=CONVERGENCE.keys())
def test_convergence_check(case: ConvergenceCase) -> None:
    check = check_convergence([case.tm])
    assert check.status == case.status
    assert case.detail in check.detail, check.detail
    assert check_convergence([]).status == "skip"


def test_convergence_warning_fires_when_a_stronger_attack_lowers_the_worst_case(
    digits_model, data
) -> None:
    x, y = data
    weak = AttackSpec(attack="pgd", eps=0.1, step_size=0.002, steps=2)
    kwargs = {"backends": ["art"], "checks": True, "progress": False}
    with pytest.warns(RuntimeWarning, match=r"pgd-linf lowered the worst case from") as rec:
        report = evaluate(digits_model, x, y, attacks=[weak, PGD1], **kwargs)
    (m,) = report.models
    (tm,) = m.threat_models
    drop = tm.running_accuracy[0] - tm.running_accuracy[1]
    assert drop > 0.015 and f"{drop * 100:.1f} points" in str(rec[0].message)
    check = next(c for c in m.checks if c.name == "attacks-converged")
    assert check.status == "warn" and "had not converged" in check.detail
    assert "### Convergence warnings" in report.to_markdown()
    # the same attack again lowers nothing: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = evaluate(digits_model, x, y, attacks=[PGD1, PGD1], **kwargs).models[0]
    assert next(c for c in again.checks if c.name == "attacks-converged").status == "pass"


# ------------------------------------------------------------------ status


def _model(results: list[AttackResult], **kwargs: object) -> ModelReport:
    m = ModelReport(name="m", defense="none", clean_accuracy=0.9, results=results, **kwargs)  # type: ignore[arg-type]
    m.threat_models = threat_models(results)
    m.all_or_nothing_accuracy = mixed_accuracy(results)
    return m


PASS = [Check("logits", "pass", "")]


class StatusCase(NamedTuple):
    model: ModelReport
    status: str
    verified: bool | None


STATUS = {
    "pgd only": StatusCase(
        _model([_result("pgd-linf", "10")], checks=PASS), "not verified (PGD only)", False
    ),
    "apgd": StatusCase(
        _model([_result("pgd-linf", "10"), _result("apgd-ce-linf", "00")], checks=PASS),
        "verified",
        True,
    ),
    "apgd unchecked": StatusCase(_model([_result("apgd-ce-linf", "00")]), "unchecked", None),
    "apgd at one eps of two": StatusCase(
        _model([_result("apgd-ce-linf", "00"), _result("pgd-linf", "10", eps=0.2)], checks=PASS),
        "not verified (no parameter-free attack at Linf eps 0.2)",
        False,
    ),
    "randomised without eot": StatusCase(
        _model([_result("apgd-ce-linf", "00")], checks=PASS, randomized=True),
        "not verified (randomised, no EOT-APGD at Linf eps 0.1)",
        False,
    ),
    "randomised with eot": StatusCase(
        _model([_result("apgd-ce-linf+eot20", "00", eot=20)], checks=PASS, randomized=True),
        "verified",
        True,
    ),
    "check failed": StatusCase(
        _model([_result("apgd-ce-linf", "00")], checks=[Check("logits", "fail", "")]),
        "not verified (checks failed: logits)",
        False,
    ),
    "autoattack": StatusCase(
        _model([_result("autoattack-linf", "00")], checks=PASS), "verified", True
    ),
    "deepfool only": StatusCase(
        _model([_result("deepfool-l2", "00", eps=None, norm="2", norms=(0.1, 0.2))]),
        "not verified (no bounded attack)",
        False,
    ),
}


@pytest.mark.parametrize("case", STATUS.values(), ids=STATUS.keys())
def test_status(case: StatusCase) -> None:
    assert case.model.status == case.status
    assert case.model.verified is case.verified
    assert case.model.to_dict()["status"] == case.status


# ------------------------------------------------------------------ DeepFool's norms


def test_norm_quartiles_and_curve_against_numpy() -> None:
    norms = (0.5, None, 1.5, 0.25, None, 2.0, 1.0, None)
    # images 1 and 4 misclassified clean (no norm, not robust); image 7 not adversarial
    robust = "00000001"
    r = _result("deepfool-l2", robust, eps=None, norm="2", norms=norms)
    s = r.norm_stats()
    assert isinstance(s, NormStats)
    known = np.array([0.5, 1.5, 0.25, 2.0, 1.0])
    q = s.quartiles()
    assert q == pytest.approx(tuple(np.percentile(known, [25, 50, 75])))
    assert s.n_adversarial == 5 and s.n_not_adversarial == 1 and s.n_samples == 8
    for eps in (0.0, 0.25, 0.3, 1.0, 1.7, 2.0, 5.0):
        # clean-correct (6 images) and not broken within eps
        expected = (6 - int((known <= eps).sum())) / 8
        assert s.accuracy_at(eps) == pytest.approx(expected), eps
    eps_grid, acc = s.curve(points=5)
    assert eps_grid == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert acc == pytest.approx([6 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    d = r.to_dict()["norm_stats"]
    assert d["median"] == pytest.approx(np.median(known)) and d["n_not_adversarial"] == 1
    assert _result("pgd-linf", "01").norm_stats() is None
    assert NormStats("deepfool-l2", "art", "2", (), 3, 3).quartiles() is None


def test_deepfool_records_norms_counts_toward_l2_and_has_no_spread(
    digits_model, data, tmp_path
) -> None:
    x, y = data
    report = evaluate(
        digits_model,
        x,
        y,
        attacks=[PGD_L2, DEEPFOOL],
        backends=["art"],
        checks=False,
        progress=False,
    )
    (m,) = report.models
    pgd, df = m.results
    clean = (predict(digits_model, x) == y).numpy()
    adv = get_backend("art").run(digits_model, x, y, DEEPFOOL, seed=0)
    broken = (predict(digits_model, adv) != y).numpy()
    by_hand = (adv - x).flatten(1).norm(dim=1).double().numpy()
    assert df.perturbation_norms is not None and len(df.perturbation_norms) == N
    got = np.array([np.nan if v is None else v for v in df.perturbation_norms])
    assert np.array_equal(np.isnan(got), ~(clean & broken))
    assert np.allclose(got[clean & broken], by_hand[clean & broken], rtol=1e-5)
    assert df.adversarial == mask_to_str(broken)
    # the L2 threat model counts DeepFool where its norm stayed within 0.6
    (tm,) = m.threat_models
    assert tm.attacks == ("pgd-l2/art", "deepfool-l2/art")
    within = clean & broken & (by_hand <= 0.6)
    expected = str_to_mask(pgd.robust_examples or "") & ~within
    assert np.array_equal(str_to_mask(tm.robust_examples), expected)
    # no backend spread, no robust accuracy of its own in the Markdown
    assert set(m.backend_spread) == {"pgd-l2@0.6"}
    md = report.to_markdown()
    assert "### Minimal-norm attacks: the perturbation norm needed" in md
    assert "| deepfool-l2 | art | - | - | 50 |" in md
    stats = m.norm_stats[0]
    assert stats.n_not_adversarial == int((clean & ~broken).sum())
    assert stats.quartiles()[1] == pytest.approx(np.median(by_hand[clean & broken]), rel=1e-6)
    out = report.save(tmp_path / "rep")
    assert (out / "norms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        "![robust accuracy implied by the minimal-norm attacks](norms.png)"
        in (out / "report.md").read_text()
    )


# ------------------------------------------------------------------ JSON


def test_json_round_trip_of_the_new_fields(tmp_path) -> None:
    rows = [
        _result("pgd-l2", "1011", eps=0.5, norm="2"),
        _result("apgd-ce-l2+eot20", "1001", eps=0.5, norm="2", eot=20, backend="native"),
        _result("deepfool-l2", "0010", eps=None, norm="2", norms=(0.3, None, None, 0.9)),
    ]
    m = _model(rows, checks=PASS, randomized=True)
    report = Report(
        dataset={"name": "t", "split": "test", "n_samples": 4}, models=[m], environment={}
    )
    data = json.loads(report.to_json())
    (dm,) = data["models"]
    assert dm["randomized"] is True and dm["status"] == "verified" and dm["verified"] is True
    (t,) = dm["threat_models"]
    assert t["robust_examples"] == "0001" and t["eot"] is True and t["parameter_free"] is True
    assert t["attacks"] == ["pgd-l2/art", "apgd-ce-l2+eot20/native", "deepfool-l2/art"]
    assert t["own_accuracy"] == [0.75, 0.5, 0.5]  # DeepFool within 0.5: "0011"
    assert t["strongest"] == "apgd-ce-l2+eot20/native"  # the first of equals
    assert dm["results"][2]["perturbation_norms"] == [0.3, None, None, 0.9]
    assert dm["results"][2]["norm_stats"]["median"] == pytest.approx(0.6)
    again = Report.from_dict(data)
    assert again.to_dict() == report.to_dict()
    assert again.models[0].threat_models == m.threat_models
    assert again.models[0].results == m.results
    report.save(tmp_path)
    loaded = Report.load(tmp_path)
    assert loaded.to_dict() == report.to_dict() and loaded.models[0].randomized
