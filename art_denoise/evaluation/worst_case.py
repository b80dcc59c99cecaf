"""One worst case per threat model, from the per-example outcomes of every attack.

A robust accuracy measured by one attack is an upper bound; several attacks and backends
at the same threat model give several upper bounds, and the tightest one the evaluation
can state is their per-example conjunction: an image is robust at (norm, eps) only if no
attack at that budget, through no backend, broke it (the CAAD all-or-nothing criterion,
computed within one threat model, never across budgets).

An unbounded minimal-norm attack (DeepFool) counts toward every threat model of its norm:
an image it broke with a perturbation of norm <= eps is broken within that ball.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from art_denoise.evaluation.results import AttackResult, ThreatModelResult, str_to_mask

__all__ = ["mixed_accuracy", "outcome_at", "threat_models"]


def outcome_at(r: AttackResult, norm: str, eps: float) -> np.ndarray | None:
    """``r``'s per-example outcome at (``norm``, ``eps``): ``True`` where the image is still
    standing; ``None`` when ``r`` does not count there (another budget or norm) or holds no
    per-example outcome.

    Example:
        >>> r = AttackResult("deepfool-l2", "art", "2", None, None, 50, False, 1, False,
        ...                  0.5, 0.5, 0.1, 0.3, 0.0, robust_examples="0110",
        ...                  perturbation_norms=(0.2, None, None, 0.9))
        >>> outcome_at(r, "2", 0.5).tolist()  # the last image needed 0.9 > 0.5
        [False, True, True, True]
    """
    if r.robust_examples is None:
        return None
    if r.eps is not None:
        return str_to_mask(r.robust_examples) if (r.norm, r.eps) == (norm, eps) else None
    if r.minimal_norm and r.norm == norm and r.perturbation_norms is not None:
        beyond = np.array([v is not None and v > eps for v in r.perturbation_norms], dtype=bool)
        return str_to_mask(r.robust_examples) | beyond
    return None


def threat_models(results: Sequence[AttackResult]) -> list[ThreatModelResult]:
    """The worst case at every (norm, eps) some bounded result ran at, in run order.

    Raises:
        ValueError: the per-example outcomes have different lengths.
    """
    budgets = dict.fromkeys(
        (r.norm, float(r.eps))
        for r in results
        if r.eps is not None and r.robust_examples is not None
    )
    return [_threat_model(norm, eps, results) for norm, eps in budgets]


def _threat_model(norm: str, eps: float, results: Sequence[AttackResult]) -> ThreatModelResult:
    running: np.ndarray | None = None
    labels: list[str] = []
    own: list[float] = []
    steps: list[float] = []
    parameter_free = eot = False
    for r in results:
        m = outcome_at(r, norm, eps)
        if m is None:
            continue
        if running is not None and len(m) != len(running):
            raise ValueError(
                f"{r.label} holds {len(m)} per-example outcomes, the others {len(running)}"
            )
        running = m.copy() if running is None else running & m
        labels.append(r.label)
        own.append(float(m.mean()) if len(m) else 0.0)
        steps.append(float(running.mean()) if len(running) else 0.0)
        parameter_free |= r.parameter_free
        eot |= r.parameter_free and r.eot_samples > 1
    assert running is not None  # a bounded result ran at this budget
    return ThreatModelResult(
        norm=norm,
        eps=eps,
        robust_accuracy=steps[-1],
        attacks=tuple(labels),
        running_accuracy=tuple(steps),
        own_accuracy=tuple(own),
        parameter_free=parameter_free,
        eot=eot,
        robust_examples="".join("1" if v else "0" for v in running),
    )


def mixed_accuracy(results: Sequence[AttackResult]) -> float:
    """The share of images no result broke, over every budget at once (the deprecated
    ``all_or_nothing_accuracy``; ``nan`` without per-example outcomes)."""
    masks = [str_to_mask(r.robust_examples) for r in results if r.robust_examples is not None]
    if not masks or not len(masks[0]):
        return float("nan")
    return float(np.logical_and.reduce(masks).mean())
