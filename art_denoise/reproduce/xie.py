"""Xie et al. 2019, Tables 1 and 3: feature-denoising blocks on top of adversarial training.

Every row trains the small CNN (or, on CIFAR-10, PreAct-ResNet-18) the same way and
differs only in its denoising blocks (:mod:`art_denoise.blocks`): none (the adversarially
trained baseline), the paper's null block (1x1 convolution only), non-local means
(embedded Gaussian and dot product, as in the paper's reference code), a bilateral, a
mean and a median filter after each stage, and non-local blocks after every feature map
(the paper's "all denoise"). Each row is attacked with Xie's targeted PGD (a random
wrong target label per image) and untargeted PGD at 10 and 100 steps, then with the
default suite (PGD, APGD-CE, APGD-T); the worst case over all of them is the last
robustness column.

Table 3's question, whether the blocks change accuracy when trained without adversarial
examples, is the second half of the table: the same blocks trained clean, their clean
accuracy minus that of the clean baseline of the same seed (the blocks are inserted after
the network's own weights are drawn, so the pair shares its initial weights and batches).

The baseline, the non-local row and the clean baseline run at least three seeds, so that
a difference can be set against the noise between seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation.results import AttackResult, ModelReport, str_to_mask
from art_denoise.evaluation.suite import DefaultSuite, RoutedAttack
from art_denoise.recipes import ModelRecipe, TrainingRecipe, clean_accuracy
from art_denoise.reproduce._rows import evaluate_row, train_row, worst_case
from art_denoise.reproduce.runner import ROW_FILE
from art_denoise.reproduce.table import (
    Column,
    RowJob,
    RowResult,
    Table,
    TableContext,
    mean_std,
)

__all__ = ["PGD_STEPS", "ROWS", "XieRow", "XieTable", "difference_beyond_noise", "pgd_step_size"]

#: The PGD iterations of Xie's Table 1 columns.
PGD_STEPS = (10, 100)
#: Xie's attack step relative to eps: 1 of 16 on the 0-255 scale, except where fewer than
#: 16 steps could not cross the ball (Sec. 6.1: "alpha = 1, except for 10-iteration attacks
#: where alpha is set to eps/10 = 1.6"; their code takes max(alpha, eps / steps)).
STEP_RATIO = 1 / 16


def pgd_step_size(eps: float, steps: int) -> float:
    """Xie's PGD step for ``steps`` iterations at ``eps``: ``max(eps / 16, eps / steps)``.

    Example:
        >>> pgd_step_size(16, 10), pgd_step_size(16, 100)
        (1.6, 1.0)
    """
    return eps * max(STEP_RATIO, 1.0 / steps)


#: Seeds of the rows whose noise is measured (the baselines and the non-local row).
NOISE_SEEDS = 3
#: Blocks after every feature map of the small CNN, which has no residual blocks: after
#: each conv block's ReLU (before pooling) and after each stage.
SMALLCNN_ALL = ("stage1.2", "stage1", "stage2.2", "stage2")
#: The small CNN's "stages" on inputs too small for a 3x3 filter after the second stage
#: (8x8 digits leave it 2x2): after the first stage, and after the second stage's ReLU,
#: before its pooling (both 4x4 on digits).
SMALLCNN_PRE_POOL = ("stage1", "stage2.2")

_GAUSSIAN = {"embed": True, "mode": "gaussian"}


@dataclass(frozen=True)
class XieRow:
    """One row of the table: its blocks and how it is trained.

    Args:
        id: the row id.
        label: the row's name in ``results.md``.
        filter: the blocks' filter (a key of :data:`art_denoise.blocks.FILTERS`), or
            ``None`` for no blocks.
        options: the filter's settings.
        placement: ``"stages"`` (after each stage) or ``"all"`` (after every residual
            block, or every feature map of the small CNN).
        adversarial: adversarially trained (Table 1) or trained clean (Table 3).
        noise: run at least :data:`NOISE_SEEDS` seeds.
    """

    id: str
    label: str
    filter: str | None
    options: Mapping[str, Any] | None = None
    placement: str = "stages"
    adversarial: bool = True
    noise: bool = False


#: The rows, in table order: Table 1 (adversarially trained), then Table 3 (clean).
ROWS: tuple[XieRow, ...] = (
    XieRow("baseline", "adv. trained baseline", None, noise=True),
    XieRow("null", "+ blocks: null (1x1 only)", "none"),
    XieRow("nonlocal-gaussian", "+ blocks: non-local, Gaussian", "nonlocal", _GAUSSIAN, noise=True),
    XieRow(
        "nonlocal-dot",
        "+ blocks: non-local, dot product",
        "nonlocal",
        {"embed": True, "mode": "dot"},
    ),
    XieRow("bilateral", "+ blocks: bilateral 3x3", "bilateral", {"kernel_size": 3}),
    XieRow("mean", "+ blocks: mean 3x3", "mean", {"kernel_size": 3}),
    XieRow("median", "+ blocks: median 3x3", "median", {"kernel_size": 3}),
    XieRow(
        "all-nonlocal",
        "+ blocks after every block: non-local, Gaussian",
        "nonlocal",
        _GAUSSIAN,
        "all",
    ),
    XieRow("clean-baseline", "clean-trained baseline", None, adversarial=False, noise=True),
    XieRow("clean-null", "clean-trained + null (1x1 only)", "none", adversarial=False),
    XieRow("clean-mean", "clean-trained + mean 3x3", "mean", {"kernel_size": 3}, adversarial=False),
    XieRow(
        "clean-median",
        "clean-trained + median 3x3",
        "median",
        {"kernel_size": 3},
        adversarial=False,
    ),
    XieRow(
        "clean-bilateral",
        "clean-trained + bilateral 3x3",
        "bilateral",
        {"kernel_size": 3},
        adversarial=False,
    ),
    XieRow(
        "clean-nonlocal-gaussian",
        "clean-trained + non-local, Gaussian",
        "nonlocal",
        _GAUSSIAN,
        adversarial=False,
    ),
)
_BY_ID = {r.id: r for r in ROWS}

#: Cells of the attack columns (the adversarially trained rows fill them).
ATTACK_KEYS = ("tpgd10", "tpgd100", "pgd10", "pgd100", "worst")


def difference_beyond_noise(
    diff: float, baseline_std: float | None, row_std: float | None, *, z: float = 2.0
) -> bool | None:
    """Whether a difference exceeds ``z`` times ``sqrt(s_b^2 + s_r^2)``: the standard
    deviation of the difference of two single-seed results, from the seeds' standard
    deviations (the row's own if it has one, else the baseline's for both); ``None`` when
    the baseline has no spread.

    This is stricter than ``z`` standard errors of the difference of seed means
    (``sqrt(s_b^2 / n_b + s_r^2 / n_r)``, 1.7x smaller with 3 seeds each): with 1-3 seeds
    the standard deviations are themselves rough, and a single-seed row carries the whole
    seed noise.

    Example:
        >>> difference_beyond_noise(0.05, 0.01, None)  # 0.05 > 2 * sqrt(2) * 0.01
        True
        >>> difference_beyond_noise(0.02, 0.01, 0.01)
        False
    """
    if baseline_std is None:
        return None
    other = row_std if row_std is not None else baseline_std
    return abs(diff) > z * math.sqrt(baseline_std**2 + other**2)


def _setup(ctx: TableContext) -> dict[str, Any]:
    """The model, training and evaluation settings of the context (JSON)."""
    quick = ctx.preset == "quick"
    if ctx.dataset == "cifar10":
        eps = 8 / 255
        model: dict[str, Any] = {"model": "preact-resnet18"}
        training: dict[str, Any] = {
            "method": "pgd",
            "eps": eps,
            "steps": 7,
            "step_size": 2 / 255,
            "prob_start_from_clean": 0.2,
            "epochs": 1 if quick else 30,
            "batch_size": 128,
            "val_size": 0 if quick else 1000,
        }
        stages: str | list[str] = "stages"
        placement_all: str | list[str] = "all-blocks"
    else:
        eps = 0.1
        model = (
            {"model": "smallcnn", "widths": [16, 32], "hidden": 64}
            if quick
            else {"model": "smallcnn"}
        )
        # README's Fashion-MNIST recipe: PGD-2 at eps 0.12, step 0.08, no clean starts
        training = {
            "method": "pgd",
            "eps": 0.12,
            "steps": 2,
            "step_size": 0.08,
            "prob_start_from_clean": 0.0,
            "epochs": 4 if quick else 14,
            "batch_size": 64 if quick else 128,
            "val_size": 0 if quick else 1000,
        }
        placement_all = list(SMALLCNN_ALL)
        small = min(ctx.data().input_shape[1:]) // 4 < 3
        stages = list(SMALLCNN_PRE_POOL) if small else "stages"
    training["lr"] = 2e-3
    evaluation = {
        "eps": eps,
        "n_test": 64 if quick else 1000,
        "pgd_steps": list(PGD_STEPS),
        "pgd_step_sizes": [pgd_step_size(eps, steps) for steps in PGD_STEPS],
        "apgd_steps": 20 if quick else 100,
        "target_classes": 3 if quick else 9,
        "suite_backends": ["native"] if quick else ["native", "art"],
        "checks": not quick,
        "batch_size": 256,
    }
    return {
        "model": model,
        "training": training,
        "evaluation": evaluation,
        "stages": stages,
        "all": placement_all,
    }


def _job_config(row: XieRow, setup: Mapping[str, Any]) -> dict[str, Any]:
    model = dict(setup["model"])
    if row.filter is not None:
        model["denoise"] = row.filter
        model["denoise_after"] = setup["all"] if row.placement == "all" else setup["stages"]
        if row.options:
            model["denoise_options"] = dict(row.options)
    training = dict(setup["training"])
    if not row.adversarial:
        training = {k: training[k] for k in ("epochs", "batch_size", "val_size", "lr")}
        training["method"] = "none"
    config: dict[str, Any] = {"model": model, "training": training, "adversarial": row.adversarial}
    if row.adversarial:
        config["evaluation"] = dict(setup["evaluation"])
    return config


def _attacks(ev: Mapping[str, Any]) -> list[RoutedAttack]:
    """Xie's targeted PGD and untargeted PGD at each step count, then the default suite."""
    eps, batch = ev["eps"], ev["batch_size"]
    pgd = [
        RoutedAttack(
            AttackSpec(
                attack="pgd",
                eps=eps,
                step_size=step,
                steps=steps,
                random_start=True,
                targeted=targeted,
                batch_size=batch,
            ),
            ("native",),
        )
        for targeted in (True, False)
        for steps, step in zip(ev["pgd_steps"], ev["pgd_step_sizes"], strict=True)
    ]
    suite = DefaultSuite(
        pgd_steps=20,
        pgd_step_size=eps / 8,
        apgd_steps=ev["apgd_steps"],
        target_classes=ev["target_classes"],
        batch_size=batch,
    )
    return pgd + suite.attacks(eps)


