"""Save and load models as safetensors weights plus a JSON description beside them.

``model.safetensors`` holds the weights; ``model.json`` holds the architecture name, its
constructor arguments, the transforms applied after construction (such as inserted
denoising blocks), free-form metadata, the SHA-256 of the weights file (``sha256``) and
the SHA-256 of the description itself (``description_sha256``, over its canonical JSON:
sorted keys, no spaces, every field but this one). Either file alone is refused, and a
pair that does not belong together is detected: other weights, or a description edited
by hand (a transform removed, a kernel size changed). The hashes find accidents and
mix-ups, not forgery: whoever edits a file can recompute them.

Format versions: ``art-denoise/model/2`` (this one) hashes the description;
``art-denoise/model/1`` (written before) hashed the weights only. A version-1 pair still
loads, its weights checked, with a warning that its description is not covered; saving
it again writes version 2. A file names its version in ``schema``, so the two are told
apart without guessing, and a version-2 description without its hash is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from art_denoise._files import atomic_write_bytes, atomic_write_text, sha256_file
from art_denoise.models.transforms import MODEL_TRANSFORMS, get_transform, record_transform

__all__ = [
    "LEGACY_MODEL_SCHEMA",
    "MODEL_SCHEMA",
    "MODEL_TRANSFORMS",
    "ModelDescriptionError",
    "ModelFileError",
    "description_digest",
    "nonfinite_tensor",
    "load_model",
    "read_description",
    "record_transform",
    "save_model",
    "write_description",
    "write_weights",
]

MODEL_SCHEMA = "art-denoise/model/2"
#: The format before the description was hashed (weights only); still loaded, with a warning.
LEGACY_MODEL_SCHEMA = "art-denoise/model/1"

#: The key of the description's own hash.
DESCRIPTION_HASH = "description_sha256"


class ModelFileError(Exception):
    """A model file is missing, corrupt, or does not match its JSON description."""


class ModelDescriptionError(ModelFileError, ValueError):
    """A model description parses as JSON but a field has the wrong structure."""


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


def description_digest(description: Mapping[str, Any]) -> str:
    """SHA-256 of ``description``'s canonical JSON, without its own hash field.

    Canonical: sorted keys, no whitespace, ASCII, so that re-indenting the file (or a
    JSON library that writes ``0.50`` for ``0.5``) does not change it.

    Example:
        >>> description_digest({"b": 1, "a": [0.5]}) == description_digest({"a": [0.50], "b": 1})
        True
    """
    body = {k: v for k, v in description.items() if k != DESCRIPTION_HASH}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def nonfinite_tensor(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """``"name (k of n values NaN or inf)"`` for the first tensor that is not finite, else ``None``.

    Example:
        >>> nonfinite_tensor({"w": torch.ones(2), "b": torch.tensor([0.0, float("nan")])})
        "'b' (1 of 2 values NaN or inf)"
    """
    for name, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return f"{name!r} ({bad} of {tensor.numel()} values NaN or inf)"
    return None


def write_weights(path: Path, tensors: Mapping[str, torch.Tensor], *, schema: str) -> str:
    """Write ``tensors`` to ``path`` (safetensors, ``schema`` in its metadata) atomically.

    Returns:
        The SHA-256 of the bytes written, for :func:`write_description`: hashed before
        they reach the disk, so it is this call's weights' hash even if another process
        replaces the file before the description is written (the pair is then refused
        when loaded, not silently mixed).
    """
    data = safetensors_bytes(dict(tensors), metadata={"schema": schema})
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def write_description(
    path: Path, description: dict[str, Any], *, sha256: str | None = None
) -> None:
    """Write ``description`` beside the weights ``path``, with both hashes, atomically.

    Args:
        path: the weights file.
        description: the fields to write (the hashes are added).
        sha256: the hash of the weights the caller wrote (:func:`write_weights` returns
            it). Without it the file at ``path`` is hashed as it is now, which is another
            process's file if one replaced it since: savers pass it.

    Raises:
        ValueError: the description holds NaN or inf (not JSON).
        TypeError: the description is not JSON-able.
    """
    full = {**description, "sha256": sha256 if sha256 is not None else sha256_file(path)}
    full[DESCRIPTION_HASH] = description_digest(full)
    atomic_write_text(_json_path(path), json.dumps(full, indent=2, allow_nan=False) + "\n")


def save_model(
    model: nn.Module, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``path`` (``.safetensors``) and its description beside it (``.json``).

    Both files are written atomically; the JSON, written last, records the weights' hash
    and its own (see the module's docstring).

    Returns:
        The weights path.

    Raises:
        ValueError: ``path`` does not end in ``.safetensors``, or a weight is NaN or inf
            (the message names the tensor): nothing is written.
        TypeError: not a known architecture, or metadata that is not JSON-able.
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
    json.dumps(description, allow_nan=False)  # fail before writing anything if not JSON
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = nonfinite_tensor(tensors)
    if bad is not None:
        raise ValueError(f"cannot save a model with non-finite weights: tensor {bad}")
    digest = write_weights(path, tensors, schema=MODEL_SCHEMA)
    write_description(path, description, sha256=digest)
    return path


def _read_json(jpath: Path, what: str) -> Any:
    try:
        return json.loads(jpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"corrupt {what} description {str(jpath)!r}: {err}") from None


def read_description(
    path: str | os.PathLike[str],
    *,
    schema: str = MODEL_SCHEMA,
    what: str = "model",
    legacy: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Read the JSON description beside the weights file ``path`` and check both files.

    Checks that both files exist, that the JSON parses, has ``schema`` and that both
    hashes match: the weights' ``sha256`` and the description's own
    ``description_sha256``. A description of an older format in ``legacy`` (default: the
    model format 1, when ``schema`` is the model's) has no description hash: it is read
    with a ``UserWarning`` and only its weights are checked. Used for model files and
    for the autoencoder preprocessor's files (``schema``/``what`` name the kind).

    Raises:
        ModelFileError: a file is missing or corrupt, or a hash does not match.
    """
    path = Path(path)
    jpath = _json_path(path)
    if legacy is None:
        legacy = (LEGACY_MODEL_SCHEMA,) if schema == MODEL_SCHEMA else ()
    if not path.is_file():
        raise ModelFileError(f"{what} file not found: {str(path)!r}")
    if not jpath.is_file():
        raise ModelFileError(f"{what} description not found beside the weights: {str(jpath)!r}")
    description = _read_json(jpath, what)
    found = description.get("schema") if isinstance(description, dict) else None
    if found != schema and found not in legacy:
        raise ModelFileError(f"{str(jpath)!r} is not an art-denoise {what} description ({schema})")
    if found == schema and description.get(DESCRIPTION_HASH) != description_digest(description):
        raise ModelFileError(
            f"{str(jpath)!r} does not match the hash it records (edited by hand or corrupt; "
            "a description is part of the model and cannot be changed alone)"
        )
    if sha256_file(path) != description.get("sha256"):
        raise ModelFileError(f"{str(path)!r} does not match the hash in its description (corrupt?)")
    if found != schema:
        warnings.warn(
            f"{str(jpath)!r} is an older {what} description ({found}) whose content is not "
            f"hashed: only the weights were checked; save it again to write {schema}",
            UserWarning,
            stacklevel=3,
        )
    return description


