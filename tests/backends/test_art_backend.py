"""The built-in ART backend against hand-written FGSM / PGD, and the harness around it."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from art_denoise.attacks import AttackSpec
from art_denoise.attacks.backends import UnsupportedAttackError, get_backend
from art_denoise.attacks.backends.art_backend import ARTBackend


class RefCase(NamedTuple):
    id: str
    spec: AttackSpec
    #: Largest pixel difference allowed; None: compare predictions (see check_reference).
    atol: float | None


REFERENCE_CASES = [
    RefCase("fgsm-linf", AttackSpec(attack="fgsm", eps=0.1), 1e-6),
    # For a confidently classified image the CE gradient is ~1e-6 and mostly float32
    # rounding; inside ART's generate it comes out 0.07% different (9e-5 after the step).
    RefCase("fgsm-l2", AttackSpec(attack="fgsm", norm="2", eps=1.0), 2e-4),
    RefCase("fgsm-linf-targeted", AttackSpec(attack="fgsm", eps=0.3, targeted=True), 1e-6),
    RefCase("pgd-linf", AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20), 1e-6),
    RefCase(
        "pgd-linf-targeted",
        AttackSpec(attack="pgd", eps=0.3, step_size=0.03, steps=20, targeted=True),
        1e-6,
    ),
    RefCase("pgd-l2", AttackSpec(attack="pgd", norm="2", eps=1.0, step_size=0.25, steps=20), None),
]

GUARD_SPECS = [
    AttackSpec(attack="fgsm", eps=0.1),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True),
    AttackSpec(attack="deepfool", norm="2", eps=None, steps=5),
]


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c.id for c in REFERENCE_CASES])
def test_matches_reference(check_reference, case):
    # ART clips to [0, 1] before projecting onto the eps-ball; the other libraries
    # project first. Only L2 tells the two orders apart.
    check_reference("art", case.spec, case.atol, clip_first=True)


@pytest.mark.parametrize("spec", GUARD_SPECS, ids=[s.name for s in GUARD_SPECS])
@pytest.mark.parametrize("state", ["train", "eval", "mixed-with-grads"])
def test_model_mode_and_grads_restored(check_guard, spec, state):
    check_guard(ARTBackend(), spec, state)


def test_restarts_never_lower_success(check_restarts):
    check_restarts("art")


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(attack="fgsm", eps=0.0),  # ART itself rejects eps_step=0
        AttackSpec(attack="pgd", eps=0.0, step_size=0.01, steps=3, random_start=True),
        AttackSpec(attack="pgd", norm="2", eps=0.0, step_size=0.1, steps=3, random_start=True),
        AttackSpec(attack="deepfool", norm="2", eps=0.0, steps=3),
    ],
    ids=["fgsm-linf", "pgd-linf", "pgd-l2", "deepfool-l2"],
)
def test_eps_zero_returns_x(fresh_model, test_split, spec):
    x, y = test_split
    x_adv = get_backend("art").run(fresh_model, x[:16], y[:16], spec)
    assert torch.equal(x_adv, x[:16])


def test_deepfool_linf_unsupported(fresh_model, test_split):
    spec = AttackSpec(attack="deepfool", norm="inf", eps=None)
    with pytest.raises(UnsupportedAttackError, match="L2 only"):
        ARTBackend().check(spec)
    x, y = test_split
    with pytest.raises(UnsupportedAttackError):
        ARTBackend().run(fresh_model, x[:4], y[:4], spec)
