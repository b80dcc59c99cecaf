"""What every installed attack backend must do, one table row per backend.

Each backend in :func:`~art_denoise.attacks.backends.available_backends` runs the same
tests: FGSM / PGD against the hand-written reference of ``conftest.py``; the model leaves
an attack as it entered it; restarts never lower the success; eps = 0 returns x; the
attacks it cannot express are refused, by ``check`` and by ``run``, and every other one
is accepted. A :class:`Contract` row holds what differs between libraries (tolerances,
the order of clip and projection, the specs they refuse). A plugin without a row faces
:data:`DEFAULT`. Library quirks stay in ``test_<backend>_backend.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
import torch
from torch import nn

from art_denoise.attacks import ATTACKS, AttackSpec
from art_denoise.attacks.backends import (
    AttackBackend,
    UnsupportedAttackError,
    available_backends,
)

#: The specs the reference tests run, by id.
REFERENCE_SPECS = {
    "fgsm-linf": AttackSpec(attack="fgsm", eps=0.1),
    "fgsm-l2": AttackSpec(attack="fgsm", norm="2", eps=1.0),
    "fgsm-linf-targeted": AttackSpec(attack="fgsm", eps=0.3, targeted=True),
    "fgsm-l2-targeted": AttackSpec(attack="fgsm", norm="2", eps=2.0, targeted=True),
    "pgd-linf": AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20),
    "pgd-linf-targeted": AttackSpec(attack="pgd", eps=0.3, step_size=0.03, steps=20, targeted=True),
    "pgd-l2": AttackSpec(attack="pgd", norm="2", eps=1.0, step_size=0.25, steps=20),
}

#: Largest pixel difference from the reference; None: compare predictions (check_reference).
Tolerances = dict[str, float | None]

#: Every backend matches the reference on these (pixel-exact up to float32 rounding).
COMMON: Tolerances = {
    "fgsm-linf": 1e-6,
    "fgsm-linf-targeted": 1e-6,
    "pgd-linf": 1e-6,
    "pgd-linf-targeted": 1e-6,
    "pgd-l2": None,
}

GUARD_SPECS = (
    AttackSpec(attack="fgsm", eps=0.1, random_start=True),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True),
    AttackSpec(attack="deepfool", norm="2", eps=None, steps=5),
)

EPS_ZERO = {
    "fgsm-linf": AttackSpec(attack="fgsm", eps=0.0),  # ART itself rejects eps_step=0
    "pgd-linf": AttackSpec(attack="pgd", eps=0.0, step_size=0.01, steps=3, random_start=True),
    "pgd-l2": AttackSpec(
        attack="pgd", norm="2", eps=0.0, step_size=0.1, steps=3, random_start=True
    ),
    "pgd-l2-fixed-start": AttackSpec(attack="pgd", norm="2", eps=0.0, step_size=0.1, steps=3),
    "deepfool-l2": AttackSpec(attack="deepfool", norm="2", eps=0.0, steps=3),
    "deepfool-linf": AttackSpec(attack="deepfool", norm="inf", eps=0.0, steps=3),
}


class Refused(NamedTuple):
    id: str
    spec: AttackSpec
    match: str


class Contract(NamedTuple):
    #: Reference cases (ids of REFERENCE_SPECS) and their tolerances.
    reference: Tolerances
    #: Clip to [0, 1] before projecting onto the eps-ball (ART) instead of after.
    clip_first: bool = False
    guard_specs: tuple[AttackSpec, ...] = GUARD_SPECS
    #: Images per guard test of DeepFool.
    deepfool_n: int = 8
    eps_zero: tuple[str, ...] = ("fgsm-linf", "pgd-linf")
    #: Specs it cannot express, with the words of its refusal.
    refused: tuple[Refused, ...] = ()


DEFAULT = Contract(reference=COMMON)

CONTRACTS = {
    "art": Contract(
        # For a confidently classified image the CE gradient is ~1e-6 and mostly float32
        # rounding; inside ART's generate it comes out 0.07% different (9e-5 after the step).
        reference={**COMMON, "fgsm-l2": 2e-4},
        # ART clips to [0, 1] before projecting onto the eps-ball; the other libraries
        # project first. Only L2 tells the two orders apart.
        clip_first=True,
        guard_specs=(AttackSpec(attack="fgsm", eps=0.1), *GUARD_SPECS[1:]),
        eps_zero=("fgsm-linf", "pgd-linf", "pgd-l2", "deepfool-l2"),
        refused=(
            Refused(
                "deepfool-linf", AttackSpec(attack="deepfool", norm="inf", eps=None), "L2 only"
            ),
        ),
    ),
    "torchattacks": Contract(
        reference=COMMON,
        deepfool_n=4,
        # its PGDL2 has no uniform start in the ball: the L2 case starts at x
        eps_zero=("fgsm-linf", "pgd-linf", "pgd-l2-fixed-start"),
        refused=(
            Refused("fgsm-l2", AttackSpec(attack="fgsm", norm="2", eps=1.0), "Linf only"),
            Refused(
                "pgd-l2-random-start",
                AttackSpec(
                    attack="pgd", norm="2", eps=1.0, step_size=0.25, steps=2, random_start=True
                ),
                "radius uniformly",
            ),
            Refused(
                "deepfool-linf", AttackSpec(attack="deepfool", norm="inf", eps=None), "L2 only"
            ),
        ),
    ),
    "native": Contract(
        # L2 steps in foolbox's arithmetic order (g * (1 / ||g||)), the reference in its own
        reference={**COMMON, "fgsm-l2": 1e-5, "fgsm-l2-targeted": 1e-5},
        guard_specs=(
            *GUARD_SPECS,
            AttackSpec(attack="deepfool", norm="inf", eps=None, steps=5),
            AttackSpec(attack="apgd-ce", eps=0.1, steps=5),
            AttackSpec(attack="apgd-t", norm="2", eps=1.0, steps=3, target_classes=2),
        ),
        eps_zero=tuple(EPS_ZERO),
        refused=tuple(
            Refused(
                f"autoattack-l{norm}",
                AttackSpec(attack="autoattack", norm=norm, eps=0.1),
                "does not run 'autoattack'",
            )
            for norm in ("inf", "2")
        ),
    ),
    "foolbox": Contract(
        reference={**COMMON, "fgsm-l2": 1e-5, "fgsm-l2-targeted": 1e-5},
        eps_zero=("fgsm-linf", "pgd-linf", "pgd-l2", "deepfool-linf"),
        refused=tuple(
            Refused(
                f"autoattack-l{norm}",
                AttackSpec(attack="autoattack", norm=norm, eps=0.1),
                r"foolbox 3\.3\.4 has no AutoAttack",
            )
            for norm in ("inf", "2")
        ),
    ),
}

BACKENDS = available_backends()


def _contract(name: str) -> Contract:
    return CONTRACTS.get(name, DEFAULT)


def _cases(field: str) -> list[Any]:
    """One param (backend name, item) per item of each backend's ``field``, id'd by both."""
    params = []
    for name in BACKENDS:
        items = getattr(_contract(name), field)
        for item in items:
            item_id = item if isinstance(item, str) else getattr(item, "id", None) or item.name
            params.append(pytest.param(name, item, id=f"{name}-{item_id}"))
    return params


def _support_cases() -> list[Any]:
    return [
        pytest.param(name, attack, norm, id=f"{name}-{attack}-l{norm}")
        for name in BACKENDS
        for attack, norms in ATTACKS.items()
        for norm in norms
    ]


@pytest.mark.parametrize(("name", "case"), _cases("reference"))
def test_matches_reference(check_reference, name: str, case: str) -> None:
    contract = _contract(name)
    check_reference(
        name, REFERENCE_SPECS[case], contract.reference[case], clip_first=contract.clip_first
    )


def _snapshot(model: nn.Module) -> tuple[dict, dict, list]:
    modes = {name: m.training for name, m in model.named_modules()}
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    return modes, weights, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("state", ["train", "eval", "mixed-with-grads"])
@pytest.mark.parametrize(("name", "spec"), _cases("guard_specs"))
def test_model_mode_and_grads_restored(
    load_backend, fresh_model, test_split, name: str, spec: AttackSpec, state: str
) -> None:
    """Modes of every submodule, ``requires_grad``, ``.grad`` (``None`` stays ``None``) and
    the state dict (BatchNorm running statistics included) are as before the attack.

    ``mixed-with-grads``: eval mode but ``stage1`` training, every parameter with a gradient.
    """
    backend = load_backend(name)
    model = fresh_model.train(state == "train")
    if state == "mixed-with-grads":
        model.stage1.train()
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.5)
    modes, weights, grads = _snapshot(model)
    x, y = test_split
    n = _contract(name).deepfool_n if spec.attack == "deepfool" else 8
    backend.run(model, x[:n], y[:n], spec)
    assert {name: m.training for name, m in model.named_modules()} == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), f"{k} changed"  # exact: never written to
    for p, g in zip(model.parameters(), grads, strict=True):
        assert p.requires_grad
        if g is None:
            assert p.grad is None
        else:
            assert p.grad is g and bool((g == 0.5).all())


@pytest.mark.parametrize("name", BACKENDS)
def test_restarts_never_lower_success(run_attack, test_split, predict, name: str) -> None:
    """Every image broken with 1 restart is broken with 3, and 3 break more."""
    _, y = test_split
    spec = AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True)
    broken_1 = predict(run_attack(name, spec)) != y
    broken_3 = predict(run_attack(name, spec.replace(restarts=3))) != y
    assert bool((broken_3 | ~broken_1).all()), "a restart un-broke an image"
    assert int(broken_3.sum()) > int(broken_1.sum())


@pytest.mark.parametrize(("name", "case"), _cases("eps_zero"))
def test_eps_zero_returns_x(load_backend, fresh_model, test_split, name: str, case: str) -> None:
    x, y = test_split
    x_adv = load_backend(name).run(fresh_model, x[:16], y[:16], EPS_ZERO[case])
    assert torch.equal(x_adv, x[:16])  # exact: nothing may move


@pytest.mark.parametrize(("name", "case"), _cases("refused"))
def test_unsupported(load_backend, fresh_model, test_split, name: str, case: Refused) -> None:
    backend: AttackBackend = load_backend(name)
    with pytest.raises(UnsupportedAttackError, match=case.match):
        backend.check(case.spec)
    x, y = test_split
    with pytest.raises(UnsupportedAttackError, match=case.match):
        backend.run(fresh_model, x[:4], y[:4], case.spec)


@pytest.mark.parametrize(("name", "attack", "norm"), _support_cases())
def test_check_accepts_every_attack_it_does_not_refuse(
    load_backend, name: str, attack: str, norm: str
) -> None:
    spec = AttackSpec(
        attack=attack, norm=norm, eps=0.1, step_size=0.01 if attack == "pgd" else None
    )
    refused = {(r.spec.name, r.spec.random_start) for r in _contract(name).refused}
    backend = load_backend(name)
    if attack not in backend.attacks:
        with pytest.raises(UnsupportedAttackError, match=f"does not run {attack!r}"):
            backend.check(spec)
    elif (spec.name, spec.random_start) in refused:
        with pytest.raises(UnsupportedAttackError):
            backend.check(spec)
    else:
        backend.check(spec)
