"""ART-facing estimators, laid out as ART's ``art.estimators``.

:mod:`art_denoise.estimators.classification`: :func:`to_art_classifier` (any logits module as
an ART ``PyTorchClassifier``) and :class:`PreprocessedModel` (ART torch preprocessors in front
of a model, as one module).
"""

from __future__ import annotations

from art_denoise._torch import resolve_device
from art_denoise.estimators.classification import PreprocessedModel, to_art_classifier

__all__ = ["PreprocessedModel", "resolve_device", "to_art_classifier"]
