"""The evaluation's results as plain data: checks, attack results, models and the report's fields.

The bottom of :mod:`art_denoise.evaluation`'s report: :mod:`~art_denoise.evaluation.markdown`
and :mod:`~art_denoise.evaluation.plot` draw these, and
:class:`~art_denoise.evaluation.report.Report` adds the schema and the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from art_denoise.evaluation.sweeps import Sweep

__all__ = ["CHECK_STATUSES", "AttackResult", "Check", "ModelReport", "ReportData"]

#: The outcomes of a :class:`Check`; only ``"fail"`` makes a model "not verified".
CHECK_STATUSES = ("pass", "warn", "fail", "skip")


@dataclass(frozen=True)
class Check:
    """The outcome of one sanity check on one evaluated model.

    Args:
        name: short identifier, e.g. ``"nonzero-gradients"``.
        status: ``"pass"``, ``"warn"``, ``"fail"`` or ``"skip"``.
        detail: one line saying why, with the numbers compared.
    """

    name: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"status must be one of {CHECK_STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(name=data["name"], status=data["status"], detail=data["detail"])


@dataclass(frozen=True)
class AttackResult:
    """One (attack, backend) pair on one model."""

    attack: str
    backend: str
    norm: str
    eps: float | None
    step_size: float | None
    steps: int
    random_start: bool
    restarts: int
    targeted: bool
    robust_accuracy: float
    attack_success_rate: float
    l2_dissimilarity: float
    max_perturbation: float
    seconds: float
    eot_samples: int = 1
    #: images the attack ran on (fewer than the evaluation's in an all-or-nothing run)
    n_attacked: int | None = None
    #: part of an all-or-nothing sequence: ``robust_accuracy`` is cumulative
    sequential: bool = False

    @property
    def key(self) -> str:
        """``"<attack>@<eps>"``, as in ``backend_spread``."""
        return f"{self.attack}@{'unbounded' if self.eps is None else f'{self.eps:g}'}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ModelReport:
    """All results for one model."""

    name: str
    defense: str
    clean_accuracy: float
    results: list[AttackResult] = field(default_factory=list)
    all_or_nothing_accuracy: float = float("nan")
    checks: list[Check] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    rp2: dict[str, Any] | None = None

    @property
    def verified(self) -> bool | None:
        """``True`` when checks ran and none failed, ``False`` when one failed, ``None``
        when no check ran (an unchecked model is neither verified nor refuted)."""
        if not self.checks:
            return None
        return not any(c.status == "fail" for c in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if c.status == "fail"]

    @property
    def backend_spread(self) -> dict[str, float]:
        """Per attack key: max - min robust accuracy over the backends that ran it."""
        groups: dict[str, list[float]] = {}
        for r in self.results:
            groups.setdefault(r.key, []).append(r.robust_accuracy)
        return {k: max(v) - min(v) for k, v in groups.items()}

    def worst_case(self) -> dict[str, float]:
        """Per attack key: the lowest robust accuracy over the backends."""
        groups: dict[str, float] = {}
        for r in self.results:
            groups[r.key] = min(groups.get(r.key, 1.0), r.robust_accuracy)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "defense": self.defense,
            "clean_accuracy": self.clean_accuracy,
            "results": [r.to_dict() for r in self.results],
            "backend_spread": self.backend_spread,
            "all_or_nothing_accuracy": self.all_or_nothing_accuracy,
            "checks": [c.to_dict() for c in self.checks],
            "verified": self.verified,
            "sweeps": [sw.to_dict() for sw in self.sweeps],
            "rp2": self.rp2,
        }


@dataclass
class ReportData:
    """The fields of a :class:`~art_denoise.evaluation.report.Report` (what the renderers read)."""

    dataset: dict[str, Any]
    models: list[ModelReport]
    environment: dict[str, Any]
    #: (attack, backend) pairs a backend could not express, with the reason
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: the attacks ran as one all-or-nothing sequence (cumulative accuracies)
    all_or_nothing: bool = False
