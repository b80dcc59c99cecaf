"""The transforms a model file replays after building its architecture, found by name.

A transform changes a built model (``insert_denoising_blocks``, ``insert_lowpass``) and
notes itself on the model with :func:`record_transform`, so that
:func:`art_denoise.models.save_model` writes it into the model's description and
:func:`art_denoise.models.load_model` replays it. This floor never names the packages that
provide transforms: :func:`get_transform` looks a name up in :data:`MODEL_TRANSFORMS`
(filled at run time with :func:`register_transform`) and then in the entry-point group
``art_denoise.model_transforms``, where this package lists its own and a plug-in can add
more::

    [project.entry-points."art_denoise.model_transforms"]
    insert_lowpass = "art_denoise.blurnet.insert:replay_lowpass"

An entry point names a function ``(model, **kwargs) -> model`` that applies the transform
in place.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

from torch import nn

__all__ = [
    "ENTRY_POINT_GROUP",
    "MODEL_TRANSFORMS",
    "Transform",
    "get_transform",
    "record_transform",
    "register_transform",
]

ENTRY_POINT_GROUP = "art_denoise.model_transforms"

#: A transform: ``(model, **kwargs) -> model``, applied in place when a file is loaded.
Transform = Callable[..., nn.Module]

#: Transforms registered at run time (entry points are loaded into it on first use).
MODEL_TRANSFORMS: dict[str, Transform] = {}


def register_transform(name: str, transform: Transform) -> None:
    """Make ``transform`` replayable under ``name`` (in addition to the entry points)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a transform needs a non-empty name, got {name!r}")
    if not callable(transform):
        raise TypeError(f"transform {name!r} must be callable, got {transform!r}")
    MODEL_TRANSFORMS[name] = transform


def get_transform(name: Any) -> Transform | None:
    """The transform registered as ``name``, else the entry point of that name, else ``None``.

    Raises:
        TypeError: the entry point does not name a callable.
    """
    if not isinstance(name, str):
        return None
    if name in MODEL_TRANSFORMS:
        return MODEL_TRANSFORMS[name]
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            transform = entry.load()
            if not callable(transform):
                raise TypeError(f"entry point {name!r} does not name a callable: {transform!r}")
            MODEL_TRANSFORMS[name] = transform
            return transform
    return None


def record_transform(model: nn.Module, name: str, **kwargs: Any) -> None:
    """Note on ``model`` that transform ``name`` was applied with ``kwargs`` (JSON-able)."""
    history = list(getattr(model, "_art_denoise_transforms", []))
    history.append({"name": name, "kwargs": kwargs})
    model._art_denoise_transforms = history  # type: ignore[assignment]
