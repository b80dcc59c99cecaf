"""``evaluate``: several attacks, several backends, one worst case per threat model, one report."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from art_denoise._torch import cpu_model, perturbation_norms, random_targets, rng_preserved
from art_denoise._validation import as_labels
from art_denoise.attacks.backends import AttackBackend
from art_denoise.attacks.backends.base import infer_num_classes, seed_everything
from art_denoise.attacks.rp2.metrics import l2_ratios
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation.checks import run_checks
from art_denoise.evaluation.distributed import (
    PREDICT_BATCH,
    batch_seed,
    concat,
    gather_batches,
    is_main_process,
    prediction_seed,
    rank_and_world,
    shard,
    share_from_main,
)
from art_denoise.evaluation.metrics import attack_success_rate, predict
from art_denoise.evaluation.plan import EvaluationPlan, _randomized, plan_evaluation
from art_denoise.evaluation.report import AttackResult, ModelReport, Report
from art_denoise.evaluation.results import mask_to_str
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.suite import DefaultSuite, RoutedAttack
from art_denoise.evaluation.sweeps import SweepSpec, run_sweep
from art_denoise.evaluation.worst_case import mixed_accuracy, threat_models

__all__ = [
    "EvaluationPlan",
    "draw_targets",
    "environment",
    "evaluate",
    "evaluate_model",
    "plan_evaluation",
]


def draw_targets(y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Random target labels different from ``y``, reproducible for a given ``seed``."""
    return random_targets(y, num_classes, torch.Generator().manual_seed(seed))


