"""Capture a layer's feature maps during a forward pass (for the TV penalty and spectra)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["capture_features"]


def _module(model: nn.Module, layer: Any) -> nn.Module:
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        names = ", ".join(n for n in modules if n)
        raise ValueError(f"unknown layer {layer!r}; valid names are: {names}")
    return modules[layer]


@contextlib.contextmanager
def capture_features(
    model: nn.Module, layer: str, *, detach: bool = False
) -> Iterator[list[torch.Tensor]]:
    """Collect the outputs of ``model``'s submodule ``layer`` while the context is open.

    A forward hook appends the layer's output to the yielded list at every call; the hook
    is removed on exit, whatever happened inside. The tensors keep their autograd graph
    (so a penalty on them trains the model, as BlurNet's TV regulariser does) unless
    ``detach=True``. A layer with a :class:`LowPass2d` (or a denoising block) inserted by
    hook gives the output the rest of the model sees, i.e. after the inserted layer.

    Args:
        model: the network.
        layer: dotted name from ``model.named_modules()``.
        detach: store detached tensors (for analysis without gradients).

    Yields:
        The list that fills with one tensor per call of the layer.

    Raises:
        ValueError: unknown ``layer`` (the message lists the valid names).

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> model = SmallCNN(input_shape=(1, 8, 8))
        >>> with capture_features(model, "stage1.0") as maps:
        ...     _ = model(torch.rand(2, 1, 8, 8))
        >>> maps[0].shape
        torch.Size([2, 32, 8, 8])
    """
    module = _module(model, layer)
    features: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            features.append(output.detach() if detach else output)

    handle = module.register_forward_hook(hook)
    try:
        yield features
    finally:
        handle.remove()
