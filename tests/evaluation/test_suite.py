"""The default attacks, their routes to the backends, and the status they earn."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._torch import project_delta
from art_denoise.attacks.backends import (
    AttackBackend,
    UnsupportedAttackError,
    available_backends,
)
from art_denoise.attacks.backends.base import BatchAttack
from art_denoise.attacks.spec import AttackSpec
from art_denoise.cli._common import make_specs
from art_denoise.evaluation import (
    DefaultSuite,
    RoutedAttack,
    default_attacks,
    evaluate,
    plan_evaluation,
)

N = 60
#: Small budgets keep these tests fast; the defaults are 20 / 100 / 20.
SUITE = DefaultSuite(pgd_steps=10, apgd_steps=20, eot_samples=2)
HAS_NATIVE = "native" in available_backends()


class FakeNative(AttackBackend):
    """Stands in for the ``native`` backend: every attack is a real PGD (the APGD ones with
    2.5 eps / steps per step, APGD-DLR and APGD-T on the logit margin)."""

    name = "native"
    package = "art-denoise"
    attacks = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t")

    def _make_attack(
        self, model: nn.Module, spec: AttackSpec, input_shape: tuple[int, ...], num_classes: int
    ) -> BatchAttack:
        eps = float(spec.eps or 0.0)
        step = spec.step_size or 2.5 * eps / spec.steps
        margin = spec.attack in ("apgd-dlr", "apgd-t")

        def loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if not margin:
                return F.cross_entropy(z, y, reduction="sum")
            true = z.gather(1, y[:, None])[:, 0]
            other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), -1e9).amax(1)
            return (other - true).sum()

        def attack(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            delta = project_delta((torch.rand_like(x) * 2 - 1) * eps, eps, spec.norm)
            for _ in range(spec.steps):
                d = delta.clone().requires_grad_(True)
                with torch.enable_grad():
                    (g,) = torch.autograd.grad(loss(model((x + d).clamp(0, 1)), y), d)
                if spec.norm == "inf":
                    g = g.sign()
                else:
                    g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                delta = project_delta(delta + step * g, eps, spec.norm)
            return (x + delta).clamp(0, 1).detach()

        return attack


class Noisy(nn.Module):
    """Adds fresh Gaussian noise at every call: a randomised model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x + 0.05 * torch.randn_like(x)).clamp(0, 1))


@pytest.fixture
def data(digits) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, x_te, y_te = digits
    return torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])


# ------------------------------------------------------------------ the suite


def test_default_attacks_pin_the_cli_pgd_and_autoattack_white_box() -> None:
    pgd, ce, t = default_attacks(0.1)
    (cli_pgd,) = make_specs(
        ["pgd"],
        [0.1],
        norm="inf",
        steps=20,
        step_size=None,
        random_start=True,
        restarts=1,
        batch_size=256,
        deepfool_steps=50,
        overshoot=0.02,
    )
    assert pgd.spec == cli_pgd and pgd.backends is None
    assert pgd.spec.step_size == pytest.approx(0.1 / 8) and pgd.spec.random_start
    assert (ce.spec.attack, ce.spec.steps, ce.spec.restarts, ce.backends) == (
        "apgd-ce",
        100,
        1,
        ("native",),
    )
    assert (t.spec.attack, t.spec.target_classes, t.backends) == ("apgd-t", 9, ("native",))
    assert all(a.spec.eot_samples == 1 for a in (pgd, ce, t))


def test_default_attacks_for_a_randomised_model_several_eps_and_autoattack() -> None:
    attacks = default_attacks([0.5, 1.0], norm="2", randomized=True, autoattack=True)
    keys = [(a.spec.key, a.backends) for a in attacks]
    native, every = ("native",), None
    # AutoAttack's "rand" version replaces the plain APGD attacks
    assert keys[:4] == [
        ("pgd-l2@0.5", every),
        ("apgd-ce-l2+eot20@0.5", native),
        ("apgd-dlr-l2+eot20@0.5", native),
        ("autoattack-l2@0.5", ("torchattacks",)),
    ]
    assert [k for k, _ in keys[4:]] == [k.replace("0.5", "1") for k, _ in keys[:4]]
    aa = attacks[3].spec
    assert (aa.steps, aa.queries) == (100, 5000)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": []}, ValueError, "non-empty"),
        ({"eps": -0.1}, ValueError, "eps must be a finite number >= 0"),
        ({"eps": 0}, ValueError, "eps must be > 0"),
        ({"eps": "0.1"}, ValueError, "eps must be a positive number"),
        ({"eps": True}, TypeError, "eps must be a number"),
        ({"eps": 0.1, "norm": "l1"}, ValueError, "norm"),
        ({"eps": 0.1, "eot_samples": 1}, ValueError, "eot_samples must be >= 2"),
        ({"eps": 0.1, "apgd_steps": 0}, ValueError, "apgd_steps"),
        ({"eps": 0.1, "pgd_steps_": 3}, TypeError, "pgd_steps_"),
    ],
)
def test_bad_default_attacks(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        default_attacks(**kwargs)


def test_routed_attack_checks_its_arguments() -> None:
    spec = AttackSpec(attack="apgd-ce", eps=0.1, steps=10)
    with pytest.raises(TypeError, match="AttackSpec"):
        RoutedAttack("apgd-ce")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the string 'native'"):
        RoutedAttack(spec, "native")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        RoutedAttack(spec, ())
    assert RoutedAttack(spec, ["native"]).backends == ("native",)  # type: ignore[arg-type]


# ------------------------------------------------------------------ planning


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give eps"),
        ({"eps": 0.1, "attacks": [AttackSpec(attack="fgsm", eps=0.1)]}, "carries its own eps"),
        ({"suite": SUITE, "attacks": [AttackSpec(attack="fgsm", eps=0.1)]}, "suite"),
    ],
    ids=["neither", "both", "suite with attacks"],
)
def test_eps_or_attacks(digits_model, data, kwargs, match) -> None:
    x, y = data
    with pytest.raises(ValueError, match=match):
        evaluate(digits_model, x, y, backends=["art"], progress=False, **kwargs)


def test_plan_routes_every_spec_and_counts_the_runs(digits_model, data) -> None:
    x, _ = data
    fake = FakeNative()
    state = torch.get_rng_state()
    plan = plan_evaluation(
        {"plain": digits_model, "noisy": Noisy(digits_model)},
        x,
        eps=[0.1, 0.2],
        suite=SUITE,
        backends=["art", fake],
        device="cpu",
    )
    assert torch.equal(torch.get_rng_state(), state)  # the detection kept the RNG
    assert plan.randomized == {"plain": False, "noisy": True}
    assert [e.name for e in plan.engines] == ["art", "native"]
    routes = {s.key: [e.name for e in plan.backends_for(s)] for s in plan.specs}
    assert routes == {
        "pgd-linf@0.1": ["art", "native"],
        "apgd-ce-linf@0.1": ["native"],
        "apgd-t-linf@0.1": ["native"],
        "pgd-linf@0.2": ["art", "native"],
        "apgd-ce-linf@0.2": ["native"],
        "apgd-t-linf@0.2": ["native"],
    }
    assert plan.extra == {
        "noisy": [
            AttackSpec(attack=a, eps=e, steps=20, eot_samples=2)
            for e in (0.1, 0.2)
            for a in ("apgd-ce", "apgd-dlr")
        ]
    }
    # the noisy model's EOT-APGD replaces its plain APGD (AutoAttack's "rand" version)
    assert [s.key for s in plan.model_specs("noisy")] == [
        "pgd-linf@0.1",
        "pgd-linf@0.2",
        "apgd-ce-linf+eot2@0.1",
        "apgd-dlr-linf+eot2@0.1",
        "apgd-ce-linf+eot2@0.2",
        "apgd-dlr-linf+eot2@0.2",
    ]
    # plain: 2 x (2 PGD + 2 APGD); noisy: 2 x 2 PGD plus 4 EOT-APGD
    assert plan.total_runs == 8 + 4 + 4


