"""Denoising filters over feature maps (B, C, H, W): a function and a Module for each.

Non-local means (Gaussian / dot product, optionally embedded), bilateral, mean and median,
as compared in Xie et al., "Feature Denoising for Improving Adversarial Robustness",
CVPR 2019. All are differentiable and run in float16, bfloat16, float32 and float64 on
CPU and CUDA.
"""

from __future__ import annotations

from art_denoise.filters.bilateral import BilateralFilter2d, bilateral_filter2d
from art_denoise.filters.mean import MeanFilter2d, mean_filter2d
from art_denoise.filters.median import MedianFilter2d, median_filter2d
from art_denoise.filters.nonlocal_means import NonLocalMeans2d, nonlocal_means2d

__all__ = [
    "BilateralFilter2d",
    "MeanFilter2d",
    "MedianFilter2d",
    "NonLocalMeans2d",
    "bilateral_filter2d",
    "mean_filter2d",
    "median_filter2d",
    "nonlocal_means2d",
]