def pgd_result(
    report: ModelReport, *, eps: float, steps: int, targeted: bool, step_size: float
) -> AttackResult:
    """The result of the native Linf PGD of these settings in ``report`` (a ``KeyError``
    if it has none)."""
    for r in report.results:
        if (
            r.attack == "pgd-linf"
            and r.backend == "native"
            and r.steps == steps
            and r.targeted == targeted
            and r.eps is not None
            and abs(r.eps - eps) < 1e-12
            and r.step_size is not None
            and abs(r.step_size - step_size) < 1e-12
        ):
            return r
    raise KeyError(f"no native PGD-{steps} (targeted={targeted}) at eps {eps} in the report")


def suite_worst_case(report: ModelReport, pgd: Sequence[AttackResult]) -> float:
    """The worst case of the default suite alone: the share of images that no attack of
    ``report`` other than the ``pgd`` results broke."""
    keep = [r for r in report.results if not any(r is q for q in pgd)]
    masks = [str_to_mask(r.robust_examples or "") for r in keep]
    if not masks or any(len(m) != len(masks[0]) for m in masks):
        raise ValueError("the report holds no per-image results of the default suite")
    standing = masks[0].copy()
    for m in masks[1:]:
        standing &= m
    return float(standing.mean())


def _paired_baseline_clean(row_dir: Path, seed: int, training: Mapping[str, Any]) -> float:
    """The clean accuracy of the clean baseline of ``seed`` (its row runs first)."""
    path = row_dir.parent / RowJob("clean-baseline", "", seed).key / ROW_FILE
    if not path.exists():
        raise RuntimeError(f"the clean baseline of seed {seed} has not run: no {path}")
    record = json.loads(path.read_text())
    if record["config"]["training"] != dict(training):
        raise RuntimeError(f"{path} was trained otherwise than the row it is the baseline of")
    return float(record["cells"]["clean"])


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}"


