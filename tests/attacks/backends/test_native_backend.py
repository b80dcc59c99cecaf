"""The native backend: what it dispatches to, its DeepFool against foolbox's on the digits CNN,
APGD through the harness, and CUDA. The checks every backend faces are in
``test_contract.py`` and ``test_cross_backend.py``.

Measured on the 360 test images with the fixtures' CNN (2 misclassified), DeepFool 50 steps,
overshoot 0.02, all 10 classes as candidates:

============  =======================  ==========================
norm          median norm, native       median norm, foolbox
============  =======================  ==========================
L2            0.5808 (0 left correct)   0.5808 (1 left on a tie)
Linf          0.1157 (0 left correct)   0.1157 (0 left correct)
============  =======================  ==========================

The two run the same algorithm step for step: the largest pixel difference between their
outputs is 4e-5 (L2) and 2e-7 (Linf), float32 rounding in a different order of operations.
The one image foolbox leaves correct sits exactly on the boundary (its top two logits equal
in float32, argmax picks the true class); the native one lands 6e-4 past it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_denoise.attacks import AttackSpec
from art_denoise.attacks.backends import UnsupportedAttackError
from art_denoise.attacks.backends.base import perturbation_norms, seed_everything
from art_denoise.attacks.backends.native_backend import NativeBackend
from art_denoise.attacks.native import (
    apgd,
    apgd_targeted,
    deepfool,
    deepfool_result,
    fgsm,
    pgd,
)

DEEPFOOL = {
    norm: AttackSpec(attack="deepfool", norm=norm, eps=None, steps=50, overshoot=0.02)
    for norm in ("2", "inf")
}


@pytest.fixture
def backend() -> NativeBackend:
    return NativeBackend()


def _call(fn, model, x, y, **kwargs) -> torch.Tensor:
    seed_everything(0)
    return fn(model, x, y, **kwargs)


DISPATCH = [
    pytest.param(
        AttackSpec(attack="fgsm", norm="2", eps=1.0, random_start=True, targeted=True),
        fgsm,
        {"norm": "2", "eps": 1.0, "targeted": True, "random_start": True},
        id="fgsm",
    ),
    pytest.param(
        AttackSpec(attack="pgd", eps=0.1, step_size=0.02, steps=5, random_start=True),
        pgd,
        {"norm": "inf", "eps": 0.1, "step_size": 0.02, "steps": 5, "random_start": True},
        id="pgd",
    ),
    pytest.param(
        AttackSpec(attack="deepfool", norm="inf", eps=None, steps=7, candidates=4),
        deepfool,
        {"norm": "inf", "steps": 7, "overshoot": 0.02, "candidates": 4},
        id="deepfool",
    ),
    pytest.param(
        AttackSpec(attack="apgd-ce", norm="2", eps=1.0, steps=6),
        apgd,
        {"norm": "2", "eps": 1.0, "steps": 6, "loss": "ce"},
        id="apgd-ce",
    ),
    pytest.param(
        AttackSpec(attack="apgd-dlr", eps=0.1, steps=6),
        apgd,
        {"norm": "inf", "eps": 0.1, "steps": 6, "loss": "dlr"},
        id="apgd-dlr",
    ),
    pytest.param(
        AttackSpec(attack="apgd-t", eps=0.1, steps=4, target_classes=3),
        apgd_targeted,
        {"norm": "inf", "eps": 0.1, "steps": 4, "target_classes": 3},
        id="apgd-t",
    ),
]


@pytest.mark.parametrize(("spec", "fn", "kwargs"), DISPATCH)
def test_runs_the_native_function(backend, fresh_model, test_split, targets, spec, fn, kwargs):
    """The harness (seeded) gives what the function gives, called by hand at that seed."""
    x, y = test_split
    labels = (targets if spec.targeted else y)[:24]
    got = backend.run(fresh_model, x[:24], labels, spec, seed=0)
    for p in fresh_model.parameters():
        p.requires_grad_(False)
    expected = _call(fn, fresh_model.eval(), x[:24], labels, **kwargs)
    assert torch.equal(got, expected)  # exact: the same code on the same batch and seed


def test_version_and_attacks(backend) -> None:
    import art_denoise

    assert backend.version() == art_denoise.__version__
    assert backend.attacks == ("fgsm", "pgd", "deepfool", "apgd-ce", "apgd-dlr", "apgd-t")
    with pytest.raises(UnsupportedAttackError, match="does not run 'autoattack'"):
        backend.check(AttackSpec(attack="autoattack", eps=0.1))


@pytest.mark.parametrize(
    ("attack", "classes"), [("apgd-dlr", 2), ("apgd-t", 3)], ids=["dlr-2", "t-3"]
)
def test_apgd_refuses_too_few_classes(backend, attack: str, classes: int) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, classes))
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(UnsupportedAttackError, match=f"the model has {classes}"):
        backend.run(model, x, torch.zeros(4, dtype=torch.long), AttackSpec(attack=attack, eps=0.1))


def test_apgd_t_targets_at_most_the_wrong_classes(backend) -> None:
    """9 target classes asked for, 4 classes: 3 wrong ones are attacked, no error."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    x_adv = backend.run(model, x, y, AttackSpec(attack="apgd-t", norm="2", eps=2.0, steps=5))
    assert float(perturbation_norms(x_adv - x, "2").max()) <= 2.0 + 1e-6


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_deepfool_breaks_every_correct_image(run_attack, predict, test_split, norm: str):
    x, y = test_split
    correct = predict(x) == y
    x_adv = run_attack("native", DEEPFOOL[norm])
    assert not bool(((predict(x_adv) == y) & correct).any())
    wrong = ~correct
    assert int(wrong.sum()) == 2 and torch.equal(x_adv[wrong], x[wrong])  # left as they were


