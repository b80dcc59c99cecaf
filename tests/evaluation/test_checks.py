"""The evaluation's sanity checks: broken models are caught, a plain CNN passes."""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from art_denoise.attacks.spec import AttackSpec
from art_denoise.cli.main import main
from art_denoise.evaluation import Report, evaluate
from art_denoise.evaluation.checks import (
    check_autoattack,
    check_backend_spread,
    check_deterministic,
    check_gradients,
    check_large_eps,
    check_logits,
    check_not_above,
    check_single_step,
    check_transfer,
    check_white_box_vs_noise,
    random_noise,
    tolerance,
)
from art_denoise.evaluation.report import AttackResult, Check, ModelReport
from art_denoise.models import create_model, save_model
from art_denoise.training import train_standard

FGSM = AttackSpec(attack="fgsm", eps=0.1)
PGD = AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=10, random_start=True)
N = 200


class Quantised(nn.Module):
    """Rounds its input to 5 levels first: ``torch.round`` has a zero gradient everywhere."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 4) / 4)


class Noisy(nn.Module):
    """Adds fresh Gaussian noise at every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x + 0.05 * torch.randn_like(x)).clamp(0, 1))


class Softmax(nn.Module):
    """Returns probabilities instead of logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(dim=1)


def _plain(state: dict[str, torch.Tensor]) -> nn.Module:
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def reference(digits) -> nn.Module:
    """A second, briefly trained CNN: the undefended model attacks are transferred from."""
    x_tr, y_tr, _, _ = digits
    torch.manual_seed(1)
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    return train_standard(model, x_tr, y_tr, epochs=5, seed=1, progress=False).eval()


@pytest.fixture(scope="module")
def report(_trained_state, digits, reference) -> Report:
    _, _, x_te, y_te = digits
    models = {
        "plain": _plain(_trained_state),
        "quantised": Quantised(_plain(_trained_state)),
        "noisy": Noisy(_plain(_trained_state)),
        "noisy-eot": Noisy(_plain(_trained_state)),
        "softmax": Softmax(_plain(_trained_state)),
    }
    # EOT-PGD lowers the noisy model's PGD number by several points (measured 8.5)
    converged = pytest.warns(RuntimeWarning, match="'noisy-eot', Linf eps 0.1: pgd-linf[+]eot4")
    with pytest.warns(RuntimeWarning, match="'noisy' gives different outputs"), converged:
        return evaluate(
            models,
            x_te[:N],
            y_te[:N],
            attacks=[FGSM, PGD],
            extra_attacks={"noisy-eot": [PGD.replace(eot_samples=4)]},
            backends=["art"],
            progress=False,
            device="cpu",
            reference_model=reference,
        )


def _statuses(m: ModelReport) -> dict[str, str]:
    return {c.name: c.status for c in m.checks}


def _detail(m: ModelReport, name: str) -> str:
    return next(c.detail for c in m.checks if c.name == name)


def _model(report: Report, name: str) -> ModelReport:
    return next(m for m in report.models if m.name == name)


ALL_PASS = {
    "logits": "pass",
    "deterministic": "pass",
    "nonzero-gradients": "pass",
    "iterative-vs-single-step": "pass",
    "more-steps": "pass",
    "more-restarts": "pass",
    "linf-eps-1": "pass",
    "white-box-vs-noise": "pass",
    "white-box-vs-transfer": "pass",
    "pgd-vs-autoattack": "skip",
    "backend-spread": "skip",
    "attacks-converged": "pass",
}


def test_plain_cnn_passes_every_check(report: Report) -> None:
    m = _model(report, "plain")
    assert m.clean_accuracy > 0.95
    assert _statuses(m) == ALL_PASS
    # every check passes, but FGSM and PGD alone vouch for nothing
    assert m.failed_checks == [] and m.randomized is False
    assert m.status == "not verified (PGD only)" and m.verified is False
    assert _detail(m, "nonzero-gradients").startswith("0/100 examples")
    assert _detail(m, "linf-eps-1").startswith("PGD Linf eps 1.0: 0.0% vs chance 10.0%")
    assert "AutoAttack was not run" in _detail(m, "pgd-vs-autoattack")
    assert "one backend" in _detail(m, "backend-spread")


def test_quantised_input_fails_the_gradient_check(report: Report) -> None:
    m = _model(report, "quantised")
    assert m.verified is False
    assert _statuses(m)["nonzero-gradients"] == "fail"
    assert _detail(m, "nonzero-gradients").startswith("100/100 examples")
    # with no gradient PGD never moves: at eps = 1 the model keeps its clean accuracy
    assert _statuses(m)["linf-eps-1"] == "fail"
    assert m.results[1].robust_accuracy > 0.9  # the numbers the checks refuse to vouch for
    assert {"nonzero-gradients", "linf-eps-1"} <= set(m.failed_checks)


def test_noisy_model_fails_the_randomness_check_without_eot(report: Report) -> None:
    m = _model(report, "noisy")
    assert m.failed_checks == ["deterministic"] and m.verified is False
    assert m.randomized and m.status == "not verified (PGD only; checks failed: deterministic)"
    assert "no attack used EOT" in _detail(m, "deterministic")
    eot = _model(report, "noisy-eot")
    assert _statuses(eot)["deterministic"] == "pass"
    assert "attacked with EOT (4 draws)" in _detail(eot, "deterministic")
    # EOT-PGD passes the randomness check, but is not a parameter-free attack
    assert eot.failed_checks == [] and eot.status == "not verified (PGD only)"


def test_softmax_model_fails_the_logits_check(report: Report) -> None:
    m = _model(report, "softmax")
    assert m.failed_checks == ["logits"] and m.verified is False
    assert "probabilities" in _detail(m, "logits")


def test_summary_and_markdown_mark_unverified_models(report: Report) -> None:
    rows = {line.split()[0]: line for line in report.summary_table().splitlines()[2:]}
    assert rows["plain"].rstrip().endswith("not verified (PGD only)")
    for name in ("plain", "quantised", "noisy", "softmax"):
        # the robustness number (one threat model) carries the mark, and the status says why
        assert rows[name].count("not verified") == 2, rows[name]
    assert "checks failed: deterministic" in rows["noisy"]
    md = report.to_markdown()
    assert md.count("### Checks") == len(report.models)
    assert "### Checks: failed: logits" in md and "### Checks: none failed" in md
    assert "Status: **not verified (PGD only; checks failed: logits)**" in md
    assert "| linf-eps-1 | fail |" in md


def test_json_round_trips_checks_and_verified(report: Report) -> None:
    data = json.loads(report.to_json())
    plain, quantised = data["models"][0], data["models"][1]
    assert plain["verified"] is False and quantised["verified"] is False
    assert plain["status"] == "not verified (PGD only)"
    assert {
        "name": "logits",
        "status": "fail",
        "detail": _detail(_model(report, "softmax"), "logits"),
    } in data["models"][4]["checks"]
    assert all(set(c) == {"name", "status", "detail"} for c in plain["checks"])
    again = Report.from_dict(data)
    assert again.to_dict() == report.to_dict()
    assert [m.verified for m in again.models] == [False] * 5
    assert [m.randomized for m in again.models] == [False, False, True, True, False]
    # an older report.json without the keys still loads, unchecked, its worst cases
    # rebuilt from the per-example outcomes
    for m in data["models"]:
        del m["checks"], m["verified"], m["threat_models"], m["status"], m["randomized"]
    old = Report.from_dict(data)
    assert all(m.checks == [] and m.status == "not verified (PGD only)" for m in old.models)
    assert [m.threat_models for m in old.models] == [m.threat_models for m in report.models]


def test_checks_false_behaves_as_before(_trained_state, digits) -> None:
    _, _, x_te, y_te = digits
    outcomes = {}
    for checks in (False, True):
        torch.manual_seed(123)
        rep = evaluate(
            _plain(_trained_state),
            x_te[:60],
            y_te[:60],
            attacks=[FGSM, PGD],
            backends=["art"],
            progress=False,
            device="cpu",
            checks=checks,
        )
        outcomes[checks] = (rep, torch.get_rng_state(), np.random.get_state()[1].copy())
    (off, rng_off, np_off), (on, rng_on, np_on) = outcomes[False], outcomes[True]
    m = off.models[0]
    assert m.checks == [] and m.status == "not verified (PGD only)"
    d = off.to_dict()["models"][0]
    assert d["checks"] == [] and d["verified"] is False
    assert "checks" not in off.summary_table() and "Checks" not in off.to_markdown()

    def numbers(r: Report) -> list[tuple[Any, ...]]:
        return [(x.key, x.robust_accuracy, x.l2_dissimilarity) for x in r.models[0].results]

    # the checks change no number, and leave the global RNG where the evaluation left it
    assert numbers(on) == numbers(off)
    assert len(on.models[0].checks) == len(ALL_PASS)
    assert torch.equal(rng_on, rng_off) and np.array_equal(np_on, np_off)


def test_checks_keep_the_model_state(digits_model, digits) -> None:
    _, _, x_te, y_te = digits
    digits_model.train()
    evaluate(
        digits_model,
        x_te[:30],
        y_te[:30],
        attacks=[PGD],
        backends=["art"],
        progress=False,
        device="cpu",
    )
    assert all(m.training for m in digits_model.modules())
    assert all(p.grad is None and p.requires_grad for p in digits_model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"checks": "yes"}, "checks must be a bool"), ({"reference_model": "x"}, "reference_model")],
    ids=["checks", "reference"],
)
def test_bad_arguments(digits_model, digits, kwargs, match) -> None:
    _, _, x_te, y_te = digits
    with pytest.raises(TypeError, match=match):
        evaluate(
            digits_model,
            x_te[:4],
            y_te[:4],
            attacks=[FGSM],
            backends=["art"],
            progress=False,
            **kwargs,
        )


@pytest.mark.parametrize("flag", [[], ["--no-checks"]], ids=["checks", "no-checks"])
def test_cli_no_checks(digits_model, tmp_path, flag) -> None:
    save_model(digits_model, tmp_path / "m.safetensors")
    argv = ["evaluate", "--model", str(tmp_path / "m.safetensors"), "--dataset", "digits"]
    argv += ["--attacks", "fgsm", "--backends", "art", "--n-samples", "40", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "out"), *flag]) == 0
    (m,) = json.loads((tmp_path / "out" / "report.json").read_text())["models"]
    # FGSM alone: not verified either way
    assert m["status"].startswith("not verified (PGD only") and m["verified"] is False
    if flag:
        assert m["checks"] == [] and m["status"] == "not verified (PGD only)"
    else:
        assert len(m["checks"]) == len(ALL_PASS)


# ---------------------------------------------------------------- the checks one by one


def _result(attack: str, acc: float, *, backend: str = "art", eps: float = 0.1) -> AttackResult:
    return AttackResult(
        attack=attack,
        backend=backend,
        norm="inf",
        eps=eps,
        step_size=eps,
        steps=1,
        random_start=False,
        restarts=1,
        targeted=False,
        robust_accuracy=acc,
        attack_success_rate=0.0,
        l2_dissimilarity=0.0,
        max_perturbation=eps,
        seconds=0.0,
    )


class Case(NamedTuple):
    check: Check
    status: str
    detail: str


_PROBS = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
_B = ("inf", 0.1)
CASES = {
    "logits pass": Case(check_logits(torch.tensor([[-1.0, 2.0], [3.0, 0.5]])), "pass", "-1 to 3"),
    "softmax": Case(check_logits(_PROBS), "fail", "probabilities"),
    "sigmoid": Case(check_logits(torch.tensor([[0.2, 0.9], [0.1, 0.3]])), "warn", "[0, 1]"),
    "nan": Case(check_logits(torch.tensor([[math.nan, 0.0]])), "fail", "NaN"),
    "same": Case(check_deterministic(_PROBS, _PROBS.clone(), 1), "pass", "identical"),
    "random": Case(check_deterministic(_PROBS, _PROBS + 0.25, 1), "fail", "up to 0.25"),
    "random eot": Case(check_deterministic(_PROBS, _PROBS + 0.25, 16), "pass", "16 draws"),
    "grads": Case(check_gradients(torch.ones(10, 1, 2, 2)), "pass", "0/10 examples"),
    "some zero": Case(
        check_gradients(torch.cat([torch.zeros(3, 4), torch.ones(7, 4)])), "warn", "3/10"
    ),
    "zero": Case(check_gradients(torch.zeros(10, 4)), "fail", "masked gradients"),
    "inf grad": Case(
        check_gradients(torch.full((4, 4), math.inf)), "fail", "4/4 examples have an all-zero"
    ),
    "no grad images": Case(check_gradients(torch.zeros(0, 4)), "skip", "no images"),
    "steps": Case(
        check_not_above("more-steps", "A", 0.55, "B", 0.5, 100), "pass", "tolerance 11.0%"
    ),
    "steps up": Case(check_not_above("more-steps", "A", 0.62, "B", 0.5, 100), "fail", "rose"),
    "eps 1": Case(check_large_eps(0.15, 10, 100), "pass", "15.0% vs chance 10.0%"),
    "eps 1 high": Case(check_large_eps(0.2, 10, 100), "fail", "cannot reach"),
    "step pair": Case(
        check_single_step([_result("fgsm-linf", 0.5), _result("pgd-linf", 0.3)], 100),
        "pass",
        "1 pair",
    ),
    "step pair bad": Case(
        check_single_step([_result("fgsm-linf", 0.3), _result("pgd-linf", 0.5)], 100),
        "fail",
        "pgd-linf 50.0% vs fgsm-linf 30.0%",
    ),
    "step other eps": Case(
        check_single_step([_result("fgsm-linf", 0.3), _result("pgd-linf", 0.5, eps=0.2)], 100),
        "skip",
        "no FGSM and PGD",
    ),
    "noise": Case(
        check_white_box_vs_noise({_B: 0.3}, {_B: 0.9}, 100), "pass", "30.0% vs noise 90.0%"
    ),
    "noise bad": Case(check_white_box_vs_noise({_B: 0.9}, {_B: 0.7}, 100), "fail", "noise beats"),
    "no transfer": Case(check_transfer({_B: 0.3}, None, {_B: 0.9}, 100), "skip", "reference_model"),
    "transfer": Case(
        check_transfer({_B: 0.3}, {_B: 0.6}, {_B: 0.9}, 100), "pass", "transfer 60.0%"
    ),
    "transfer bad": Case(check_transfer({_B: 0.8}, {_B: 0.6}, {_B: 0.9}, 100), "fail", "beat"),
    "transfer odd": Case(check_transfer({_B: 0.3}, {_B: 0.99}, {_B: 0.7}, 100), "warn", "noise"),
    "no autoattack": Case(check_autoattack([_result("pgd-linf", 0.5)]), "skip", "not run"),
    "autoattack gap": Case(
        check_autoattack([_result("pgd-linf", 0.5), _result("autoattack-linf", 0.4)]),
        "fail",
        "5 points",
    ),
    "autoattack ok": Case(
        check_autoattack([_result("pgd-linf", 0.5), _result("autoattack-linf", 0.47)]),
        "pass",
        "47.0%",
    ),
    "one backend": Case(check_backend_spread([_result("pgd-linf", 0.5)]), "skip", "one backend"),
    "spread": Case(
        check_backend_spread(
            [_result("pgd-linf", 0.5), _result("pgd-linf", 0.49, backend="foolbox")]
        ),
        "pass",
        "1.0% on pgd-linf@0.1",
    ),
    "spread wide": Case(
        check_backend_spread(
            [_result("pgd-linf", 0.5), _result("pgd-linf", 0.4, backend="foolbox")]
        ),
        "warn",
        "art 50.0%, foolbox 40.0%",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_check_table(case: Case) -> None:
    assert case.check.status == case.status
    assert case.detail in case.check.detail, case.check.detail


def test_tolerance_is_two_binomial_stds_plus_one_image() -> None:
    assert tolerance(0.5, 100) == pytest.approx(2 * 0.05 + 0.01)
    assert tolerance(0.0, 50) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="status"):
        Check("x", "ok", "")


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_random_noise_has_the_budget_and_keeps_the_rng(norm: str) -> None:
    x = torch.full((6, 1, 4, 4), 0.5)
    state = torch.get_rng_state()
    noisy = random_noise(x, norm, 0.2, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    delta = (noisy - x).flatten(1)
    if norm == "inf":
        assert torch.allclose(delta.abs(), torch.full_like(delta, 0.2))  # a corner of the ball
    else:
        assert torch.allclose(delta.norm(dim=1), torch.full((6,), 0.2))
    assert torch.equal(noisy, random_noise(x, norm, 0.2, seed=3))