def _cell(rows: Mapping[str, Mapping[str, Any]], row: str, key: str) -> tuple[float, float | None]:
    agg = rows[row]["cells"][key]
    return agg["mean"], agg["std"]


def _gain_sentence(
    rows: Mapping[str, Mapping[str, Any]], row: str, key: str, what: str, source: str
) -> str:
    """How ``row`` differs from the adversarial baseline in column ``key``."""
    base, base_std = _cell(rows, "baseline", key)
    mean, std = _cell(rows, row, key)
    diff = mean - base
    beyond = difference_beyond_noise(diff, base_std, std)
    n = len(rows["baseline"]["seeds"])
    noise = f"the baseline's std over {n} seeds is {base_std * 100:.1f}" if base_std else ""
    verdict = {
        None: "with one baseline seed the noise is unknown",
        True: f"beyond the seed noise ({noise})",
        False: f"within the seed noise ({noise}): no measurable gain",
    }[beyond]
    if beyond and diff < 0:
        verdict = f"a loss beyond the seed noise ({noise})"
    return (
        f"{rows[row]['label']} vs the baseline, {what}: {_pct(diff)} points, {verdict}; "
        f"Xie et al. report {source} on ImageNet."
    )


def _variant_summary(rows: Mapping[str, Mapping[str, Any]], key: str, what: str) -> str:
    """Which adversarially trained block rows beat the baseline beyond the noise."""
    base, base_std = _cell(rows, "baseline", key)
    variants = [r for r in rows if r != "baseline" and _BY_ID[r].adversarial]
    verdicts = {}
    for r in variants:
        mean, std = _cell(rows, r, key)
        verdicts[r] = (mean - base, difference_beyond_noise(mean - base, base_std, std))
    if base_std is None:
        return f"{what}: one baseline seed, so no variant can be set against the seed noise."
    gains = [r for r, (d, b) in verdicts.items() if b and d > 0]
    losses = [r for r, (d, b) in verdicts.items() if b and d < 0]
    best = max(verdicts, key=lambda r: verdicts[r][0])
    text = (
        f"{what}: {len(gains)} of {len(variants)} block variants gain beyond the seed noise "
        "(twice the std of a difference of single seeds, sqrt(s_b^2 + s_r^2))"
        f"{': ' + ', '.join(gains) if gains else ''}"
    )
    if losses:
        text += f"; {len(losses)} lose beyond it: {', '.join(losses)}"
    return f"{text}; the largest difference is {_pct(verdicts[best][0])} points ({best})."


