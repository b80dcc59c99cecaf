"""The foolbox plugin against hand-written FGSM / PGD, and the model it hands to foolbox."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import pytest
import torch

from art_denoise.attacks import ATTACKS, AttackSpec
from art_denoise.attacks.backends import UnsupportedAttackError

pytest.importorskip("foolbox")
art_denoise_foolbox = pytest.importorskip("art_denoise_foolbox")
FoolboxBackend = art_denoise_foolbox.FoolboxBackend


class RefCase(NamedTuple):
    id: str
    spec: AttackSpec
    #: Largest pixel difference allowed; None: compare predictions (see check_reference).
    atol: float | None


REFERENCE_CASES = [
    RefCase("fgsm-linf", AttackSpec(attack="fgsm", eps=0.1), 1e-6),
    RefCase("fgsm-l2", AttackSpec(attack="fgsm", norm="2", eps=1.0), 1e-5),
    RefCase("fgsm-linf-targeted", AttackSpec(attack="fgsm", eps=0.3, targeted=True), 1e-6),
    RefCase("fgsm-l2-targeted", AttackSpec(attack="fgsm", norm="2", eps=2.0, targeted=True), 1e-5),
    RefCase("pgd-linf", AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20), 1e-6),
    RefCase(
        "pgd-linf-targeted",
        AttackSpec(attack="pgd", eps=0.3, step_size=0.03, steps=20, targeted=True),
        1e-6,
    ),
    RefCase("pgd-l2", AttackSpec(attack="pgd", norm="2", eps=1.0, step_size=0.25, steps=20), None),
]

GUARD_SPECS = [
    AttackSpec(attack="fgsm", eps=0.1, random_start=True),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True),
    AttackSpec(attack="deepfool", norm="2", eps=None, steps=5),
]


@pytest.fixture
def backend() -> FoolboxBackend:
    return FoolboxBackend()


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c.id for c in REFERENCE_CASES])
def test_matches_reference(check_reference, case):
    check_reference("foolbox", case.spec, case.atol)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_random_start_matches_reference(check_reference, test_split, attack):
    # foolbox draws the Linf start as torch.rand * 2 eps - eps from torch's generator,
    # seeded by the harness: reproduce it, then step, project and clip.
    eps = 0.1
    spec = AttackSpec(
        attack=attack,
        eps=eps,
        step_size=eps if attack == "fgsm" else 0.0125,
        steps=1 if attack == "fgsm" else 20,
        random_start=True,
        batch_size=512,
    )
    x, _ = test_split
    torch.manual_seed(0)
    noise = torch.rand(x.shape) * (2 * eps) - eps
    check_reference("foolbox", spec, 1e-6, x_start=(x + noise).clamp(0.0, 1.0))


@pytest.mark.parametrize("spec", GUARD_SPECS, ids=[s.name for s in GUARD_SPECS])
@pytest.mark.parametrize("state", ["train", "eval", "mixed-with-grads"])
def test_model_mode_and_grads_restored(check_guard, backend, spec, state):
    check_guard(backend, spec, state)


def test_restarts_never_lower_success(check_restarts):
    check_restarts("foolbox")


def test_model_in_train_mode_reaches_foolbox_in_eval_mode(backend, fresh_model, test_split):
    x, y = test_split
    fresh_model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.run(fresh_model, x[:8], y[:8], AttackSpec(attack="fgsm", eps=0.1))
    assert not [w for w in caught if "training mode" in str(w.message)]
    assert fresh_model.training


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(attack=a, norm=n, eps=0.1, step_size=0.01 if a == "pgd" else None)
        for a in ATTACKS
        for n in ATTACKS[a]
        if a != "autoattack"
    ],
    ids=[f"{a}-l{n}" for a in ATTACKS for n in ATTACKS[a] if a != "autoattack"],
)
def test_every_attack_but_autoattack_supported(backend, spec):
    backend.check(spec)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_autoattack_is_refused(backend, norm):
    with pytest.raises(UnsupportedAttackError, match=r"foolbox 3\.3\.4 has no AutoAttack"):
        backend.check(AttackSpec(attack="autoattack", norm=norm, eps=0.1))


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(attack="fgsm", eps=0.0),
        AttackSpec(attack="pgd", eps=0.0, step_size=0.01, steps=3, random_start=True),
        AttackSpec(attack="pgd", norm="2", eps=0.0, step_size=0.1, steps=3, random_start=True),
        AttackSpec(attack="deepfool", norm="inf", eps=0.0, steps=3),
    ],
    ids=["fgsm-linf", "pgd-linf", "pgd-l2", "deepfool-linf"],
)
def test_eps_zero_returns_x(backend, fresh_model, test_split, spec):
    x, y = test_split
    assert torch.equal(backend.run(fresh_model, x[:16], y[:16], spec), x[:16])


def test_deepfool_linf_within_eps(run_attack, test_split, predict):
    x, y = test_split
    spec = AttackSpec(attack="deepfool", norm="inf", eps=0.3, steps=50)
    x_adv = run_attack("foolbox", spec, 60)
    assert float((x_adv - x[:60]).abs().max()) <= 0.3 + 1e-6
    assert float((predict(x_adv) == y[:60]).float().mean()) <= 0.05