def _field(jpath: Path, description: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = description.get(key, default)
    if not isinstance(value, kind):
        raise ModelDescriptionError(
            f"{str(jpath)!r}: field {key!r} must be a JSON {_JSON_NAMES[kind]}, got "
            f"{type(value).__name__} {reprlib.repr(value)}"
        )
    return value


_JSON_NAMES: dict[type, str] = {dict: "object", list: "list", str: "string"}


def _transforms(jpath: Path, description: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The description's transforms as (name, kwargs) pairs, each checked."""
    steps = []
    for i, step in enumerate(_field(jpath, description, "transforms", list, [])):
        name = step.get("name") if isinstance(step, dict) else None
        kwargs = step.get("kwargs", {}) if isinstance(step, dict) else None
        if not isinstance(name, str) or not isinstance(kwargs, dict):
            raise ModelDescriptionError(
                f"{str(jpath)!r}: field 'transforms'[{i}] must be an object "
                f'{{"name": string, "kwargs": object}}, got {reprlib.repr(step)}'
            )
        steps.append((name, kwargs))
    return steps


def _build(path: Path, description: dict[str, Any]) -> nn.Module:
    """The architecture and transforms of a checked description, before the weights."""
    from art_denoise.models import MODELS

    jpath = _json_path(path)
    arch = _field(jpath, description, "arch", str, None)
    if arch not in MODELS:
        raise ModelFileError(f"unknown architecture {arch!r} in {str(path)!r}")
    config = _field(jpath, description, "config", dict, {})
    _field(jpath, description, "metadata", dict, {})
    steps = _transforms(jpath, description)
    model = MODELS[arch](**config)
    for name, kwargs in steps:
        transform = get_transform(name)
        if transform is None:
            raise ModelFileError(f"unknown transform {name!r} in {str(path)!r}")
        model = transform(model, **kwargs)
    return model


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights (no pickle involved).

    Raises:
        ModelFileError: a file is missing or corrupt, a hash does not match, the weights
            do not fit the architecture, or a weight is NaN or inf (named).
        ModelDescriptionError: a field of the description has the wrong structure (also a
            ``ValueError``; the message names the field).
    """
    path = Path(path)
    description = read_description(path)
    try:
        model = _build(path, description)
        state = load_file(str(path), device="cpu")
        bad = nonfinite_tensor(state)
        if bad is not None:
            raise ModelFileError(f"{str(path)!r} holds non-finite weights: tensor {bad}")
        model.load_state_dict(state, strict=True)
    except ModelFileError:
        raise
    except (SafetensorError, RuntimeError, TypeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelFileError(f"cannot load {str(path)!r}: {first}") from None
    return model.to(device).eval()
