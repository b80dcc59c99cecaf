"""The evaluation result: dataclasses that write themselves as JSON, Markdown and a chart.

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
from art_denoise.evaluation.sweeps import SWEEP_KINDS, Sweep

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
        return _format_table(*_summary_rows(self.models))

    def to_markdown(self, chart: str | None = None, sweep_chart: str | None = None) -> str:
        """The Markdown report; ``chart`` and ``sweep_chart`` are PNG file names to embed."""
        d = self.dataset
        lines = [
            "# art-denoise robustness report",
            "",
            f"Dataset **{d.get('name')}**, split `{d.get('split')}`, {d.get('n_samples')} images. "
            "Robust accuracy is the fraction of images still classified correctly after the "
            "attack; the worst case over backends is shown with the backend spread (max - min). "
            "All-or-nothing counts an image only if every attack from every backend fails on it.",
            *(
                [
                    "",
                    "Attacks marked `+eotK` used Expectation over Transformation: each gradient "
                    "is taken on the mean of K independent draws of the (randomised) model; "
                    "robust accuracy is measured on the model as deployed, one draw per image.",
                ]
                if any(r.eot_samples > 1 for m in self.models for r in m.results)
                else []
            ),
            *(
                [
                    "",
                    "Each model also went through the sanity checks of Carlini et al. (2019): "
                    "a model failing one is marked **not verified** and its numbers are upper "
                    "bounds of unknown quality, not robustness.",
                ]
                if any(m.checks for m in self.models)
                else []
            ),
            *(
                [
                    "",
                    "**All-or-nothing run** (the CAAD criterion): the attacks ran as one "
                    "sequence, each only on the images every earlier attack (and backend) "
                    "failed on (column *attacked*), so each robust accuracy is the fraction "
                    "still standing after that attack and all before it, not the attack's "
                    "own number.",
                ]
                if self.all_or_nothing
                else []
            ),
            "",
            "## Summary",
            "",
            _markdown_table(*_summary_rows(self.models)),
        ]
        if chart:
            lines += ["", f"![robust accuracy per attack and backend]({chart})"]
        if sweep_chart and any(m.sweeps for m in self.models):
            lines += ["", f"![robust accuracy against steps, eps and restarts]({sweep_chart})"]
        if self.skipped:
            lines += ["", "Not run (the backend cannot express the attack):", ""]
            lines += [f"- {s['attack']} / {s['backend']}: {s['reason']}" for s in self.skipped]
        for m in self.models:
            lines += [
                "",
                f"## {m.name} (defense: {m.defense})",
                "",
                f"Clean accuracy {m.clean_accuracy:.2%}; all-or-nothing accuracy "
                f"{m.all_or_nothing_accuracy:.2%}.",
                "",
            ]
            header = [
                "attack",
                "backend",
                "eps",
                "step",
                "steps",
                "restarts",
                "robust acc.",
                "success rate",
                "L2 dissim.",
                "max ‖δ‖",
                "seconds",
                *(["attacked"] if self.all_or_nothing else []),
            ]
            rows = [
                [
                    r.attack,
                    r.backend,
                    _fmt(r.eps),
                    _fmt(r.step_size),
                    str(r.steps),
                    str(r.restarts),
                    f"{r.robust_accuracy:.2%}",
                    f"{r.attack_success_rate:.2%}",
                    f"{r.l2_dissimilarity:.4f}",
                    f"{r.max_perturbation:.4f}",
                    f"{r.seconds:.2f}",
                    *([str(r.n_attacked)] if self.all_or_nothing else []),
                ]
                for r in m.results
            ]
            lines.append(_markdown_table(header, rows))
            lines += _sweep_lines(m)
            lines += _rp2_lines(m)
            if m.checks:
                lines += [
                    "",
                    f"### Checks: {_verdict(m)}",
                    "",
                    _markdown_table(
                        ["check", "status", "detail"],
                        [[c.name, c.status, c.detail.replace("|", "\\|")] for c in m.checks],
                    ),
                ]
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        lines += ["", "## Environment", "", env, ""]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # Jupyter
        return self.to_markdown()

    # ----------------------------------------------------------------- files
    def plot(self) -> Any:
        """A grouped bar chart of robust accuracy per attack and backend, one panel per model."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        n = max(len(self.models), 1)
        fig, axes = plt.subplots(1, n, figsize=(max(6.0, 4.5 * n), 4.0), squeeze=False)
        for ax, m in zip(axes[0], self.models, strict=False):
            keys = list(dict.fromkeys(r.key for r in m.results))
            backends = list(dict.fromkeys(r.backend for r in m.results))
            width = 0.8 / max(len(backends), 1)
            for i, b in enumerate(backends):
                vals = {r.key: r.robust_accuracy for r in m.results if r.backend == b}
                xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(keys))]
                ax.bar(xs, [vals.get(k, 0.0) for k in keys], width=width, label=b)
            ax.axhline(m.clean_accuracy, color="black", linestyle="--", linewidth=1, label="clean")
            ax.set_xticks(range(len(keys)))
            ax.set_xticklabels(keys, rotation=30, ha="right", fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("robust accuracy")
            ax.set_title(f"{m.name} ({m.defense})")
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def plot_sweeps(self) -> Any:
        """Robust accuracy against steps (log scale), eps and restarts, one panel per kind
        and one line per model (Xie et al. 2019, Fig. 6); ``None`` without sweeps."""
        kinds = [
            k for k in SWEEP_KINDS if any(sw.kind == k for m in self.models for sw in m.sweeps)
        ]
        if not kinds:
            return None
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.6), squeeze=False)
        xlabels = {"steps": "PGD steps", "eps": "eps", "restarts": "random restarts"}
        for ax, kind in zip(axes[0], kinds, strict=True):
            for m in self.models:
                for sw in (sw for sw in m.sweeps if sw.kind == kind):
                    ax.plot(sw.values, sw.robust_accuracy, marker="o", label=f"{m.name}")
            if kind in ("steps", "restarts"):
                ax.set_xscale("log")
            ax.set_xlabel(xlabels[kind])
            ax.set_ylabel("robust accuracy")
            ax.set_ylim(0, 1)
            ax.grid(True, alpha=0.3)
            ax.set_title(f"{kind} sweep")
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

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


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _attack_keys(models: list[ModelReport]) -> list[str]:
    return list(dict.fromkeys(r.key for m in models for r in m.results))