def _attack_gap(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """How much Xie's targeted PGD overstates the baseline's robustness."""
    t10, _ = _cell(rows, "baseline", "tpgd10")
    t100, _ = _cell(rows, "baseline", "tpgd100")
    u100, _ = _cell(rows, "baseline", "pgd100")
    worst, _ = _cell(rows, "baseline", "worst")
    return (
        f"Attack strength on the baseline: targeted PGD-10 / PGD-100 leave {t10 * 100:.1f} / "
        f"{t100 * 100:.1f}%, untargeted PGD-100 {u100 * 100:.1f}%, the worst case "
        f"{worst * 100:.1f}%: a random-target attack overstates robustness by "
        f"{(t100 - worst) * 100:.1f} points at 100 steps (ImageNet: 41.7% at PGD-100, 34.4% "
        "after 100 restarts in the later re-evaluation)."
    )


def _clean_sentence(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Table 3: the clean-trained blocks' clean accuracy differences."""
    _, base_std = _cell(rows, "clean-baseline", "clean")
    deltas = {
        r: _cell(rows, r, "clean_delta")[0]
        for r in rows
        if r.startswith("clean-") and r != "clean-baseline"
    }
    lo, hi = min(deltas.values()), max(deltas.values())
    text = (
        f"Trained clean (Table 3), the blocks change clean accuracy by {_pct(lo)} to {_pct(hi)} "
        "points against the clean baseline of the same seed"
    )
    if base_std is None:
        return text + "; with one baseline seed the noise is unknown (Xie et al.: within ±0.2)."
    # the same rule as the adversarial rows: a single-seed difference carries the seed noise
    # of both runs, sqrt(2) times the clean baseline's std
    beyond = [r for r, d in deltas.items() if difference_beyond_noise(d, base_std, None)]
    limit = 2 * math.sqrt(2) * base_std * 100
    verdict = (
        f"beyond the seed noise (2 sqrt(2) x the clean baseline's std = {limit:.1f}): "
        f"{', '.join(beyond)}"
        if beyond
        else f"all within the seed noise (2 sqrt(2) x the clean baseline's std = {limit:.1f})"
    )
    return f"{text}, {verdict}; Xie et al. find all within ±0.2 on ImageNet (no difference)."


class XieTable(Table):
    """Xie et al. 2019, Tables 1 and 3 (module docstring)."""

    name: ClassVar[str] = "xie"
    title: ClassVar[str] = (
        "Feature denoising on top of adversarial training (Xie et al. 2019, Tables 1 and 3)"
    )
    source: ClassVar[str] = (
        "Xie, Wu, van der Maaten, Yuille, He: Feature Denoising for Improving Adversarial "
        "Robustness, CVPR 2019, Table 1 (white-box PGD) and Table 3 (clean training), "
        "https://arxiv.org/abs/1812.03411; worst case: the later re-evaluation in "
        "REFERENCES.md §1"
    )
    source_setting: ClassVar[str] = (
        "ImageNet, ResNet-152 with four denoising blocks (after res2..res5) or one after "
        "every residual block; adversarial training on targeted PGD examples (random target "
        "label, eps 16/255, step 1/255, 30 iterations, 20% of the attacks started from the "
        "clean image). White-box targeted PGD at eps 16/255, 10 iterations of step "
        "1.6/255 and 100 of step 1/255; the table reports top-1 accuracy (the true label) "
        "under the targeted attack, not its success rate. Seed noise about ±0.3. Table 3: "
        "the same networks trained clean, clean accuracy minus the ResNet-152 baseline's "
        "(78.91%). The later re-evaluation: 100 random restarts give 34.4% (baseline) and "
        "37.3% (denoise); on "
        "CIFAR-10 the blocks add about 1 point (44.6 vs 43.5 at PGD-100)."
    )
    columns: ClassVar[tuple[Column, ...]] = (
        Column("clean", "clean"),
        Column("tpgd10", "targeted PGD-10"),
        Column("tpgd100", "targeted PGD-100"),
        Column("pgd10", "PGD-10"),
        Column("pgd100", "PGD-100"),
        Column("worst", "worst case"),
        Column("clean_delta", "clean Δ vs clean baseline", signed=True),
    )

    def jobs(self, ctx: TableContext) -> list[RowJob]:
        setup = _setup(ctx)
        jobs = []
        for row in ROWS:
            seeds = max(ctx.seeds, NOISE_SEEDS) if row.noise else ctx.seeds
            config = _job_config(row, setup)
            jobs += [RowJob(row.id, row.label, seed, config) for seed in range(seeds)]
        return jobs

    def depends_on(self, job: RowJob) -> tuple[str, ...]:
        """A clean-trained block row reads the clean baseline of its seed."""
        row = _BY_ID[job.row]
        if row.adversarial or row.filter is None:
            return ()
        return (RowJob("clean-baseline", "", job.seed).key,)

    def run_row(self, job: RowJob, ctx: TableContext, row_dir: Path) -> RowResult:
        config = job.config
        row = _BY_ID[job.row]
        recipe = ModelRecipe(**config["model"])
        training = TrainingRecipe(**config["training"], seed=job.seed)
        run = train_row(recipe, training, ctx, row_dir)
        data = ctx.data()
        cells: dict[str, float | None] = {c.key: None for c in self.columns}
        clean = clean_accuracy(run.model, data.x_test, data.y_test, ctx.device)
        cells["clean"] = clean
        extra: dict[str, Any] = {
            "train_seconds": _training_seconds(run),
            "n_clean": len(data.x_test),
        }
        if row.adversarial:
            attack_cells, attack_extra = _attack_cells(run.model, job, ctx)
            cells.update(attack_cells)
            extra.update(attack_extra)
        elif row.filter is not None:
            base = _paired_baseline_clean(row_dir, job.seed, config["training"])
            cells["clean_delta"] = clean - base
        return RowResult(job, cells, extra, 0.0)

    def setting(self, ctx: TableContext) -> str:
        setup = _setup(ctx)
        model, tr, ev = setup["model"], setup["training"], setup["evaluation"]
        arch = model["model"] + (
            f" (widths {model['widths']}, hidden {model['hidden']})" if "widths" in model else ""
        )
        every = (
            "every residual block"
            if setup["all"] == "all-blocks"
            else f"every feature map ({', '.join(setup['all'])}: the small CNN has no "
            "residual blocks, so after each conv block's ReLU and after each stage)"
        )
        names = ev["suite_backends"]
        backends = f"the {' and '.join(names)} backend{'s' if len(names) > 1 else ''}"
        stages = (
            "each stage"
            if setup["stages"] == "stages"
            else f"stage 1 and before stage 2's pooling ({', '.join(setup['stages'])}: the "
            "input is too small for a 3x3 filter after the last stage)"
        )
        return (
            f"{ctx.dataset}, {arch}; blocks after {stages}, or after {every}; non-local "
            "blocks embedded (1x1 theta/phi to C/2, as the reference code), bilateral = "
            "a 3x3 bilateral filter of the features (the paper's uses the non-local weights in "
            "a window). Adversarial training: untargeted PGD-"
            f"{tr['steps']} at eps {tr['eps']:g}, step {tr['step_size']:g}, "
            f"{tr['prob_start_from_clean']:.0%} clean starts, {tr['epochs']} epochs, batch "
            f"{tr['batch_size']}, Adam {tr['lr']:g} one-cycle, {tr['val_size']} images held out; "
            "clean-trained rows: the same without attack. Clean accuracy on the whole test "
            f"split; attacks on the first {ev['n_test']} test images at Linf eps {ev['eps']:.4g}: "
            f"PGD-10 with step eps/10 and PGD-100 with step eps/16 (Xie's 1.6/16 and 1/16), "
            "random start, native backend, targeted "
            "to a random wrong label per image (accuracy = still the true label, as Xie "
            "report) or untargeted; worst case = every attack of the row together with the "
            f"default suite: PGD-20 (step eps/8, random start) through {backends}, "
            f"APGD-CE and APGD-T ({ev['apgd_steps']} steps, "
            f"{ev['target_classes']} targets). Seeds: >= {NOISE_SEEDS} for the baselines and "
            f"the non-local row, {ctx.seeds} for the others; clean Δ paired with the clean "
            "baseline of the same seed."
        )

    def source_cells(self) -> Mapping[str, Mapping[str, str]]:
        return {
            "baseline": {
                "clean": "62.3",
                "tpgd10": "52.5",
                "tpgd100": "41.7",
                "worst": "34.4 (100 restarts)",
            },
            "nonlocal-gaussian": {
                "clean": "65.3",
                "tpgd10": "55.7",
                "tpgd100": "45.5",
                "worst": "37.3 (100 restarts)",
            },
            "clean-baseline": {"clean": "78.91"},
            "clean-null": {"clean_delta": "+0.15"},
            "clean-mean": {"clean_delta": "+0.01"},
            "clean-median": {"clean_delta": "-0.12"},
            "clean-bilateral": {"clean_delta": "+0.15"},
            "clean-nonlocal-gaussian": {"clean_delta": "+0.17"},
        }

    def findings(self, rows: Sequence[Mapping[str, Any]], ctx: TableContext) -> list[str]:
        by = {r["row"]: r for r in rows}
        if not {"baseline", "nonlocal-gaussian", "clean-baseline"} <= set(by):
            return []
        return [
            _gain_sentence(by, "nonlocal-gaussian", "tpgd10", "targeted PGD-10", "+3.2"),
            _gain_sentence(by, "nonlocal-gaussian", "tpgd100", "targeted PGD-100", "+3.8"),
            _gain_sentence(
                by, "nonlocal-gaussian", "worst", "worst case", "+2.9 after 100 restarts"
            ),
            _gain_sentence(by, "nonlocal-gaussian", "clean", "clean accuracy", "+3.0"),
            _variant_summary(by, "tpgd100", "Targeted PGD-100"),
            _variant_summary(by, "worst", "Worst case"),
            _attack_gap(by),
            _clean_sentence(by),
        ]

    def figures(
        self, results: Sequence[RowResult], ctx: TableContext, out: Path
    ) -> Mapping[str, Callable[[Path], None]]:
        return {"xie.png": lambda path: _plot(results, path)}


def _attack_cells(
    model: Any, job: RowJob, ctx: TableContext
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The attack columns of an adversarially trained row, and the targeted hit rates."""
    ev = job.config["evaluation"]
    eps = ev["eps"]
    report = evaluate_row(
        model,
        ctx,
        n_test=ev["n_test"],
        seed=job.seed,
        attacks=_attacks(ev),
        backends=ev["suite_backends"],
        checks=ev["checks"],
    )
    cells: dict[str, float | None] = {}
    extra: dict[str, Any] = {"n_attacked": min(ev["n_test"], len(ctx.data().x_test))}
    pgd = []
    for targeted in (True, False):
        for steps, step in zip(ev["pgd_steps"], ev["pgd_step_sizes"], strict=True):
            key = f"{'t' if targeted else ''}pgd{steps}"
            r = pgd_result(report, eps=eps, steps=steps, targeted=targeted, step_size=step)
            pgd.append(r)
            cells[key] = r.robust_accuracy
            if targeted:
                extra[f"{key}_target_hit_rate"] = r.attack_success_rate
    cells["worst"] = worst_case(report, eps)
    extra["suite_worst_case"] = suite_worst_case(report, pgd)
    extra["subset_clean_accuracy"] = report.clean_accuracy
    extra["status"] = report.status
    return cells, extra


def _training_seconds(run: Any) -> float:
    """The training's time: its epochs' seconds summed (the checkpoint keeps them, so a row
    resumed, or only re-attacked, still reports its whole training), else the loop's."""
    epochs = [h.get("seconds") for h in run.result.history]
    if epochs and all(isinstance(v, (int, float)) for v in epochs):
        return float(sum(epochs))
    return float(run.seconds)


def _plot(results: Sequence[RowResult], path: Path) -> None:
    """Left: the adversarially trained rows' targeted PGD-100 and worst case; right: the
    clean-trained rows' clean Δ; bars at the seed means, error bars one std."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def stats(row: str, key: str) -> tuple[float, float]:
        values = [
            float(v) for r in results if r.job.row == row and (v := r.cells.get(key)) is not None
        ]
        mean, std = mean_std(values)
        return mean * 100, (std or 0.0) * 100

    rows = list(dict.fromkeys(r.job.row for r in results))
    adv = [r for r in rows if _BY_ID[r].adversarial]
    clean = [r for r in rows if not _BY_ID[r].adversarial and _BY_ID[r].filter is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.4
    for i, (key, label) in enumerate((("tpgd100", "targeted PGD-100"), ("worst", "worst case"))):
        vals = [stats(r, key) for r in adv]
        xs = [j + (i - 0.5) * width for j in range(len(adv))]
        ax1.bar(xs, [v[0] for v in vals], width, yerr=[v[1] for v in vals], capsize=3, label=label)
    ax1.set_xticks(range(len(adv)), adv, rotation=30, ha="right")
    ax1.set_ylabel("robust accuracy (%)")
    ax1.set_title("adversarially trained (Table 1)")
    ax1.legend()
    if clean:
        vals = [stats(r, "clean_delta") for r in clean]
        ax2.bar(range(len(clean)), [v[0] for v in vals], yerr=[v[1] for v in vals], capsize=3)
        _, base_std = stats("clean-baseline", "clean")
        ax2.axhspan(-base_std, base_std, color="grey", alpha=0.3, label="clean baseline ± std")
        ax2.axhline(0, color="black", linewidth=0.8)
        ax2.set_xticks(range(len(clean)), clean, rotation=30, ha="right")
        ax2.legend()
    ax2.set_ylabel("clean accuracy Δ (points)")
    ax2.set_title("trained clean (Table 3)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
