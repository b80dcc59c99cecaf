"""The evaluation report's figures: robust accuracy per attack and backend, the sweeps,
and the accuracy-versus-eps curves the minimal-norm attacks imply.

What ``Report.plot``, ``Report.plot_sweeps`` and ``Report.plot_norms`` return and
``Report.save`` writes as ``robust_accuracy.png``, ``sweeps.png`` and ``norms.png``.
Matplotlib is imported on the first call.
"""

from __future__ import annotations

from typing import Any

from art_denoise.evaluation.results import ModelReport, ReportData
from art_denoise.evaluation.sweeps import SWEEP_KINDS

__all__ = ["plot_norm_curves", "plot_robust_accuracy", "plot_sweeps"]

_SWEEP_XLABELS = {"steps": "PGD steps", "eps": "eps", "restarts": "random restarts"}


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend unless one was chosen already."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_robust_accuracy(report: ReportData) -> Any:
    """A grouped bar chart of robust accuracy per attack and backend, one panel per model."""
    plt = _pyplot()
    n = max(len(report.models), 1)
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 4.5 * n), 4.0), squeeze=False)
    for ax, m in zip(axes[0], report.models, strict=False):
        _model_bars(ax, m)
    fig.tight_layout()
    return fig


def _model_bars(ax: Any, m: ModelReport) -> None:
    """One model's panel: a bar per bounded (attack, backend), a black mark at the worst
    case of each attack's threat model, and the clean accuracy."""
    bounded = [r for r in m.results if not r.minimal_norm]
    keys = list(dict.fromkeys(r.key for r in bounded))
    backends = list(dict.fromkeys(r.backend for r in bounded))
    width = 0.8 / max(len(backends), 1)
    for i, b in enumerate(backends):
        vals = {r.key: r.robust_accuracy for r in bounded if r.backend == b}
        xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, [vals.get(k, 0.0) for k in keys], width=width, label=b)
    budget = {r.key: (r.norm, r.eps) for r in bounded}
    tm: dict[tuple[str, float | None], float] = {
        (t.norm, t.eps): t.robust_accuracy for t in m.threat_models
    }
    points = [(j, tm[budget[k]]) for j, k in enumerate(keys) if budget[k] in tm]
    if points:
        ax.scatter(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="_",
            s=400,
            color="black",
            zorder=3,
            label="worst case",
        )
    ax.axhline(m.clean_accuracy, color="black", linestyle="--", linewidth=1, label="clean")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("robust accuracy")
    ax.set_title(f"{m.name} ({m.defense})")
    ax.legend(fontsize=8)


def plot_sweeps(report: ReportData) -> Any:
    """Robust accuracy against steps (log scale), eps and restarts, one panel per kind
    and one line per model (Xie et al. 2019, Fig. 6); ``None`` without sweeps."""
    kinds = [k for k in SWEEP_KINDS if any(sw.kind == k for m in report.models for sw in m.sweeps)]
    if not kinds:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for m in report.models:
            for sw in (sw for sw in m.sweeps if sw.kind == kind):
                ax.plot(sw.values, sw.robust_accuracy, marker="o", label=f"{m.name}")
        if kind in ("steps", "restarts"):
            ax.set_xscale("log")
        ax.set_xlabel(_SWEEP_XLABELS[kind])
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{kind} sweep")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_norm_curves(report: ReportData) -> Any:
    """Robust accuracy against eps implied by the norms each minimal-norm attack needed
    (a step per image), one panel per norm and one line per (model, attack, backend);
    ``None`` without such an attack."""
    stats = [(m, s) for m in report.models for s in m.norm_stats]
    norms = list(dict.fromkeys(s.norm for _, s in stats))
    if not norms:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(norms), figsize=(5.0 * len(norms), 3.6), squeeze=False)
    for ax, norm in zip(axes[0], norms, strict=True):
        for m, s in ((m, s) for m, s in stats if s.norm == norm):
            eps = [0.0, *s.norms]  # exact: the curve steps down at each norm
            acc = [s.accuracy_at(e) for e in eps]
            ax.step(eps, acc, where="post", label=f"{m.name} {s.attack} ({s.backend})")
        ax.set_xlabel(f"eps (L{norm})")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"L{norm}: accuracy implied by the minimal perturbations")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
