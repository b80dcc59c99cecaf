from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest

from art_denoise.attacks.spec import AttackSpec, normalize_norm


class BadSpec(NamedTuple):
    kwargs: dict[str, Any]
    error: type[Exception]
    match: str


BAD = {
    "unknown attack": BadSpec({"attack": "cw"}, ValueError, "unknown attack 'cw'"),
    "negative eps": BadSpec({"attack": "fgsm", "eps": -0.1}, ValueError, "eps must be"),
    "nan eps": BadSpec({"attack": "fgsm", "eps": float("nan")}, ValueError, "eps must be"),
    "string eps": BadSpec({"attack": "fgsm", "eps": "0.1"}, TypeError, "eps must be a number"),
    "pgd without step": BadSpec(
        {"attack": "pgd", "eps": 0.1, "steps": 10}, ValueError, "step_size"
    ),
    "pgd zero step": BadSpec({"attack": "pgd", "step_size": 0.0}, ValueError, "step_size"),
    "zero steps": BadSpec({"attack": "pgd", "step_size": 0.01, "steps": 0}, ValueError, "steps"),
    "fgsm two steps": BadSpec({"attack": "fgsm", "steps": 2}, ValueError, "single step"),
    "fgsm other step": BadSpec({"attack": "fgsm", "step_size": 0.5}, ValueError, "fgsm steps"),
    "unknown norm": BadSpec({"attack": "pgd", "norm": "l1", "step_size": 0.1}, ValueError, "norm"),
    "targeted deepfool": BadSpec(
        {"attack": "deepfool", "targeted": True}, ValueError, "untargeted"
    ),
    "pgd eps none": BadSpec({"attack": "pgd", "eps": None, "step_size": 0.1}, ValueError, "eps"),
    "zero restarts": BadSpec({"attack": "fgsm", "restarts": 0}, ValueError, "restarts"),
    "float batch": BadSpec({"attack": "fgsm", "batch_size": 1.5}, TypeError, "batch_size"),
    "int flag": BadSpec({"attack": "fgsm", "targeted": 1}, TypeError, "targeted"),
    "pgd restarts from one start": BadSpec(
        {"attack": "pgd", "step_size": 0.01, "steps": 5, "restarts": 5},
        ValueError,
        "restarts=5 without a random start repeat one pgd run",
    ),
    "fgsm restarts from one start": BadSpec(
        {"attack": "fgsm", "restarts": 2}, ValueError, "set random_start=True or restarts=1"
    ),
    "deepfool restarts": BadSpec(
        {"attack": "deepfool", "eps": None, "restarts": 3}, ValueError, "deepfool is determ"
    ),
}


def test_restarts_with_their_own_starts_are_accepted() -> None:
    pgd = AttackSpec(attack="pgd", step_size=0.01, steps=5, random_start=True, restarts=5)
    assert pgd.restarts == 5
    assert AttackSpec(attack="fgsm", random_start=True, restarts=2).restarts == 2
    assert AttackSpec(attack="apgd-ce", steps=10, restarts=3).restarts == 3  # its own start


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_specs_name_the_value(case: BadSpec) -> None:
    with pytest.raises(case.error, match=case.match):
        AttackSpec(**case.kwargs)


@pytest.mark.parametrize(
    ("norm", "expected"),
    [
        ("inf", "inf"),
        ("linf", "inf"),
        (np.inf, "inf"),
        (float("inf"), "inf"),
        (2, "2"),
        ("l2", "2"),
        ("L2", "2"),
    ],
)
def test_norm_aliases(norm: Any, expected: str) -> None:
    assert normalize_norm(norm) == expected


def test_fgsm_steps_eps_and_keys() -> None:
    spec = AttackSpec(attack="fgsm", eps=0.2)
    assert spec.step_size == 0.2  # exact: FGSM steps eps itself
    assert spec.key == "fgsm-linf@0.2"
    assert AttackSpec(attack="deepfool", norm=2, eps=None).key == "deepfool-l2@unbounded"
    pgd = AttackSpec(attack="pgd", norm=np.inf, eps=0.1, step_size=0.0125, steps=20)
    assert pgd.norm == "inf" and pgd.to_dict()["steps"] == 20
    assert pgd.replace(eps=0.2).eps == 0.2
    with pytest.raises(ValueError, match="eps"):
        pgd.replace(eps=-1.0)


@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-dlr", "apgd-t"])
def test_apgd_is_parameter_free_and_untargeted(attack: str) -> None:
    spec = AttackSpec(attack=attack, eps=0.1, steps=100)
    assert spec.parameter_free and not spec.minimal_norm
    assert spec.key == f"{attack}-linf@0.1"
    assert spec.target_classes == 9
    with pytest.raises(ValueError, match="parameter-free"):
        AttackSpec(attack=attack, eps=0.1, step_size=0.01)
    with pytest.raises(ValueError, match="untargeted"):
        AttackSpec(attack=attack, eps=0.1, targeted=True)
    with pytest.raises(ValueError, match="random_start"):
        AttackSpec(attack=attack, eps=0.1, random_start=True)
    with pytest.raises(ValueError, match="target_classes"):
        AttackSpec(attack=attack, eps=0.1, target_classes=0)


def test_pgd_and_deepfool_kinds() -> None:
    assert not AttackSpec(attack="pgd", eps=0.1, step_size=0.01).parameter_free
    assert AttackSpec(attack="autoattack", eps=0.1).parameter_free
    assert AttackSpec(attack="deepfool", norm="2", eps=None).minimal_norm


def test_linf_eps_above_one_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"eps=8 .*8/255"):
        AttackSpec(attack="fgsm", eps=8)
    assert AttackSpec(attack="fgsm", eps=1.0).eps == 1.0
    assert AttackSpec(attack="pgd", norm="2", eps=3.0, step_size=0.5).eps == 3.0
