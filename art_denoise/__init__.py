"""art_denoise: feature-denoising, BlurNet and autoencoder defenses for ART, evaluated honestly.

The defenses, the trainers, the models, the data and the evaluation are all at the top
level (``from art_denoise import DenoisingBlock, AdversarialTrainerPGDPyTorch``). The names
are imported lazily, on first use, so ``import art_denoise`` stays cheap and pulls in
neither ART nor any attack plugin until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from art_denoise import _moved

_moved.install()  # old module paths (before issue 13) still import, with a DeprecationWarning

__version__ = "0.1.0.dev0"

_BLOCKS = "art_denoise.blocks"
_PREPROCESSOR = "art_denoise.defences.preprocessor"
_TRAINER = "art_denoise.defences.trainer"

#: Top-level name -> the module it is imported from on first use.
_EXPORTS: dict[str, str] = {
    # the defenses: torch layers and their insertion (no ART)
    "DenoisingBlock": _BLOCKS,
    "insert_denoising_blocks": _BLOCKS,
    "LowPass2d": "art_denoise.blurnet",
    "insert_lowpass": "art_denoise.blurnet",
    # the defenses as ART preprocessors and trainers (these import ART)
    "DenoisingAutoencoderPyTorch": _PREPROCESSOR,
    "LowPassFilterPyTorch": _PREPROCESSOR,
    "AdversarialTrainerFastPyTorch": _TRAINER,
    "AdversarialTrainerMixPyTorch": _TRAINER,
    "AdversarialTrainerPGDPyTorch": _TRAINER,
    "PrototypeConformityTrainerPyTorch": _TRAINER,
    "RobustTrainerPyTorch": _TRAINER,
    # evaluation, models and data
    "AttackSpec": "art_denoise.attacks.spec",
    "Report": "art_denoise.evaluation.report",
    "evaluate": "art_denoise.evaluation.evaluate",
    "available_backends": "art_denoise.attacks.backends",
    "get_backend": "art_denoise.attacks.backends",
    "to_art_classifier": "art_denoise.estimators.classification.classifier_pytorch",
    "create_model": "art_denoise.models",
    "load_model": "art_denoise.models",
    "save_model": "art_denoise.models",
    "load_dataset": "art_denoise.data",
}

__all__ = [
    "AdversarialTrainerFastPyTorch",
    "AdversarialTrainerMixPyTorch",
    "AdversarialTrainerPGDPyTorch",
    "AttackSpec",
    "DenoisingAutoencoderPyTorch",
    "DenoisingBlock",
    "LowPass2d",
    "LowPassFilterPyTorch",
    "PrototypeConformityTrainerPyTorch",
    "Report",
    "RobustTrainerPyTorch",
    "__version__",
    "available_backends",
    "create_model",
    "evaluate",
    "get_backend",
    "insert_denoising_blocks",
    "insert_lowpass",
    "load_dataset",
    "load_model",
    "save_model",
    "to_art_classifier",
]

if TYPE_CHECKING:
    from art_denoise.attacks.backends import available_backends, get_backend
    from art_denoise.attacks.spec import AttackSpec
    from art_denoise.blocks import DenoisingBlock, insert_denoising_blocks
    from art_denoise.blurnet import LowPass2d, insert_lowpass
    from art_denoise.data import load_dataset
    from art_denoise.defences.preprocessor import (
        DenoisingAutoencoderPyTorch,
        LowPassFilterPyTorch,
    )
    from art_denoise.defences.trainer import (
        AdversarialTrainerFastPyTorch,
        AdversarialTrainerMixPyTorch,
        AdversarialTrainerPGDPyTorch,
        PrototypeConformityTrainerPyTorch,
        RobustTrainerPyTorch,
    )
    from art_denoise.estimators.classification.classifier_pytorch import to_art_classifier
    from art_denoise.evaluation.evaluate import evaluate
    from art_denoise.evaluation.report import Report
    from art_denoise.models import create_model, load_model, save_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'art_denoise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
