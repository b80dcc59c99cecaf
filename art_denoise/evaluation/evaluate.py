"""``evaluate``: one threat model, several attacks, several backends, one report."""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from art_denoise._validation import as_float_images, as_labels, check_positive_int
from art_denoise.attacks.backends import AttackBackend, UnsupportedAttackError, get_backend
from art_denoise.attacks.backends.base import attack_guard, infer_num_classes
from art_denoise.attacks.eot import is_randomized
from art_denoise.attacks.spec import AttackSpec
from art_denoise.estimators.classification.classifier_pytorch import resolve_device
from art_denoise.evaluation.checks import run_checks
from art_denoise.evaluation.metrics import (
    attack_success_rate,
    l2_dissimilarity,
    max_perturbation,
    predict,
)
from art_denoise.evaluation.report import AttackResult, ModelReport, Report
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.sweeps import SweepSpec, run_sweep

__all__ = ["draw_targets", "environment", "evaluate"]


def draw_targets(y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Random target labels different from ``y``, reproducible for a given ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, num_classes, (len(y),), generator=gen)
    return ((y.cpu() + shift) % num_classes).to(y.device)


def _randomized(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether two identical eval-mode calls on a few images differ (RNG state kept)."""
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        with attack_guard(model):
            return is_randomized(model, x[:8])
    finally:
        torch.set_rng_state(state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)


def environment(device: torch.device | str) -> dict[str, Any]:
    """Versions of the libraries that produced a report, and the device."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
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
    attacks: Sequence[AttackSpec],
    extra_attacks: Mapping[str, Sequence[AttackSpec]] | None = None,
    backends: Sequence[str | AttackBackend] = ("art",),
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
    """Attack each model with each spec through each backend and collect a :class:`Report`.

    Args:
        model: a module returning (B, classes) logits for [0, 1] inputs, or a mapping
            name -> module to evaluate several models on the same data.
        x: images (B, C, H, W) in [0, 1].
        y: integer labels (B,) or one-hot (B, classes).
        attacks: the attack specs; every hyperparameter is taken from them.
        extra_attacks: model name -> more specs run on that model only (e.g. the EOT
            versions of the attacks for the randomised models).
        backends: backend names (``"art"``, and installed plugins such as
            ``"torchattacks"``, ``"foolbox"``) or :class:`AttackBackend` instances.
        defenses: model name -> short description of its defense (default ``"none"``).
        dataset, split: recorded in the report.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; models and data are moved there.
        seed: seeds every attack call (random starts) and the target labels.
        progress: show a progress bar.
        checks: run the sanity checks of :mod:`art_denoise.evaluation.checks` on every
            model (a few extra seeded attacks through the first backend on the first 100
            images); a model failing one is reported as "not verified".
        reference_model: an undefended model of the same task; attacks crafted on it are
            transferred to each model for the white-box-vs-transfer check (skipped when
            ``None``).
        sweeps: :class:`~art_denoise.evaluation.sweeps.SweepSpec` s (steps, eps, restarts)
            run on every model around its first untargeted PGD attack (the EOT version
            for a model that has one); the step and restart sweeps run in one pass.
        all_or_nothing: run the attacks as one sequence (the CAAD criterion): each
            (attack, backend) runs only on the images every earlier one failed on, and its
            ``robust_accuracy`` is the fraction still standing after it (cumulative).
            Faster, and the report says so. By default every attack runs on every image.
        skip_unsupported: skip the (attack, backend) pairs a backend cannot express (e.g.
            AutoAttack in foolbox), listing them in ``report.skipped``; an attack no
            backend can run still raises.
        rp2: run RP2 stickers (:class:`RP2Evaluation`) on every model: targeted success per
            target class, average, worst and L2 dissimilarity (BlurNet's table).

    Returns:
        The report; ``report.save(out_dir)`` writes it.

    Raises:
        ValueError / TypeError: bad data, an unknown backend, or an attack a backend
            cannot express (checked before any attack runs).

    Example:
        >>> report = evaluate(model, x, y, attacks=[AttackSpec(attack="fgsm", eps=0.1)],
        ...                   backends=["art"])  # doctest: +SKIP
    """
    models = {"model": model} if isinstance(model, nn.Module) else dict(model)
    if not models:
        raise ValueError("no model given")
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"model {name!r} must be a torch.nn.Module, got {type(m).__name__}")
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
    if isinstance(backends, str):
        backends = [backends]
    if not backends:
        raise ValueError("backends must name at least one backend")
    engines = [b if isinstance(b, AttackBackend) else get_backend(b) for b in backends]
    skipped: dict[tuple[AttackSpec, str], str] = {}
    for s in [*specs, *(s for v in extra.values() for s in v)]:
        errors = {}
        for engine in engines:
            try:
                engine.check(s)
            except UnsupportedAttackError as err:
                errors[engine.name] = str(err)
        if errors and (not skip_unsupported or len(errors) == len(engines)):
            raise UnsupportedAttackError(next(iter(errors.values())))
        skipped.update({(s, name): msg for name, msg in errors.items()})
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
    # sweeps: each model's base attack, and the values, checked before any attack runs
    sweep_bases = {name: _sweep_attack(specs + extra.get(name, [])) for name in models}
    for sw in sweep_specs:
        for name, base in sweep_bases.items():
            if sw.attack is None and base is None:
                raise ValueError(
                    f"sweeps need an untargeted PGD attack: model {name!r} has none among "
                    f"{[s.key for s in specs + extra.get(name, [])]} (add one, or give "
                    "SweepSpec(attack=...))"
                )
            sw.resolve(sw.attack or base)  # type: ignore[arg-type]
    dev = resolve_device(device)
    xt = as_float_images(x).to(dev)
    if len(xt) == 0:
        raise ValueError("x holds no images")

    if checks and reference_model is not None:
        reference_model.to(dev)
    transfer_cache: dict[AttackSpec, torch.Tensor] = {}
    reports = []
    total = (len(models) * len(specs) + sum(len(v) for v in extra.values())) * len(engines)
    bar = tqdm(total=total, disable=not progress, desc="evaluate", leave=False)
    try:
        for name, m in models.items():
            m.to(dev)
            num_classes = infer_num_classes(m, xt)
            yt = as_labels(y, n=len(xt), num_classes=num_classes).to(dev)
            model_specs = specs + extra.get(name, [])
            if not any(s.eot_samples > 1 for s in model_specs) and _randomized(m, xt):
                warnings.warn(
                    f"model {name!r} gives different outputs for identical inputs: it is "
                    "randomised, and attacks without Expectation over Transformation "
                    "(AttackSpec(eot_samples=16)) overstate its robustness",
                    RuntimeWarning,
                    stacklevel=2,
                )
            clean_pred = predict(m, xt)
            clean_correct = clean_pred == yt
            still_correct = clean_correct.clone()
            report = ModelReport(
                name=name,
                defense=(defenses or {}).get(name, "none"),
                clean_accuracy=float(clean_correct.float().mean()),
            )
            for spec in model_specs:
                target = draw_targets(yt, num_classes, seed) if spec.targeted else None
                labels = target if target is not None else yt
                for engine in engines:
                    if (spec, engine.name) in skipped:
                        bar.update(1)
                        continue
                    bar.set_postfix_str(f"{name} {spec.key} {engine.name}")
                    # all-or-nothing: only the images every earlier attack failed on
                    idx = (
                        still_correct.nonzero().flatten()
                        if all_or_nothing
                        else torch.arange(len(xt), device=dev)
                    )
                    start = time.perf_counter()
                    x_adv = engine.run(m, xt[idx], labels[idx], spec, seed=seed)
                    seconds = time.perf_counter() - start
                    adv_pred = predict(m, x_adv)
                    # An image misclassified when clean never counts as robust, whatever
                    # the attack does to it (ART's DeepFool pushes such images into the
                    # true class).
                    correct = torch.zeros_like(clean_correct)
                    correct[idx] = (adv_pred == yt[idx]) & clean_correct[idx]
                    still_correct &= correct
                    if all_or_nothing:
                        correct = still_correct.clone()
                    report.results.append(
                        AttackResult(
                            attack=spec.name,
                            backend=engine.name,
                            norm=spec.norm,
                            eps=spec.eps,
                            step_size=spec.step_size,
                            steps=spec.steps,
                            random_start=spec.random_start,
                            restarts=spec.restarts,
                            targeted=spec.targeted,
                            robust_accuracy=float(correct.float().mean()),
                            attack_success_rate=attack_success_rate(
                                clean_pred[idx],
                                adv_pred,
                                yt[idx],
                                None if target is None else target[idx],
                            ),
                            l2_dissimilarity=l2_dissimilarity(xt[idx], x_adv),
                            max_perturbation=max_perturbation(xt[idx], x_adv, spec.norm),
                            seconds=seconds,
                            eot_samples=spec.eot_samples,
                            n_attacked=len(idx),
                            sequential=all_or_nothing,
                        )
                    )
                    bar.update(1)
            report.all_or_nothing_accuracy = float(still_correct.float().mean())
            for sw in sweep_specs:
                bar.set_postfix_str(f"{name} {sw.kind} sweep")
                base = sw.attack or sweep_bases[name]
                assert base is not None  # checked before any attack
                report.sweeps.append(run_sweep(m, xt, yt, sw, base, engines[0], seed=seed))
            if rp2 is not None:
                bar.set_postfix_str(f"{name} rp2")
                report.rp2 = rp2.run(m, xt, yt)
            if checks:
                bar.set_postfix_str(f"{name} checks")
                report.checks = run_checks(
                    m,
                    xt,
                    yt,
                    report,
                    model_specs,
                    engines[0],
                    reference=reference_model,
                    transfer_cache=transfer_cache,
                    seed=seed,
                )
            reports.append(report)
    finally:
        bar.close()
    return Report(
        dataset={"name": dataset, "split": split, "n_samples": len(xt)},
        models=reports,
        environment=environment(dev),
        skipped=[
            {"attack": spec.key, "backend": backend, "reason": reason}
            for (spec, backend), reason in skipped.items()
        ],
        all_or_nothing=all_or_nothing,
    )


def _sweep_attack(specs: Sequence[AttackSpec]) -> AttackSpec | None:
    """The first untargeted PGD spec, the one with the most EOT samples among equals."""
    pgd = [s for s in specs if s.attack == "pgd" and not s.targeted]
    if not pgd:
        return None
    most = max(s.eot_samples for s in pgd)
    return next(s for s in pgd if s.eot_samples == most)
