"""Pictures of what the denoising blocks do to feature maps (matplotlib, Agg canvas)."""

from __future__ import annotations

from art_denoise.visualize.feature_maps import plot_feature_maps

__all__ = ["plot_feature_maps"]