def environment(device: torch.device | str) -> dict[str, Any]:
    """Versions of the libraries that produced a report, and the device."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_model()
    return {
        "torch": torch.__version__,
        "art": version("adversarial-robustness-toolbox"),
        "torchattacks": version("torchattacks"),
        "foolbox": version("foolbox"),
        "device": f"{dev.type} ({name})",
    }


def evaluate(
    model: nn.Module | Mapping[str, nn.Module],
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    attacks: Sequence[AttackSpec | RoutedAttack] | None = None,
    eps: float | Sequence[float] | None = None,
    norm: str = "inf",
    suite: DefaultSuite | None = None,
    extra_attacks: Mapping[str, Sequence[AttackSpec | RoutedAttack]] | None = None,
    backends: Sequence[str | AttackBackend] | None = None,
    defenses: Mapping[str, str] | None = None,
    dataset: str = "custom",
    split: str = "test",
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    checks: bool = True,
    reference_model: nn.Module | None = None,
    sweeps: Sequence[SweepSpec] = (),
    all_or_nothing: bool = False,
    skip_unsupported: bool = False,
    rp2: RP2Evaluation | None = None,
) -> Report:
    """Attack each model with each spec through its backends and collect a :class:`Report`.

    The report's headline is one worst case per threat model (norm, eps): an image counts
    as robust only if every attack at that budget, through every backend, failed on it
    (``ModelReport.threat_models``). A model is "verified" only if a parameter-free attack
    (APGD, AutoAttack; with EOT for a randomised model) is part of every worst case and
    every check passes (``ModelReport.status``).

    Args:
        model: a module returning (B, classes) logits for [0, 1] inputs, or a mapping
            name -> module to evaluate several models on the same data.
        x: images (B, C, H, W) in [0, 1].
        y: integer labels (B,) or one-hot (B, classes).
        attacks: the attack specs, run as given; every hyperparameter is taken from them.
            A :class:`~art_denoise.evaluation.suite.RoutedAttack` names its own backends.
            ``None`` runs the default attacks at each ``eps``
            (:func:`~art_denoise.evaluation.suite.default_attacks`: PGD through every
            backend, APGD-CE and APGD-T through ``native``, and for a randomised model
            APGD-CE and APGD-DLR with EOT-20).
        eps: the budget(s) of the default attacks; required without ``attacks``, refused
            with them.
        norm: the norm of the default attacks, ``"inf"`` or ``"2"``.
        suite: the default attacks' settings (steps, EOT draws, AutoAttack, ...);
            ``None`` is :class:`~art_denoise.evaluation.suite.DefaultSuite` ().
        extra_attacks: model name -> more specs run on that model only (e.g. the EOT
            versions of the attacks for the randomised models).
        backends: backend names (``"art"``, ``"native"``, and installed plugins such as
            ``"torchattacks"``, ``"foolbox"``) or :class:`AttackBackend` instances; ``None``
            (the default) uses every installed backend, skipping those that cannot
            express an attack.
        defenses: model name -> short description of its defense (default ``"none"``).
        dataset, split: recorded in the report.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; models and data are moved there.
        seed: seeds every attack call (random starts) and the target labels.
        progress: show a progress bar.
        checks: run the sanity checks of :mod:`art_denoise.evaluation.checks` on every
            model (a few extra seeded attacks through ``native``, else the first backend,
            on the first 100 images); a model failing one is reported as "not verified".
        reference_model: an undefended model of the same task; attacks crafted on it are
            transferred to each model for the white-box-vs-transfer check (skipped when
            ``None``).
        sweeps: :class:`~art_denoise.evaluation.sweeps.SweepSpec` s (steps, eps, restarts)
            run on every model around its first untargeted PGD attack (the EOT version
            for a model that has one); the step and restart sweeps run in one pass.
        all_or_nothing: run the attacks all-or-nothing within each threat model (the CAAD
            criterion): each (attack, backend) runs only on the images every earlier one at
            its (norm, eps) failed on, and its ``robust_accuracy`` is the fraction still
            standing there after it (cumulative). The worst cases are the same as by
            default; faster, and the report says so. An unbounded DeepFool runs on the
            images correctly classified clean.
        skip_unsupported: skip the (attack, backend) pairs a backend of ``backends``
            cannot express (e.g. AutoAttack in foolbox), listing them in
            ``report.skipped``; an attack no backend can run, or one routed to a backend
            that refuses it, still raises.
        rp2: run RP2 stickers (:class:`RP2Evaluation`) on every model: targeted success per
            target class, average, worst and L2 dissimilarity (BlurNet's table).

    Returns:
        The report; ``report.save(out_dir)`` writes it.

    Raises:
        ValueError / TypeError: bad data, an unknown backend, ``attacks`` and ``eps``
            both given or both missing, or an attack a backend cannot express (checked
            before any attack runs).

    Warns:
        RuntimeWarning: a randomised model attacked without EOT; a later attack lowering
            a threat model's worst case by more than 1.5 points (the earlier attacks had
            not converged).

    Example:
        >>> report = evaluate(model, x, y, eps=[0.1, 0.2])  # doctest: +SKIP
        >>> report = evaluate(model, x, y, attacks=[AttackSpec(attack="fgsm", eps=0.1)],
        ...                   backends=["art"])  # doctest: +SKIP
    """
    plan = plan_evaluation(
        model,
        x,
        attacks=attacks,
        eps=eps,
        norm=norm,
        suite=suite,
        extra_attacks=extra_attacks,
        backends=backends,
        defenses=defenses,
        dataset=dataset,
        split=split,
        device=device,
        seed=seed,
        checks=checks,
        reference_model=reference_model,
        sweeps=sweeps,
        all_or_nothing=all_or_nothing,
        skip_unsupported=skip_unsupported,
        rp2=rp2,
    )
    if plan.checks and plan.reference_model is not None:
        plan.reference_model.to(plan.device)
    transfer_cache: dict[AttackSpec, torch.Tensor] = {}
    bar = tqdm(
        total=plan.total_runs,
        disable=not (progress and is_main_process()),
        desc="evaluate",
        leave=False,
    )
    try:
        # every model's attacks first (split across the ranks of a process group), then
        # rank 0 alone runs the sweeps, RP2 and checks (each seeded: the order changes
        # nothing); a plain loop, not a comprehension (a frame of its own in Python 3.11):
        # the warnings point at evaluate's caller
        attacked = []
        for name, m in plan.models.items():
            attacked.append(_attack_model(plan, name, m, y, bar))
        if is_main_process():
            for name, (report, victim, specs) in zip(plan.models, attacked, strict=True):
                m = plan.models[name]
                _extras(plan, name, m, victim, report, specs, bar, transfer_cache)
    finally:
        bar.close()
    return share_from_main(_report(plan, [a[0] for a in attacked]))


def evaluate_model(
    plan: EvaluationPlan,
    name: str,
    model: nn.Module,
    y: np.ndarray | torch.Tensor,
    *,
    bar: tqdm | None = None,
    transfer_cache: dict[AttackSpec, torch.Tensor] | None = None,
) -> ModelReport:
    """Evaluate one model under ``plan``: its attacks, worst cases, sweeps, RP2 and checks.

    Args:
        plan: the checked evaluation (:func:`~art_denoise.evaluation.plan.plan_evaluation`).
        name: the model's name in the plan.
        model: the module; moved to the plan's device.
        y: integer labels (B,) or one-hot (B, classes) of the plan's images.
        bar: a tqdm progress bar advanced once per (attack, backend), or ``None``.
        transfer_cache: reference-model adversarials shared by the checks across models.

    Returns:
        The model's report. Inside a process group of several ranks the attacks are split
        across them (:mod:`~art_denoise.evaluation.distributed`), rank 0 runs the sweeps,
        RP2 and checks, and every rank returns rank 0's report.
    """
    bar = bar if bar is not None else tqdm(disable=True)
    report, victim, specs = _attack_model(plan, name, model, y, bar)
    if is_main_process():
        _extras(plan, name, model, victim, report, specs, bar, transfer_cache)
    return share_from_main(report)


def _attack_model(
    plan: EvaluationPlan, name: str, model: nn.Module, y: np.ndarray | torch.Tensor, bar: tqdm
) -> tuple[ModelReport, _Victim, list[AttackSpec]]:
    """One model's attacks and worst cases (split across the ranks of a process group)."""
    model.to(plan.device)
    num_classes = infer_num_classes(model, plan.x)
    yt = as_labels(y, n=len(plan.x), num_classes=num_classes).to(plan.device)
    specs = plan.model_specs(name)
    randomized = plan.randomized.get(name)
    if randomized is None:  # a plan built by hand
        randomized = _randomized(model, plan.x)
    main = is_main_process()  # only rank 0 warns
    if main and randomized and not any(s.eot_samples > 1 for s in specs):
        warnings.warn(
            f"model {name!r} gives different outputs for identical inputs: it is "
            "randomised, and attacks without Expectation over Transformation "
            "(AttackSpec(eot_samples=16)) overstate its robustness",
            RuntimeWarning,
            stacklevel=3,  # the caller of evaluate
        )
    victim = _victim(model, plan.x, yt, num_classes, plan.seed)
    report = ModelReport(
        name=name,
        defense=plan.defense(name),
        clean_accuracy=float(victim.clean_correct.float().mean()),
        randomized=randomized,
    )
    standing = _Standing(victim.clean_correct, specs) if plan.all_or_nothing else None
    for spec in specs:
        target = draw_targets(victim.y, victim.num_classes, plan.seed) if spec.targeted else None
        for engine in plan.backends_for(spec):
            if (spec, engine.name) not in plan.skipped:
                bar.set_postfix_str(f"{name} {spec.key} {engine.name}")
                report.results.append(_attack(plan, model, victim, spec, engine, target, standing))
            bar.update(1)
    report.threat_models = threat_models(report.results)
    report.all_or_nothing_accuracy = mixed_accuracy(report.results)
    for t in report.threat_models if main else ():
        for attack, before, after in t.unconverged():
            warnings.warn(
                f"model {name!r}, {t.label}: {attack} lowered the worst case from "
                f"{before:.1%} to {after:.1%} ({(before - after) * 100:.1f} points): the "
                "earlier attacks had not converged",
                RuntimeWarning,
                stacklevel=3,  # the caller of evaluate
            )
    return report, victim, specs


