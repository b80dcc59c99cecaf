"""The training objectives against hand computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from art_denoise.training import (
    FastTraining,
    MixTraining,
    PGDTraining,
    StandardTraining,
    create_method,
)
from art_denoise.training.adversarial_examples import pgd_examples


def _batch(digits, n=32):
    _, _, x, y = digits
    return torch.from_numpy(x[:n]), torch.from_numpy(y[:n])


def test_standard_is_cross_entropy(digits_model, digits):
    x, y = _batch(digits)
    out = StandardTraining().loss(digits_model, digits_model, x, y, {})
    assert torch.allclose(out.losses.mean(), F.cross_entropy(digits_model(x), y), atol=1e-6)


def test_mix_is_the_weighted_sum_of_clean_and_fgsm_losses(digits_model, digits):
    x, y = _batch(digits)
    method = MixTraining(eps=0.1, alpha=0.3, bn_eval=False)
    digits_model.eval()
    out = method.loss(
        digits_model, digits_model, x, y, method.draw(y, tuple(x.shape), 10, torch.Generator())
    )
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(digits_model(xr), y), xr)
    x_adv = (x + 0.1 * g.sign()).clamp(0, 1)
    ref = 0.3 * F.cross_entropy(digits_model(x), y, reduction="none") + 0.7 * F.cross_entropy(
        digits_model(x_adv), y, reduction="none"
    )
    assert torch.allclose(out.losses, ref, atol=1e-5)


def test_pgd_restarts_keep_the_strongest_example(digits_model, digits):
    x, y = _batch(digits, 64)
    digits_model.eval()
    one = PGDTraining(eps=0.1, steps=3, restarts=1, prob_start_from_clean=0.0, track_clean=False)
    four = PGDTraining(eps=0.1, steps=3, restarts=4, prob_start_from_clean=0.0, track_clean=False)
    d4 = four.draw(y, tuple(x.shape), 10, torch.Generator().manual_seed(0))
    assert d4["noise"].shape == (64, 4, 1, 8, 8)
    l4 = four.loss(digits_model, digits_model, x, y, d4).losses
    # each restart on its own, with the same noise
    per = []
    for r in range(4):
        d1 = {"noise": d4["noise"][:, r : r + 1], "from_clean": d4["from_clean"]}
        per.append(one.loss(digits_model, digits_model, x, y, d1).losses)
    assert torch.allclose(l4, torch.stack(per).max(dim=0).values, atol=1e-5)


def test_pgd_draws_start_from_clean_for_the_given_fraction_of_batches():
    method = PGDTraining(eps=0.1, steps=2, prob_start_from_clean=0.25)
    gen = torch.Generator().manual_seed(0)
    y = torch.zeros(4, dtype=torch.int64)
    flags = [bool(method.draw(y, (4, 1, 8, 8), 10, gen)["from_clean"][0]) for _ in range(2000)]
    assert abs(sum(flags) / 2000 - 0.25) < 0.03


def test_targeted_pgd_trains_on_the_true_label_and_attacks_a_random_one(digits_model, digits):
    x, y = _batch(digits)
    method = PGDTraining(eps=0.1, steps=3, targeted=True, random_start=False)
    draws = method.draw(y, tuple(x.shape), 10, torch.Generator().manual_seed(0))
    assert bool((draws["target"] != y).all())
    digits_model.eval()
    out = method.loss(digits_model, digits_model, x, y, draws)
    adv = pgd_examples(
        digits_model,
        x,
        draws["target"],
        eps=0.1,
        step_size=method.step_size,
        steps=3,
        random_start=False,
        targeted=True,
        generator=torch.Generator(),
    )
    ref = F.cross_entropy(digits_model(adv), y, reduction="none")
    assert torch.allclose(out.losses, ref, atol=1e-5)


def test_fast_uses_a_random_start_and_a_125_eps_step():
    method = FastTraining(eps=0.1)
    assert method.step_size == pytest.approx(0.125)
    assert method.steps == 1 and method.random_start
    assert method.config()["method"] == "fast"


@pytest.mark.parametrize(
    ("name", "kw", "error", "match"),
    [
        ("adam", {}, ValueError, "unknown method"),
        ("pgd", {"eps": -1.0}, ValueError, "eps"),
        ("pgd", {"epsilon": 0.1}, TypeError, "epsilon"),
        ("pgd", {"norm": "1"}, ValueError, "norm"),
        ("pgd", {"prob_start_from_clean": 1.5}, ValueError, "prob_start_from_clean"),
        ("mix", {"alpha": 2.0}, ValueError, "alpha"),
        ("mix", {"attack": "cw"}, ValueError, "attack"),
        ("pgd", {"steps": 0}, ValueError, "steps"),
    ],
)
def test_bad_settings(name, kw, error, match):
    with pytest.raises(error, match=match):
        create_method(name, **kw)
