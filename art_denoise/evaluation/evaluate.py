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
from art_denoise.attacks.backends import AttackBackend, get_backend
from art_denoise.attacks.backends.base import attack_guard, infer_num_classes
from art_denoise.attacks.eot import is_randomized
from art_denoise.attacks.spec import AttackSpec
from art_denoise.estimators.classifier_pytorch import resolve_device
from art_denoise.evaluation.checks import run_checks
from art_denoise.evaluation.metrics import (
    attack_success_rate,
    l2_dissimilarity,
    max_perturbation,
    predict,
)
from art_denoise.evaluation.report import AttackResult, ModelReport, Report

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
    for engine in engines:
        for s in [*specs, *(s for v in extra.values() for s in v)]:
            engine.check(s)
    check_positive_int("seed", seed, minimum=0)
    if not isinstance(checks, bool):
        raise TypeError(f"checks must be a bool, got {checks!r}")
    if reference_model is not None and not isinstance(reference_model, nn.Module):
        raise TypeError(
            "reference_model must be a torch.nn.Module or None, got "
            f"{type(reference_model).__name__}"
        )
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
                for engine in engines:
                    bar.set_postfix_str(f"{name} {spec.key} {engine.name}")
                    start = time.perf_counter()
                    x_adv = engine.run(m, xt, target if target is not None else yt, spec, seed=seed)
                    seconds = time.perf_counter() - start
                    adv_pred = predict(m, x_adv)
                    # An image misclassified when clean never counts as robust, whatever
                    # the attack does to it (ART's DeepFool pushes such images into the
                    # true class).
                    correct = (adv_pred == yt) & clean_correct
                    still_correct &= correct
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
                                clean_pred, adv_pred, yt, target
                            ),
                            l2_dissimilarity=l2_dissimilarity(xt, x_adv),
                            max_perturbation=max_perturbation(xt, x_adv, spec.norm),
                            seconds=seconds,
                            eot_samples=spec.eot_samples,
                        )
                    )
                    bar.update(1)
            report.all_or_nothing_accuracy = float(still_correct.float().mean())
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
    )
