"""Straight-through clipping: ``clamp`` forward, identity backward (BPDA).

Backward Pass Differentiable Approximation, Athalye, Carlini & Wagner, "Obfuscated
Gradients Give a False Sense of Security", ICML 2018, https://arxiv.org/abs/1802.00420:
a step whose true gradient is zero or useless is replaced by the identity in the
backward pass. ART never calls ``estimate_forward`` when every preprocessor is a
``PreprocessorPyTorch`` (ART issue 1526), so the approximation has to live inside
``forward``: that is what this ``torch.autograd.Function`` does.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["straight_through_clamp"]


class _StraightThroughClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad, None, None


def straight_through_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x.clamp(low, high)`` whose gradient is the identity, also where it clips.

    A plain ``clamp`` has zero gradient wherever it clips: after adding noise to an image
    in [0, 1] that is every saturated pixel, and an attack's gradient would vanish there
    (obfuscated gradients). This clamp passes the incoming gradient through unchanged, so
    attacks see the gradient of the rest of the pipeline (BPDA with the identity).

    Args:
        x: any tensor.
        low: lower bound.
        high: upper bound, >= ``low``.

    Returns:
        ``x`` clipped to [low, high].

    Raises:
        ValueError: ``low > high``.

    Shape:
        - Input: any
        - Output: same as input

    Example:
        >>> x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
        >>> y = straight_through_clamp(x, 0.0, 1.0)
        >>> y.sum().backward()
        >>> y.detach(), x.grad
        (tensor([0.0000, 0.5000, 1.0000]), tensor([1., 1., 1.]))
    """
    if not low <= high:
        raise ValueError(f"low must be <= high, got low={low!r} and high={high!r}")
    out: torch.Tensor = _StraightThroughClamp.apply(x, float(low), float(high))
    return out
