"""The torch utilities of :mod:`art_denoise._torch`, each against a naive reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from art_denoise._torch import (
    model_device,
    perturbation_norms,
    project_delta,
    project_to_ball,
    random_ball,
    random_targets,
    rng_preserved,
    straight_through_clamp,
)


def test_forward_is_clamp_and_backward_is_identity() -> None:
    x = torch.linspace(-1, 2, 13, dtype=torch.float64, requires_grad=True)
    y = straight_through_clamp(x, 0.0, 1.0)
    torch.testing.assert_close(y, x.detach().clamp(0, 1))
    weights = torch.arange(13, dtype=torch.float64)
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights)  # a plain clamp would give 0 outside [0, 1]


def test_inside_a_graph() -> None:
    x = torch.tensor([0.5, 3.0], requires_grad=True)
    straight_through_clamp(2 * x, -1.0, 1.0).pow(2).sum().backward()
    # d/dx (clamp(2x))^2 with the identity for clamp: 2 * clamp(2x) * 2
    torch.testing.assert_close(x.grad, torch.tensor([4.0, 4.0]))


def test_bad_bounds() -> None:
    with pytest.raises(ValueError, match=r"low=1.0 and high=0.0"):
        straight_through_clamp(torch.zeros(2), 1.0, 0.0)


def test_rng_preserved_restores_torch_numpy_and_random() -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    with rng_preserved():
        torch.rand(5), np.random.rand(5), random.random()
    after = (torch.rand(1).item(), float(np.random.rand()), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    assert after == (torch.rand(1).item(), float(np.random.rand()), random.random())


def test_random_targets_differ_from_labels_and_cover_the_others() -> None:
    y = torch.zeros(2000, dtype=torch.int64)
    t = random_targets(y, 10, torch.Generator().manual_seed(0))
    assert (t != y).all()
    counts = torch.bincount(t, minlength=10)[1:].double()
    assert counts.min() > 0.8 * 2000 / 9  # uniform over the 9 wrong labels


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_random_ball_is_inside_the_ball_and_fills_it(norm: str) -> None:
    pts = random_ball((4000, 1, 2, 2), 0.5, norm, torch.Generator().manual_seed(0))
    norms = perturbation_norms(pts, norm)
    assert norms.max() <= 0.5 + 1e-6
    # uniform in a 4-d ball: P(r <= 0.5 * 0.5**(1/4)) = 1/2; in the cube each coordinate is
    # uniform, so the Linf norm's median is 0.5 * 0.5**(1/4) too
    assert abs(float(norms.median()) - 0.5 * 0.5**0.25) < 0.02


def _naive_project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    out = delta.clone()
    for i in range(len(delta)):
        if norm == "inf":
            out[i] = delta[i].clamp(-eps, eps)
        else:
            n = float(delta[i].norm())
            if n > eps:
                out[i] = delta[i] * (eps / n)
    return out


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_project_delta_against_a_loop(norm: str) -> None:
    delta = torch.randn(6, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    delta[0] *= 1e-3  # inside the ball: untouched
    torch.testing.assert_close(project_delta(delta, 0.7, norm), _naive_project(delta, 0.7, norm))
    x = torch.rand(6, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    out = project_to_ball(x, x + delta, 0.7, norm)
    assert out.min() >= 0 and out.max() <= 1
    assert perturbation_norms(out - x, norm).max() <= 0.7 + 1e-6


def test_model_device() -> None:
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.BatchNorm2d(2).requires_grad_(False)) == torch.device("cpu")
    assert model_device(nn.ReLU(), default="meta") == torch.device("meta")
