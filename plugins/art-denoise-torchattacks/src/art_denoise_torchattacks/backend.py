"""The torchattacks backend: torchattacks 3.5.1 attacks on the caller's own module."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
import torchattacks
from torch import nn

from art_denoise.attacks.backends import AttackBackend, BatchAttack, UnsupportedAttackError
from art_denoise.attacks.spec import AttackSpec

__all__ = ["TorchattacksBackend"]


class TorchattacksBackend(AttackBackend):
    """torchattacks 3.5.1: ``FGSM``, ``FFGSM``, ``PGD``, ``PGDL2``, ``DeepFool``.

    Every hyperparameter is passed explicitly; torchattacks' defaults (eps 8/255,
    alpha 2/255, 10 steps, random start on) are never used. The model is attacked as
    it is (no ``set_normalization_used``: normalisation belongs inside the model).

    What torchattacks can express, and what it cannot:

    - FGSM is Linf only (``FGSM``). FGSM from a random start is ``FFGSM(eps, alpha=eps)``:
      a uniform start in the Linf ball, clipped to [0, 1], one signed step of ``eps``,
      projection and clipping, which is the spec's definition. There is no L2 FGM.
    - PGD Linf is ``PGD(eps, alpha, steps, random_start)``. PGD L2 is
      ``PGDL2(eps, alpha, steps, random_start=False, eps_for_division=1e-10)``. Its random
      start draws the radius uniformly in ``[0, eps]`` (mostly deep inside the ball),
      not a uniform point in the L2 ball as the spec, ART and foolbox do, so PGD L2 with
      ``random_start=True`` is refused.
    - Targeted FGSM/PGD use ``set_mode_targeted_by_label``: the labels the harness passes
      are the targets, and the loss is ``-CE(logits, target)``.
    - DeepFool is L2 only, untargeted, and always linearises against every class, so a
      spec with ``candidates`` below the model's class count is refused. In 3.5.1 its
      ``forward`` returns the images only (``forward_return_target_labels`` returns the
      images and the labels they were pushed towards).

    DeepFool overshoot: ``DeepFool._forward_indiv`` loops over the images one by one and
    takes ``x_{i+1} = clip(x_i + (1 + overshoot) * r_i, 0, 1)``, where ``r_i`` is that
    step's minimal step to the linearised boundary of the *true* label ``y`` (not the
    prediction). The overshoot therefore scales each step, not the total perturbation,
    and shrinks with it: when clipping to [0, 1] eats part of a step the iterate closes
    in on the boundary geometrically without crossing it, and after ``steps`` steps the
    output often sits on the boundary, unchanged in its prediction (REFERENCES.md §3).
    An image already misclassified is returned unchanged.

    AutoAttack is ``torchattacks.AutoAttack(version="standard", n_classes=<the model's>)``:
    APGD-CE, APGD-T, FAB-T and Square, each on the images the previous ones left
    standing. torchattacks builds its sub-attacks with ``steps=10`` where the original
    standard version runs 100 iterations; the backend sets ``steps`` of APGD, APGD-T and
    FAB-T to ``spec.steps`` and Square's ``n_queries`` to ``spec.queries`` (standard:
    100 and 5000), and seeds every sub-attack with the harness's seed for the restart.

    Example:
        >>> from art_denoise.attacks import AttackSpec
        >>> backend = TorchattacksBackend()
        >>> backend.check(AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20))
    """

    name = "torchattacks"
    package = "torchattacks"

    def _check(self, spec: AttackSpec) -> None:
        if spec.attack == "autoattack":
            return
        if spec.attack == "fgsm" and spec.norm != "inf":
            raise UnsupportedAttackError(
                "torchattacks has no L2 fast gradient method (its FGSM is Linf only); "
                f"cannot run {spec.key}"
            )
        if spec.attack == "pgd" and spec.norm == "2" and spec.random_start:
            raise UnsupportedAttackError(
                "torchattacks' PGDL2 random start draws the radius uniformly in [0, eps], not a "
                f"uniform point in the L2 ball; cannot run {spec.key} with random_start=True "
                "(use random_start=False, or the 'art' or 'foolbox' backend)"
            )
        if spec.attack == "deepfool" and spec.norm != "2":
            raise UnsupportedAttackError(
                f"torchattacks' DeepFool is L2 only; cannot run {spec.key}"
            )

    def _make_attack(
        self, model: nn.Module, spec: AttackSpec, input_shape: tuple[int, ...], num_classes: int
    ) -> BatchAttack:
        device = next(iter(model.parameters()), torch.empty(0)).device
        if spec.attack == "deepfool" and spec.candidates < num_classes:
            raise UnsupportedAttackError(
                f"torchattacks' DeepFool linearises against all {num_classes} classes; cannot "
                f"limit it to candidates={spec.candidates} ({spec.key})"
            )
        if spec.attack == "autoattack":
            return _auto_attack(model, spec, device, num_classes)
        attack = _build(model, spec, device)
        if spec.targeted:
            attack.set_mode_targeted_by_label(quiet=True)

        def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            adv: torch.Tensor = attack(x.to(device), y.to(device))
            return adv

        return run_batch


def _auto_attack(
    model: nn.Module, spec: AttackSpec, device: torch.device, num_classes: int
) -> BatchAttack:
    """The standard AutoAttack with the original iteration and query counts."""
    with contextlib.redirect_stdout(io.StringIO()):
        attack = torchattacks.AutoAttack(
            model,
            norm="Linf" if spec.norm == "inf" else "L2",
            eps=float(spec.eps or 0.0),
            version="standard",
            n_classes=num_classes,
            seed=0,
            verbose=False,
        )
    attack.set_device(device)
    subs = attack._autoattack.attacks
    for sub in subs:
        sub.set_device(device)
        if isinstance(sub, torchattacks.Square):
            sub.n_queries = spec.queries
        else:
            sub.steps = spec.steps

    def run_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The harness seeded torch for this restart; every sub-attack re-seeds from it.
        seed = torch.initial_seed()
        for sub in subs:
            sub.seed = seed
        with contextlib.redirect_stdout(io.StringIO()):
            adv: torch.Tensor = attack(x.to(device), y.to(device))
        return adv

    return run_batch


def _build(model: nn.Module, spec: AttackSpec, device: torch.device) -> Any:
    eps = float(spec.eps) if spec.eps is not None else None
    # torchattacks prints (it does not raise) when the model has no parameters to take
    # the device from; the device is set explicitly right after.
    with contextlib.redirect_stdout(io.StringIO()):
        if spec.attack == "fgsm":
            if spec.random_start:
                attack = torchattacks.FFGSM(model, eps=eps, alpha=eps)
            else:
                attack = torchattacks.FGSM(model, eps=eps)
        elif spec.attack == "pgd" and spec.norm == "inf":
            attack = torchattacks.PGD(
                model,
                eps=eps,
                alpha=spec.step_size,
                steps=spec.steps,
                random_start=spec.random_start,
            )
        elif spec.attack == "pgd":
            attack = torchattacks.PGDL2(
                model,
                eps=eps,
                alpha=spec.step_size,
                steps=spec.steps,
                random_start=spec.random_start,
                eps_for_division=1e-10,
            )
        else:
            attack = torchattacks.DeepFool(model, steps=spec.steps, overshoot=spec.overshoot)
    attack.set_device(device)
    return attack
