"""Old module paths of moved modules, still importable (with a ``DeprecationWarning``).

Issue 13 gave each layer its own folder (the ART-facing wrappers under
:mod:`art_denoise.defences`, :mod:`art_denoise.estimators.classification` and
:mod:`art_denoise.attacks.evasion`, named after ART's own packages). Code written against
the old paths keeps working: a finder on ``sys.meta_path`` answers an old name with the
module at its new place (or, for ``art_denoise.preprocessors``, which was split in two, with
a module that hands on the names of both halves). The table is in CHANGELOG.md too.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["MOVED", "SPLIT", "install"]

#: Old module path -> new module path.
MOVED: dict[str, str] = {
    "art_denoise.trainers": "art_denoise.defences.trainer",
    **{
        f"art_denoise.trainers.{name}": f"art_denoise.defences.trainer.{name}"
        for name in (
            "adversarial_trainer_fast_pytorch",
            "adversarial_trainer_mix_pytorch",
            "adversarial_trainer_pgd_pytorch",
            "prototype_conformity_trainer_pytorch",
            "robust_trainer_pytorch",
        )
    },
    "art_denoise.preprocessors.lowpass_filter_pytorch": (
        "art_denoise.defences.preprocessor.lowpass_filter_pytorch"
    ),
    "art_denoise.preprocessors.denoising_autoencoder_pytorch": (
        "art_denoise.defences.preprocessor.denoising_autoencoder_pytorch"
    ),
    "art_denoise.preprocessors.autoencoder": "art_denoise.autoencoder",
    "art_denoise.estimators.classifier_pytorch": (
        "art_denoise.estimators.classification.classifier_pytorch"
    ),
    "art_denoise.estimators.preprocessed": "art_denoise.estimators.classification.preprocessed",
    "art_denoise.attacks.rp2_pytorch": "art_denoise.attacks.evasion.rp2_pytorch",
    "art_denoise.training.attacks": "art_denoise.training.adversarial_examples",
    "art_denoise.blurnet.hooks": "art_denoise._torch",
    "art_denoise.evaluation.physical": "art_denoise.evaluation.rp2_evaluation",
}

#: Old package path -> the new modules whose names it hands on, first match wins.
SPLIT: dict[str, tuple[str, ...]] = {
    "art_denoise.preprocessors": ("art_denoise.defences.preprocessor", "art_denoise.autoencoder"),
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; the old path will be removed in a later release",
        DeprecationWarning,
        stacklevel=3,
    )


def _split_module(old: str, parts: Sequence[str]) -> types.ModuleType:
    """A package ``old`` whose attributes are looked up in the modules ``parts``."""
    module = types.ModuleType(old, f"Moved: see {', '.join(parts)}.")

    def __getattr__(name: str) -> Any:
        for part in parts:
            target = importlib.import_module(part)
            if hasattr(target, name):
                return getattr(target, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__path__ = []  # a package, so that its moved submodules can be imported
    return module


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED` and :data:`SPLIT` (and nothing else)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED and fullname not in SPLIT:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in SPLIT)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name in SPLIT:
            _warn(spec.name, " and ".join(SPLIT[spec.name]))
            return _split_module(spec.name, SPLIT[spec.name])
        _warn(spec.name, MOVED[spec.name])
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is the one at the new path."""


_FINDER = _MovedFinder()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