@pytest.mark.parametrize(
    ("norm", "median_tol", "close_share"),
    # L2: the 10% on the median. Linf: measured identical medians and pixels within
    # 2e-7; the same 10% leaves room for float32 rounding and other torch builds.
    [("2", 0.10, 0.99), ("inf", 0.10, 0.99)],
)
def test_deepfool_norms_match_foolbox(
    load_backend, run_attack, predict, test_split, norm, median_tol, close_share
):
    load_backend("foolbox")  # skips without the plugin
    x, y = test_split
    correct = predict(x) == y
    mine = perturbation_norms(run_attack("native", DEEPFOOL[norm]) - x, norm)[correct]
    theirs = perturbation_norms(run_attack("foolbox", DEEPFOOL[norm]) - x, norm)[correct]
    assert abs(float(mine.median() / theirs.median()) - 1) <= median_tol
    # image by image too: the same steps, up to float32 rounding
    close = ((mine - theirs).abs() <= 1e-3 * theirs).float().mean()
    assert float(close) >= close_share


def test_deepfool_result_counts_what_the_backend_returns(shared_model, test_split, predict):
    """``deepfool_result``'s flags are the model's verdict on the returned images."""
    x, y = test_split
    result = deepfool_result(shared_model, x[:64], y[:64], steps=3)
    flipped = predict(result.x_adv) != y[:64]
    assert torch.equal(result.adversarial, flipped)
    assert 0 < int(flipped.sum()) < 64  # 3 steps are not enough for all of them


def test_apgd_below_pgd_on_the_cnn(run_attack, predict, test_split):
    """APGD-CE with 100 iterations finds at least what PGD-20 finds (55.8% vs 59.4% here)."""
    _, y = test_split
    n = 120
    pgd_acc = (predict(run_attack("native", _PGD, n)) == y[:n]).float().mean()
    apgd_acc = (predict(run_attack("native", _APGD, n)) == y[:n]).float().mean()
    assert float(apgd_acc) <= float(pgd_acc)


_PGD = AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20, random_start=True)
_APGD = AttackSpec(attack="apgd-ce", eps=0.1, steps=100)


@pytest.mark.cuda
@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(attack="pgd", norm="2", eps=1.0, step_size=0.25, steps=20),
        DEEPFOOL["2"],
        DEEPFOOL["inf"],
        AttackSpec(attack="apgd-ce", eps=0.1, steps=20),
    ],
    ids=["pgd-l2", "deepfool-l2", "deepfool-linf", "apgd-ce"],
)
def test_cuda_agrees_with_cpu(backend, fresh_model, test_split, run_attack, predict, spec):
    x, y = test_split
    cpu = run_attack("native", spec)
    gpu = backend.run(fresh_model.cuda(), x.cuda(), y.cuda(), spec)
    assert gpu.device.type == "cuda"
    acc_cpu = float((predict(cpu) == y).float().mean())
    acc_gpu = float((predict(gpu.cpu()) == y).float().mean())
    assert abs(acc_cpu - acc_gpu) <= 0.02, (acc_cpu, acc_gpu)
    if spec.attack == "deepfool":
        correct = predict(x) == y
        assert not bool(((predict(gpu.cpu()) == y) & correct).any())


@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-t"])
@pytest.mark.parametrize(("eot", "early_stop"), [(1, True), (4, False)])
def test_apgd_stops_early_only_on_a_deterministic_model(
    backend, monkeypatch, attack: str, eot: int, early_stop: bool
) -> None:
    """With EOT (a randomised model) the mean of the draws does not decide when to stop."""
    import importlib

    module = importlib.import_module("art_denoise.attacks.native.apgd")  # not the function

    seen: list[bool] = []
    for name in ("apgd", "apgd_targeted"):
        real = getattr(module, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs["early_stop"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    x = torch.rand(6, 1, 8, 8)
    spec = AttackSpec(attack=attack, eps=0.1, steps=3, target_classes=2, eot_samples=eot)
    x_adv = backend.run(model, x, torch.zeros(6, dtype=torch.long), spec)
    assert seen == [early_stop]
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
