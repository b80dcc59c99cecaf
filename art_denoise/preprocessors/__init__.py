"""ART preprocessors (``PreprocessorPyTorch``): input low-pass filters and denoising autoencoders.

``LowPassFilterPyTorch`` filters the input (box, Gaussian, median, bilateral);
``DenoisingAutoencoderPyTorch`` purifies it with stacked denoising autoencoders and input
noise. The torch parts (:mod:`~art_denoise.preprocessors.autoencoder`,
:func:`straight_through_clamp`) import without ART; the ART classes are imported lazily,
so ``import art_denoise.preprocessors`` does not pull in ART until one is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from art_denoise.preprocessors._bpda import straight_through_clamp
from art_denoise.preprocessors.autoencoder import (
    ConvAutoencoder,
    NoisyAutoencoderStack,
    add_gaussian_noise,
)

_LAZY: dict[str, str] = {
    "AUTOENCODER_SCHEMA": "art_denoise.preprocessors.denoising_autoencoder_pytorch",
    "DenoisingAutoencoderPyTorch": "art_denoise.preprocessors.denoising_autoencoder_pytorch",
    "LOWPASS_KINDS": "art_denoise.preprocessors.lowpass_filter_pytorch",
    "LowPassFilterPyTorch": "art_denoise.preprocessors.lowpass_filter_pytorch",
}

__all__ = [
    "AUTOENCODER_SCHEMA",
    "LOWPASS_KINDS",
    "ConvAutoencoder",
    "DenoisingAutoencoderPyTorch",
    "LowPassFilterPyTorch",
    "NoisyAutoencoderStack",
    "add_gaussian_noise",
    "straight_through_clamp",
]

if TYPE_CHECKING:
    from art_denoise.preprocessors.denoising_autoencoder_pytorch import (
        AUTOENCODER_SCHEMA,
        DenoisingAutoencoderPyTorch,
    )
    from art_denoise.preprocessors.lowpass_filter_pytorch import (
        LOWPASS_KINDS,
        LowPassFilterPyTorch,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'art_denoise.preprocessors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
