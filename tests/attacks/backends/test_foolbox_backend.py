"""The foolbox plugin's quirks: how it draws a random start, the model it hands to foolbox,
and its L-inf DeepFool. The checks every backend faces are in ``test_contract.py``."""

from __future__ import annotations

import warnings

import pytest
import torch

from art_denoise.attacks import AttackSpec

pytest.importorskip("foolbox")
art_denoise_foolbox = pytest.importorskip("art_denoise_foolbox")
FoolboxBackend = art_denoise_foolbox.FoolboxBackend


@pytest.fixture
def backend() -> FoolboxBackend:
    return FoolboxBackend()


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


def test_model_in_train_mode_reaches_foolbox_in_eval_mode(backend, fresh_model, test_split):
    x, y = test_split
    fresh_model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend.run(fresh_model, x[:8], y[:8], AttackSpec(attack="fgsm", eps=0.1))
    assert not [w for w in caught if "training mode" in str(w.message)]
    assert fresh_model.training


def test_deepfool_linf_within_eps(run_attack, test_split, predict):
    x, y = test_split
    spec = AttackSpec(attack="deepfool", norm="inf", eps=0.3, steps=50)
    x_adv = run_attack("foolbox", spec, 60)
    assert float((x_adv - x[:60]).abs().max()) <= 0.3 + 1e-6
    assert float((predict(x_adv) == y[:60]).float().mean()) <= 0.05
