"""The native backend: this package's own batched torch attacks (no attack library)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from art_denoise.attacks.backends.base import AttackBackend, BatchAttack, UnsupportedAttackError
from art_denoise.attacks.spec import AttackSpec

__all__ = ["NativeBackend"]

#: The fewest classes each APGD loss is defined for: DLR divides by ``z_pi1 - z_pi3``,
#: targeted DLR by ``z_pi1 - (z_pi3 + z_pi4) / 2``.
APGD_MIN_CLASSES = {"apgd-ce": 2, "apgd-dlr": 3, "apgd-t": 4}


class NativeBackend(AttackBackend):
    """art_denoise's own attacks (:mod:`art_denoise.attacks.native`), in torch only.

    Batched on the model's device (CPU or CUDA), gradients with respect to the input only.

    - FGSM and PGD, Linf and L2, targeted or not, with the conventions of torchattacks and
      foolbox (projection onto the eps-ball, then clipping to [0, 1]; the random start drawn
      as foolbox draws it, from torch's generator, which the harness seeds): at the same seed
      the native Linf attacks take the same steps as torchattacks' and foolbox's, and the L2
      ones as foolbox's (:mod:`~art_denoise.attacks.native.pgd`).
    - DeepFool, L2 and Linf, batched, each image stopping as soon as it is misclassified,
      with foolbox's overshoot ``x = clip(x0 + (1 + overshoot) * r_total)``
      (:mod:`~art_denoise.attacks.native.deepfool`). Unbounded with ``eps=None``; the
      harness projects onto the eps-ball when the spec has an eps.
    - APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020), ``spec.steps`` iterations, one
      random start per restart; APGD-T targets the ``spec.target_classes`` most likely
      wrong classes in turn (at most the class count minus one). The DLR losses need at
      least 3 classes (APGD-DLR) and 4 (APGD-T): fewer are refused.

    Example:
        >>> NativeBackend().check(AttackSpec(attack="deepfool", norm="inf", eps=None))
    """

    name = "native"
    package = "art-denoise"
    attacks = ("fgsm", "pgd", "deepfool", "apgd-ce", "apgd-dlr", "apgd-t")

    def _make_attack(
        self, model: nn.Module, spec: AttackSpec, input_shape: tuple[int, ...], num_classes: int
    ) -> BatchAttack:
        fewest = APGD_MIN_CLASSES.get(spec.attack, 2)
        if num_classes < fewest:
            raise UnsupportedAttackError(
                f"{spec.attack} needs at least {fewest} classes, the model has {num_classes}; "
                f"cannot run {spec.key}"
            )
        build = _BUILDERS[spec.attack]
        return build(model, spec, num_classes)


def _fgsm(model: nn.Module, spec: AttackSpec, num_classes: int) -> BatchAttack:
    from art_denoise.attacks.native.pgd import fgsm

    def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fgsm(
            model,
            x,
            y,
            norm=spec.norm,
            eps=float(spec.eps or 0.0),
            targeted=spec.targeted,
            random_start=spec.random_start,
        )

    return run_batch


def _pgd(model: nn.Module, spec: AttackSpec, num_classes: int) -> BatchAttack:
    from art_denoise.attacks.native.pgd import pgd

    def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(
            model,
            x,
            y,
            norm=spec.norm,
            eps=float(spec.eps or 0.0),
            step_size=float(spec.step_size or 0.0),
            steps=spec.steps,
            targeted=spec.targeted,
            random_start=spec.random_start,
        )

    return run_batch


def _deepfool(model: nn.Module, spec: AttackSpec, num_classes: int) -> BatchAttack:
    from art_denoise.attacks.native.deepfool import deepfool

    def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return deepfool(
            model,
            x,
            y,
            norm=spec.norm,
            steps=spec.steps,
            overshoot=spec.overshoot,
            candidates=spec.candidates,
        )

    return run_batch


def _apgd(model: nn.Module, spec: AttackSpec, num_classes: int) -> BatchAttack:
    from art_denoise.attacks.native.apgd import apgd

    loss = "ce" if spec.attack == "apgd-ce" else "dlr"

    def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return apgd(
            model,
            x,
            y,
            norm=spec.norm,
            eps=float(spec.eps or 0.0),
            steps=spec.steps,
            loss=loss,
            early_stop=spec.eot_samples == 1,  # a randomised model: no stop on the mean's say
        )

    return run_batch


def _apgd_targeted(model: nn.Module, spec: AttackSpec, num_classes: int) -> BatchAttack:
    from art_denoise.attacks.native.apgd import apgd_targeted

    target_classes = min(spec.target_classes, num_classes - 1)

    def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return apgd_targeted(
            model,
            x,
            y,
            norm=spec.norm,
            eps=float(spec.eps or 0.0),
            steps=spec.steps,
            target_classes=target_classes,
            early_stop=spec.eot_samples == 1,
        )

    return run_batch


_BUILDERS: dict[str, Callable[[nn.Module, AttackSpec, int], BatchAttack]] = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "deepfool": _deepfool,
    "apgd-ce": _apgd,
    "apgd-dlr": _apgd,
    "apgd-t": _apgd_targeted,
}
