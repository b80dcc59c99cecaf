"""The evaluation result: dataclasses that write themselves as JSON, Markdown and a chart.

The data are plain dataclasses in :mod:`art_denoise.evaluation.results`; the Markdown is
rendered by :mod:`art_denoise.evaluation.markdown`, the charts by
:mod:`art_denoise.evaluation.plot`; this module gives :class:`Report` its schema and files.

``report.json`` follows the schema ``"art-denoise/report/1"``::

    {"schema", "dataset": {"name", "split", "n_samples"},
     "models": [{"name", "defense", "clean_accuracy", "randomized",
                 "threat_models": [{"norm", "eps", "robust_accuracy", "attacks",
                                    "running_accuracy", "own_accuracy", "parameter_free",
                                    "eot", "robust_examples", "strongest"}],
                 "status": "verified" | "unchecked" | "not verified (<reasons>)",
                 "verified": bool | null,
                 "results": [{"attack", "backend", "norm", "eps", "step_size", "steps",
                              "random_start", "robust_accuracy", "attack_success_rate",
                              "l2_dissimilarity", "max_perturbation", "seconds",
                              "eot_samples", "n_attacked", "sequential",
                              "robust_examples", "adversarial", "perturbation_norms",
                              "norm_stats": {"q1", "median", "q3", "n_adversarial",
                                             "n_not_adversarial",
                                             "curve": {"eps", "robust_accuracy"}}, ...}],
                 "backend_spread": {"<attack>@<eps>": float},
                 "all_or_nothing_accuracy",
                 "checks": [{"name", "status", "detail"}],
                 "sweeps": [{"kind", "attack", "backend", "values", "robust_accuracy",
                             "base", "seconds", "n_samples"}],
                 "rp2": {"per_target", "average", "worst", ...} | null}],
     "all_or_nothing": bool,
     "skipped": [{"attack", "backend", "reason"}],
     "environment": {"torch", "art", "torchattacks", "foolbox", "device"}}

Accuracies are fractions in [0, 1]. Keys are only ever added, never renamed.

The headline of a model is ``"threat_models"``: per (norm, eps), the per-example worst
case over every attack and backend at that budget (an unbounded DeepFool of the same norm
counts where its perturbation stayed within eps); ``"attacks"`` lists them
(``"<attack>/<backend>"``) in run order with the worst case after each
(``"running_accuracy"``). Per-example fields are strings with one character per image,
``"1"`` where the image is still classified correctly (``"robust_examples"``) or where the
output is misclassified (``"adversarial"``). An unbounded minimal-norm attack (DeepFool) has
no robust accuracy of its own worth reading: ``"perturbation_norms"`` (``null`` where the
image was misclassified clean or the output is not adversarial) and the derived
``"norm_stats"`` (``"robust_accuracy"`` of its curve: accuracy within each eps).
``"status"`` is ``"verified"`` only if a parameter-free attack (APGD or AutoAttack; with
EOT for a ``"randomized"`` model) is part of every worst case and every check passed;
``"verified"`` is ``true`` then, ``null`` for ``"unchecked"`` (no checks ran) and ``false``
otherwise. ``"checks"`` is empty when the checks were not run (and in older files).
``"all_or_nothing_accuracy"`` is deprecated: it mixes every budget and the unbounded attacks
into one number. With ``"all_or_nothing": true`` the attacks ran all-or-nothing within each
threat model, each on the images every earlier one at its budget failed on
(``"n_attacked"``), and each bounded ``robust_accuracy`` is cumulative.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from art_denoise._files import atomic_write_files
from art_denoise.evaluation import markdown, plot
from art_denoise.evaluation.results import (
    CHECK_STATUSES,
    AttackResult,
    Check,
    ModelReport,
    NormStats,
    ReportData,
    ThreatModelResult,
)
from art_denoise.evaluation.sweeps import Sweep
from art_denoise.evaluation.worst_case import threat_models

__all__ = [
    "CHECK_STATUSES",
    "REPORT_FILES",
    "REPORT_SCHEMA",
    "AttackResult",
    "Check",
    "ModelReport",
    "NormStats",
    "Report",
    "ThreatModelResult",
]

REPORT_SCHEMA = "art-denoise/report/1"
#: The files :meth:`Report.save` writes (``sweeps.png`` only with sweeps, ``norms.png`` only
#: with a minimal-norm attack).
REPORT_FILES = ("report.json", "report.md", "robust_accuracy.png", "sweeps.png", "norms.png")


def _text_writer(text: str) -> Callable[[Path], None]:
    """A writer of ``text`` as a UTF-8 file."""

    def write(path: Path) -> None:
        path.write_text(text, encoding="utf-8")

    return write


def _figure_writer(fig: Any) -> Callable[[Path], None]:
    """A writer of ``fig`` as a PNG file (for :func:`~art_denoise._files.atomic_write_files`)."""

    def write(path: Path) -> None:
        fig.savefig(path, format="png", dpi=120)

    return write


@dataclass
class Report(ReportData):
    """The whole evaluation; ``save(out_dir)`` writes report.json, report.md and a chart."""

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
        models = [_model_from_dict(m) for m in data["models"]]
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

    def to_markdown(
        self,
        chart: str | None = None,
        sweep_chart: str | None = None,
        norm_chart: str | None = None,
    ) -> str:
        """The Markdown report; ``chart``, ``sweep_chart`` and ``norm_chart`` are PNG file
        names to embed."""
        return markdown.report_markdown(
            self, chart=chart, sweep_chart=sweep_chart, norm_chart=norm_chart
        )

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

    def plot_norms(self) -> Any:
        """Robust accuracy against eps implied by the minimal-norm attacks' norms, one
        panel per norm and one line per (model, attack, backend); ``None`` without them."""
        return plot.plot_norm_curves(self)

    def save(self, out_dir: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write ``report.json``, ``report.md``, ``robust_accuracy.png`` and, with sweeps,
        ``sweeps.png``, with a minimal-norm attack ``norms.png``, into ``out_dir``, all of
        them or none.

        The files are written into a temporary directory beside ``out_dir`` and moved into
        place only when every one is complete; a ``sweeps.png`` of an older report
        without sweeps is removed. Other files in ``out_dir`` are left alone.

        Args:
            out_dir: the report directory (created when missing).
            overwrite: replace a report already there (else ``FileExistsError``).

        Returns:
            The directory.

        Raises:
            FileWriteError: writing failed (disk full, a directory in the way, no
                permission); ``out_dir`` is as it was and the message names the file.
            FileExistsError: a report file exists and ``overwrite`` is False.
        """
        import matplotlib.pyplot as plt

        text = self.to_json()  # fails on NaN before anything is written
        markdown_text = self.to_markdown(
            chart="robust_accuracy.png", sweep_chart="sweeps.png", norm_chart="norms.png"
        )
        figures = {
            "robust_accuracy.png": self.plot(),
            "sweeps.png": self.plot_sweeps(),
            "norms.png": self.plot_norms(),
        }
        writers: dict[str, Callable[[Path], None]] = {
            name: _figure_writer(fig) for name, fig in figures.items() if fig is not None
        }
        writers["report.md"] = _text_writer(markdown_text)
        writers["report.json"] = _text_writer(text)
        try:
            return atomic_write_files(
                out_dir,
                writers,
                remove=[name for name in REPORT_FILES if name not in writers],
                overwrite=overwrite,
            )
        finally:
            for fig in figures.values():
                if fig is not None:
                    plt.close(fig)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read a ``report.json`` (or the directory holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))


def _model_from_dict(m: dict[str, Any]) -> ModelReport:
    """One model of :meth:`Report.to_dict` (an older file: the worst cases are rebuilt
    from the per-example outcomes where it has them)."""
    results = [AttackResult.from_dict(r) for r in m["results"]]
    tms = m.get("threat_models")
    return ModelReport(
        name=m["name"],
        defense=m["defense"],
        clean_accuracy=m["clean_accuracy"],
        results=results,
        all_or_nothing_accuracy=m["all_or_nothing_accuracy"],
        checks=[Check.from_dict(c) for c in m.get("checks", [])],
        sweeps=[Sweep.from_dict(sw) for sw in m.get("sweeps", [])],
        rp2=m.get("rp2"),
        threat_models=(
            threat_models(results) if tms is None else [ThreatModelResult.from_dict(t) for t in tms]
        ),
        randomized=bool(m.get("randomized", False)),
    )
