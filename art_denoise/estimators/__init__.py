"""ART-facing wrappers around the plugin's torch modules."""

from __future__ import annotations

from art_denoise.estimators.classifier_pytorch import resolve_device, to_art_classifier

__all__ = ["resolve_device", "to_art_classifier"]
