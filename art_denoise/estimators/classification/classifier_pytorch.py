"""Turn any ``nn.Module`` that returns logits into an ART ``PyTorchClassifier``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from art_denoise._torch import probe_logits, resolve_device
from art_denoise._validation import check_positive_int

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

__all__ = ["resolve_device", "to_art_classifier"]


def to_art_classifier(
    model: nn.Module,
    *,
    input_shape: Sequence[int] | None = None,
    nb_classes: int | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    loss: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    preprocessing_defences: Sequence[Any] | None = None,
    device: str | torch.device = "auto",
) -> PyTorchClassifier:
    """Wrap ``model`` as an ART ``PyTorchClassifier``.

    Args:
        model: maps (B, *input_shape) inputs within ``clip_values`` to (B, nb_classes)
            logits. Normalisation belongs inside the model, so ART's own
            ``preprocessing`` stays the identity.
        input_shape: (C, H, W); defaults to ``model.input_shape`` if the model has one.
        nb_classes: defaults to ``model.num_classes``, or is read from a dry forward pass.
        clip_values: the valid input range.
        loss: defaults to ``nn.CrossEntropyLoss()``.
        optimizer: needed only for ART trainers.
        preprocessing_defences: ART preprocessors (``PreprocessorPyTorch`` for gradients).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.

    Returns:
        The ART classifier; its model is moved to the chosen device.

    Raises:
        ValueError: the model's output is not finite (B, nb_classes) logits, the model does
            not take ``input_shape`` images (both shapes named), or a bad argument.
        TypeError: integer or half-precision logits, or an argument of the wrong type.

    Example:
        >>> from art_denoise.models import create_model
        >>> clf = to_art_classifier(create_model("smallcnn", input_shape=(1, 8, 8)), device="cpu")
        >>> clf.nb_classes
        10
    """
    from art.estimators.classification import PyTorchClassifier

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError("input_shape is required for a model without an input_shape attribute")
    shape = tuple(int(check_positive_int("input_shape entry", s)) for s in input_shape)
    if len(clip_values) != 2 or not clip_values[0] < clip_values[1]:
        raise ValueError(f"clip_values must be (min, max) with min < max, got {clip_values!r}")
    dev = resolve_device(device)
    model.to(dev)
    out_classes = _dry_run(model, shape, dev)
    if nb_classes is None:
        nb_classes = getattr(model, "num_classes", None) or out_classes
    nb_classes = check_positive_int("nb_classes", nb_classes, minimum=2)
    if out_classes != nb_classes:
        raise ValueError(f"model returns {out_classes} logits but nb_classes={nb_classes}")
    return PyTorchClassifier(
        model=model,
        loss=loss if loss is not None else nn.CrossEntropyLoss(),
        input_shape=shape,
        nb_classes=nb_classes,
        optimizer=optimizer,
        clip_values=(float(clip_values[0]), float(clip_values[1])),
        preprocessing_defences=list(preprocessing_defences) if preprocessing_defences else None,
        device_type="gpu" if dev.type == "cuda" else "cpu",
    )


def _dry_run(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> int:
    """The class count, from one checked call on zeros (:func:`probe_logits`)."""
    return int(probe_logits(model, torch.zeros((2, *shape), device=device)).shape[1])
