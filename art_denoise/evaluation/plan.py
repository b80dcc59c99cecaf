"""Planning an evaluation: every argument of ``evaluate`` checked before any attack runs.

:func:`plan_evaluation` validates the models, attack specs, backends, sweeps and options,
resolves the backends and the device, and returns an :class:`EvaluationPlan` that the
per-model work of :func:`~art_denoise.evaluation.evaluate.evaluate` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from art_denoise._torch import resolve_device
from art_denoise._validation import as_float_images, check_positive_int
from art_denoise.attacks.backends import AttackBackend, UnsupportedAttackError, get_backend
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.sweeps import SweepSpec

__all__ = ["EvaluationPlan", "plan_evaluation"]


@dataclass(frozen=True)
class EvaluationPlan:
    """What an evaluation will run, every argument checked and resolved.

    Args:
        models: name -> module, in evaluation order.
        specs: the attacks run on every model.
        extra: model name -> attacks run on that model only.
        engines: the resolved backends, in the order given.
        skipped: (spec, backend name) -> why that backend cannot run that spec.
        sweeps: the sweeps run on every model.
        sweep_bases: model name -> its default sweep attack (``None`` when it has none,
            in which case every sweep names its own attack).
        x: the images, as a float tensor on ``device``.
        device: where the models and data run.
        defenses: model name -> its defense, as given (``None``: every model ``"none"``).
        dataset: the dataset's name, for the report.
        split: the split's name, for the report.
        seed: seeds every attack call and the target labels.
        checks: run the sanity checks on every model.
        reference_model: the undefended model of the transfer check, or ``None``.
        all_or_nothing: run the attacks as one all-or-nothing sequence.
        rp2: the RP2 sticker evaluation, or ``None``.
    """

    models: Mapping[str, nn.Module]
    specs: tuple[AttackSpec, ...]
    extra: Mapping[str, list[AttackSpec]]
    engines: tuple[AttackBackend, ...]
    skipped: Mapping[tuple[AttackSpec, str], str]
    sweeps: tuple[SweepSpec, ...]
    sweep_bases: Mapping[str, AttackSpec | None]
    x: torch.Tensor
    device: torch.device
    defenses: Mapping[str, str] | None
    dataset: str
    split: str
    seed: int
    checks: bool
    reference_model: nn.Module | None
    all_or_nothing: bool
    rp2: RP2Evaluation | None

    def model_specs(self, name: str) -> list[AttackSpec]:
        """The attacks run on model ``name``: the shared ones, then its extra ones."""
        return list(self.specs) + self.extra.get(name, [])

    def defense(self, name: str) -> str:
        """The defense recorded for model ``name`` (default ``"none"``)."""
        return (self.defenses or {}).get(name, "none")

    @property
    def total_runs(self) -> int:
        """(attack, backend) runs over all models, skipped ones included (the progress bar)."""
        per_backend = len(self.models) * len(self.specs) + sum(len(v) for v in self.extra.values())
        return per_backend * len(self.engines)


def plan_evaluation(
    model: nn.Module | Mapping[str, nn.Module],
    x: np.ndarray | torch.Tensor,
    *,
    attacks: Sequence[AttackSpec],
    extra_attacks: Mapping[str, Sequence[AttackSpec]] | None = None,
    backends: Sequence[str | AttackBackend] = ("art",),
    defenses: Mapping[str, str] | None = None,
    dataset: str = "custom",
    split: str = "test",
    device: str | torch.device = "auto",
    seed: int = 0,
    checks: bool = True,
    reference_model: nn.Module | None = None,
    sweeps: Sequence[SweepSpec] = (),
    all_or_nothing: bool = False,
    skip_unsupported: bool = False,
    rp2: RP2Evaluation | None = None,
) -> EvaluationPlan:
    """Check every argument of :func:`~art_denoise.evaluation.evaluate.evaluate` (but the
    labels, checked per model against its number of classes) and resolve the backends,
    the device and the sweeps' attacks. The arguments mean what they mean there.

    Returns:
        The plan; nothing has been attacked, and no model moved.

    Raises:
        ValueError / TypeError: bad data, an unknown backend, or an attack a backend
            cannot express.
    """
    models = _check_models(model)
    specs, extra = _check_attacks(attacks, extra_attacks, models)
    engines, skipped = _resolve_backends(
        backends, [*specs, *(s for v in extra.values() for s in v)], skip_unsupported
    )
    sweep_specs = _check_options(
        sweeps=sweeps,
        all_or_nothing=all_or_nothing,
        skip_unsupported=skip_unsupported,
        rp2=rp2,
        seed=seed,
        checks=checks,
        reference_model=reference_model,
    )
    sweep_bases = _sweep_bases(models, specs, extra, sweep_specs)
    dev = resolve_device(device)
    xt = as_float_images(x).to(dev)
    if len(xt) == 0:
        raise ValueError("x holds no images")
    return EvaluationPlan(
        models=models,
        specs=tuple(specs),
        extra=extra,
        engines=tuple(engines),
        skipped=skipped,
        sweeps=tuple(sweep_specs),
        sweep_bases=sweep_bases,
        x=xt,
        device=dev,
        defenses=defenses,
        dataset=dataset,
        split=split,
        seed=seed,
        checks=checks,
        reference_model=reference_model,
        all_or_nothing=all_or_nothing,
        rp2=rp2,
    )


def _check_models(model: nn.Module | Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """Name -> module; one module is named ``"model"``."""
    models = {"model": model} if isinstance(model, nn.Module) else dict(model)
    if not models:
        raise ValueError("no model given")
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"model {name!r} must be a torch.nn.Module, got {type(m).__name__}")
    return models


def _check_attacks(
    attacks: Sequence[AttackSpec],
    extra_attacks: Mapping[str, Sequence[AttackSpec]] | None,
    models: Mapping[str, nn.Module],
) -> tuple[list[AttackSpec], dict[str, list[AttackSpec]]]:
    """The shared specs and the per-model extra ones, every one an :class:`AttackSpec`."""
    specs = list(attacks)
    if not specs:
        raise ValueError("attacks must name at least one AttackSpec")
    extra = {k: list(v) for k, v in (extra_attacks or {}).items()}
    unknown = sorted(set(extra) - set(models))
    if unknown:
        raise ValueError(
            f"extra_attacks names unknown model(s) {unknown}; models are {sorted(models)}"
        )
    for s in [*specs, *(s for v in extra.values() for s in v)]:
        if not isinstance(s, AttackSpec):
            raise TypeError(f"attacks must be AttackSpec instances, got {type(s).__name__}")
    return specs, extra


def _resolve_backends(
    backends: Sequence[str | AttackBackend],
    specs: Sequence[AttackSpec],
    skip_unsupported: bool,
) -> tuple[list[AttackBackend], dict[tuple[AttackSpec, str], str]]:
    """The backends, and the (spec, backend) pairs skipped because the backend refuses.

    Raises:
        UnsupportedAttackError: a backend refuses a spec and ``skip_unsupported`` is off,
            or every backend refuses it.
    """
    if isinstance(backends, str):
        backends = [backends]
    if not backends:
        raise ValueError("backends must name at least one backend")
    engines = [b if isinstance(b, AttackBackend) else get_backend(b) for b in backends]
    skipped: dict[tuple[AttackSpec, str], str] = {}
    for s in specs:
        errors = {}
        for engine in engines:
            try:
                engine.check(s)
            except UnsupportedAttackError as err:
                errors[engine.name] = str(err)
        if errors and (not skip_unsupported or len(errors) == len(engines)):
            raise UnsupportedAttackError(next(iter(errors.values())))
        skipped.update({(s, name): msg for name, msg in errors.items()})
    return engines, skipped


def _check_options(
    *,
    sweeps: Sequence[SweepSpec],
    all_or_nothing: bool,
    skip_unsupported: bool,
    rp2: RP2Evaluation | None,
    seed: int,
    checks: bool,
    reference_model: nn.Module | None,
) -> list[SweepSpec]:
    """Check the types of the options; return the sweeps as a list."""
    sweep_specs = list(sweeps)
    for sw in sweep_specs:
        if not isinstance(sw, SweepSpec):
            raise TypeError(f"sweeps must be SweepSpec instances, got {type(sw).__name__}")
    for flag, value in (("all_or_nothing", all_or_nothing), ("skip_unsupported", skip_unsupported)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool, got {value!r}")
    if rp2 is not None and not isinstance(rp2, RP2Evaluation):
        raise TypeError(f"rp2 must be an RP2Evaluation or None, got {type(rp2).__name__}")
    check_positive_int("seed", seed, minimum=0)
    if not isinstance(checks, bool):
        raise TypeError(f"checks must be a bool, got {checks!r}")
    if reference_model is not None and not isinstance(reference_model, nn.Module):
        raise TypeError(
            "reference_model must be a torch.nn.Module or None, got "
            f"{type(reference_model).__name__}"
        )
    return sweep_specs


def _sweep_bases(
    models: Mapping[str, nn.Module],
    specs: list[AttackSpec],
    extra: Mapping[str, list[AttackSpec]],
    sweeps: Sequence[SweepSpec],
) -> dict[str, AttackSpec | None]:
    """Each model's default sweep attack; every sweep's values checked against it."""
    bases = {name: _sweep_attack(specs + extra.get(name, [])) for name in models}
    for sw in sweeps:
        for name, base in bases.items():
            if sw.attack is None and base is None:
                raise ValueError(
                    f"sweeps need an untargeted PGD attack: model {name!r} has none among "
                    f"{[s.key for s in specs + extra.get(name, [])]} (add one, or give "
                    "SweepSpec(attack=...))"
                )
            sw.resolve(sw.attack or base)  # type: ignore[arg-type]
    return bases


def _sweep_attack(specs: Sequence[AttackSpec]) -> AttackSpec | None:
    """The first untargeted PGD spec, the one with the most EOT samples among equals."""
    pgd = [s for s in specs if s.attack == "pgd" and not s.targeted]
    if not pgd:
        return None
    most = max(s.eot_samples for s in pgd)
    return next(s for s in pgd if s.eot_samples == most)
