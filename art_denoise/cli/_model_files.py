"""``--model`` and ``--autoencoder``: a run directory, the ``.safetensors`` file or its ``.json``.

``art-denoise train --out runs/x`` writes ``runs/x/model.safetensors`` and its description
``runs/x/model.json``; ``demo`` writes ``<name>.safetensors`` / ``.json`` pairs and the
autoencoder's ``autoencoder.safetensors`` / ``.json``. Each of the three forms names the
same pair. Three mistakes get three different one-line messages, all before anything is
loaded: a directory without the file, a file of the wrong kind (not a model file, or the
other kind of model), and a pair that does not load (corrupt, or not matching its hash).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AUTOENCODER_FILE",
    "MODEL_FILE",
    "FileKind",
    "load_autoencoder",
    "load_classifier",
    "resolve",
]

#: What each file kind's description says it is (its ``"schema"``).
_SCHEMAS = {
    "art-denoise/model/2": "a classifier model",
    "art-denoise/model/1": "a classifier model",
    "art-denoise/autoencoder/2": "a denoising autoencoder (an input filter)",
    "art-denoise/autoencoder/1": "a denoising autoencoder (an input filter)",
    "art-denoise/report/1": "an evaluation report",
    "art-denoise/spectrum/1": "a spectrum report",
}


@dataclass(frozen=True)
class FileKind:
    """One kind of model file the command line reads.

    Attributes:
        schema: the ``"schema"`` of its JSON description (the current format).
        default_file: the weights file a directory holds (``model.safetensors``).
        flag: the option that takes it.
        words: what it is, for messages.
    """

    schema: str
    default_file: str
    flag: str
    words: str
    #: older formats the loader still reads (with a warning)
    legacy: tuple[str, ...] = ()

    @property
    def schemas(self) -> tuple[str, ...]:
        """Every ``"schema"`` a file of this kind may carry."""
        return (self.schema, *self.legacy)


MODEL_FILE = FileKind(
    "art-denoise/model/2",
    "model.safetensors",
    "--model",
    "a model",
    legacy=("art-denoise/model/1",),
)
AUTOENCODER_FILE = FileKind(
    "art-denoise/autoencoder/2",
    "autoencoder.safetensors",
    "--autoencoder",
    "an autoencoder",
    legacy=("art-denoise/autoencoder/1",),
)
_KINDS = {schema: kind for kind in (MODEL_FILE, AUTOENCODER_FILE) for schema in kind.schemas}


def _from_directory(directory: Path, kind: FileKind) -> Path:
    path = directory / kind.default_file
    if path.is_file():
        return path
    for other in _KINDS.values():
        if other != kind and (directory / other.default_file).is_file():
            raise ValueError(
                f"{kind.flag} {str(directory)!r} holds {other.words} "
                f"({other.default_file}), not {kind.words}; pass it as {other.flag}"
            )
    others = sorted(
        p.name
        for p in directory.glob("*.safetensors")
        if _schema(p.with_suffix(".json")) in kind.schemas
    )
    hint = (
        f"; it holds {', '.join(others)}: pass one of them"
        if others
        else f" ({kind.default_file} is written when training ends)"
    )
    raise FileNotFoundError(
        f"{kind.flag} {str(directory)!r} is a directory without {kind.words} in it: no "
        f"{kind.default_file}{hint}"
    )


_UNREADABLE = "<unreadable>"


def _schema(json_path: Path) -> str | None:
    """The ``"schema"`` of a JSON file: ``None`` without one, ``_UNREADABLE`` if it does
    not parse (or is missing)."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return _UNREADABLE
    schema = data.get("schema") if isinstance(data, dict) else None
    return schema if isinstance(schema, str) else None


def _check_kind(path: Path, json_path: Path, kind: FileKind) -> None:
    """A description of another kind (an autoencoder as ``--model``, a report) refused."""
    schema = _schema(json_path)
    if schema in kind.schemas:
        return
    if schema in _KINDS:
        other = _KINDS[schema]
        raise ValueError(
            f"{kind.flag} {str(path)!r} is {_SCHEMAS[schema]}, not {kind.words}; pass it as "
            f"{other.flag}"
        )
    if schema in _SCHEMAS:
        raise ValueError(f"{kind.flag} {str(path)!r} is {_SCHEMAS[schema]}, not {kind.words}")
    if not json_path.exists():
        raise FileNotFoundError(
            f"{kind.flag} {str(path)!r} has no description beside it ({json_path.name} is "
            "missing; the weights alone cannot be loaded)"
        )
    if schema != _UNREADABLE:
        raise ValueError(
            f"{kind.flag} {str(path)!r} is not {kind.words} file: {json_path.name} is not an "
            "art-denoise description"
        )
    # a description that does not parse: the loader reports the pair as corrupt


def resolve(path: Path, kind: FileKind) -> Path:
    """The weights file that ``path`` (directory, ``.safetensors`` or ``.json``) names.

    Raises:
        FileNotFoundError: nothing there, a directory without the file, or half a pair.
        ValueError: a file of the wrong kind.
    """
    if not path.exists():
        raise FileNotFoundError(f"{kind.flag} {str(path)!r}: no such file or directory")
    if path.is_dir():
        path = _from_directory(path, kind)
    elif path.suffix == ".json":
        weights = path.with_suffix(".safetensors")
        _check_kind(path, path, kind)
        if not weights.is_file():
            raise FileNotFoundError(
                f"{kind.flag} {str(path)!r} is a description whose weights file "
                f"{weights.name} is missing"
            )
        return weights
    elif path.suffix != ".safetensors":
        raise ValueError(
            f"{kind.flag} {str(path)!r} is not {kind.words} file: expected a run directory, "
            "a .safetensors file or its .json description"
        )
    _check_kind(path, path.with_suffix(".json"), kind)
    return path


def _corrupt(kind: FileKind, given: Path, err: Exception) -> Exception:
    from art_denoise.models.io import ModelFileError

    return ModelFileError(f"{kind.flag} {str(given)!r} cannot be loaded: {err}")


def load_classifier(given: Path, device: Any) -> Any:
    """``--model``: the classifier it names, on ``device``."""
    from art_denoise.models import load_model
    from art_denoise.models.io import ModelFileError

    path = resolve(given, MODEL_FILE)
    try:
        return load_model(path, device=device)
    except ModelFileError as err:
        raise _corrupt(MODEL_FILE, given, err) from None


def load_autoencoder(given: Path, device: Any) -> Any:
    """``--autoencoder``: the denoising autoencoder it names, running on ``device``."""
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch
    from art_denoise.models.io import ModelFileError

    path = resolve(given, AUTOENCODER_FILE)
    device_type = "gpu" if getattr(device, "type", "cpu") == "cuda" else "cpu"
    try:
        autoencoder = DenoisingAutoencoderPyTorch.load(path, device_type=device_type)
    except ModelFileError as err:
        raise _corrupt(AUTOENCODER_FILE, given, err) from None
    if not autoencoder.is_fitted:
        raise ValueError(
            f"--autoencoder {str(given)!r} was saved before it was trained (fit it first)"
        )
    return autoencoder
