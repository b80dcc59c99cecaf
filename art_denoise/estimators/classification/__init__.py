"""ART classifiers over the package's torch models (as ART's ``art.estimators.classification``)."""

from __future__ import annotations

from art_denoise.estimators.classification.classifier_pytorch import to_art_classifier
from art_denoise.estimators.classification.preprocessed import PreprocessedModel

__all__ = ["PreprocessedModel", "to_art_classifier"]
