"""The training attacks against torchattacks and hand-written loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from art_denoise.training.adversarial_examples import (
    bn_inference_mode,
    fgsm_examples,
    pgd_examples,
    random_ball,
    random_targets,
)


def _data(digits, n=64):
    _, _, x, y = digits
    return torch.from_numpy(x[:n]), torch.from_numpy(y[:n])


def test_pgd_without_random_start_equals_torchattacks(digits_model, digits):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = _data(digits)
    ours = pgd_examples(
        digits_model,
        x,
        y,
        eps=0.1,
        step_size=0.02,
        steps=10,
        random_start=False,
        generator=torch.Generator(),
    )
    ref = torchattacks.PGD(digits_model, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_pgd_l2_equals_a_hand_written_loop(digits_model, digits):
    x, y = _data(digits)
    gen = torch.Generator().manual_seed(3)
    noise = random_ball(tuple(x.shape), 0.5, "2", torch.Generator().manual_seed(3))
    ours = pgd_examples(
        digits_model, x, y, eps=0.5, step_size=0.1, steps=5, norm="2", generator=gen
    )
    delta = (x + noise).clamp(0, 1) - x
    for _ in range(5):
        delta.requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(digits_model(x + delta), y), delta)
        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = (delta + 0.1 * g).detach()
        norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * (0.5 / norms.clamp_min(1e-12)).clamp(max=1)
        delta = (x + delta).clamp(0, 1) - x
    assert torch.allclose(ours, x + delta, atol=1e-6)
    assert float((ours - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-5


def test_fgsm_equals_sign_of_gradient(digits_model, digits):
    x, y = _data(digits)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(digits_model(xr), y), xr)
    ref = (x + 0.1 * g.sign()).clamp(0, 1)
    ours = fgsm_examples(digits_model, x, y, eps=0.1, generator=torch.Generator())
    assert torch.allclose(ours, ref, atol=1e-7)


def test_pgd_lowers_accuracy_stays_in_ball_and_leaves_no_gradients(digits_model, digits):
    x, y = _data(digits, 200)
    adv = pgd_examples(
        digits_model,
        x,
        y,
        eps=0.1,
        step_size=0.025,
        steps=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        clean = (digits_model(x).argmax(1) == y).float().mean()
        robust = (digits_model(adv).argmax(1) == y).float().mean()
    assert clean > 0.9 and robust < clean - 0.2
    assert all(p.grad is None for p in digits_model.parameters())


def test_targeted_pgd_reaches_the_target(digits_model, digits):
    x, y = _data(digits, 100)
    target = random_targets(y, 10, torch.Generator().manual_seed(0))
    assert bool((target != y).all())
    adv = pgd_examples(
        digits_model,
        x,
        target,
        eps=0.3,
        step_size=0.05,
        steps=20,
        targeted=True,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        hit = (digits_model(adv).argmax(1) == target).float().mean()
    assert hit > 0.8


def test_start_from_clean_mask_and_zero_budget(digits_model, digits):
    x, y = _data(digits, 8)
    mask = torch.tensor([True] * 4 + [False] * 4)
    a = pgd_examples(
        digits_model,
        x,
        y,
        eps=0.1,
        step_size=0.02,
        steps=3,
        start_from_clean=mask,
        generator=torch.Generator().manual_seed(1),
    )
    b = pgd_examples(
        digits_model,
        x,
        y,
        eps=0.1,
        step_size=0.02,
        steps=3,
        random_start=False,
        generator=torch.Generator(),
    )
    assert torch.allclose(a[:4], b[:4], atol=1e-7)
    assert not torch.allclose(a[4:], b[4:])
    assert torch.equal(
        pgd_examples(
            digits_model, x, y, eps=0.0, step_size=0.1, steps=3, generator=torch.Generator()
        ),
        x,
    )


def test_random_ball_l2_is_uniform_in_the_ball():
    pts = random_ball((20000, 1, 2, 1), 1.0, "2", torch.Generator().manual_seed(0))
    r = pts.flatten(1).norm(dim=1)
    assert float(r.max()) <= 1.0 + 1e-6
    # uniform in a 2-D disc: P(r < 0.5) = 0.25 (uniform radius would give 0.5)
    assert abs(float((r < 0.5).float().mean()) - 0.25) < 0.015
    cube = random_ball((1000, 3), 0.2, "inf", torch.Generator().manual_seed(0))
    assert float(cube.abs().max()) <= 0.2 and float(cube.abs().max()) > 0.19


def test_bn_inference_mode_freezes_statistics_and_restores_modes(digits_model, digits):
    x, _ = _data(digits)
    digits_model.train()
    bn = digits_model.stage1[1]
    before = bn.running_mean.clone()
    with bn_inference_mode(digits_model):
        assert not bn.training and digits_model.training
        digits_model(x)
    assert torch.equal(bn.running_mean, before)
    assert bn.training


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"eps": -0.1}, "eps"),
        ({"norm": "1"}, "norm"),
        ({"steps": -1}, "steps"),
        ({"step_size": float("nan")}, "step_size"),
    ],
)
def test_bad_attack_settings(digits_model, digits, kw, match):
    x, y = _data(digits, 4)
    args = {"eps": 0.1, "step_size": 0.01, "steps": 2, **kw}
    with pytest.raises(ValueError, match=match):
        pgd_examples(digits_model, x, y, generator=torch.Generator(), **args)
