"""An ART ``PreprocessorPyTorch`` chain in front of a model, as one ``nn.Module``.

:func:`art_denoise.evaluate`, the attack backends and the trainers take plain modules;
this puts input defenses (``DenoisingAutoencoderPyTorch``, ``LowPassFilterPyTorch`` or any
``PreprocessorPyTorch``) in the attacked graph, exactly as ART's ``PyTorchClassifier``
applies its ``preprocessing_defences`` with gradients: ``forward`` of each defence in
order, then the model. :func:`estimator_module` builds it from an ART classifier (for the
trainers and RP2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["PreprocessedModel", "estimator_module"]


class PreprocessedModel(nn.Module):
    """``model(d_n(...d_1(x)))`` for ART torch preprocessors ``d_1 ... d_n``.

    Args:
        model: maps (B, C, H, W) inputs to (B, classes) logits.
        defences: objects with ART's ``PreprocessorPyTorch.forward(x, y) -> (x, y)``.
        register_defences: make the torch modules inside the defences (an autoencoder)
            submodules, so that they follow ``.to()``, ``train()``/``eval()`` and appear in
            ``state_dict()``. ``False`` leaves them to their owner (a classifier whose
            model is trained while its defences stay fixed).

    Raises:
        TypeError: ``model`` is not a module, or a defence has no torch ``forward``.

    Example:
        >>> from art_denoise.defences.preprocessor import LowPassFilterPyTorch
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        >>> PreprocessedModel(net, [LowPassFilterPyTorch(kind="box", kernel_size=3)])(
        ...     torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, model: nn.Module, defences: Sequence[Any], *, register_defences: bool = True
    ) -> None:
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
        owned = (getattr(d, "model", None) for d in self.defences) if register_defences else ()
        self._defence_modules = nn.ModuleList(m for m in owned if isinstance(m, nn.Module))

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


def _is_identity(op: Any) -> bool:
    mean, std = getattr(op, "mean", None), getattr(op, "std", None)
    if mean is None or std is None:
        return False
    return bool(np.all(np.asarray(mean) == 0) and np.all(np.asarray(std) == 1))


def estimator_module(estimator: Any, *, fit: bool, who: str) -> nn.Module:
    """An ART classifier's torch forward pass as one module: its preprocessing, then its model.

    Takes the preprocessing steps ART applies at fit time (``fit=True``: ``apply_fit``) or
    at prediction time (``apply_predict``), skips an identity standardisation, and wraps
    the rest in a :class:`PreprocessedModel` that leaves the defences' own modules to the
    classifier. Postprocessing defences act on predictions and are not part of the graph.

    Args:
        estimator: an ART ``PyTorchClassifier``.
        fit: the steps of training (``True``) or of prediction (``False``).
        who: the caller, named in the error.

    Returns:
        ``estimator.model`` itself when no step applies.

    Raises:
        ValueError: a step that ART runs in numpy (gradients cannot flow through it).
    """
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

    ops = [
        op
        for op in getattr(estimator, "preprocessing_operations", None) or []
        if getattr(op, "apply_fit" if fit else "apply_predict", True) and not _is_identity(op)
    ]
    if not all(isinstance(op, PreprocessorPyTorch) for op in ops):
        names = ", ".join(type(op).__name__ for op in ops)
        raise ValueError(
            f"{who} needs gradients through the estimator's preprocessing, so every step "
            f"must be a PreprocessorPyTorch; got [{names}]"
        )
    model: nn.Module = estimator.model
    return PreprocessedModel(model, ops, register_defences=False) if ops else model
