"""Per-example predictions and the metrics of the report (BlurNet's among them).

:func:`l2_dissimilarity` is BlurNet's, defined once in :mod:`art_denoise.attacks.rp2.metrics`
(the RP2 metrics use it too) and re-exported here.
"""

from __future__ import annotations

import torch

from art_denoise._torch import perturbation_norms, predict
from art_denoise.attacks.rp2.metrics import l2_dissimilarity

__all__ = ["attack_success_rate", "l2_dissimilarity", "max_perturbation", "predict"]


def attack_success_rate(
    clean_pred: torch.Tensor, adv_pred: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> float:
    """Fraction of the correctly classified images that the attack breaks.

    Untargeted: the adversarial prediction differs from the true label (BlurNet's
    ``1[F(x) != F(x_adv)]`` restricted to images with ``F(x) = y``). Targeted: the
    adversarial prediction equals the target. 0.0 when no image is classified correctly.
    """
    correct = clean_pred == y
    n = int(correct.sum())
    if n == 0:
        return 0.0
    hit = adv_pred == target if target is not None else adv_pred != y
    return float((hit & correct).sum()) / n


def max_perturbation(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> float:
    """The largest ``||x_adv - x||_norm`` over the batch."""
    if len(x) == 0:
        return 0.0
    return float(perturbation_norms(x_adv - x, norm).max())
