"""The evaluation report as Markdown and as a plain-text summary table.

:func:`report_markdown` renders a :class:`~art_denoise.evaluation.report.Report` (what
``Report.to_markdown`` returns and ``Report.save`` writes as ``report.md``);
:func:`summary_table` is ``Report.summary_table``.
"""

from __future__ import annotations

from art_denoise.evaluation.results import ModelReport, ReportData

__all__ = ["report_markdown", "summary_table"]

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
    "**All-or-nothing run** (the CAAD criterion): the attacks ran as one "
    "sequence, each only on the images every earlier attack (and backend) "
    "failed on (column *attacked*), so each robust accuracy is the fraction "
    "still standing after that attack and all before it, not the attack's "
    "own number."
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
    """A plain-text table: per model, clean accuracy, each attack's worst case over
    backends (with the backend spread) and the all-or-nothing accuracy."""
    return _format_table(*_summary_rows(report.models))


def report_markdown(
    report: ReportData, chart: str | None = None, sweep_chart: str | None = None
) -> str:
    """The Markdown report; ``chart`` and ``sweep_chart`` are PNG file names to embed."""
    lines = _intro_lines(report)
    if chart:
        lines += ["", f"![robust accuracy per attack and backend]({chart})"]
    if sweep_chart and any(m.sweeps for m in report.models):
        lines += ["", f"![robust accuracy against steps, eps and restarts]({sweep_chart})"]
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
        "attack; the worst case over backends is shown with the backend spread (max - min). "
        "All-or-nothing counts an image only if every attack from every backend fails on it.",
        *(line for note, shown in notes if shown for line in ("", note)),
        "",
        "## Summary",
        "",
        _markdown_table(*_summary_rows(report.models)),
    ]


def _model_lines(m: ModelReport, *, all_or_nothing: bool) -> list[str]:
    """One model's section: its accuracies, results, sweeps, RP2 and checks."""
    lines = [
        "",
        f"## {m.name} (defense: {m.defense})",
        "",
        f"Clean accuracy {m.clean_accuracy:.2%}; all-or-nothing accuracy "
        f"{m.all_or_nothing_accuracy:.2%}.",
        "",
    ]
    header = [*_RESULT_HEADER, *(["attacked"] if all_or_nothing else [])]
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
            *([str(r.n_attacked)] if all_or_nothing else []),
        ]
        for r in m.results
    ]
    lines.append(_markdown_table(header, rows))
    return lines + _sweep_lines(m) + _rp2_lines(m) + _check_lines(m)


def _check_lines(m: ModelReport) -> list[str]:
    if not m.checks:
        return []
    return [
        "",
        f"### Checks: {_verdict(m)}",
        "",
        _markdown_table(
            ["check", "status", "detail"],
            [[c.name, c.status, c.detail.replace("|", "\\|")] for c in m.checks],
        ),
    ]


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
