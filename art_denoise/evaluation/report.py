"""The evaluation result: dataclasses that write themselves as JSON, Markdown and a chart.

The data are plain dataclasses in :mod:`art_denoise.evaluation.results`; the Markdown is
rendered by :mod:`art_denoise.evaluation.markdown`, the charts by
:mod:`art_denoise.evaluation.plot`; this module gives :class:`Report` its schema and files.

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
    ReportData,
)
from art_denoise.evaluation.sweeps import Sweep

__all__ = [
    "CHECK_STATUSES",
    "REPORT_FILES",
    "REPORT_SCHEMA",
    "AttackResult",
    "Check",
    "ModelReport",
    "Report",
]

REPORT_SCHEMA = "art-denoise/report/1"
#: The files :meth:`Report.save` writes (``sweeps.png`` only with sweeps).
REPORT_FILES = ("report.json", "report.md", "robust_accuracy.png", "sweeps.png")


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

    def save(self, out_dir: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write ``report.json``, ``report.md``, ``robust_accuracy.png`` and, with sweeps,
        ``sweeps.png`` into ``out_dir``, all of them or none.

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
        markdown_text = self.to_markdown(chart="robust_accuracy.png", sweep_chart="sweeps.png")
        figures = {"robust_accuracy.png": self.plot(), "sweeps.png": self.plot_sweeps()}
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
