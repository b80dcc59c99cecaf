"""The evaluation result: dataclasses that write themselves as JSON, Markdown and a chart.

The Markdown is rendered by :mod:`art_denoise.evaluation.markdown`, the charts by
:mod:`art_denoise.evaluation.plot`; this module holds the data, its schema and its files.

``report.json`` follows the schema ``"art-denoise/report/1"``::

    {"schema", "dataset": {"name", "split", "n_samples"},
     "models": [{"name", "defense", "clean_accuracy",
                 "results": [{"attack", "backend", "norm", "eps", "step_size", "steps",
                              "random_start", "robust_accuracy", "attack_success_rate",
                              "l2_dissimilarity", "max_perturbation", "seconds",
                              "eot_samples", "n_attacked", "sequential", ...}],
                 "backend_spread": {"<attack>@<eps>": float},
                 "all_or_nothing_accuracy",
                 "checks": [{"name", "status", "detail"}],
                 "verified": bool | null,
                 "sweeps": [{"kind", "attack", "backend", "values", "robust_accuracy",
                             "base", "seconds", "n_samples"}],
                 "rp2": {"per_target", "average", "worst", ...} | null}],
     "all_or_nothing": bool,
     "skipped": [{"attack", "backend", "reason"}],
     "environment": {"torch", "art", "torchattacks", "foolbox", "device"}}

Accuracies are fractions in [0, 1]. Keys are only ever added, never renamed. ``"checks"``
is empty and ``"verified"`` is ``null`` when the checks were not run (and in older files).
With ``"all_or_nothing": true`` the attacks ran as one sequence, each on the images every
earlier one failed on (``"n_attacked"``), and each ``robust_accuracy`` is cumulative.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from art_denoise._files import atomic_path, atomic_write_text
from art_denoise.evaluation import markdown, plot
from art_denoise.evaluation.sweeps import Sweep

__all__ = ["CHECK_STATUSES", "REPORT_SCHEMA", "AttackResult", "Check", "ModelReport", "Report"]

REPORT_SCHEMA = "art-denoise/report/1"

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
class Report:
    """The whole evaluation; ``save(out_dir)`` writes report.json, report.md and a chart."""

    dataset: dict[str, Any]
    models: list[ModelReport]
    environment: dict[str, Any]
    #: (attack, backend) pairs a backend could not express, with the reason
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: the attacks ran as one all-or-nothing sequence (cumulative accuracies)
    all_or_nothing: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of schema ``"art-denoise/report/1"``."""
        return {
            "schema": REPORT_SCHEMA,
            "dataset": dict(self.dataset),
            "models": [m.to_dict() for m in self.models],
            "all_or_nothing": self.all_or_nothing,
            "skipped": [dict(s) for s in self.skipped],
            "environment": dict(self.environment),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output (e.g. a loaded report.json)."""
        if data.get("schema") != REPORT_SCHEMA:
            raise ValueError(f"not an {REPORT_SCHEMA} report: schema {data.get('schema')!r}")
        names = {f.name for f in dataclasses.fields(AttackResult)}
        models = [
            ModelReport(
                name=m["name"],
                defense=m["defense"],
                clean_accuracy=m["clean_accuracy"],
                results=[
                    AttackResult(**{k: v for k, v in r.items() if k in names}) for r in m["results"]
                ],
                all_or_nothing_accuracy=m["all_or_nothing_accuracy"],
                checks=[Check.from_dict(c) for c in m.get("checks", [])],
                sweeps=[Sweep.from_dict(sw) for sw in m.get("sweeps", [])],
                rp2=m.get("rp2"),
            )
            for m in data["models"]
        ]
        return cls(
            dataset=data["dataset"],
            models=models,
            environment=data["environment"],
            skipped=list(data.get("skipped", [])),
            all_or_nothing=bool(data.get("all_or_nothing", False)),
        )

    # ------------------------------------------------------------------ text
    def summary_table(self) -> str:
        """A plain-text table: per model, clean accuracy, each attack's worst case over
        backends (with the backend spread) and the all-or-nothing accuracy."""
        return markdown.summary_table(self)

    def to_markdown(self, chart: str | None = None, sweep_chart: str | None = None) -> str:
        """The Markdown report; ``chart`` and ``sweep_chart`` are PNG file names to embed."""
        return markdown.report_markdown(self, chart=chart, sweep_chart=sweep_chart)

    def _repr_markdown_(self) -> str:  # Jupyter
        return self.to_markdown()

    # ----------------------------------------------------------------- files
    def plot(self) -> Any:
        """A grouped bar chart of robust accuracy per attack and backend, one panel per model."""
        return plot.plot_robust_accuracy(self)

    def plot_sweeps(self) -> Any:
        """Robust accuracy against steps (log scale), eps and restarts, one panel per kind
        and one line per model (Xie et al. 2019, Fig. 6); ``None`` without sweeps."""
        return plot.plot_sweeps(self)

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``report.json``, ``report.md``, ``robust_accuracy.png`` and, with sweeps,
        ``sweeps.png`` into ``out_dir``.

        Every file is written atomically. Returns the directory.
        """
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = self.to_json()  # fails on NaN before anything is written
        figures = [("robust_accuracy.png", self.plot()), ("sweeps.png", self.plot_sweeps())]
        for fname, fig in figures:
            if fig is None:
                continue
            try:
                with atomic_path(out / fname) as tmp:
                    fig.savefig(tmp, format="png", dpi=120)
            finally:
                plt.close(fig)
        atomic_write_text(
            out / "report.md",
            self.to_markdown(chart="robust_accuracy.png", sweep_chart="sweeps.png"),
        )
        atomic_write_text(out / "report.json", text)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read a ``report.json`` (or the directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
