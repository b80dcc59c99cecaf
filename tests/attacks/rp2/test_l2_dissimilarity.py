"""BlurNet's L2 dissimilarity: one definition shared by the RP2 metrics and the evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from art_denoise.attacks import rp2
from art_denoise.attacks.rp2.metrics import l2_dissimilarity
from art_denoise.evaluation import metrics as evaluation_metrics


def test_one_definition_for_both_users() -> None:
    assert evaluation_metrics.l2_dissimilarity is l2_dissimilarity
    assert rp2.l2_dissimilarity is l2_dissimilarity


def test_by_hand() -> None:
    x = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    x_adv = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    # ||(0, -4)|| / ||(3, 4)|| = 0.8 and 0 for the unchanged image.
    assert l2_dissimilarity(x, x_adv) == pytest.approx(0.4, abs=1e-15)


def test_all_zero_adversarial_image_equal_to_x_counts_zero() -> None:
    x = torch.zeros(2, 1, 2, 2)
    assert l2_dissimilarity(x, x.clone()) == 0.0
    mixed = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    assert l2_dissimilarity(mixed, mixed.clone()) == 0.0


def test_all_zero_adversarial_image_that_differs_is_inf() -> None:
    x = torch.ones(1, 1, 2, 2)
    assert l2_dissimilarity(x, torch.zeros_like(x)) == math.inf
    # One such image makes the mean inf, whatever the others.
    x2 = torch.cat([x, x])
    x_adv2 = torch.cat([torch.zeros_like(x), x])
    assert l2_dissimilarity(x2, x_adv2) == math.inf


def test_tiny_adversarial_norm_is_not_floored() -> None:
    x = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    x_adv = torch.tensor([1e-13, 0.0], dtype=torch.float64).view(1, 1, 1, 2)
    assert l2_dissimilarity(x, x_adv) == pytest.approx(1.0)


def test_empty_batch_is_zero() -> None:
    assert l2_dissimilarity(torch.zeros(0, 1, 2, 2), torch.zeros(0, 1, 2, 2)) == 0.0


def test_rp2_metrics_use_it() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]).view(3, 1, 1, 2)
    x_adv = torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0, 0.75]]).view(3, 1, 1, 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2))
    m = rp2.rp2_metrics(model, x, x_adv, torch.tensor([0, 1, 0]))
    assert m["l2_dissimilarity"] == l2_dissimilarity(x, x_adv)
    assert m["l2_dissimilarity"] == pytest.approx((0 + 1 + 0.6) / 3, abs=1e-12)
