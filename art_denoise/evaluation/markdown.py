"""The evaluation report as Markdown and as a plain-text summary table.

:func:`report_markdown` renders a :class:`~art_denoise.evaluation.report.Report` (what
``Report.to_markdown`` returns and ``Report.save`` writes as ``report.md``);
:func:`summary_table` is ``Report.summary_table``. Per model: its status, the worst case
per threat model (the headline), the per-attack rows, the norms the minimal-norm attacks
needed, and the convergence warnings.
"""

from __future__ import annotations

from art_denoise.evaluation.results import ModelReport, NormStats, ReportData, norm_label

__all__ = ["report_markdown", "summary_table"]

_INTRO = (
    "The headline of each model is its **worst case per threat model** (norm, eps): an "
    "image counts as robust only if every attack at that budget, through every backend, "
    "failed on it (an unbounded DeepFool of the same norm counts where its perturbation "
    "stayed within eps). A model is **verified** only if a parameter-free attack (APGD or "
    "AutoAttack; with EOT for a randomised model) is part of every worst case and every "
    "sanity check passed; a number from PGD alone is an upper bound of unknown quality. "
    "Minimal-norm attacks (DeepFool) are reported by the perturbation norm they needed, "
    "not by a robust accuracy."
)
_EOT_NOTE = (
    "Attacks marked `+eotK` used Expectation over Transformation: each gradient "
    "is taken on the mean of K independent draws of the (randomised) model; "
    "robust accuracy is measured on the model as deployed, one draw per image."
)
_CHECKS_NOTE = (
    "Each model also went through the sanity checks of Carlini et al. (2019): "
    "a model failing one is marked **not verified** and its numbers are upper "
    "bounds of unknown quality, not robustness."
)
_ALL_OR_NOTHING_NOTE = (
    "**All-or-nothing run** (the CAAD criterion, within each threat model): each "
    "attack ran only on the images every earlier attack (and backend) at its norm and "
    "eps failed on (column *attacked*), so each bounded robust accuracy is the fraction "
    "still standing there after that attack and all before it, not the attack's own number."
)
_RESULT_HEADER = [
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
]


def summary_table(report: ReportData) -> str:
    """A plain-text table: per model, clean accuracy, the worst case at each threat model,
    the median norm each minimal-norm attack needed, and the status."""
    return _format_table(*_summary_rows(report.models))


def report_markdown(
    report: ReportData,
    chart: str | None = None,
    sweep_chart: str | None = None,
    norm_chart: str | None = None,
) -> str:
    """The Markdown report; ``chart``, ``sweep_chart`` and ``norm_chart`` are PNG file names
    to embed (the last two only when there are sweeps / minimal-norm attacks)."""
    lines = _intro_lines(report)
    if chart:
        lines += ["", f"![robust accuracy per attack and backend]({chart})"]
    if sweep_chart and any(m.sweeps for m in report.models):
        lines += ["", f"![robust accuracy against steps, eps and restarts]({sweep_chart})"]
    if norm_chart and any(m.norm_stats for m in report.models):
        lines += ["", f"![robust accuracy implied by the minimal-norm attacks]({norm_chart})"]
    if report.skipped:
        lines += ["", "Not run (the backend cannot express the attack):", ""]
        lines += [f"- {s['attack']} / {s['backend']}: {s['reason']}" for s in report.skipped]
    for m in report.models:
        lines += _model_lines(m, all_or_nothing=report.all_or_nothing)
    env = ", ".join(f"{k} {v}" for k, v in report.environment.items())
    lines += ["", "## Environment", "", env, ""]
    return "\n".join(lines)


def _intro_lines(report: ReportData) -> list[str]:
    """The title, the explanation of the numbers, the notes that apply, and the summary."""
    d = report.dataset
    notes = [
        (_EOT_NOTE, any(r.eot_samples > 1 for m in report.models for r in m.results)),
        (_CHECKS_NOTE, any(m.checks for m in report.models)),
        (_ALL_OR_NOTHING_NOTE, report.all_or_nothing),
    ]
    return [
        "# art-denoise robustness report",
        "",
        f"Dataset **{d.get('name')}**, split `{d.get('split')}`, {d.get('n_samples')} images. "
        "Robust accuracy is the fraction of images still classified correctly after the "
        "attack (an image misclassified clean never counts). " + _INTRO,
        *(line for note, shown in notes if shown for line in ("", note)),
        "",
        "## Summary",
        "",
        _markdown_table(*_summary_rows(report.models)),
    ]


def _model_lines(m: ModelReport, *, all_or_nothing: bool) -> list[str]:
    """One model's section: status, worst cases, per-attack rows, norms, convergence,
    sweeps, RP2 and checks."""
    randomised = " The model is randomised (two identical calls differ)." if m.randomized else ""
    lines = [
        "",
        f"## {m.name} (defense: {m.defense})",
        "",
        f"Clean accuracy {m.clean_accuracy:.2%}. Status: **{m.status}**.{randomised}",
    ]
    lines += _threat_model_lines(m) + _result_lines(m, all_or_nothing=all_or_nothing)
    lines += _norm_lines(m) + _convergence_lines(m)
    return lines + _sweep_lines(m) + _rp2_lines(m) + _check_lines(m)


