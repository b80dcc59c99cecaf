"""The torchattacks plugin's quirks: how it draws a random start, what only it refuses, and
a loss without gradient. The checks every backend faces are in ``test_contract.py``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_denoise.attacks import AttackSpec
from art_denoise.attacks.backends import UnsupportedAttackError

pytest.importorskip("torchattacks")
art_denoise_torchattacks = pytest.importorskip("art_denoise_torchattacks")
TorchattacksBackend = art_denoise_torchattacks.TorchattacksBackend


@pytest.fixture
def backend() -> TorchattacksBackend:
    return TorchattacksBackend()


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
def test_eps_zero_returns_x_when_the_loss_is_flat(backend, test_split, spec):
    # A model whose loss gradient vanishes: PGDL2 itself would return 0/0 = NaN here.
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0 * x.flatten(1)[:, :10] + self.bias

    x, y = test_split
    assert torch.equal(backend.run(Flat(), x[:8], y[:8], spec), x[:8])  # exact: nothing moves


def test_parameter_free_model_is_silent(backend, test_split, capsys):
    class Scaled(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 10 * x.flatten(1)[:, :10]

    x, y = test_split
    spec = AttackSpec(attack="pgd", eps=0.1, step_size=0.05, steps=2)
    x_adv = backend.run(Scaled(), x[:8], y[:8], spec)
    assert 0 < float((x_adv - x[:8]).abs().max()) <= 0.1 + 1e-6
    assert capsys.readouterr().out == ""
