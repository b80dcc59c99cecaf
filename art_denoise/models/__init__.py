"""Models: a small CNN and PreAct-ResNet-18, built by name and saved with safetensors."""

from __future__ import annotations

from typing import Any

from torch import nn

from art_denoise._validation import check_choice
from art_denoise.models.io import ModelFileError, load_model, save_model
from art_denoise.models.layers import Normalize
from art_denoise.models.preact_resnet import PreActResNet18
from art_denoise.models.smallcnn import SmallCNN

__all__ = [
    "MODELS",
    "ModelFileError",
    "Normalize",
    "PreActResNet18",
    "SmallCNN",
    "create_model",
    "load_model",
    "save_model",
]

#: Architecture name -> class; the name is what a model file's JSON records.
MODELS: dict[str, type[nn.Module]] = {
    "smallcnn": SmallCNN,
    "preact-resnet18": PreActResNet18,
}


def create_model(name: str, **config: Any) -> nn.Module:
    """Build the architecture ``name`` (``"smallcnn"`` or ``"preact-resnet18"``).

    Example:
        >>> create_model("smallcnn", input_shape=(1, 8, 8)).input_shape
        (1, 8, 8)
    """
    check_choice("model", name, MODELS)
    return MODELS[name](**config)