def _threat_model_lines(m: ModelReport) -> list[str]:
    if not m.threat_models:
        return []
    rows = []
    for t in m.threat_models:
        own = dict(zip(t.attacks, t.own_accuracy, strict=True))
        pf = ("yes, with EOT" if t.eot else "yes") if t.parameter_free else "no"
        rows.append(
            [
                norm_label(t.norm),
                f"{t.eps:g}",
                f"**{t.robust_accuracy:.2%}**",
                f"{t.strongest} ({own[t.strongest]:.2%})",
                str(len(t.attacks)),
                pf,
            ]
        )
    header = ["norm", "eps", "worst case", "lowest single attack", "attacks", "parameter-free"]
    return [
        "",
        "### Worst case per threat model",
        "",
        _markdown_table(header, rows),
        "",
        "Attacks in each worst case: "
        + "; ".join(f"{t.label}: {', '.join(t.attacks)}" for t in m.threat_models)
        + ".",
    ]


def _result_lines(m: ModelReport, *, all_or_nothing: bool) -> list[str]:
    header = [*_RESULT_HEADER, *(["attacked"] if all_or_nothing else [])]
    rows = [
        [
            r.attack,
            r.backend,
            _fmt(r.eps),
            _fmt(r.step_size),
            str(r.steps),
            str(r.restarts),
            "- (norms below)" if r.minimal_norm else f"{r.robust_accuracy:.2%}",
            f"{r.attack_success_rate:.2%}",
            f"{r.l2_dissimilarity:.4f}",
            f"{r.max_perturbation:.4f}",
            f"{r.seconds:.2f}",
            *([str(r.n_attacked)] if all_or_nothing else []),
        ]
        for r in m.results
    ]
    return ["", "### Per attack and backend", "", _markdown_table(header, rows)]


def _norm_grid(m: ModelReport, stats: list[NormStats]) -> list[float]:
    """The budgets at which the norm table gives the implied accuracy: the model's
    threat-model budgets of the attacks' norm, or multiples of the largest median."""
    norms = {s.norm for s in stats}
    grid = {t.eps for t in m.threat_models if t.norm in norms}
    if not grid:
        medians = [q[1] for s in stats if (q := s.quartiles()) is not None]
        top = max(medians, default=0.0)
        grid = {float(f"{f * top:.2g}") for f in (0.5, 1.0, 1.5, 2.0)} if top > 0 else set()
    return sorted(grid)


def _norm_lines(m: ModelReport) -> list[str]:
    stats = m.norm_stats
    if not stats:
        return []
    grid = _norm_grid(m, stats)
    rows = []
    for s in stats:
        q = s.quartiles()
        rows.append(
            [
                s.attack,
                s.backend,
                "-" if q is None else f"{q[1]:.4g}",
                "-" if q is None else f"{q[0]:.4g} to {q[2]:.4g}",
                str(s.n_adversarial),
                str(s.n_not_adversarial),
                *(f"{s.accuracy_at(e):.2%}" for e in grid),
            ]
        )
    header = [
        "attack",
        "backend",
        "median ‖δ‖",
        "quartiles",
        "adversarial",
        "not adversarial",
        *(f"acc. at {e:g}" for e in grid),
    ]
    return [
        "",
        "### Minimal-norm attacks: the perturbation norm needed",
        "",
        "Over the images correctly classified clean whose output is adversarial; *not "
        "adversarial* counts the images the attack failed on (the attack's failure, not a "
        "disagreement between backends). *acc. at e* is the robust accuracy these norms "
        "imply at eps e (the images correctly classified clean and not broken within e).",
        "",
        _markdown_table(header, rows),
    ]


def _convergence_lines(m: ModelReport) -> list[str]:
    found = [(t, a, b, c) for t in m.threat_models for a, b, c in t.unconverged()]
    if not found:
        return []
    return [
        "",
        "### Convergence warnings",
        "",
        *(
            f"- {t.label}: {a} lowered the worst case from {b:.2%} to {c:.2%} "
            f"({(b - c) * 100:.1f} points): the earlier attacks had not converged."
            for t, a, b, c in found
        ),
    ]


def _check_lines(m: ModelReport) -> list[str]:
    if not m.checks:
        return []
    return [
        "",
        f"### Checks: {_checks_outcome(m)}",
        "",
        _markdown_table(
            ["check", "status", "detail"],
            [[c.name, c.status, c.detail.replace("|", "\\|")] for c in m.checks],
        ),
    ]


def _checks_outcome(m: ModelReport) -> str:
    return f"failed: {', '.join(m.failed_checks)}" if m.failed_checks else "none failed"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


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
    return m.status


def _budget_keys(models: list[ModelReport]) -> list[tuple[str, float]]:
    return list(dict.fromkeys((t.norm, t.eps) for m in models for t in m.threat_models))


def _norm_keys(models: list[ModelReport]) -> list[str]:
    return list(dict.fromkeys(s.attack for m in models for s in m.norm_stats))


def _summary_rows(models: list[ModelReport]) -> tuple[list[str], list[list[str]]]:
    budgets, norm_attacks = _budget_keys(models), _norm_keys(models)
    header = [
        "model",
        "defense",
        "clean",
        *(f"{norm_label(n)} {e:g}" for n, e in budgets),
        *(f"{a} median ‖δ‖" for a in norm_attacks),
        "status",
    ]
    rows = []
    for m in models:
        # a robustness number that is not verified is never shown bare, as if it held
        mark = " not verified" if m.verified is False else ""
        cells = []
        for n, e in budgets:
            t = m.threat_model(n, e)
            cells.append("-" if t is None else f"{t.robust_accuracy:.1%}{mark}")
        for a in norm_attacks:
            medians = [
                f"{q[1]:.3g} {s.backend}"
                for s in m.norm_stats
                if s.attack == a and (q := s.quartiles()) is not None
            ]
            cells.append(", ".join(medians) or "-")
        rows.append([m.name, m.defense, f"{m.clean_accuracy:.1%}", *cells, _verdict(m)])
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
