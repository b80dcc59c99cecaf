"""The foolbox backend: foolbox 3.3.4 attacks on the caller's own module."""

from __future__ import annotations

from typing import Any

import foolbox as fb
import torch
from torch import nn

from art_denoise.attacks.backends import AttackBackend, BatchAttack, UnsupportedAttackError
from art_denoise.attacks.spec import AttackSpec

__all__ = ["FoolboxBackend"]


class FoolboxBackend(AttackBackend):
    """foolbox 3.3.4: fast gradient, PGD and DeepFool, Linf and L2.

    Every hyperparameter is passed explicitly; foolbox's defaults (``rel_stepsize``
    0.033 eps, 40 steps, random start on) are never used. The model is wrapped as
    ``fb.PyTorchModel(model, bounds=(0, 1), device=...)`` and the ``clipped`` output is
    returned.

    - FGSM is ``LinfFastGradientAttack`` / ``L2FastGradientAttack``: one step of
      ``1.0 * eps`` (sign of the gradient, or the gradient over its L2 norm) from ``x``
      or from a uniform point in the eps-ball, then projection and clipping. foolbox's
      fast gradient classes refuse a targeted criterion although their parent computes
      it, so targeted FGSM runs the parent class with the very same settings
      (``Linf/L2ProjectedGradientDescentAttack(abs_stepsize=eps, steps=1)``).
    - PGD is ``LinfPGD`` / ``L2PGD`` with ``abs_stepsize=step_size`` (which takes
      precedence over ``rel_stepsize``), ``steps`` and ``random_start``.
    - Targeted attacks use ``fb.criteria.TargetedMisclassification(targets)``; the loss is
      ``-CE(logits, target)`` summed over the batch.

    DeepFool overshoot: ``L2DeepFoolAttack`` / ``LinfDeepFoolAttack`` (``loss="logits"``)
    run on the whole batch, linearising against the top ``candidates`` classes of the
    *clean prediction*, and stop per image once it is misclassified with respect to
    ``y``. Each step adds ``p_i`` (the step to the linearised boundary, lengthened by an
    absolute 1e-4) to a running total and sets ``x = clip(x0 + (1 + overshoot) * p_total)``:
    the overshoot scales the whole perturbation at every step, and the next step is
    linearised at that overshot point. An image already misclassified is returned
    unchanged. DeepFool runs unbounded (``epsilons=None``); the harness projects onto the
    eps-ball afterwards when the spec has an eps.

    Example:
        >>> from art_denoise.attacks import AttackSpec
        >>> FoolboxBackend().check(AttackSpec(attack="deepfool", norm="inf", eps=None))
    """

    name = "foolbox"
    package = "foolbox"

    def _check(self, spec: AttackSpec) -> None:
        """foolbox expresses every attack of :data:`~art_denoise.attacks.ATTACKS` but
        AutoAttack, which foolbox 3.3.4 does not ship (it has no APGD and no Square)."""
        if spec.attack == "autoattack":
            raise UnsupportedAttackError(
                f"foolbox 3.3.4 has no AutoAttack (no APGD, no Square); cannot run {spec.key}"
            )

    def _make_attack(
        self, model: nn.Module, spec: AttackSpec, input_shape: tuple[int, ...], num_classes: int
    ) -> BatchAttack:
        device = next(iter(model.parameters()), torch.empty(0)).device
        fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=device)
        attack = _build(spec)
        # DeepFool is a minimisation attack: None means unbounded.
        epsilons = None if spec.attack == "deepfool" else spec.eps

        def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            labels = y.to(device)
            criterion = (
                fb.criteria.TargetedMisclassification(labels)
                if spec.targeted
                else fb.criteria.Misclassification(labels)
            )
            _, clipped, _ = attack(fmodel, x.to(device), criterion, epsilons=epsilons)
            adv: torch.Tensor = clipped
            return adv

        return run_batch


def _build(spec: AttackSpec) -> Any:
    linf = spec.norm == "inf"
    if spec.attack == "fgsm":
        if not spec.targeted:
            fgm = fb.attacks.LinfFastGradientAttack if linf else fb.attacks.L2FastGradientAttack
            return fgm(random_start=spec.random_start)
        pgd = fb.attacks.LinfPGD if linf else fb.attacks.L2PGD
        return pgd(abs_stepsize=spec.eps, steps=1, random_start=spec.random_start)
    if spec.attack == "pgd":
        pgd = fb.attacks.LinfPGD if linf else fb.attacks.L2PGD
        return pgd(abs_stepsize=spec.step_size, steps=spec.steps, random_start=spec.random_start)
    deepfool = fb.attacks.LinfDeepFoolAttack if linf else fb.attacks.L2DeepFoolAttack
    return deepfool(
        steps=spec.steps, candidates=spec.candidates, overshoot=spec.overshoot, loss="logits"
    )
