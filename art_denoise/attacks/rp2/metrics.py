"""The attack metrics of BlurNet (Raju & Lipasti, 2019): success rates and L2 dissimilarity.

| Paper link: https://arxiv.org/abs/1908.02256
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from art_denoise._torch import eval_forward, model_device, perturbation_norms
from art_denoise._validation import as_float_images, as_labels, check_positive_int
from art_denoise.attacks.backends.base import infer_num_classes

__all__ = [
    "AttackFn",
    "Predictor",
    "l2_dissimilarity",
    "l2_ratios",
    "per_target_success",
    "rp2_metrics",
]

#: attack_fn(x, target_labels) -> x_adv, in the caller's array type.
AttackFn = Callable[[Any, Any], Any]


@runtime_checkable
class Predictor(Protocol):
    """Anything with ART's ``predict(x, batch_size=...)`` returning (N, classes) scores."""

    def predict(self, x: np.ndarray, batch_size: int = ...) -> np.ndarray: ...


def l2_dissimilarity(x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """BlurNet's ``1/N sum ||x - x_adv||_2 / ||x_adv||_2`` over all N images, in float64.

    Each norm is taken per image over all its pixels, on the tensors' device. An all-zero
    ``x_adv`` has no relative distance: it counts 0 if it equals ``x`` (nothing changed)
    and ``inf`` otherwise (the limit of the ratio), so a single such image makes the mean
    ``inf``. No image (N = 0) gives 0.0.

    Args:
        x: clean images, (N, ...).
        x_adv: adversarial images, the same shape.

    Returns:
        The mean ratio, ``>= 0``, possibly ``inf``.

    Example:
        >>> x = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
        >>> l2_dissimilarity(x, torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        0.4
    """
    if len(x) == 0:
        return 0.0
    return float(l2_ratios(x, x_adv).mean())


def l2_ratios(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Per image: ``||x - x_adv||_2 / ||x_adv||_2`` (float64, (N,)), the terms of
    :func:`l2_dissimilarity`'s mean.

    Example:
        >>> l2_ratios(torch.tensor([[3.0, 0.0]]), torch.tensor([[3.0, 4.0]])).tolist()
        [0.8]
    """
    norm_diff = perturbation_norms(x - x_adv, "2")
    norm_adv = perturbation_norms(x_adv, "2")
    return torch.where(
        norm_adv > 0,
        norm_diff / norm_adv.clamp_min(1e-300),
        torch.where(norm_diff > 0, math.inf, 0.0),
    )


def _predict_labels(
    classifier_or_model: nn.Module | Predictor, x: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Predicted labels (N,) on the CPU, ``batch_size`` images per forward pass."""
    if isinstance(classifier_or_model, nn.Module):
        device = model_device(classifier_or_model)
        outs = [
            eval_forward(classifier_or_model, x[i : i + batch_size].to(device)).argmax(dim=1).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.int64)
    if isinstance(classifier_or_model, Predictor):
        scores = np.asarray(classifier_or_model.predict(x.cpu().numpy(), batch_size=batch_size))
        if scores.ndim != 2 or scores.shape[0] != len(x):
            raise ValueError(
                f"predict must return (N, classes) scores, got shape {scores.shape} for N={len(x)}"
            )
        return torch.from_numpy(scores.argmax(axis=1)).to(torch.int64)
    raise TypeError(
        "classifier_or_model must be a torch.nn.Module or have a predict(x, batch_size) method, "
        f"got {type(classifier_or_model).__name__}"
    )


def _success(
    pred_clean: torch.Tensor,
    pred_adv: torch.Tensor,
    target: torch.Tensor | np.ndarray | int | None,
) -> torch.Tensor:
    """Per-image success: ``F(x) != F(x_adv)`` untargeted; targeted, ``F(x_adv) == target``
    where ``F(x) != target`` (an image the model already gives the target class is no
    success of the attack)."""
    if target is None:
        return pred_clean != pred_adv
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = torch.full((len(pred_adv),), int(target), dtype=torch.int64)
    labels = as_labels(target, n=len(pred_adv)).cpu()
    return (pred_adv == labels) & (pred_clean != labels)


def rp2_metrics(
    classifier_or_model: nn.Module | Predictor,
    x: torch.Tensor | np.ndarray,
    x_adv: torch.Tensor | np.ndarray,
    y_true: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray | int | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, float]:
    """The attack metrics of BlurNet (Raju & Lipasti, 2019) on one set of images.

    - ``success_rate``: untargeted ``1/N sum 1[F(x) != F(x_adv)]`` (the predictions are
      compared with each other, not with ``y_true``); targeted
      ``1/N sum 1[F(x_adv) == target and F(x) != target]``.
    - ``l2_dissimilarity``: :func:`l2_dissimilarity`, ``1/N sum ||x - x_adv||_2 /
      ||x_adv||_2``, per image over all its pixels; an all-zero ``x_adv`` counts 0 if it
      equals ``x`` and ``inf`` otherwise.
    - ``clean_accuracy`` / ``adversarial_accuracy``: ``F(x) == y_true`` and
      ``F(x_adv) == y_true``.

    Args:
        classifier_or_model: a ``nn.Module`` returning logits, or an ART classifier (anything
            with ``predict(x, batch_size=...)``).
        x, x_adv: clean and adversarial images, (N, C, H, W), N >= 1.
        y_true: true labels, (N,) or one-hot.
        target: target labels (N,) or one class for all, for a targeted attack.
        batch_size: images per forward pass.

    Returns:
        A dict with the four float metrics above.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.zeros(2, 1, 2, 2)
        >>> rp2_metrics(model, x, x, torch.tensor([0, 1]))["success_rate"]
        0.0
    """
    batch_size = check_positive_int("batch_size", batch_size)
    xt = as_float_images(x, clip_values=None)
    xa = as_float_images(x_adv, name="x_adv", clip_values=None)
    if xt.shape != xa.shape:
        raise ValueError(f"x has shape {tuple(xt.shape)} but x_adv has shape {tuple(xa.shape)}")
    if len(xt) == 0:
        raise ValueError("x is empty: the metrics need at least one image")
    yt = as_labels(y_true, n=len(xt)).cpu()
    pred_clean = _predict_labels(classifier_or_model, xt, batch_size)
    pred_adv = _predict_labels(classifier_or_model, xa, batch_size)
    success = _success(pred_clean, pred_adv, target)
    return {
        "success_rate": float(success.double().mean()),
        "l2_dissimilarity": l2_dissimilarity(xt.cpu(), xa.cpu()),
        "clean_accuracy": float((pred_clean == yt).double().mean()),
        "adversarial_accuracy": float((pred_adv == yt).double().mean()),
    }


def _num_classes(model: nn.Module | Predictor, x: torch.Tensor) -> int | None:
    """The class count of a module (one forward pass) or an ART classifier's ``nb_classes``."""
    if isinstance(model, nn.Module):
        return infer_num_classes(model, x.to(model_device(model)))
    return getattr(model, "nb_classes", None)


def _attack_target(
    x: torch.Tensor | np.ndarray, keep: torch.Tensor, target: int, attack_fn: AttackFn
) -> Any:
    """``attack_fn`` on the images ``x[keep]`` with ``target`` as every label."""
    labels = torch.full((int(keep.sum()),), target, dtype=torch.int64)
    if isinstance(x, np.ndarray):
        return attack_fn(x[keep.numpy()], labels.numpy())
    return attack_fn(x[keep.to(x.device)], labels.to(x.device))


def _summary(per: dict[int, float], l2: dict[int, float], counts: dict[int, int]) -> dict[str, Any]:
    """The result dict of :func:`per_target_success` from its per-target tables."""
    worst_target = max(per, key=lambda k: per[k])
    return {
        "per_target": per,
        "l2_per_target": l2,
        "n_per_target": counts,
        "average": float(np.mean(list(per.values()))),
        "worst": per[worst_target],
        "worst_target": worst_target,
        "l2_dissimilarity": float(np.mean(list(l2.values()))),
    }


def per_target_success(
    model: nn.Module | Predictor,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    attack_fn: AttackFn,
    targets: Sequence[int] | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Targeted success per target class, and its average and worst case (BlurNet's table).

    For each target class ``t`` the images whose true label is not ``t`` are attacked
    with ``attack_fn(x_subset, targets_subset)`` (numpy in, numpy out for numpy ``x``;
    tensors otherwise) and scored with :func:`rp2_metrics`. Pass only the images the
    model classifies correctly to follow the papers' victim sets.

    Args:
        model: a ``nn.Module`` returning logits, or an ART classifier.
        x: images, (N, C, H, W).
        y: true labels, (N,) or one-hot.
        attack_fn: a targeted attack, e.g. ``lambda x, t: attack.generate(x, t)``.
        targets: the target classes; every class of the model if omitted.
        batch_size: images per forward pass of the metrics.

    Returns:
        ``{"per_target": {t: success}, "l2_per_target": {t: l2}, "n_per_target": {t: n},
        "average": mean success over targets, "worst": the highest success over targets
        (the defender's worst case, BlurNet's "worst success rate"), "worst_target": its
        class, "l2_dissimilarity": mean of the per-target L2 dissimilarities}``. Targets
        with no image to attack are left out.

    Raises:
        ValueError: no target has an image to attack, or bad inputs.
    """
    xt = as_float_images(x, clip_values=None)
    num_classes = _num_classes(model, xt)
    yt = as_labels(y, n=len(xt), num_classes=num_classes).cpu()
    if targets is None:
        if num_classes is None:
            raise ValueError("targets are required for a model whose class count is unknown")
        targets = list(range(num_classes))
    per: dict[int, float] = {}
    l2: dict[int, float] = {}
    counts: dict[int, int] = {}
    for target in targets:
        t = check_positive_int("target", target, minimum=0)
        if num_classes is not None and t >= num_classes:
            raise ValueError(f"target {t} is not a class of a model with {num_classes} classes")
        keep = yt != t
        n = int(keep.sum())
        if n == 0:
            continue
        x_adv = _attack_target(x, keep, t, attack_fn)
        labels = torch.full((n,), t, dtype=torch.int64)
        m = rp2_metrics(model, xt[keep], x_adv, yt[keep], labels, batch_size=batch_size)
        per[t], l2[t], counts[t] = m["success_rate"], m["l2_dissimilarity"], n
    if not per:
        raise ValueError(f"no image to attack for targets {list(targets)!r}")
    return _summary(per, l2, counts)
