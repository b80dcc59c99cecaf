"""An ART ``PreprocessorPyTorch`` chain in front of a model, as one ``nn.Module``.

:func:`art_denoise.evaluate`, the attack backends and the trainers take plain modules;
this puts input defenses (``DenoisingAutoencoderPyTorch``, ``LowPassFilterPyTorch`` or any
``PreprocessorPyTorch``) in the attacked graph, exactly as ART's ``PyTorchClassifier``
applies its ``preprocessing_defences`` with gradients: ``forward`` of each defence in
order, then the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["PreprocessedModel"]


class PreprocessedModel(nn.Module):
    """``model(d_n(...d_1(x)))`` for ART torch preprocessors ``d_1 ... d_n``.

    Args:
        model: maps (B, C, H, W) inputs to (B, classes) logits.
        defences: objects with ART's ``PreprocessorPyTorch.forward(x, y) -> (x, y)``.

    Raises:
        TypeError: ``model`` is not a module, or a defence has no torch ``forward``.

    Example:
        >>> from art_denoise.preprocessors import LowPassFilterPyTorch
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        >>> PreprocessedModel(net, [LowPassFilterPyTorch(kind="box", kernel_size=3)])(
        ...     torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, model: nn.Module, defences: Sequence[Any]) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for d in defences:
            if not callable(getattr(d, "forward", None)):
                raise TypeError(
                    f"defence {type(d).__name__} has no forward(x, y); expected an ART "
                    "PreprocessorPyTorch"
                )
        self.model = model
        self.defences = list(defences)
        # torch modules inside the defences (an autoencoder) follow .to() and modes
        self._defence_modules = nn.ModuleList(
            m
            for d in self.defences
            for m in [getattr(d, "model", None)]
            if isinstance(m, nn.Module)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for d in self.defences:
            x, _ = d.forward(x, None)
        return self.model(x)

    @property
    def input_shape(self) -> Any:
        return getattr(self.model, "input_shape", None)

    @property
    def num_classes(self) -> Any:
        return getattr(self.model, "num_classes", None)
