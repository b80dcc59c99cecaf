"""Native attacks: torch only, batched on CPU and CUDA (no attack library)."""

from __future__ import annotations

from art_denoise.attacks.native.apgd import APGD_LOSSES, apgd, apgd_checkpoints, apgd_targeted
from art_denoise.attacks.native.deepfool import DeepFoolResult, deepfool, deepfool_result
from art_denoise.attacks.native.losses import ce_loss, dlr_loss, targeted_dlr_loss
from art_denoise.attacks.native.pgd import fgsm, pgd, random_start_point

__all__ = [
    "APGD_LOSSES",
    "apgd",
    "apgd_checkpoints",
    "apgd_targeted",
    "ce_loss",
    "dlr_loss",
    "targeted_dlr_loss",
    # FGSM, PGD and DeepFool
    "DeepFoolResult",
    "deepfool",
    "deepfool_result",
    "fgsm",
    "pgd",
    "random_start_point",
]
