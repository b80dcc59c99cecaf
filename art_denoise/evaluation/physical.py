"""Former home of :class:`RP2Evaluation`, kept so that old imports work.

The class now lives in :mod:`art_denoise.evaluation.rp2_evaluation`.
"""

from __future__ import annotations

from art_denoise.evaluation.rp2_evaluation import RP2Evaluation

__all__ = ["RP2Evaluation"]
