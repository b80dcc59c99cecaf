"""ART preprocessors (``PreprocessorPyTorch``): input low-pass filters and denoising autoencoders.

``LowPassFilterPyTorch`` filters the input (box, Gaussian, median, bilateral);
``DenoisingAutoencoderPyTorch`` purifies it with stacked denoising autoencoders
(:mod:`art_denoise.autoencoder`, pure torch) and input noise. Both clip with
:func:`straight_through_clamp` (BPDA). The ART classes are imported lazily, so importing
this package does not pull in ART until one is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from art_denoise._torch import straight_through_clamp

_AUTOENCODER = f"{__name__}.denoising_autoencoder_pytorch"
_LOWPASS = f"{__name__}.lowpass_filter_pytorch"
_LAZY: dict[str, str] = {
    "AUTOENCODER_SCHEMA": _AUTOENCODER,
    "DenoisingAutoencoderPyTorch": _AUTOENCODER,
    "LOWPASS_KINDS": _LOWPASS,
    "LowPassFilterPyTorch": _LOWPASS,
}

__all__ = [
    "AUTOENCODER_SCHEMA",
    "LOWPASS_KINDS",
    "DenoisingAutoencoderPyTorch",
    "LowPassFilterPyTorch",
    "straight_through_clamp",
]

if TYPE_CHECKING:
    from art_denoise.defences.preprocessor.denoising_autoencoder_pytorch import (
        AUTOENCODER_SCHEMA,
        DenoisingAutoencoderPyTorch,
    )
    from art_denoise.defences.preprocessor.lowpass_filter_pytorch import (
        LOWPASS_KINDS,
        LowPassFilterPyTorch,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
