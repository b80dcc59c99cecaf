"""Robust Physical Perturbations (RP2) in plain torch, and the metrics BlurNet reports.

RP2 (Eykholt et al., CVPR 2018) looks for a perturbation ``delta`` confined to a mask
``M`` (the "stickers") that fools a classifier under a distribution of physical
conditions, here simulated by random affine warps and lighting changes ``t``:

    min_delta  lambda * ||M * delta||_p + E_t J(f(t(x + M * delta)), y*)
               [+ nps_weight * NPS(x + M * delta)]

``J`` is the cross-entropy of the target ``y*`` (targeted); untargeted, ``J`` drives the
true label's probability down through ``-log(1 - p_y)``, which orders solutions like
minus the true label's cross-entropy but keeps a usable gradient on confidently
classified images, where ``-CE`` saturates to a zero gradient in float32. NPS is the
non-printability score of Sharif et al. (2016), which pulls the sticker pixels towards
a set of printable colours. The expectation is estimated with ``nb_transforms`` samples
per step and minimised with Adam.

The RP2 paper draws ``x`` from photographs of the object under varying conditions and
aligns the sticker with each photograph; with one digital image per example, this
package applies the sampled transforms to the whole perturbed image instead (an
expectation over transformation, as in Athalye et al., 2018).

One module per concern:

- :mod:`~art_denoise.attacks.rp2.config`: :class:`RP2Config`, the checked settings;
- :mod:`~art_denoise.attacks.rp2.masks`: :func:`as_mask` and :func:`sticker_mask`;
- :mod:`~art_denoise.attacks.rp2.printability`: :func:`non_printability_score`;
- :mod:`~art_denoise.attacks.rp2.attack`: :func:`rp2_attack`, the optimisation loop;
- :mod:`~art_denoise.attacks.rp2.metrics`: BlurNet's :func:`rp2_metrics`,
  :func:`per_target_success` and :func:`l2_dissimilarity`.

This package knows nothing of ART; :mod:`art_denoise.attacks.rp2_pytorch` wraps it.

| Paper link: https://arxiv.org/abs/1707.08945 (RP2)
| BlurNet metrics: https://arxiv.org/abs/1908.02256
"""

from __future__ import annotations

from art_denoise.attacks._transforms import TransformRanges
from art_denoise.attacks.rp2.attack import rp2_attack
from art_denoise.attacks.rp2.config import NORMS, RP2Config
from art_denoise.attacks.rp2.masks import as_mask, sticker_mask
from art_denoise.attacks.rp2.metrics import (
    AttackFn,
    Predictor,
    l2_dissimilarity,
    per_target_success,
    rp2_metrics,
)
from art_denoise.attacks.rp2.printability import non_printability_score

__all__ = [
    "NORMS",
    "AttackFn",
    "Predictor",
    "RP2Config",
    "TransformRanges",
    "as_mask",
    "l2_dissimilarity",
    "non_printability_score",
    "per_target_success",
    "rp2_attack",
    "rp2_metrics",
    "sticker_mask",
]