@dataclass(frozen=True)
class _Victim:
    """One model's labels and clean predictions on the plan's images."""

    y: torch.Tensor
    num_classes: int
    clean_pred: torch.Tensor
    clean_correct: torch.Tensor


def _victim(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int
) -> _Victim:
    """The labels with the model's clean predictions on ``x``, made in batches of
    :data:`~art_denoise.evaluation.distributed.PREDICT_BATCH` split across the ranks, each
    seeded (a randomised model draws the same noise in one process or many)."""

    def batch(k: int) -> torch.Tensor:
        seed_everything(prediction_seed(seed, k))
        return predict(model, x[k * PREDICT_BATCH : (k + 1) * PREDICT_BATCH]).cpu()

    parts = gather_batches(math.ceil(len(x) / PREDICT_BATCH), batch)
    clean_pred = concat(parts, torch.int64).to(x.device)
    return _Victim(y, num_classes, clean_pred, clean_pred == y)


@dataclass(frozen=True)
class _Batch:
    """One global batch of an attack, per example: the prediction on the adversarial
    image, the perturbation's norm in the attack's norm and its L2 ratio (BlurNet's
    dissimilarity); with the seconds the batch took."""

    pred: torch.Tensor
    norms: torch.Tensor
    ratios: torch.Tensor
    seconds: float


