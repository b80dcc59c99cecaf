"""Evaluate models under several attacks and backends, and report the results.

:func:`evaluate` = :func:`plan_evaluation` (every argument checked before any attack; the
default attacks of :func:`default_attacks` when none are named) then :func:`evaluate_model`
for each model, whose headline is one worst case per threat model
(:class:`ThreatModelResult`); the :class:`Report` writes itself (JSON here,
Markdown in :mod:`~art_denoise.evaluation.markdown`, figures in
:mod:`~art_denoise.evaluation.plot`).
"""

from __future__ import annotations

from art_denoise.evaluation.evaluate import evaluate, evaluate_model
from art_denoise.evaluation.plan import EvaluationPlan, plan_evaluation
from art_denoise.evaluation.report import (
    REPORT_SCHEMA,
    AttackResult,
    ModelReport,
    NormStats,
    Report,
    ThreatModelResult,
)
from art_denoise.evaluation.suite import DefaultSuite, RoutedAttack, default_attacks

__all__ = [
    "REPORT_SCHEMA",
    "AttackResult",
    "DefaultSuite",
    "EvaluationPlan",
    "ModelReport",
    "NormStats",
    "Report",
    "RoutedAttack",
    "ThreatModelResult",
    "default_attacks",
    "evaluate",
    "evaluate_model",
    "plan_evaluation",
]
