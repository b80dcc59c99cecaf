"""The torchattacks plugin against hand-written FGSM / PGD, and what it refuses."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from art_denoise.attacks import AttackSpec
from art_denoise.attacks.backends import UnsupportedAttackError

pytest.importorskip("torchattacks")
art_denoise_torchattacks = pytest.importorskip("art_denoise_torchattacks")
TorchattacksBackend = art_denoise_torchattacks.TorchattacksBackend


class RefCase(NamedTuple):
    id: str
    spec: AttackSpec
    #: Largest pixel difference allowed; None: compare predictions (see check_reference).
    atol: float | None


REFERENCE_CASES = [
    RefCase("fgsm-linf", AttackSpec(attack="fgsm", eps=0.1), 1e-6),
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
    AttackSpec(attack="fgsm", eps=0.1, random_start=True),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True),
    AttackSpec(attack="deepfool", norm="2", eps=None, steps=5),
]


class UnsupportedCase(NamedTuple):
    id: str
    spec: AttackSpec
    match: str


UNSUPPORTED_CASES = [
    UnsupportedCase("fgsm-l2", AttackSpec(attack="fgsm", norm="2", eps=1.0), "Linf only"),
    UnsupportedCase(
        "pgd-l2-random-start",
        AttackSpec(attack="pgd", norm="2", eps=1.0, step_size=0.25, steps=2, random_start=True),
        "radius uniformly",
    ),
    UnsupportedCase(
        "deepfool-linf", AttackSpec(attack="deepfool", norm="inf", eps=None), "L2 only"
    ),
]


@pytest.fixture
def backend() -> TorchattacksBackend:
    return TorchattacksBackend()


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c.id for c in REFERENCE_CASES])
def test_matches_reference(check_reference, case):
    check_reference("torchattacks", case.spec, case.atol)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_random_start_matches_reference(check_reference, test_split, attack):
    # FFGSM(alpha=eps) and PGD draw their start from torch's generator, seeded by the
    # harness: reproduce it, then step, project and clip as the spec says.
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
    if attack == "fgsm":
        noise = torch.randn_like(x).uniform_(-eps, eps)
    else:
        noise = torch.empty_like(x).uniform_(-eps, eps)
    check_reference("torchattacks", spec, 1e-6, x_start=(x + noise).clamp(0.0, 1.0))


@pytest.mark.parametrize("spec", GUARD_SPECS, ids=[s.name for s in GUARD_SPECS])
@pytest.mark.parametrize("state", ["train", "eval", "mixed-with-grads"])
def test_model_mode_and_grads_restored(check_guard, backend, spec, state):
    check_guard(backend, spec, state, n=4 if spec.attack == "deepfool" else 8)


def test_restarts_never_lower_success(check_restarts):
    check_restarts("torchattacks")


@pytest.mark.parametrize("case", UNSUPPORTED_CASES, ids=[c.id for c in UNSUPPORTED_CASES])
def test_unsupported(backend, fresh_model, test_split, case):
    with pytest.raises(UnsupportedAttackError, match=case.match):
        backend.check(case.spec)
    x, y = test_split
    with pytest.raises(UnsupportedAttackError, match=case.match):
        backend.run(fresh_model, x[:4], y[:4], case.spec)


def test_deepfool_fewer_candidates_unsupported(backend, fresh_model, test_split):
    spec = AttackSpec(attack="deepfool", norm="2", eps=None, candidates=3)
    backend.check(spec)  # the class count is known only with the model
    fresh_model.train()
    x, y = test_split
    with pytest.raises(UnsupportedAttackError, match="all 10 classes"):
        backend.run(fresh_model, x[:4], y[:4], spec)
    assert all(m.training for m in fresh_model.modules())
    assert all(p.requires_grad for p in fresh_model.parameters())
    # Targeted DeepFool never reaches a backend: the spec refuses it.
    with pytest.raises(ValueError, match="untargeted"):
        AttackSpec(attack="deepfool", norm="2", eps=None, targeted=True)


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(attack="fgsm", eps=0.0),
        AttackSpec(attack="pgd", eps=0.0, step_size=0.01, steps=3, random_start=True),
        AttackSpec(attack="pgd", norm="2", eps=0.0, step_size=0.1, steps=3),
    ],
    ids=["fgsm-linf", "pgd-linf", "pgd-l2"],
)
def test_eps_zero_returns_x(backend, test_split, spec):
    # A model whose loss gradient vanishes: PGDL2 itself would return 0/0 = NaN here.
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0 * x.flatten(1)[:, :10] + self.bias

    x, y = test_split
    assert torch.equal(backend.run(Flat(), x[:8], y[:8], spec), x[:8])


def test_parameter_free_model_is_silent(backend, test_split, capsys):
    class Scaled(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 10 * x.flatten(1)[:, :10]

    x, y = test_split
    spec = AttackSpec(attack="pgd", eps=0.1, step_size=0.05, steps=2)
    x_adv = backend.run(Scaled(), x[:8], y[:8], spec)
    assert 0 < float((x_adv - x[:8]).abs().max()) <= 0.1 + 1e-6
    assert capsys.readouterr().out == ""
