"""Planning an evaluation: every argument of ``evaluate`` checked before any attack runs.

:func:`plan_evaluation` validates the models, attack specs, backends, sweeps and options,
detects the randomised models, chooses the attacks (the user's, or the default suite of
:mod:`~art_denoise.evaluation.suite`), resolves which backends run each attack (its
route) and the device, and returns an :class:`EvaluationPlan` that the per-model work of
:func:`~art_denoise.evaluation.evaluate.evaluate` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from art_denoise._torch import attack_guard, model_device, resolve_device, rng_preserved
from art_denoise._validation import as_float_images, check_positive_int
from art_denoise.attacks.backends import (
    AttackBackend,
    UnsupportedAttackError,
    available_backends,
    get_backend,
)
from art_denoise.attacks.eot import is_randomized
from art_denoise.attacks.spec import AttackSpec, normalize_norm
from art_denoise.evaluation.distributed import local_device
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.suite import DefaultSuite, RoutedAttack
from art_denoise.evaluation.sweeps import SweepSpec

__all__ = ["EvaluationPlan", "plan_evaluation"]

#: What ``attacks`` may hold: a spec run through the evaluation's backends, or a spec
#: with its own backends.
Attack = AttackSpec | RoutedAttack


@dataclass(frozen=True)
class EvaluationPlan:
    """What an evaluation will run, every argument checked and resolved.

    Args:
        models: name -> module, in evaluation order.
        specs: the attacks run on every model.
        extra: model name -> attacks run on that model only (the default suite's EOT
            attacks of a randomised model go here).
        engines: the resolved backends: the evaluation's own first, then the ones only
            some attacks are routed to (the checks and sweeps use :attr:`check_engine`).
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
        all_or_nothing: run the attacks all-or-nothing within each threat model.
        rp2: the RP2 sticker evaluation, or ``None``.
        routes: spec -> the backends that run it, in order (``engines`` when absent);
            skipped pairs included.
        randomized: model name -> two identical calls of it differ.
        replaced: model name -> shared attacks not run on it (the plain APGD attacks a
            randomised model's EOT versions replace).
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
    routes: Mapping[AttackSpec, tuple[AttackBackend, ...]] = field(default_factory=dict)
    randomized: Mapping[str, bool] = field(default_factory=dict)
    replaced: Mapping[str, tuple[AttackSpec, ...]] = field(default_factory=dict)

    def model_specs(self, name: str) -> list[AttackSpec]:
        """The attacks run on model ``name``: the shared ones (but those its EOT attacks
        replace), then its extra ones."""
        replaced = self.replaced.get(name, ())
        return [s for s in self.specs if s not in replaced] + self.extra.get(name, [])

    def backends_for(self, spec: AttackSpec) -> tuple[AttackBackend, ...]:
        """The backends that run ``spec``, in order (skipped pairs included)."""
        return self.routes.get(spec, self.engines)

    def defense(self, name: str) -> str:
        """The defense recorded for model ``name`` (default ``"none"``)."""
        return (self.defenses or {}).get(name, "none")

    @property
    def check_engine(self) -> AttackBackend:
        """The backend of the checks' and sweeps' own attacks: ``native`` when the
        evaluation has it (batched, the fastest), else its first backend."""
        return next((e for e in self.engines if e.name == "native"), self.engines[0])

    @property
    def total_runs(self) -> int:
        """(attack, backend) runs over all models, skipped ones included (the progress bar)."""
        return sum(
            len(self.backends_for(s)) for name in self.models for s in self.model_specs(name)
        )


def _randomized(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether two identical eval-mode calls on a few images differ (RNG state kept; the
    model stays where it is)."""
    with rng_preserved(), attack_guard(model):
        return is_randomized(model, x[:8].to(model_device(model, x.device)))


def plan_evaluation(
    model: nn.Module | Mapping[str, nn.Module],
    x: np.ndarray | torch.Tensor,
    *,
    attacks: Sequence[Attack] | None = None,
    eps: float | Sequence[float] | None = None,
    norm: str = "inf",
    suite: DefaultSuite | None = None,
    extra_attacks: Mapping[str, Sequence[Attack]] | None = None,
    backends: Sequence[str | AttackBackend] | None = None,
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
    labels, checked per model against its number of classes), detect the randomised
    models, choose the attacks and resolve their backends, the device and the sweeps'
    attacks. The arguments mean what they mean there.

    Returns:
        The plan; nothing has been attacked, and no model moved.

    Raises:
        ValueError / TypeError: bad data, an unknown backend, ``attacks`` and ``eps``
            both given or both missing, or an attack a backend cannot express.
    """
    models = _check_models(model)
    dev = local_device(resolve_device(device))  # cuda:LOCAL_RANK in a process group
    xt = as_float_images(x).to(dev)
    if len(xt) == 0:
        raise ValueError("x holds no images")
    sweep_specs = _check_options(
        sweeps=sweeps,
        all_or_nothing=all_or_nothing,
        skip_unsupported=skip_unsupported,
        rp2=rp2,
        seed=seed,
        checks=checks,
        reference_model=reference_model,
    )
    norm = normalize_norm(norm)
    shared, extra_items = _check_attacks(
        attacks, extra_attacks, models, eps=eps, norm=norm, suite=suite
    )
    randomized = {name: _randomized(m, xt) for name, m in models.items()}
    replaced: dict[str, tuple[AttackSpec, ...]] = {}
    if eps is not None and attacks is None:
        # a randomised model gets AutoAttack's "rand" version: the suite's EOT attacks
        # instead of its plain APGD ones
        every = (suite or DefaultSuite()).attacks(eps, norm=norm, randomized=True)
        eot = [a for a in every if a not in shared]
        plain = tuple(a.spec for a in shared if a not in every)
        for name in models:
            if randomized[name]:
                extra_items[name] = eot + extra_items.get(name, [])
                replaced[name] = plain
    engines, routes, skipped = _resolve_routes(
        backends, [*shared, *(a for v in extra_items.values() for a in v)], skip_unsupported
    )
    specs = [a.spec for a in shared]
    extra = {k: [a.spec for a in v] for k, v in extra_items.items()}
    sweep_bases = _sweep_bases(models, specs, extra, sweep_specs)
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
        routes=routes,
        randomized=randomized,
        replaced=replaced,
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


def _routed(items: Sequence[Attack], what: str) -> list[RoutedAttack]:
    """Every item as a :class:`RoutedAttack` (a bare spec runs through every backend)."""
    out = []
    for s in items:
        if isinstance(s, AttackSpec):
            out.append(RoutedAttack(s))
        elif isinstance(s, RoutedAttack):
            out.append(s)
        else:
            raise TypeError(
                f"{what} must be AttackSpec or RoutedAttack instances, got {type(s).__name__}"
            )
    return out


def _check_attacks(
    attacks: Sequence[Attack] | None,
    extra_attacks: Mapping[str, Sequence[Attack]] | None,
    models: Mapping[str, nn.Module],
    *,
    eps: float | Sequence[float] | None,
    norm: str,
    suite: DefaultSuite | None,
) -> tuple[list[RoutedAttack], dict[str, list[RoutedAttack]]]:
    """The shared attacks (the user's, or the default suite's without its EOT attacks)
    and the per-model extra ones."""
    if suite is not None and not isinstance(suite, DefaultSuite):
        raise TypeError(f"suite must be a DefaultSuite or None, got {type(suite).__name__}")
    if attacks is None:
        if eps is None:
            raise ValueError(
                "give eps (the default attacks: PGD, APGD-CE and APGD-T at each eps) or an "
                "explicit attacks=[AttackSpec(...), ...]"
            )
        shared = (suite or DefaultSuite()).attacks(eps, norm=norm, randomized=False)
    else:
        if eps is not None or suite is not None:
            raise ValueError(
                "eps and suite choose the default attacks; with attacks=... every "
                f"AttackSpec carries its own eps (got eps={eps!r}, suite={suite!r})"
            )
        if isinstance(attacks, (AttackSpec, RoutedAttack)):
            raise TypeError("attacks must be a list of AttackSpec, not a single one")
        shared = _routed(list(attacks), "attacks")
        if not shared:
            raise ValueError("attacks must name at least one AttackSpec")
    extra = {k: _routed(list(v), "extra_attacks") for k, v in (extra_attacks or {}).items()}
    unknown = sorted(set(extra) - set(models))
    if unknown:
        raise ValueError(
            f"extra_attacks names unknown model(s) {unknown}; models are {sorted(models)}"
        )
    return shared, extra


def _selected(backends: Sequence[str | AttackBackend] | None) -> list[AttackBackend]:
    """The evaluation's own backends (``None``: every installed one), one instance each."""
    names: Sequence[str | AttackBackend] = available_backends() if backends is None else backends
    if isinstance(names, (str, AttackBackend)):
        names = [names]
    if not names:
        raise ValueError("backends must name at least one backend")
    out: dict[str, AttackBackend] = {}
    for b in names:
        engine = b if isinstance(b, AttackBackend) else get_backend(b)
        out.setdefault(engine.name, engine)
    return list(out.values())


def _named_backend(pool: dict[str, AttackBackend], name: str, spec: AttackSpec) -> AttackBackend:
    """The backend ``name`` from ``pool``, added to it on first use."""
    if name not in pool:
        try:
            pool[name] = get_backend(name)
        except ValueError as err:
            raise ValueError(
                f"{spec.key} runs through backend {name!r}, which is not installed: {err} "
                "(or pass attacks=[...] to choose the attacks yourself)"
            ) from err
    return pool[name]


def _resolve_routes(
    backends: Sequence[str | AttackBackend] | None,
    items: Sequence[RoutedAttack],
    skip_unsupported: bool,
) -> tuple[
    list[AttackBackend],
    dict[AttackSpec, tuple[AttackBackend, ...]],
    dict[tuple[AttackSpec, str], str],
]:
    """The backends, the route of every spec, and the (spec, backend) pairs skipped
    because the backend refuses.

    A spec without backends of its own runs through every backend of the evaluation; one
    refusing it is skipped with ``skip_unsupported`` or when ``backends`` is ``None``
    (every installed backend). A spec routed to named backends must run on each.

    Raises:
        UnsupportedAttackError: a backend refuses a spec it must run, or every backend
            refuses it.
        ValueError: the same spec routed to different backends.
    """
    selected = _selected(backends)
    pool = {e.name: e for e in selected}
    routes: dict[AttackSpec, tuple[AttackBackend, ...]] = {}
    skipped: dict[tuple[AttackSpec, str], str] = {}
    for item in items:
        if item.backends is None:
            engines, may_skip = selected, skip_unsupported or backends is None
        else:
            engines = [_named_backend(pool, n, item.spec) for n in item.backends]
            may_skip = False
        route = tuple(engines)
        if routes.get(item.spec, route) != route:
            raise ValueError(f"{item.spec.key} is routed to two different sets of backends")
        routes[item.spec] = route
        errors = {}
        for engine in engines:
            try:
                engine.check(item.spec)
            except UnsupportedAttackError as err:
                errors[engine.name] = str(err)
        if errors and (not may_skip or len(errors) == len(engines)):
            raise UnsupportedAttackError(next(iter(errors.values())))
        skipped.update({(item.spec, name): msg for name, msg in errors.items()})
    return list(pool.values()), routes, skipped


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