def _run_batches(
    model: nn.Module,
    engine: AttackBackend,
    x: torch.Tensor,
    labels: torch.Tensor,
    spec: AttackSpec,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Attack ``(x, labels)`` one global batch at a time, batch ``k`` seeded
    :func:`~art_denoise.evaluation.distributed.batch_seed` ``(seed, k)``, the batches split
    across the ranks; returns, for every image on every rank, the adversarial prediction,
    the perturbation norm and the L2 ratio (CPU), and the seconds of the slowest rank."""
    bs = spec.batch_size

    def batch(k: int) -> _Batch:
        xb, lb = x[k * bs : (k + 1) * bs], labels[k * bs : (k + 1) * bs]
        tic = time.perf_counter()
        adv = engine.run(model, xb, lb, spec, seed=batch_seed(seed, k))
        seconds = time.perf_counter() - tic
        seed_everything(prediction_seed(seed, k, f"{spec.key}/{engine.name}"))
        pred = predict(model, adv)
        norms = perturbation_norms(adv - xb, spec.norm)
        return _Batch(pred.cpu(), norms.cpu(), l2_ratios(xb, adv).cpu(), seconds)

    parts = gather_batches(math.ceil(len(x) / bs), batch)
    seconds = _slowest_rank(parts)
    return (
        concat([p.pred for p in parts], torch.int64),
        concat([p.norms for p in parts], torch.float64),
        concat([p.ratios for p in parts], torch.float64),
        seconds,
    )


def _slowest_rank(parts: Sequence[_Batch]) -> float:
    """The wall time of the rank that took longest (the sum over its batches)."""
    _, world = rank_and_world()
    n_batches = len(parts)
    return max(
        (sum(parts[k].seconds for k in shard(n_batches, r, world)) for r in range(world)),
        default=0.0,
    )


class _Standing:
    """All-or-nothing: per threat model (norm, eps), the images no attack there broke."""

    def __init__(self, clean_correct: torch.Tensor, specs: Sequence[AttackSpec]) -> None:
        self.clean = clean_correct
        self.masks = {
            (s.norm, float(s.eps)): clean_correct.clone() for s in specs if s.eps is not None
        }

    def images(self, spec: AttackSpec) -> torch.Tensor:
        """The images ``spec`` runs on: those standing in its threat model (an unbounded
        attack: those correctly classified clean)."""
        mask = self.clean if spec.eps is None else self.masks[(spec.norm, float(spec.eps))]
        return mask.nonzero().flatten()

    def update(self, spec: AttackSpec, correct: torch.Tensor, norms: torch.Tensor | None) -> None:
        """Drop the images the attack broke: in its threat model, or, for an unbounded
        minimal-norm attack, in every threat model of its norm whose eps it stayed within."""
        if spec.eps is not None:
            self.masks[(spec.norm, float(spec.eps))] &= correct
            return
        if norms is None:
            return
        for (norm, eps), mask in self.masks.items():
            if norm == spec.norm:
                mask &= ~(norms <= eps)

    def standing(self, spec: AttackSpec) -> torch.Tensor:
        """The images standing in the threat model of bounded ``spec``."""
        assert spec.eps is not None  # only a bounded attack has a threat model
        return self.masks[(spec.norm, float(spec.eps))]


def _attack(
    plan: EvaluationPlan,
    model: nn.Module,
    victim: _Victim,
    spec: AttackSpec,
    engine: AttackBackend,
    target: torch.Tensor | None,
    standing: _Standing | None,
) -> AttackResult:
    """Run one (attack, backend) pair; ``standing`` (all-or-nothing) loses the images it
    broke."""
    xt, yt, clean_correct = plan.x, victim.y, victim.clean_correct
    labels = target if target is not None else yt
    idx = (
        standing.images(spec) if standing is not None else torch.arange(len(xt), device=plan.device)
    )
    adv_pred, pert, ratios, seconds = _run_batches(
        model, engine, xt[idx], labels[idx], spec, plan.seed
    )
    adv_pred = adv_pred.to(plan.device)
    # An image misclassified when clean never counts as robust, whatever the attack does
    # to it (ART's DeepFool pushes such images into the true class).
    correct = torch.zeros_like(clean_correct)
    correct[idx] = (adv_pred == yt[idx]) & clean_correct[idx]
    unbounded = spec.eps is None and spec.minimal_norm
    norms = _needed_norms(pert, idx, correct, clean_correct) if unbounded else None
    sequential = standing is not None and spec.eps is not None
    if standing is not None:
        standing.update(spec, correct, norms)
        if sequential:
            correct = standing.standing(spec).clone()
    adversarial = victim.clean_pred != yt  # an image not attacked keeps its clean prediction
    adversarial[idx] = adv_pred != yt[idx]
    return AttackResult(
        attack=spec.name,
        backend=engine.name,
        norm=spec.norm,
        eps=spec.eps,
        step_size=spec.step_size,
        steps=spec.steps,
        random_start=spec.random_start,
        restarts=spec.restarts,
        targeted=spec.targeted,
        robust_accuracy=int(correct.sum()) / len(correct),  # exact: as the worst cases
        attack_success_rate=attack_success_rate(
            victim.clean_pred[idx], adv_pred, yt[idx], None if target is None else target[idx]
        ),
        l2_dissimilarity=float(ratios.mean()) if len(ratios) else 0.0,
        max_perturbation=float(pert.max()) if len(pert) else 0.0,
        seconds=seconds,
        eot_samples=spec.eot_samples,
        n_attacked=len(idx),
        sequential=sequential,
        robust_examples=mask_to_str(correct.tolist()),
        adversarial=mask_to_str(adversarial.tolist()) if unbounded else None,
        perturbation_norms=None if norms is None else _norm_tuple(norms),
    )


def _needed_norms(
    pert: torch.Tensor,
    idx: torch.Tensor,
    correct: torch.Tensor,
    clean_correct: torch.Tensor,
) -> torch.Tensor:
    """Per image of the evaluation: the perturbation norm ``pert`` of the attacked images
    ``idx`` where the image was correctly classified clean and the attack broke it, NaN
    elsewhere (float64)."""
    out = torch.full((len(clean_correct),), float("nan"), dtype=torch.float64, device=idx.device)
    out[idx] = pert.to(out.device)
    return out.where(clean_correct & ~correct, torch.full_like(out, float("nan")))


def _norm_tuple(norms: torch.Tensor) -> tuple[float | None, ...]:
    """NaN -> ``None`` (JSON has no NaN)."""
    return tuple(None if math.isnan(v) else v for v in norms.tolist())


def _extras(
    plan: EvaluationPlan,
    name: str,
    model: nn.Module,
    victim: _Victim,
    report: ModelReport,
    specs: list[AttackSpec],
    bar: tqdm,
    transfer_cache: dict[AttackSpec, torch.Tensor] | None,
) -> None:
    """The sweeps, RP2 and sanity checks of one model, into ``report`` (rank 0 only in a
    process group). Each runs with the global RNGs seeded with the evaluation's seed (so
    that neither the attacks before it nor the ranks change it) and restored after."""
    xt, yt = plan.x, victim.y
    for sw in plan.sweeps:
        bar.set_postfix_str(f"{name} {sw.kind} sweep")
        base = sw.attack or plan.sweep_bases[name]
        assert base is not None  # checked before any attack
        with _seeded(plan.seed):
            sweep = run_sweep(model, xt, yt, sw, base, plan.check_engine, seed=plan.seed)
        report.sweeps.append(sweep)
    if plan.rp2 is not None:
        bar.set_postfix_str(f"{name} rp2")
        with _seeded(plan.seed):
            report.rp2 = plan.rp2.run(model, xt, yt)
    if plan.checks:
        bar.set_postfix_str(f"{name} checks")
        with _seeded(plan.seed):
            report.checks = run_checks(
                model,
                xt,
                yt,
                report,
                specs,
                plan.check_engine,
                reference=plan.reference_model,
                transfer_cache=transfer_cache,
                seed=plan.seed,
            )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Global RNGs seeded with ``seed`` inside, left as they were outside."""
    with rng_preserved():
        seed_everything(seed)
        yield


def _report(plan: EvaluationPlan, models: list[ModelReport]) -> Report:
    """The whole evaluation's report."""
    return Report(
        dataset={"name": plan.dataset, "split": plan.split, "n_samples": len(plan.x)},
        models=models,
        environment=environment(plan.device),
        skipped=[
            {"attack": spec.key, "backend": backend, "reason": reason}
            for (spec, backend), reason in plan.skipped.items()
        ],
        all_or_nothing=plan.all_or_nothing,
    )
