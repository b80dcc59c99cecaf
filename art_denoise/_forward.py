"""One forward pass in eval mode that leaves the model exactly as it was."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["eval_forward"]


def eval_forward(model: nn.Module, x: torch.Tensor, handles: Iterable[RemovableHandle] = ()) -> Any:
    """Run ``model(x)`` under ``no_grad`` in eval mode and return its output.

    Afterwards every submodule is back in the train/eval mode it had, and the given hook
    ``handles`` are removed, whatever the forward pass raised.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            return model(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode
