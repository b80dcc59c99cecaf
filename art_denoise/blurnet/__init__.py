"""BlurNet: low-pass filtering of the first layer's feature maps, fixed or learned.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256. A depthwise blur (:class:`LowPass2d`) goes right after
the first convolution (:func:`insert_lowpass`); a learnable kernel is pulled towards a box
by :func:`linf_depthwise_penalty`, or the first-layer maps are smoothed by
:func:`total_variation_penalty` on maps taken with :func:`capture_features`.

Importing this package registers the ``"insert_lowpass"`` transform, so that
:func:`art_denoise.models.load_model` can rebuild a saved model with low-pass layers.
"""

from __future__ import annotations

from art_denoise.blurnet.hooks import capture_features
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
