"""Expectation over Transformation (Athalye et al. 2018) for randomised defenses.

A randomised defense (input noise, a noisy autoencoder, random resizing) gives a
different output at every call, so the gradient of one call is a poor guide for an
attacker and single-sample attacks overstate robustness. :class:`EOTModel` makes every
attack library optimise the *expected* model instead: its forward pass calls the wrapped
model ``samples`` times, each call drawing its own randomness, and returns the mean of
the logits. Its gradient is therefore the mean of the ``samples`` per-draw gradients of
the logits — exactly the EOT gradient for losses linear in the logits (CW, DLR margins),
and the gradient of the loss of the averaged logits for cross-entropy.

The wrapper is applied by the attack harness (:meth:`AttackBackend.run`) to the model the
library sees when ``AttackSpec(eot_samples=k)`` has ``k > 1``; robust accuracy is still
measured on the defended model as deployed (one random draw per prediction).

| Paper link: https://arxiv.org/abs/1707.07397 (Athalye et al., ICML 2018)
"""

from __future__ import annotations

import torch
from torch import nn

from art_denoise._validation import check_positive_int

__all__ = ["DEFAULT_EOT_SAMPLES", "EOTModel", "is_randomized"]

#: The default number of draws (the issue's and the common choice).
DEFAULT_EOT_SAMPLES = 16


class EOTModel(nn.Module):
    """The mean of ``samples`` independent forward passes of ``model``.

    Each pass is a separate call, so both per-example randomness (noise added to each
    image) and per-call randomness (one random transform per batch) are redrawn.

    Args:
        model: the randomised model, mapping (B, ...) inputs to (B, classes) logits.
        samples: draws per forward pass, >= 1 (1 is the plain model).

    Raises:
        TypeError: ``model`` is not a module; ValueError: ``samples`` < 1.

    Example:
        >>> noisy = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> EOTModel(noisy, 16)(torch.rand(2, 1, 2, 2)).shape
        torch.Size([2, 3])
    """

    def __init__(self, model: nn.Module, samples: int = DEFAULT_EOT_SAMPLES) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.samples = check_positive_int("samples", samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.model(x)
        for _ in range(self.samples - 1):
            total = total + self.model(x)
        return total / self.samples

    def extra_repr(self) -> str:
        return f"samples={self.samples}"


@torch.no_grad()
def is_randomized(model: nn.Module, x: torch.Tensor, *, atol: float = 0.0) -> bool:
    """Whether two identical calls of ``model`` on ``x`` give different outputs.

    The model is called in its current mode; a model that is randomised only in train
    mode (dropout) is deterministic here when it is in eval mode. Outputs that are NaN or
    inf differ from themselves, so they would pass for randomness: they are an error
    instead (non-finite weights are a broken model, not a randomised one).

    Raises:
        ValueError: an output is NaN or inf (the message counts them).

    Example:
        >>> is_randomized(nn.Linear(4, 2), torch.rand(3, 4))
        False
        >>> is_randomized(nn.Dropout(0.5).train(), torch.ones(3, 64))
        True
    """
    first, second = model(x), model(x)
    bad = [int((~torch.isfinite(out)).sum()) for out in (first, second)]
    if any(bad):
        raise ValueError(
            f"the model returns NaN or inf outputs ({bad[0]} and {bad[1]} of {first.numel()} "
            "in two calls on the same images): a broken model (non-finite weights?), "
            "not a randomised one"
        )
    return not torch.allclose(first, second, rtol=0.0, atol=atol)
