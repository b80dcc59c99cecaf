"""Evaluate models under several attacks and backends, and report the results."""

from __future__ import annotations

from art_denoise.evaluation.evaluate import evaluate
from art_denoise.evaluation.report import REPORT_SCHEMA, AttackResult, ModelReport, Report

__all__ = ["REPORT_SCHEMA", "AttackResult", "ModelReport", "Report", "evaluate"]
