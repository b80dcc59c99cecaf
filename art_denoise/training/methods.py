"""Training objectives, one per method: standard, PGD (Madry / Xie), FGSM-or-PGD mix, fast.

A method turns a batch into per-example losses. Its randomness is drawn in two phases
so that a distributed run equals a single-process run with the same global batch:
:meth:`TrainingMethod.draw` draws everything random for the *global* batch from the
shared generator (every rank draws the same numbers), and :meth:`TrainingMethod.loss`
receives the rank's slice of those draws with the rank's slice of the batch.

References:
    Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", 2018.
    Xie et al., "Feature Denoising for Improving Adversarial Robustness", CVPR 2019.
    Goodfellow et al., "Explaining and Harnessing Adversarial Examples", 2015.
    Wong, Rice, Kolter, "Fast is better than free", ICLR 2020.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._torch import random_ball, random_targets
from art_denoise._validation import (
    check_choice,
    check_non_negative,
    check_positive_int,
)
from art_denoise.training.adversarial_examples import bn_inference_mode, pgd_examples

__all__ = [
    "METHODS",
    "BatchLoss",
    "FastTraining",
    "MixTraining",
    "PGDTraining",
    "StandardTraining",
    "TrainingMethod",
    "create_method",
]


@dataclass
class BatchLoss:
    """What a method returns for one (shard of a) batch.

    Attributes:
        losses: (B,) per-example training losses (the loop averages over the global batch).
        logits_clean: (B, K) logits on the clean inputs, if the method computed them.
        logits_adv: (B, K) logits on the adversarial inputs, if any.
    """

    losses: torch.Tensor
    logits_clean: torch.Tensor | None = None
    logits_adv: torch.Tensor | None = None


def _ctx(autocast: torch.autocast | None) -> Any:
    return autocast if autocast is not None else contextlib.nullcontext()


@dataclass
class TrainingMethod(abc.ABC):
    """Base class: the settings are dataclass fields, checked in ``__post_init__``."""

    name: ClassVar[str] = ""
    clip_values: tuple[float, float] = field(default=(0.0, 1.0), kw_only=True)

    def config(self) -> dict[str, Any]:
        """The method's name and settings (JSON-able), as recorded in checkpoints."""
        cfg = asdict(self)
        cfg["clip_values"] = list(self.clip_values)
        return {"method": self.name, **cfg}

    def draw(
        self, y: torch.Tensor, shape: tuple[int, ...], num_classes: int, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Random numbers for the global batch; each tensor has the batch on axis 0."""
        return {}

    @abc.abstractmethod
    def loss(
        self,
        model: nn.Module,
        attack_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        draws: dict[str, torch.Tensor],
        autocast: torch.autocast | None = None,
    ) -> BatchLoss:
        """Per-example losses of one shard.

        Args:
            model: the module to train through (a DDP wrapper in distributed runs).
            attack_model: the same weights, unwrapped, used to craft examples.
            x, y: the shard; draws: the shard's slice of :meth:`draw`'s tensors.
            autocast: optional AMP context for forward passes.
        """


@dataclass
class StandardTraining(TrainingMethod):
    """Cross-entropy on the clean inputs (``--method none``)."""

    name: ClassVar[str] = "none"

    def loss(
        self,
        model: nn.Module,
        attack_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        draws: dict[str, torch.Tensor],
        autocast: torch.autocast | None = None,
    ) -> BatchLoss:
        with _ctx(autocast):
            logits = model(x)
        return BatchLoss(F.cross_entropy(logits.float(), y, reduction="none"), logits_clean=logits)


@dataclass
class _AttackSettings(TrainingMethod):
    eps: float = 0.1
    step_size: float | None = None
    steps: int = 7
    norm: str = "inf"
    random_start: bool = True
    bn_eval: bool = True

    def __post_init__(self) -> None:
        check_choice("norm", self.norm, ("inf", "2"))
        self.eps = check_non_negative("eps", self.eps)
        if self.step_size is None:
            self.step_size = 2.5 * self.eps / self.steps if self.steps else self.eps
        self.step_size = check_non_negative("step_size", self.step_size)
        self.steps = check_positive_int("steps", self.steps)
        if self.clip_values[0] >= self.clip_values[1]:
            raise ValueError(
                f"clip_values must be (low, high) with low < high, got {self.clip_values}"
            )

    def _noise_shape(self, shape: tuple[int, ...], restarts: int = 1) -> tuple[int, ...]:
        return (shape[0], restarts, *shape[1:])

    def _attack(
        self,
        attack_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        noise: torch.Tensor | None,
        *,
        steps: int,
        step_size: float,
        targeted: bool = False,
        start_from_clean: torch.Tensor | None = None,
        autocast: torch.autocast | None = None,
    ) -> torch.Tensor:
        ctx = bn_inference_mode(attack_model) if self.bn_eval else contextlib.nullcontext()
        with ctx:
            return pgd_examples(
                attack_model,
                x,
                y,
                eps=self.eps,
                step_size=step_size,
                steps=steps,
                norm=self.norm,
                random_start=noise is not None,
                targeted=targeted,
                start_from_clean=start_from_clean,
                generator=torch.Generator(),  # unused: the noise is given
                noise=noise,
                clip_values=self.clip_values,
                autocast=autocast,
            )


@dataclass
class PGDTraining(_AttackSettings):
    """Train on PGD examples only (Madry), with Xie et al.'s options.

    Args:
        eps, step_size, steps, norm: the attack (step defaults to 2.5 eps / steps).
        restarts: PGD runs per example; the one with the highest loss (lowest target
            loss when targeted) is kept.
        targeted: attack a uniformly random wrong label, as Xie et al. do.
        prob_start_from_clean: fraction of batches whose PGD starts from the clean image
            instead of a random point of the ball (Xie et al.'s 0.2).
        random_start: start from a random point (else every batch starts from clean).
        bn_eval: BatchNorm in inference mode while the attack runs.
        track_clean: also compute clean logits (no gradient, BN in inference mode) for
            the progress bar's clean accuracy.
    """

    name: ClassVar[str] = "pgd"
    restarts: int = 1
    targeted: bool = False
    prob_start_from_clean: float = 0.2
    track_clean: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.restarts = check_positive_int("restarts", self.restarts)
        p = check_non_negative("prob_start_from_clean", self.prob_start_from_clean)
        if p > 1:
            raise ValueError(f"prob_start_from_clean must be in [0, 1], got {p!r}")
        self.prob_start_from_clean = p

    def draw(
        self, y: torch.Tensor, shape: tuple[int, ...], num_classes: int, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.random_start:
            noise_shape = self._noise_shape(shape, self.restarts)
            flat = random_ball((shape[0] * self.restarts, *shape[1:]), self.eps, self.norm, gen)
            out["noise"] = flat.view(noise_shape)
            from_clean = bool(torch.rand((), generator=gen) < self.prob_start_from_clean)
            out["from_clean"] = torch.full((shape[0],), from_clean, dtype=torch.bool)
        if self.targeted:
            out["target"] = random_targets(y.cpu(), num_classes, gen)
        return out

    def loss(
        self,
        model: nn.Module,
        attack_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        draws: dict[str, torch.Tensor],
        autocast: torch.autocast | None = None,
    ) -> BatchLoss:
        target = draws["target"].to(y.device) if self.targeted else y
        assert self.step_size is not None
        best = x
        best_loss: torch.Tensor | None = None
        for r in range(self.restarts):
            noise = draws["noise"][:, r].to(x.device) if self.random_start else None
            x_adv = self._attack(
                attack_model,
                x,
                target,
                noise,
                steps=self.steps,
                step_size=self.step_size,
                targeted=self.targeted,
                start_from_clean=draws.get("from_clean"),
                autocast=autocast,
            )
            if self.restarts == 1:
                best = x_adv
                break
            with torch.no_grad(), bn_inference_mode(attack_model), _ctx(autocast):
                lo = F.cross_entropy(attack_model(x_adv).float(), target, reduction="none")
            score = -lo if self.targeted else lo
            if best_loss is None:
                best, best_loss = x_adv, score
            else:
                better = (score > best_loss).view(-1, *([1] * (x.ndim - 1)))
                best = torch.where(better, x_adv, best)
                best_loss = torch.maximum(score, best_loss)
        logits_clean = None
        if self.track_clean:
            with torch.no_grad(), bn_inference_mode(attack_model), _ctx(autocast):
                logits_clean = attack_model(x)
        with _ctx(autocast):
            logits = model(best)
        losses = F.cross_entropy(logits.float(), y, reduction="none")
        return BatchLoss(losses, logits_clean=logits_clean, logits_adv=logits)


@dataclass
class MixTraining(_AttackSettings):
    """Goodfellow's mixed objective ``a J(x, y) + (1 - a) J(x_adv, y)``.

    Args:
        alpha: the weight a of the clean loss (0.5 in the paper).
        attack: ``"fgsm"`` (one step of ``eps``; ``random_start`` ignored) or ``"pgd"``.
        eps, step_size, steps, norm, random_start: the PGD settings when attack="pgd".
    """

    name: ClassVar[str] = "mix"
    alpha: float = 0.5
    attack: str = "fgsm"

    def __post_init__(self) -> None:
        check_choice("attack", self.attack, ("fgsm", "pgd"))
        if self.attack == "fgsm":
            self.steps, self.step_size, self.random_start = 1, self.eps, False
        super().__post_init__()
        a = check_non_negative("alpha", self.alpha)
        if a > 1:
            raise ValueError(f"alpha must be in [0, 1], got {a!r}")
        self.alpha = a

    def draw(
        self, y: torch.Tensor, shape: tuple[int, ...], num_classes: int, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        if not self.random_start:
            return {}
        return {"noise": random_ball(shape, self.eps, self.norm, gen)}

    def loss(
        self,
        model: nn.Module,
        attack_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        draws: dict[str, torch.Tensor],
        autocast: torch.autocast | None = None,
    ) -> BatchLoss:
        assert self.step_size is not None
        noise = draws["noise"].to(x.device) if "noise" in draws else None
        x_adv = self._attack(
            attack_model, x, y, noise, steps=self.steps, step_size=self.step_size, autocast=autocast
        )
        with _ctx(autocast):
            logits_clean = model(x)
            logits_adv = model(x_adv)
        losses = self.alpha * F.cross_entropy(logits_clean.float(), y, reduction="none") + (
            1 - self.alpha
        ) * F.cross_entropy(logits_adv.float(), y, reduction="none")
        return BatchLoss(losses, logits_clean=logits_clean, logits_adv=logits_adv)


@dataclass
class FastTraining(_AttackSettings):
    """FGSM from a random start with step ``1.25 eps`` (Wong et al. 2020).

    The cyclic learning rate and the early stop on catastrophic overfitting belong to
    the loop (see :func:`art_denoise.training.loop.fit`); the ART trainer
    :class:`~art_denoise.defences.trainer.AdversarialTrainerFastPyTorch` sets both up.
    """

    name: ClassVar[str] = "fast"
    track_clean: bool = True

    def __post_init__(self) -> None:
        self.steps = 1
        if self.step_size is None:
            self.step_size = 1.25 * self.eps
        self.random_start = True
        super().__post_init__()

    def draw(
        self, y: torch.Tensor, shape: tuple[int, ...], num_classes: int, gen: torch.Generator
    ) -> dict[str, torch.Tensor]:
        return {"noise": random_ball(shape, self.eps, self.norm, gen)}

    def loss(
        self,
        model: nn.Module,
        attack_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        draws: dict[str, torch.Tensor],
        autocast: torch.autocast | None = None,
    ) -> BatchLoss:
        assert self.step_size is not None
        x_adv = self._attack(
            attack_model,
            x,
            y,
            draws["noise"].to(x.device),
            steps=1,
            step_size=self.step_size,
            autocast=autocast,
        )
        logits_clean = None
        if self.track_clean:
            with torch.no_grad(), bn_inference_mode(attack_model), _ctx(autocast):
                logits_clean = attack_model(x)
        with _ctx(autocast):
            logits = model(x_adv)
        losses = F.cross_entropy(logits.float(), y, reduction="none")
        return BatchLoss(losses, logits_clean=logits_clean, logits_adv=logits)


#: ``--method`` name -> class (``pcl`` is standard training plus the PCL term).
METHODS: dict[str, type[TrainingMethod]] = {
    "none": StandardTraining,
    "pgd": PGDTraining,
    "mix": MixTraining,
    "fast": FastTraining,
}


def create_method(name: str, **settings: Any) -> TrainingMethod:
    """Build a method by name; unknown settings raise a ``TypeError`` naming them."""
    check_choice("method", name, METHODS)
    cls = METHODS[name]
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise TypeError(f"method {name!r} has no setting(s) {', '.join(unknown)}")
    return cls(**settings)
