"""Spectral analysis of inputs and feature maps: where an attack puts its energy.

BlurNet (Raju & Lipasti, 2019, https://arxiv.org/abs/1908.02256) showed that adversarial
perturbations add high-frequency energy to the input and the first layer's maps;
:func:`log_spectrum2d` draws it, :func:`high_frequency_energy_ratio` measures it,
:func:`plot_spectra` and :func:`spectrum_report` compare clean with adversarial inputs.
"""

from __future__ import annotations

from art_denoise.spectral.plot import SPECTRUM_SCHEMA, plot_spectra, spectrum_report
from art_denoise.spectral.spectrum import (
    feature_spectra,
    high_frequency_energy_ratio,
    highest_frequency,
    layer_features,
    log_spectrum2d,
    radial_frequency,
)

__all__ = [
    "SPECTRUM_SCHEMA",
    "feature_spectra",
    "high_frequency_energy_ratio",
    "highest_frequency",
    "layer_features",
    "log_spectrum2d",
    "plot_spectra",
    "radial_frequency",
    "spectrum_report",
]
