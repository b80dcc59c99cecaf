"""The protocol every attack backend follows, and the guard around each attack.

A backend only turns an :class:`AttackSpec` into one library call on one batch
(:meth:`AttackBackend._make_attack`). Everything that must be identical across
libraries lives here, once: input checks, batching, seeding, restarts (an example
counts as broken if any restart breaks it; for a randomised model each restart's output
is scored on ``eot_samples`` fresh draws and the one broken most often is kept), the
DeepFool eps projection, Expectation over Transformation for randomised models, the
model's mode and gradients, and the final budget check.
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable
from importlib import metadata
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from art_denoise._torch import (
    attack_guard,
    perturbation_norms,
    probe_logits,
    project_to_ball,
)
from art_denoise._validation import as_float_images, as_labels
from art_denoise.attacks.eot import EOTModel
from art_denoise.attacks.spec import AttackSpec

__all__ = [
    "AttackBackend",
    "BatchAttack",
    "BudgetExceededError",
    "UnsupportedAttackError",
    "attack_guard",
    "infer_num_classes",
    "perturbation_norms",
    "project_to_ball",
    "seed_everything",
]

#: Attacks one batch: (x, y) -> x_adv, all tensors on the model's device.
BatchAttack = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Slack allowed on the budget check, in the input scale.
BUDGET_TOLERANCE = 1e-6


class UnsupportedAttackError(ValueError):
    """A backend cannot express the requested attack (never silently substituted)."""


class BudgetExceededError(RuntimeError):
    """A backend returned a perturbation larger than ``eps``."""


def infer_num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """Run ``model`` on two examples and return the class count of its (B, classes) output.

    This is the model's first call on the data, so it is checked
    (:func:`~art_denoise._torch.probe_logits`): the model's parameters on the images'
    device, the images of the model's ``input_shape`` (if it has one; channels-last named),
    a forward pass that runs, and finite float32/float64 logits.

    Raises:
        ValueError: the output is not a 2-D (B, classes) tensor of finite logits, the
            model and the images are on different devices, or the images do not fit the
            model (each message names both sides).
        TypeError: integer or half-precision logits.
    """
    return int(probe_logits(model, x[:2]).shape[1])


def _success_rate(
    model: nn.Module, adv: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> torch.Tensor:
    """(B,) share of ``spec.eot_samples`` forward passes of ``model`` (fresh draws of a
    randomised one) on which ``adv`` succeeds: misclassified, or the target hit."""
    hits = torch.zeros(len(adv), device=adv.device)
    with torch.no_grad():
        for _ in range(spec.eot_samples):
            pred = model(adv).argmax(dim=1)
            hits += (pred == y if spec.targeted else pred != y).float()
    return hits / spec.eot_samples


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and ``random`` (what the harness does before each restart)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class AttackBackend(abc.ABC):
    """One attack library behind one interface.

    Subclasses set :attr:`name`, :attr:`package` and :attr:`attacks` and implement
    :meth:`_make_attack`; they raise :class:`UnsupportedAttackError` in :meth:`_check` (or
    there) for settings their library cannot express.
    """

    #: Name used in specs, reports and the CLI (``"art"``, ``"torchattacks"``, ...).
    name: ClassVar[str]
    #: The distribution whose version the report records.
    package: ClassVar[str]
    #: The attacks of :data:`~art_denoise.attacks.spec.ATTACKS` this backend runs.
    attacks: ClassVar[tuple[str, ...]] = ("fgsm", "pgd", "deepfool", "autoattack")
    #: Seconds spent inside the library's attack calls, summed over every :meth:`run` of
    #: this instance (set it to 0 to start a measurement).
    library_seconds: float = 0.0

    def version(self) -> str | None:
        """Installed version of the backing library, or ``None``."""
        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return None

    @abc.abstractmethod
    def _make_attack(
        self, model: nn.Module, spec: AttackSpec, input_shape: tuple[int, ...], num_classes: int
    ) -> BatchAttack:
        """Build the library's attack for ``spec`` and return a function attacking one batch.

        ``model`` is already in eval mode with frozen parameters. For a targeted spec the
        labels passed to the returned function are the target labels.
        """

    def check(self, spec: AttackSpec) -> None:
        """Raise :class:`UnsupportedAttackError` if this backend cannot run ``spec``.

        An attack missing from :attr:`attacks` is refused here; :meth:`_check` refuses
        the settings the library cannot express.
        """
        if spec.attack not in self.attacks:
            raise UnsupportedAttackError(
                f"backend {self.name!r} does not run {spec.attack!r} (it runs "
                f"{', '.join(self.attacks)}); cannot run {spec.key}"
            )
        self._check(spec)

    def _check(self, spec: AttackSpec) -> None:  # noqa: B027 - an optional hook
        """Raise :class:`UnsupportedAttackError` for settings of ``spec`` the library lacks."""

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        spec: AttackSpec,
        *,
        seed: int = 0,
    ) -> torch.Tensor:
        """Attack ``model`` on ``(x, y)`` as ``spec`` says and return ``x_adv``.

        Args:
            model: a module mapping (B, C, H, W) inputs in [0, 1] to (B, classes) logits.
            x: images in [0, 1], shape (B, C, H, W).
            y: true labels (untargeted) or target labels (targeted), shape (B,).
            spec: the attack.
            seed: seeds torch, numpy and ``random`` before each restart.

        Returns:
            Adversarial images, float32, on ``x``'s device (a numpy input gives a CPU tensor),
            within the eps-ball and [0, 1]. The attack runs on the model's device.
        """
        if not isinstance(spec, AttackSpec):
            raise TypeError(f"spec must be an AttackSpec, got {type(spec).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.check(spec)
        x_in = as_float_images(x)
        device = next(iter(model.parameters()), x_in.new_empty(0)).device
        xt = x_in.to(device)
        if len(xt) == 0 or spec.eps == 0:
            # The eps-ball of radius 0 is {x}: nothing to attack (and some libraries
            # refuse a zero step or divide 0 by 0).
            return x_in.clone()
        num_classes = infer_num_classes(model, xt)
        yt = as_labels(y, n=len(xt), num_classes=num_classes).to(xt.device)
        x_adv = xt.clone()
        with attack_guard(model):
            # With EOT the library attacks the mean of eot_samples draws; success and the
            # kept restart are judged on the model as deployed (one draw).
            target = EOTModel(model, spec.eot_samples).eval() if spec.eot_samples > 1 else model
            attack = self._make_attack(target, spec, tuple(xt.shape[1:]), num_classes)
            todo = torch.ones(len(xt), dtype=torch.bool, device=xt.device)
            best_rate = torch.zeros(len(xt), device=xt.device)
            for restart in range(spec.restarts):
                seed_everything(seed + restart)
                idx = todo.nonzero().flatten()
                for start in range(0, len(idx), spec.batch_size):
                    b = idx[start : start + spec.batch_size]
                    xb, yb = xt[b], yt[b]
                    tic = time.perf_counter()
                    adv = attack(xb, yb).detach().to(device=xt.device, dtype=torch.float32)
                    self.library_seconds += time.perf_counter() - tic
                    if adv.shape != xb.shape:
                        raise RuntimeError(
                            f"backend {self.name!r} returned shape {tuple(adv.shape)} "
                            f"for input {tuple(xb.shape)}"
                        )
                    if spec.eps is not None and spec.attack == "deepfool":
                        adv = project_to_ball(xb, adv, spec.eps, spec.norm)
                    if spec.restarts == 1:
                        x_adv[b] = adv
                        continue
                    # how often fresh draws of the model (one, if it is deterministic) call
                    # the example broken
                    rate = _success_rate(model, adv, yb, spec)
                    if spec.eot_samples == 1:
                        # The first run is kept for every example; later runs replace it
                        # only where they succeed, and broken examples are not attacked again.
                        keep = rate > 0 if restart else torch.ones_like(rate, dtype=torch.bool)
                    else:
                        # A randomised model: one lucky draw says little about the draw that
                        # judges the output. Every run's output is scored on fresh draws;
                        # the one broken most often is kept, and an example leaves only when
                        # every draw broke it.
                        keep = rate > best_rate[b] if restart else torch.ones_like(rate) > 0
                        best_rate[b[keep]] = rate[keep]
                    x_adv[b[keep]] = adv[keep]
                    todo[b[rate >= 1]] = False
                if not bool(todo.any()):
                    break
        self._check_budget(xt, x_adv, spec)
        return x_adv.to(x_in.device)

    def _check_budget(self, x: torch.Tensor, x_adv: torch.Tensor, spec: AttackSpec) -> None:
        if not bool(torch.isfinite(x_adv).all()):
            raise RuntimeError(f"backend {self.name!r} returned NaN or inf for {spec.key}")
        lo, hi = float(x_adv.min()), float(x_adv.max())
        if lo < -BUDGET_TOLERANCE or hi > 1 + BUDGET_TOLERANCE:
            raise BudgetExceededError(
                f"backend {self.name!r} left [0, 1] for {spec.key}: values in [{lo}, {hi}]"
            )
        if spec.eps is None:
            return
        largest = float(perturbation_norms(x_adv - x, spec.norm).max())
        if largest > spec.eps + BUDGET_TOLERANCE:
            raise BudgetExceededError(
                f"backend {self.name!r} exceeded the budget for {spec.key}: "
                f"||delta||_{spec.norm} = {largest:.8g} > eps = {spec.eps:g}"
            )