def _sweep_lines(m: ModelReport) -> list[str]:
    lines: list[str] = []
    for sw in m.sweeps:
        vals = [f"{v:g}" for v in sw.values]
        lines += [
            "",
            f"### {sw.kind.capitalize()} sweep: {sw.label()} ({sw.backend}, {sw.seconds:.1f} s)",
            "",
            _markdown_table(
                [sw.kind, *vals], [["robust acc.", *(f"{a:.2%}" for a in sw.robust_accuracy)]]
            ),
        ]
    return lines


def _rp2_lines(m: ModelReport) -> list[str]:
    if not m.rp2:
        return []
    r = m.rp2
    cfg = r.get("config", {})
    return [
        "",
        f"### RP2 stickers ({r['mask_fraction']:.0%} of the image, "
        f"{cfg.get('n_stickers', '?')} sticker(s), {r['n_images']} correctly classified images)",
        "",
        f"Targeted success: average {r['average']:.2%}, worst {r['worst']:.2%} "
        f"(target {r['worst_target']}); L2 dissimilarity {r['l2_dissimilarity']:.4f}.",
        "",
        _markdown_table(
            ["target", "success", "L2 dissim.", "images"],
            [
                [
                    str(t["target"]),
                    f"{t['success']:.2%}",
                    f"{t['l2_dissimilarity']:.4f}",
                    str(t["n"]),
                ]
                for t in r["per_target"]
            ],
        ),
    ]


def _verdict(m: ModelReport) -> str:
    if m.verified is None:
        return "not checked"
    return "verified" if m.verified else f"not verified ({', '.join(m.failed_checks)} failed)"


def _summary_rows(models: list[ModelReport]) -> tuple[list[str], list[list[str]]]:
    keys = _attack_keys(models)
    checked = any(m.checks for m in models)
    header = [
        "model",
        "defense",
        "clean",
        *keys,
        "all-or-nothing",
        *(["checks"] if checked else []),
    ]
    rows = []
    for m in models:
        worst, spread = m.worst_case(), m.backend_spread
        # a robustness number whose checks failed is never shown bare, as if it held
        mark = " not verified" if m.verified is False else ""
        cells = [f"{worst[k]:.1%} (±{spread[k]:.1%}){mark}" if k in worst else "-" for k in keys]
        rows.append(
            [
                m.name,
                m.defense,
                f"{m.clean_accuracy:.1%}",
                *cells,
                f"{m.all_or_nothing_accuracy:.1%}{mark}",
                *([_verdict(m)] if checked else []),
            ]
        )
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])
