"""Evaluate models under several attacks and backends, and report the results.

:func:`evaluate` = :func:`plan_evaluation` (every argument checked before any attack) then
:func:`evaluate_model` for each model; the :class:`Report` writes itself (JSON here,
Markdown in :mod:`~art_denoise.evaluation.markdown`, figures in
:mod:`~art_denoise.evaluation.plot`).
"""

from __future__ import annotations

from art_denoise.evaluation.evaluate import evaluate, evaluate_model
from art_denoise.evaluation.plan import EvaluationPlan, plan_evaluation
from art_denoise.evaluation.report import REPORT_SCHEMA, AttackResult, ModelReport, Report

__all__ = [
    "REPORT_SCHEMA",
    "AttackResult",
    "EvaluationPlan",
    "ModelReport",
    "Report",
    "evaluate",
    "evaluate_model",
    "plan_evaluation",
]
