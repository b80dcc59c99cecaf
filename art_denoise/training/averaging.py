"""Exponential moving average of a model's weights (Polyak averaging).

Averaging the weights along the training trajectory is one of the cheapest known gains
in robust accuracy (Gowal et al. 2020, "Uncovering the limits of adversarial training
against norm-bounded adversarial examples", §4: "model weight averaging"). The average
costs one ``lerp`` per tensor per step and never touches the optimiser.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["WeightAverage", "check_decay"]


def check_decay(name: str, value: object) -> float:
    """``value`` as a decay in [0, 1), or a ``TypeError`` / ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


class WeightAverage:
    """An exponential moving average of every floating tensor of a model's state.

    After each optimiser step, :meth:`update` moves the average towards the model:
    ``avg <- d * avg + (1 - d) * w`` with ``d = min(decay, (1 + t) / (10 + t))`` at the
    ``t``-th update, so early averages are not dominated by the random initialisation
    (the warm-up of TensorFlow's ``ExponentialMovingAverage``). Buffers are averaged the
    same way (BatchNorm running statistics); integer buffers such as
    ``num_batches_tracked`` are copied.

    Args:
        model: the module whose ``state_dict`` is averaged (the bare module, not a
            DistributedDataParallel wrapper).
        decay: in [0, 1); 0.999 averages over roughly the last 1000 steps.

    Example:
        >>> model = nn.Linear(2, 1)
        >>> avg = WeightAverage(model, decay=0.9)
        >>> with torch.no_grad():
        ...     _ = model.weight.add_(1.0)
        >>> avg.update(model)
        >>> with avg.applied(model):  # evaluate the averaged weights
        ...     pass
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = check_decay("decay", decay)
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: t.detach().clone() for name, t in model.state_dict().items()
        }

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses (after the warm-up)."""
        t = self.updates + 1
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        d = self.current_decay()
        for name, value in model.state_dict().items():
            avg = self.shadow[name]
            if avg.is_floating_point():
                avg.lerp_(value.detach().to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged tensors (on the CPU), the decay and the number of updates."""
        return {
            "decay": self.decay,
            "updates": self.updates,
            "shadow": {name: t.detach().cpu().clone() for name, t in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the tensor names must match this average's."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the weight average was saved for a model with other tensors")
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for name, t in state["shadow"].items():
            self.shadow[name].copy_(t)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (in place)."""
        model.load_state_dict(self.shadow)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block ``model`` holds the averaged weights; its own come back after."""
        saved = {name: t.detach().clone() for name, t in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            model.load_state_dict(saved)
