"""Save and load models as safetensors weights plus a JSON description beside them.

``model.safetensors`` holds the weights; ``model.json`` holds the architecture name, its
constructor arguments, the transforms applied after construction (such as inserted
denoising blocks), free-form metadata and the SHA-256 of the weights file. Either file
alone is refused, and a pair that does not belong together is detected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from art_denoise._files import atomic_write_text, atomic_write_with, sha256_file
from art_denoise.models.transforms import MODEL_TRANSFORMS, get_transform, record_transform

__all__ = [
    "MODEL_SCHEMA",
    "MODEL_TRANSFORMS",
    "ModelFileError",
    "load_model",
    "read_description",
    "record_transform",
    "save_model",
]

MODEL_SCHEMA = "art-denoise/model/1"


class ModelFileError(Exception):
    """A model file is missing, corrupt, or does not match its JSON description."""


def _json_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _arch_name(model: nn.Module) -> str:
    from art_denoise.models import MODELS

    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise TypeError(
        f"cannot save a {type(model).__name__}: only {', '.join(MODELS)} are known "
        "architectures (save other models' state_dict yourself)"
    )


def save_model(
    model: nn.Module, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``path`` (``.safetensors``) and its description beside it (``.json``).

    Both files are written atomically; the JSON, written last, records the weights' hash.

    Returns:
        The weights path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"model path must end in .safetensors, got {str(path)!r}")
    arch = _arch_name(model)
    description = {
        "schema": MODEL_SCHEMA,
        "arch": arch,
        "config": model.config(),  # type: ignore[operator]
        "transforms": list(getattr(model, "_art_denoise_transforms", [])),
        "metadata": metadata or {},
    }
    json.dumps(description)  # fail before writing anything if it is not JSON-able
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_with(
        path, lambda tmp: save_file(tensors, str(tmp), metadata={"schema": MODEL_SCHEMA})
    )
    description["sha256"] = sha256_file(path)
    atomic_write_text(_json_path(path), json.dumps(description, indent=2) + "\n")
    return path


def read_description(
    path: str | os.PathLike[str], *, schema: str = MODEL_SCHEMA, what: str = "model"
) -> dict[str, Any]:
    """Read the JSON description beside the weights file ``path`` and check both files.

    Checks that both files exist, that the JSON parses, has ``schema`` and that the
    weights match its ``sha256``. Used for model files and for the autoencoder
    preprocessor's files (``schema``/``what`` name the kind in the errors).

    Raises:
        ModelFileError: a file is missing or corrupt, or the weights do not match.
    """
    path = Path(path)
    jpath = _json_path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} file not found: {str(path)!r}")
    if not jpath.is_file():
        raise ModelFileError(f"{what} description not found beside the weights: {str(jpath)!r}")
    try:
        description = json.loads(jpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"corrupt {what} description {str(jpath)!r}: {err}") from None
    if not isinstance(description, dict) or description.get("schema") != schema:
        raise ModelFileError(f"{str(jpath)!r} is not an art-denoise {what} description ({schema})")
    if sha256_file(path) != description.get("sha256"):
        raise ModelFileError(f"{str(path)!r} does not match the hash in its description (corrupt?)")
    return description


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights (no pickle involved).

    Raises:
        ModelFileError: a file is missing or corrupt, or the weights do not match.
    """
    from art_denoise.models import MODELS

    path = Path(path)
    description = read_description(path)
    arch = description.get("arch")
    if arch not in MODELS:
        raise ModelFileError(f"unknown architecture {arch!r} in {str(path)!r}")
    try:
        model = MODELS[arch](**description.get("config", {}))
        for step in description.get("transforms", []):
            transform = get_transform(step.get("name"))
            if transform is None:
                raise ModelFileError(f"unknown transform {step.get('name')!r} in {str(path)!r}")
            model = transform(model, **step.get("kwargs", {}))
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, TypeError, ValueError) as err:
        raise ModelFileError(f"cannot load {str(path)!r}: {err}") from None
    return model.to(device).eval()
