from __future__ import annotations

import pytest
import torch

from art_denoise.preprocessors import straight_through_clamp


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