def test_backends_none_means_every_installed_backend(digits_model, data) -> None:
    x, _ = data
    aa = AttackSpec(attack="autoattack", eps=0.1, steps=5, queries=10)
    plan = plan_evaluation(digits_model, x, attacks=[aa], device="cpu")
    assert [e.name for e in plan.engines] == available_backends()
    refusing = []
    for e in plan.engines:
        try:
            e.check(aa)
        except UnsupportedAttackError:
            refusing.append(e.name)
    # a backend the user did not choose is skipped, not an error
    assert sorted(b for (_, b) in plan.skipped) == sorted(refusing)
    with pytest.raises(UnsupportedAttackError, match="does not run 'autoattack'"):
        plan_evaluation(
            digits_model, x, attacks=[RoutedAttack(aa, ("native",))], backends=[FakeNative()]
        )


@pytest.mark.skipif(HAS_NATIVE, reason="the native backend is installed")
def test_default_attacks_need_the_native_backend(digits_model, data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="runs through backend 'native', which is not installed"):
        evaluate(digits_model, x, y, eps=0.1, backends=["art"], progress=False)


# ------------------------------------------------------------------ evaluations


def test_default_suite_verifies_a_plain_model(digits_model, data) -> None:
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # APGD may lower PGD: convergence
        report = evaluate(
            digits_model,
            x,
            y,
            eps=0.1,
            suite=SUITE,
            backends=["art", FakeNative()],
            progress=False,
            device="cpu",
        )
    (m,) = report.models
    assert [(r.attack, r.backend) for r in m.results] == [
        ("pgd-linf", "art"),
        ("pgd-linf", "native"),
        ("apgd-ce-linf", "native"),
        ("apgd-t-linf", "native"),
    ]
    (tm,) = m.threat_models
    assert tm.parameter_free and not tm.eot and not m.randomized
    assert tm.robust_accuracy <= min(r.robust_accuracy for r in m.results) + 1e-6
    assert m.failed_checks == [] and m.status == "verified" and m.verified is True
    assert "Status: **verified**" in report.to_markdown()
    assert report.summary_table().splitlines()[2].rstrip().endswith("verified")


def test_randomised_model_needs_eot_apgd(digits_model, data) -> None:
    x, y = data
    noisy = Noisy(digits_model)
    fake = FakeNative()
    pgd = AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=10, random_start=True)
    apgd = RoutedAttack(AttackSpec(attack="apgd-ce", eps=0.1, steps=20), ("native",))
    kwargs = {"backends": ["art", fake], "progress": False, "device": "cpu"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plain_apgd = evaluate(noisy, x, y, attacks=[pgd, apgd], checks=False, **kwargs)
        default = evaluate(noisy, x, y, eps=0.1, suite=SUITE, checks=False, **kwargs)
    m = plain_apgd.models[0]
    assert m.randomized and m.threat_models[0].parameter_free and not m.threat_models[0].eot
    assert m.status == "not verified (randomised, no EOT-APGD at Linf eps 0.1)"
    assert m.verified is False
    d = default.models[0]
    assert [r.attack for r in d.results][-2:] == ["apgd-ce-linf+eot2", "apgd-dlr-linf+eot2"]
    assert d.threat_models[0].eot and d.status == "unchecked" and d.verified is None


@pytest.mark.skipif(not HAS_NATIVE, reason="the native backend is not installed yet")
def test_default_suite_through_the_native_backend(digits_model, data) -> None:
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = evaluate(
            digits_model,
            x,
            y,
            eps=0.1,
            suite=SUITE,
            backends=["art", "native"],
            checks=False,
            progress=False,
            device="cpu",
        )
    (m,) = report.models
    (tm,) = m.threat_models
    assert tm.attacks == (
        "pgd-linf/art",
        "pgd-linf/native",
        "apgd-ce-linf/native",
        "apgd-t-linf/native",
    )
    assert tm.parameter_free and m.status == "unchecked"
    pgd = min(r.robust_accuracy for r in m.results if r.attack == "pgd-linf")
    assert tm.robust_accuracy <= pgd
