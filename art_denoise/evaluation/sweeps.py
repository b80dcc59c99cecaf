"""Robust accuracy against PGD steps, eps and random restarts (Xie et al. 2019, Fig. 6).

A defense that only looks robust often shows it here: its accuracy keeps falling with
more steps or restarts (a weak attack, not a strong model), or fails to fall as eps
grows. Three sweeps, each a :class:`SweepSpec`:

* ``"steps"``: PGD with 10, 20, 50, 100, 200, 500, 1000, 2000 steps (cut by
  ``max_value``), run *once* to the largest count with the state of every example
  recorded at each checkpoint (:func:`~art_denoise.attacks.checkpointed_pgd.pgd_checkpoint_states`);
* ``"restarts"``: 1, 2, 5, 10, 20 random restarts (cut by ``max_value``), also one pass:
  an example counts as broken after ``k`` restarts if one of the first ``k`` broke it;
* ``"eps"``: the attack at several budgets through an attack backend, the step size
  scaled with eps.

An image misclassified when clean never counts as robust, as everywhere in the report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from art_denoise._torch import predict
from art_denoise._validation import check_choice
from art_denoise.attacks.backends.base import AttackBackend
from art_denoise.attacks.checkpointed_pgd import pgd_checkpoint_states
from art_denoise.attacks.spec import AttackSpec

__all__ = [
    "DEFAULT_EPS_FACTORS",
    "DEFAULT_RESTARTS",
    "DEFAULT_STEPS",
    "SWEEP_KINDS",
    "Sweep",
    "SweepSpec",
    "eps_sweep",
    "restart_sweep",
    "run_sweep",
    "step_sweep",
]

SWEEP_KINDS = ("steps", "eps", "restarts")
#: Xie et al.'s attack iterations (Fig. 6), cut by ``max_value``.
DEFAULT_STEPS = (10, 20, 50, 100, 200, 500, 1000, 2000)
DEFAULT_RESTARTS = (1, 2, 5, 10, 20)
#: Budgets of the eps sweep, as multiples of the base attack's eps.
DEFAULT_EPS_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
#: Who runs the one-pass sweeps (steps, restarts) in the report.
BUILTIN = "art-denoise"


@dataclass(frozen=True)
class SweepSpec:
    """One sweep to run on every evaluated model.

    Args:
        kind: ``"steps"``, ``"eps"`` or ``"restarts"``.
        values: the step counts, budgets or restart counts; default
            :data:`DEFAULT_STEPS`, ``DEFAULT_EPS_FACTORS * attack.eps`` or
            :data:`DEFAULT_RESTARTS`.
        max_value: drop values above it (``--max-steps``); ``None`` keeps all.
        attack: the untargeted PGD attack to sweep; ``None`` takes the model's first
            untargeted PGD attack of the evaluation (its EOT version if it has one).
    """

    kind: str
    values: tuple[float, ...] | None = None
    max_value: float | None = None
    attack: AttackSpec | None = None

    def __post_init__(self) -> None:
        check_choice("sweep kind", self.kind, SWEEP_KINDS)
        if self.values is not None:
            vals = tuple(self.values)
            if not vals:
                raise ValueError(f"{self.kind} sweep values must not be empty")
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                    raise ValueError(f"{self.kind} sweep values must be > 0, got {v!r}")
                if self.kind != "eps" and float(v) != int(v):
                    raise ValueError(f"{self.kind} sweep values must be integers, got {v!r}")
            object.__setattr__(self, "values", tuple(sorted(set(vals))))
        if self.max_value is not None and not (
            isinstance(self.max_value, (int, float)) and self.max_value > 0
        ):
            raise ValueError(f"max_value must be > 0 or None, got {self.max_value!r}")
        if self.attack is not None:
            if not isinstance(self.attack, AttackSpec):
                raise TypeError(f"attack must be an AttackSpec, got {type(self.attack).__name__}")
            if self.attack.attack != "pgd" or self.attack.targeted:
                raise ValueError(f"a sweep runs untargeted PGD; got {self.attack.key}")

    def resolve(self, attack: AttackSpec) -> tuple[float, ...]:
        """The values to run for base ``attack``, cut by ``max_value``.

        Raises:
            ValueError: ``max_value`` leaves no value.
        """
        if self.values is not None:
            vals: tuple[float, ...] = self.values
        elif self.kind == "steps":
            vals = DEFAULT_STEPS
        elif self.kind == "restarts":
            vals = DEFAULT_RESTARTS
        else:
            vals = tuple(round(f * float(attack.eps or 0.0), 10) for f in DEFAULT_EPS_FACTORS)
            if attack.norm == "inf":  # a Linf ball of radius 1 already holds all of [0, 1]
                capped = tuple(v for v in vals if v < 1.0)
                vals = (*capped, 1.0) if any(v >= 1.0 for v in vals) else capped
        if self.max_value is not None:
            vals = tuple(v for v in vals if v <= self.max_value)
        if not vals:
            raise ValueError(
                f"max_value={self.max_value!r} leaves no {self.kind} value to sweep "
                f"(values {list(self.values or [])!r})"
            )
        return vals


@dataclass(frozen=True)
class Sweep:
    """The result of one sweep on one model."""

    kind: str
    attack: str
    backend: str
    values: tuple[float, ...]
    robust_accuracy: tuple[float, ...]
    base: dict[str, Any]
    seconds: float
    n_samples: int

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["values"], d["robust_accuracy"] = list(self.values), list(self.robust_accuracy)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sweep:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["values"] = tuple(kw["values"])
        kw["robust_accuracy"] = tuple(kw["robust_accuracy"])
        return cls(**kw)

    def label(self) -> str:
        """One line naming the fixed settings, e.g. ``"pgd-linf eps 0.1 step 0.01"``."""
        b = self.base
        parts = [self.attack]
        if self.kind != "eps":
            parts.append(f"eps {b['eps']:g}")
        parts.append(f"step {b['step_size']:g}" if self.kind != "eps" else "step/eps fixed")
        if self.kind != "steps":
            parts.append(f"{b['steps']} steps")
        if self.kind != "restarts" and b.get("restarts", 1) > 1:
            parts.append(f"{b['restarts']} restarts")
        return " ".join(parts)


def _clean_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return predict(model, x) == y


def step_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackSpec,
    steps: Sequence[int],
    *,
    seed: int = 0,
) -> Sweep:
    """Robust accuracy after each count of ``steps``, in one pass of ``max(steps)`` steps.

    Each of ``attack.restarts`` restarts runs on every example; an example is broken at
    a step count if any restart's iterate at that count is misclassified.
    """
    tic = time.perf_counter()
    clean = _clean_correct(model, x, y)
    states = pgd_checkpoint_states(model, x, y, attack, [int(s) for s in steps], seed=seed)
    acc = (states.all(dim=1) & clean.to(states.device)).float().mean(dim=1)
    return Sweep(
        kind="steps",
        attack=attack.name,
        backend=BUILTIN,
        values=tuple(int(s) for s in steps),
        robust_accuracy=tuple(float(a) for a in acc),
        base=attack.to_dict(),
        seconds=time.perf_counter() - tic,
        n_samples=len(x),
    )


def restart_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackSpec,
    restarts: Sequence[int],
    *,
    seed: int = 0,
) -> Sweep:
    """Robust accuracy after each count of ``restarts`` random restarts (one pass).

    Restart ``r`` is seeded ``seed + r`` and runs ``attack.steps`` steps from a random
    start on every example.
    """
    tic = time.perf_counter()
    base = attack.replace(random_start=True)
    counts = [int(r) for r in restarts]
    clean = _clean_correct(model, x, y)
    states = pgd_checkpoint_states(
        model, x, y, base, [base.steps], restarts=max(counts), seed=seed
    )[0]
    correct = torch.cummin(states.to(torch.uint8), dim=0).values.bool() & clean.to(states.device)
    acc = [float(correct[k - 1].float().mean()) for k in counts]
    return Sweep(
        kind="restarts",
        attack=base.name,
        backend=BUILTIN,
        values=tuple(counts),
        robust_accuracy=tuple(acc),
        base=base.to_dict(),
        seconds=time.perf_counter() - tic,
        n_samples=len(x),
    )


def eps_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: AttackSpec,
    eps_values: Sequence[float],
    backend: AttackBackend,
    *,
    seed: int = 0,
) -> Sweep:
    """Robust accuracy at each eps of ``eps_values``, through ``backend``; the step size
    keeps its ratio to eps."""
    tic = time.perf_counter()
    clean = _clean_correct(model, x, y)
    ratio = float(attack.step_size or 0.0) / float(attack.eps or 1.0)
    acc = []
    for eps in eps_values:
        spec = attack.replace(eps=float(eps), step_size=ratio * float(eps))
        x_adv = backend.run(model, x, y, spec, seed=seed)
        acc.append(float(((predict(model, x_adv) == y) & clean).float().mean()))
    return Sweep(
        kind="eps",
        attack=attack.name,
        backend=backend.name,
        values=tuple(float(e) for e in eps_values),
        robust_accuracy=tuple(acc),
        base=attack.to_dict(),
        seconds=time.perf_counter() - tic,
        n_samples=len(x),
    )


def run_sweep(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sweep: SweepSpec,
    attack: AttackSpec,
    backend: AttackBackend,
    *,
    seed: int = 0,
) -> Sweep:
    """Run one :class:`SweepSpec` around base ``attack`` (used when ``sweep.attack`` is None)."""
    base = sweep.attack or attack
    values = sweep.resolve(base)
    if sweep.kind == "steps":
        return step_sweep(model, x, y, base, [int(v) for v in values], seed=seed)
    if sweep.kind == "restarts":
        return restart_sweep(model, x, y, base, [int(v) for v in values], seed=seed)
    return eps_sweep(model, x, y, base, values, backend, seed=seed)
