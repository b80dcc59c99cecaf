"""BlurNet: low-pass filtering of the first layer's feature maps, fixed or learned.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256. A depthwise blur (:class:`LowPass2d`) goes right after
the first convolution (:func:`insert_lowpass`); a learnable kernel is pulled towards a box
by :func:`linf_depthwise_penalty`, or the first-layer maps are smoothed by
:func:`total_variation_penalty` on maps taken with :func:`capture_features`.

A model with low-pass layers records the ``"insert_lowpass"`` transform, which
:func:`art_denoise.models.load_model` replays through its entry point.
"""

from __future__ import annotations

from art_denoise._torch import capture_features
from art_denoise.blurnet.insert import first_conv, insert_lowpass
from art_denoise.blurnet.kernels import box_kernel2d, default_sigma, gaussian_kernel2d
from art_denoise.blurnet.lowpass import KINDS, LowPass2d, lowpass2d
from art_denoise.blurnet.regularizers import (
    depthwise_weights,
    linf_depthwise_penalty,
    total_variation,
    total_variation_penalty,
)

__all__ = [
    "KINDS",
    "LowPass2d",
    "box_kernel2d",
    "capture_features",
    "default_sigma",
    "depthwise_weights",
    "first_conv",
    "gaussian_kernel2d",
    "insert_lowpass",
    "linf_depthwise_penalty",
    "lowpass2d",
    "total_variation",
    "total_variation_penalty",
]
