"""BlurNet's white-box table (Raju & Lipasti 2019, Table 2), rebuilt and re-attacked.

Each row trains a small CNN with standard (clean) training and one of BlurNet's defenses:
none, a fixed box low-pass layer (3x3, 5x5, 7x7) right after the first convolution, the
total-variation penalty of the first layer's maps (1e-4, 1e-5), or a learnable 5x5 kernel
pulled towards a box by the L-inf penalty. Every row is attacked the paper's way, with
targeted RP2 stickers (:class:`~art_denoise.evaluation.rp2_evaluation.RP2Evaluation`:
one sticker mask, an expectation over random transformations, the printability term),
and with the project's default L-inf suite (PGD, APGD-CE, APGD-T), whose worst case the
paper never reports. The high-frequency energy share of the clean and RP2 inputs and of
the first layer's maps (:mod:`art_denoise.spectral`) checks the paper's premise that the
stickers add high frequencies and that the low-pass layer removes them.

Example:
    >>> [row.id for row in ROWS]
    ['baseline', 'box3', 'box5', 'box7', 'tv-1e-4', 'tv-1e-5', 'learnable-linf']
    >>> printable_colors(1)
    [[0.1], [0.9], [0.5]]
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from art_denoise._torch import model_device, predict
from art_denoise._validation import check_positive_int
from art_denoise.attacks.rp2 import RP2Config, TransformRanges, rp2_attack
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.suite import DefaultSuite
from art_denoise.recipes import BlurNetSettings, ModelRecipe, TrainingRecipe, clean_accuracy
from art_denoise.reproduce._rows import attack_accuracy, evaluate_row, train_row, worst_case
from art_denoise.reproduce.table import Column, RowJob, RowResult, Table, TableContext
from art_denoise.spectral import high_frequency_energy_ratio, layer_features

__all__ = [
    "FULL",
    "QUICK",
    "ROWS",
    "BlurNetPreset",
    "BlurNetRow",
    "BlurNetTable",
    "binomial_se",
    "differs",
    "printable_colors",
]

#: The RP2 transformation distribution (the "expectation over physical conditions").
TRANSFORMS = TransformRanges(
    rotation=(-10.0, 10.0),
    scale=(0.9, 1.1),
    translation=(-0.05, 0.05),
    brightness=(-0.05, 0.05),
    contrast=(0.9, 1.1),
)
#: High-frequency cut-off of the spectral columns, in cycles per pixel (Nyquist: 0.5).
HF_RADIUS = 0.25
#: How many standard errors a difference must exceed to count as beyond noise.
Z = 2.0


class BlurNetRow(NamedTuple):
    """One row of the table: its id, label and BlurNet settings (``None``: baseline)."""

    id: str
    label: str
    blurnet: BlurNetSettings | None


ROWS: tuple[BlurNetRow, ...] = (
    BlurNetRow("baseline", "baseline (no filter)", None),
    BlurNetRow("box3", "box 3x3 after conv1", BlurNetSettings(blur=3)),
    BlurNetRow("box5", "box 5x5 after conv1", BlurNetSettings(blur=5)),
    BlurNetRow("box7", "box 7x7 after conv1", BlurNetSettings(blur=7)),
    BlurNetRow("tv-1e-4", "TV 1e-4 on conv1 maps", BlurNetSettings(tv=1e-4)),
    BlurNetRow("tv-1e-5", "TV 1e-5 on conv1 maps", BlurNetSettings(tv=1e-5)),
    BlurNetRow(
        "learnable-linf",
        "learnable 5x5 + L-inf 0.1",
        BlurNetSettings(blur=5, kind="learnable", linf_reg=0.1),
    ),
)


@dataclass(frozen=True)
class BlurNetPreset:
    """The sizes of one preset: model, training, and both attacks.

    Args:
        widths, hidden: the smallcnn's channels and hidden units.
        epochs, batch_size, lr: clean training (Adam, one-cycle schedule).
        n_test: test images attacked by the L-inf suite (RP2 takes its victims among them).
        eps: the L-inf budget of PGD and APGD.
        pgd_steps, apgd_steps, target_classes: the default suite's iterations and
            APGD-T's target classes (PGD steps eps/8, one random start).
        backends: PGD's backends (``None``: every installed one).
        checks: run the evaluation's sanity checks.
        rp2_iter, rp2_transforms: RP2's Adam steps and transformation samples per step.
        rp2_images: RP2 victims (the first test images the model classifies right).
        rp2_targets: RP2 target classes, the first that many (``None``: every class).
        rp2_lr, rp2_lambda, rp2_norm: Adam's step, the weight and norm of
            ``lambda * ||M delta||_p``.
        nps_weight: weight of the non-printability score.
        mask_area, stickers: share of the image the sticker mask covers, its rectangles.
    """

    widths: tuple[int, int]
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    n_test: int
    eps: float
    pgd_steps: int
    apgd_steps: int
    target_classes: int
    backends: tuple[str, ...] | None
    checks: bool
    rp2_iter: int
    rp2_transforms: int
    rp2_images: int
    rp2_targets: int | None
    rp2_lr: float = 0.1
    rp2_lambda: float = 0.002
    rp2_norm: int = 2
    nps_weight: float = 1.0
    mask_area: float = 0.25
    stickers: int = 2

    def suite(self, num_classes: int) -> DefaultSuite:
        """The default L-inf suite with this preset's iterations; APGD-T aims at no more
        than the ``num_classes - 1`` other classes."""
        return DefaultSuite(
            pgd_steps=self.pgd_steps,
            pgd_restarts=1,
            apgd_steps=self.apgd_steps,
            apgd_restarts=1,
            target_classes=max(1, min(self.target_classes, num_classes - 1)),
        )

    def rp2(self, *, channels: int, num_classes: int, seed: int) -> RP2Evaluation:
        """The RP2 evaluation of this preset for images of ``channels`` channels."""
        config = RP2Config(
            max_iter=self.rp2_iter,
            learning_rate=self.rp2_lr,
            lambda_reg=self.rp2_lambda,
            norm=self.rp2_norm,
            nb_transforms=self.rp2_transforms,
            transforms=TRANSFORMS,
            nps_colors=printable_colors(channels),
            nps_weight=self.nps_weight,
            random_seed=seed,
        )
        k = self.rp2_targets
        return RP2Evaluation(
            config=config,
            area_fraction=self.mask_area,
            n_stickers=self.stickers,
            n_images=self.rp2_images,
            targets=tuple(range(min(k, num_classes))) if k is not None else None,
            seed=seed,
        )

    def config(self) -> dict[str, Any]:
        """Every size as plain JSON data (part of each row's config)."""
        out = asdict(self)
        out["transforms"] = asdict(TRANSFORMS)
        out["hf_radius"] = HF_RADIUS
        return out


#: Digits, seconds per row on a CPU: every row of the table within about a minute.
QUICK = BlurNetPreset(
    widths=(16, 32),
    hidden=64,
    epochs=8,
    batch_size=64,
    lr=3e-3,
    n_test=200,
    eps=0.1,
    pgd_steps=10,
    apgd_steps=20,
    target_classes=3,
    backends=("art",),
    checks=False,
    rp2_iter=40,
    rp2_transforms=4,
    rp2_images=40,
    rp2_targets=4,
)
#: The study: README's Fashion-MNIST optimiser (clean training, as BlurNet), full attacks.
FULL = BlurNetPreset(
    widths=(32, 64),
    hidden=128,
    epochs=14,
    batch_size=128,
    lr=2e-3,
    n_test=500,
    eps=0.03,
    pgd_steps=50,
    apgd_steps=100,
    target_classes=9,
    backends=None,
    checks=True,
    # RP2 costs images x targets x iterations x transforms forward-backward passes:
    # 50 x 9 x 150 x 8 = 540,000 per row (about 4 minutes on 2 CPU cores)
    rp2_iter=150,
    rp2_transforms=8,
    rp2_images=50,
    rp2_targets=None,
)
_PRESETS = {"quick": QUICK, "full": FULL}

#: Table 2 of the source (white box, LISA stop signs).
_SOURCE: dict[str, dict[str, str]] = {
    "baseline": {"clean": "91", "rp2_avg": "49.18", "rp2_worst": "90", "l2": "0.207"},
    "box3": {"clean": "86.3", "rp2_avg": "30", "rp2_worst": "55", "l2": "0.201"},
    "box5": {"clean": "86.3", "rp2_avg": "24.11", "rp2_worst": "47.5", "l2": "0.189"},
    "box7": {"clean": "87", "rp2_avg": "11.61", "rp2_worst": "30", "l2": "0.203"},
    "tv-1e-4": {"clean": "85.6", "rp2_avg": "7.92", "rp2_worst": "17.5", "l2": "0.224"},
    "tv-1e-5": {"clean": "82.3", "rp2_avg": "8.47", "rp2_worst": "30", "l2": "0.199"},
    "learnable-linf": {
        "clean": "86.3†",
        "rp2_avg": "24.11†",
        "rp2_worst": "47.5†",
        "l2": "0.189†",
    },
}


def printable_colors(channels: int) -> list[list[float]]:
    """The printable colours of the NPS term: every corner of ``[0.1, 0.9]^C`` (a printer
    reaches neither pure black nor pure white) and mid grey.

    Example:
        >>> len(printable_colors(3)), printable_colors(3)[-1]
        (9, [0.5, 0.5, 0.5])
    """
    c = check_positive_int("channels", channels)
    corners = [list(p) for p in itertools.product((0.1, 0.9), repeat=c)]
    return [*corners, [0.5] * c]


def binomial_se(p: float, n: int) -> float:
    """Standard error ``sqrt(p (1 - p) / n)`` of a share ``p`` measured on ``n`` trials.

    Example:
        >>> binomial_se(0.5, 100)
        0.05
    """
    n = check_positive_int("n", n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a share in [0, 1], got {p!r}")
    return math.sqrt(p * (1.0 - p) / n)


def differs(a: float, b: float, se_a: float, se_b: float, z: float = Z) -> bool:
    """Whether ``a`` and ``b`` differ by more than ``z`` standard errors of their
    difference, ``z * sqrt(se_a**2 + se_b**2)``.

    Example:
        >>> differs(0.5, 0.3, 0.05, 0.05), differs(0.5, 0.4, 0.05, 0.05)
        (True, False)
    """
    return abs(a - b) > z * math.hypot(se_a, se_b)


def _hf(x: torch.Tensor) -> float:
    """Mean high-frequency energy share (above :data:`HF_RADIUS`) of the images or maps."""
    return float(high_frequency_energy_ratio(x, HF_RADIUS).mean())


def spectral_cells(
    model: nn.Module, rp2: RP2Evaluation, x: torch.Tensor, y: torch.Tensor, *, num_classes: int
) -> dict[str, float]:
    """High-frequency shares of RP2's victims and of their stickered versions, at the
    input and at the first convolution's maps (after its low-pass layer, if any).

    The victims are ``rp2``'s (the first ``n_images`` of ``x`` the model classifies
    right); the stickered images are RP2 with ``rp2``'s mask and settings, each victim
    aimed at the next class, ``(y + 1) mod num_classes``.
    """
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    correct = (predict(model, x) == y).nonzero().flatten()[: rp2.n_images]
    xs, ys = x[correct], y[correct]
    mask = torch.from_numpy(rp2.mask((int(x.shape[-2]), int(x.shape[-1]))))
    x_adv = rp2_attack(model, xs, (ys + 1) % num_classes, mask, config=rp2.config)
    return {
        "hf_in_clean": _hf(xs),
        "hf_in_rp2": _hf(x_adv),
        "hf_l1_clean": _hf(layer_features(model, None, xs)),
        "hf_l1_rp2": _hf(layer_features(model, None, x_adv)),
    }


def _preset(ctx: TableContext) -> BlurNetPreset:
    return _PRESETS[ctx.preset]


def _mean(row: Mapping[str, Any], key: str) -> float:
    value = row["cells"][key]["mean"]
    return float(value) if value is not None else math.nan


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


class BlurNetTable(Table):
    """Raju & Lipasti 2019, Table 2: low-pass layers after the first convolution against
    RP2 stickers, and the L-inf worst case the paper did not measure."""

    name: ClassVar[str] = "blurnet"
    title: ClassVar[str] = "BlurNet: low-pass filtering of the first layer's maps vs RP2 stickers"
    source: ClassVar[str] = (
        'Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019, '
        "Table 2 (white-box evaluation), https://arxiv.org/abs/1908.02256"
    )
    source_setting: ClassVar[str] = (
        "LISA traffic signs (top 18 classes), a 4-layer CNN trained clean, white-box "
        "targeted RP2 stickers on a victim set of 40 stop signs, success averaged over "
        "the target classes (worst: the highest target), L2 dissimilarity "
        "||x - x_adv|| / ||x_adv||; no L-inf attack. Its k x k rows are depthwise k x k "
        "layers after the first convolution listed with a regularisation weight "
        "(3x3: 1e-5, 5x5 and 7x7: 0.1); we set them beside our fixed box filters of the "
        "same size. † our learnable 5x5 + L-inf 0.1 row is shown beside the source's "
        "5x5 row (alpha 0.1), the same numbers: the source has no separate row for it."
    )
    columns: ClassVar[tuple[Column, ...]] = (
        Column("clean", "legitimate acc."),
        Column("rp2_avg", "RP2 avg success"),
        Column("rp2_worst", "RP2 worst success"),
        Column("l2", "L2 dissimilarity", ""),
        Column("pgd", "PGD acc."),
        Column("worst", "strong worst case"),
        Column("hf_in_clean", "HF share input clean"),
        Column("hf_in_rp2", "HF share input RP2"),
        Column("hf_l1_clean", "HF share conv1 clean"),
        Column("hf_l1_rp2", "HF share conv1 RP2"),
    )
    datasets: ClassVar[tuple[str, ...]] = (
        "digits",
        "fashion-mnist",
        "mnist",
        "cifar10",
        "folder",
    )

    def jobs(self, ctx: TableContext) -> list[RowJob]:
        preset = _preset(ctx).config()
        return [
            RowJob(
                row=row.id,
                label=row.label,
                seed=seed,
                config={
                    "dataset": ctx.dataset,
                    "blurnet": row.blurnet.as_dict() if row.blurnet is not None else None,
                    "preset": preset,
                },
            )
            for row in ROWS
            for seed in range(ctx.seeds)
        ]

    def run_row(self, job: RowJob, ctx: TableContext, row_dir: Path) -> RowResult:
        p = _preset(ctx)
        data = ctx.data()
        blurnet = next(r.blurnet for r in ROWS if r.id == job.row)
        recipe = ModelRecipe(model="smallcnn", widths=p.widths, hidden=p.hidden, blurnet=blurnet)
        training = TrainingRecipe(
            method="none",
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            val_size=0,
            seed=job.seed,
        )
        run = train_row(recipe, training, ctx, row_dir)
        model = run.model.eval()
        rp2 = p.rp2(channels=data.input_shape[0], num_classes=data.num_classes, seed=job.seed)
        report = evaluate_row(
            model,
            ctx,
            n_test=p.n_test,
            seed=job.seed,
            eps=[p.eps],
            suite=p.suite(data.num_classes),
            backends=list(p.backends) if p.backends is not None else None,
            checks=p.checks,
            rp2=rp2,
        )
        n = min(p.n_test, len(data.x_test))
        x, y = torch.from_numpy(data.x_test[:n]), torch.from_numpy(data.y_test[:n])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spectra = spectral_cells(model, rp2, x, y, num_classes=data.num_classes)
        res = report.rp2
        if res is None:
            raise RuntimeError(f"row {job.key}: the evaluation returned no RP2 results")
        cells: dict[str, float | None] = {
            "clean": clean_accuracy(model, data.x_test, data.y_test, ctx.device),
            "rp2_avg": res["average"],
            "rp2_worst": res["worst"],
            "l2": res["l2_dissimilarity"],
            "pgd": attack_accuracy(report, "pgd-linf", p.eps),
            "worst": worst_case(report, p.eps),
            **spectra,
        }
        extra = {
            "rp2_per_target": res["per_target"],
            "rp2_pairs": sum(int(t["n"]) for t in res["per_target"]),
            "rp2_victims": res["n_images"],
            "rp2_worst_target": res["worst_target"],
            "rp2_mask_fraction": res["mask_fraction"],
            "n_test": n,
            "attacks": {f"{r.attack}/{r.backend}": r.robust_accuracy for r in report.results},
            "status": report.status,
        }
        return RowResult(job, cells, extra, 0.0)

    def setting(self, ctx: TableContext) -> str:
        p = _preset(ctx)
        targets = "every class" if p.rp2_targets is None else f"the first {p.rp2_targets}"
        backends = "every installed backend" if p.backends is None else ", ".join(p.backends)
        return (
            f"{ctx.dataset}; smallcnn (two conv3x3-BN-ReLU-maxpool stages, widths "
            f"{p.widths[0]}/{p.widths[1]}, hidden {p.hidden}) trained clean for {p.epochs} "
            f"epochs (Adam, one-cycle lr {p.lr:g}, batch {p.batch_size}); the low-pass layer "
            "right after the first convolution (reflect padding), TV on that layer's maps, "
            "the L-inf penalty on the learnable kernel. RP2 (targeted, white box): victims "
            f"the first {p.rp2_images} test images classified right, targets {targets}, "
            f"{p.rp2_iter} Adam steps of {p.rp2_lr:g}, lambda {p.rp2_lambda:g} on "
            f"||M delta||_{p.rp2_norm}, {p.rp2_transforms} transformations per step "
            f"(rotation ±{TRANSFORMS.rotation[1]:g} deg, scale {TRANSFORMS.scale[0]:g}-"
            f"{TRANSFORMS.scale[1]:g}, shift ±{TRANSFORMS.translation[1]:g}, brightness "
            f"±{TRANSFORMS.brightness[1]:g}, contrast {TRANSFORMS.contrast[0]:g}-"
            f"{TRANSFORMS.contrast[1]:g}, applied to the whole image), NPS weight "
            f"{p.nps_weight:g} towards the corners of [0.1, 0.9]^C and mid grey, one mask of "
            f"{p.stickers} rectangles covering {p.mask_area:.0%} of the image (seeded by the "
            f"row's seed). On small grey images (digits, Fashion-MNIST) the stickers cover "
            f"{p.mask_area:.0%} of the image and a large share of the object, nothing like "
            "a sticker on a road sign: the RP2 columns measure a crude analogue. Success = "
            "the target class predicted (BlurNet counts any changed prediction, which can "
            "only be higher). L-inf: the default "
            f"suite at eps {p.eps:g} on the first {p.n_test} test images (PGD {p.pgd_steps} "
            f"steps of eps/8 with a random start through {backends}; APGD-CE and APGD-T "
            f"({p.target_classes} targets) {p.apgd_steps} steps each); strong worst case = "
            "per image, any of them. HF share = energy above "
            f"{HF_RADIUS:g} cycles/pixel (mean removed) of RP2's victims and of their "
            "stickers aimed at the next class, at the input and at the first convolution's "
            "maps (after the low-pass layer)."
        )

    def source_cells(self) -> Mapping[str, Mapping[str, str]]:
        return _SOURCE

    def findings(self, rows: Sequence[Mapping[str, Any]], ctx: TableContext) -> list[str]:
        by_id = {r["row"]: r for r in rows}
        base = by_id.get("baseline")
        if base is None:
            return []
        others = [r for rid, r in by_id.items() if rid != "baseline"]
        p = _preset(ctx)
        data = ctx.data()
        noise = _Noise(
            rp2=_rp2_pairs(p, data.num_classes),
            linf=min(p.n_test, len(data.x_test)),
            clean=len(data.x_test),
        )
        return [
            _rp2_finding(others, base, noise),
            _linf_finding(others, base, noise, p.eps),
            _clean_finding(others, base, noise),
            _spectral_finding(by_id, base, noise),
        ]

    def figures(
        self, results: Sequence[RowResult], ctx: TableContext, out: Path
    ) -> Mapping[str, Callable[[Path], None]]:
        means = row_means(results)
        return {"blurnet.png": lambda path: _plot(means, path)}


class _Noise(NamedTuple):
    """Trials behind one row's shares at one seed: RP2 pairs, L-inf and clean images."""

    rp2: int
    linf: int
    clean: int


def _rp2_pairs(p: BlurNetPreset, classes: int) -> int:
    """(victim, target) pairs behind one row's average RP2 success, about: each target
    attacks the victims of the other classes."""
    targets = classes if p.rp2_targets is None else min(p.rp2_targets, classes)
    return max(1, round(p.rp2_images * targets * (classes - 1) / classes))


def _se(row: Mapping[str, Any], key: str, n: int) -> float:
    """Standard error of a share cell: binomial on ``n`` trials per seed, or the spread
    over seeds if that is larger."""
    cell = row["cells"][key]
    seeds = max(int(cell["n"]), 1)
    se = binomial_se(min(max(float(cell["mean"]), 0.0), 1.0), n * seeds)
    if cell["std"] is not None and seeds > 1:
        se = max(se, float(cell["std"]) / math.sqrt(seeds))
    return se


def _compare(
    row: Mapping[str, Any], base: Mapping[str, Any], key: str, n: int
) -> tuple[float, bool]:
    """``row - base`` on ``key``, and whether it is beyond noise."""
    a, b = _mean(row, key), _mean(base, key)
    return a - b, differs(a, b, _se(row, key, n), _se(base, key, n))


def _split(
    rows: Sequence[Mapping[str, Any]], base: Mapping[str, Any], key: str, n: int
) -> tuple[list[str], list[str], list[str]]:
    """Labels (with their value) of the rows below, within and above noise of ``base``."""
    lower: list[str] = []
    same: list[str] = []
    higher: list[str] = []
    for row in rows:
        delta, beyond = _compare(row, base, key, n)
        text = f"{row['label']} {_pct(_mean(row, key))}"
        (lower if beyond and delta < 0 else higher if beyond else same).append(text)
    return lower, same, higher


def _listing(lower: list[str], same: list[str], higher: list[str]) -> str:
    groups = (("lower beyond noise", lower), ("within noise", same), ("higher", higher))
    return "; ".join(f"{name}: {', '.join(items)}" for name, items in groups if items)


def _rp2_finding(rows: Sequence[Mapping[str, Any]], base: Mapping[str, Any], noise: _Noise) -> str:
    lower, same, higher = _split(rows, base, "rp2_avg", noise.rp2)
    if len(lower) == len(rows):
        verdict = "every defended row lowers RP2 success, as the source reports"
    elif lower:
        verdict = (
            f"only {len(lower)} of {len(rows)} defended rows lower RP2 success beyond noise; "
            "the source reports a drop for all"
        )
    else:
        verdict = "no defended row lowers RP2 success beyond noise: we do not reproduce the drop"
    return (
        f"RP2 average success: baseline {_pct(_mean(base, 'rp2_avg'))} (source 49.2%, its "
        f"defended rows 7.9-30%); {_listing(lower, same, higher)}. So {verdict} (noise: 2 "
        f"standard errors of {noise.rp2} victim-target pairs per row and seed)."
    )


def _linf_finding(
    rows: Sequence[Mapping[str, Any]], base: Mapping[str, Any], noise: _Noise, eps: float
) -> str:
    lower, same, higher = _split(rows, base, "worst", noise.linf)
    rp2_lower = {r["label"] for r in rows if _direction(r, base, "rp2_avg", noise.rp2) < 0}
    linf_higher = {r["label"] for r in rows if _direction(r, base, "worst", noise.linf) > 0}
    text = (
        f"Strong L-inf worst case at eps {eps:g} (the source measured none): baseline "
        f"{_pct(_mean(base, 'worst'))}; {_listing(lower, same, higher)}."
    )
    rp2_only = sorted(rp2_lower - linf_higher)
    if rp2_only:
        text += (
            " Lower RP2 success without higher L-inf robustness: "
            + ", ".join(rp2_only)
            + " (the filter does not make the model robust in general)."
        )
    elif rp2_lower:
        text += " Every row with lower RP2 success is also more robust to L-inf attacks."
    return text + _pgd_gap([*rows, base], noise.linf)


def _direction(row: Mapping[str, Any], base: Mapping[str, Any], key: str, n: int) -> int:
    """-1 / 0 / +1: ``row`` below, within noise of, above ``base`` on ``key``."""
    delta, beyond = _compare(row, base, key, n)
    return 0 if not beyond else (1 if delta > 0 else -1)


def _pgd_gap(rows: Sequence[Mapping[str, Any]], n: int) -> str:
    """A sentence on whether PGD alone overestimates the strong worst case."""
    gaps = [(_mean(r, "pgd") - _mean(r, "worst"), r) for r in rows]
    gap, row = max(gaps, key=lambda g: g[0])
    if differs(_mean(row, "pgd"), _mean(row, "worst"), _se(row, "pgd", n), _se(row, "worst", n)):
        return (
            f" PGD alone overestimates robustness by up to {100 * gap:.1f} points "
            f"({row['label']}): APGD-CE/APGD-T find more."
        )
    return (
        " PGD alone and the strong worst case agree within noise "
        f"(largest gap {100 * gap:.1f} points)."
    )


def _clean_finding(
    rows: Sequence[Mapping[str, Any]], base: Mapping[str, Any], noise: _Noise
) -> str:
    lower, same, higher = _split(rows, base, "clean", noise.clean)
    values = [_mean(r, "clean") for r in rows]
    return (
        f"Legitimate accuracy: baseline {_pct(_mean(base, 'clean'))}, defended rows "
        f"{_pct(min(values))}-{_pct(max(values))} (source: 91% to 82.3-87%, a 4-9 point "
        f"cost); {_listing(lower, same, higher)}."
    )


#: Change of a high-frequency share counted as a change (it has no sampling noise of its own).
HF_TOL = 0.01


def _spectral_finding(
    by_id: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any], noise: _Noise
) -> str:
    added = _mean(base, "hf_in_rp2") - _mean(base, "hf_in_clean")
    premise = (
        "the stickers raise the input's high-frequency share"
        if added > HF_TOL
        else "the stickers do not raise the input's high-frequency share"
    )
    text = (
        f"Spectra: at the baseline {premise} ({_mean(base, 'hf_in_clean'):.3f} -> "
        f"{_mean(base, 'hf_in_rp2'):.3f}; the source's premise) and the first layer's maps' "
        f"share goes {_mean(base, 'hf_l1_clean'):.3f} -> {_mean(base, 'hf_l1_rp2'):.3f}."
    )
    for group, ids in (("box", ("box3", "box5", "box7")), ("TV", ("tv-1e-4", "tv-1e-5"))):
        rows = [by_id[i] for i in ids if i in by_id]
        if not rows:
            continue
        shares = ", ".join(f"{_mean(r, 'hf_l1_rp2'):.3f}" for r in rows)
        ref = _mean(base, "hf_l1_rp2")
        cut = [_mean(r, "hf_l1_rp2") < ref - HF_TOL for r in rows]
        verdict = (
            "all lower: the maps lose high frequencies"
            if all(cut)
            else "none lower: the maps keep their high frequencies"
            if not any(cut)
            else "only some lower"
        )
        text += f" {group} rows' stickered conv1 maps: {shares} vs baseline {ref:.3f} ({verdict})."
        if all(cut):
            text += _filtered_but(rows, base, noise)
    return text


def _filtered_but(rows: Sequence[Mapping[str, Any]], base: Mapping[str, Any], noise: _Noise) -> str:
    """Whether the rows whose maps lost high frequencies also lost RP2 success."""
    dropped = [r for r in rows if _direction(r, base, "rp2_avg", noise.rp2) < 0]
    if len(dropped) == len(rows):
        return " Their RP2 success drops too, as the source argues."
    return (
        f" Yet {len(rows) - len(dropped)} of them keep RP2 success within noise of the "
        "baseline or above it: removing the high frequencies did not stop the stickers here."
    )


def row_means(results: Sequence[RowResult]) -> dict[str, tuple[str, dict[str, float]]]:
    """Row id -> (label, column key -> mean over seeds), in table order; cells without a
    value are left out.

    Example:
        >>> job = RowJob(row="a", label="A", seed=0)
        >>> r = [RowResult(job, {"x": 0.2}, {}, 1.0), RowResult(job, {"x": 0.4}, {}, 1.0)]
        >>> row_means(r)["a"][1]["x"]
        0.30000000000000004
    """
    values: dict[str, dict[str, list[float]]] = {}
    labels: dict[str, str] = {}
    for r in results:
        labels.setdefault(r.job.row, r.job.label)
        cells = values.setdefault(r.job.row, {})
        for key, value in r.cells.items():
            if value is not None:
                cells.setdefault(key, []).append(float(value))
    return {
        row: (labels[row], {k: float(np.mean(v)) for k, v in cells.items()})
        for row, cells in values.items()
    }


def _plot(means: Mapping[str, tuple[str, Mapping[str, float]]], path: Path) -> None:
    """RP2 success per row (ours and the source's) and the high-frequency shares."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ids = list(means)
    xs = np.arange(len(ids))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2))
    ours = [means[i][1].get("rp2_avg", math.nan) for i in ids]
    src = [
        float(_SOURCE[i]["rp2_avg"].rstrip("†")) / 100 if i in _SOURCE else math.nan for i in ids
    ]
    ax1.bar(xs - 0.2, ours, 0.4, label="RP2 average (ours)")
    ax1.bar(xs + 0.2, src, 0.4, label="RP2 average (source)", color="0.7")
    ax1.scatter(
        xs - 0.2,
        [means[i][1].get("rp2_worst", math.nan) for i in ids],
        marker="_",
        s=300,
        color="k",
        label="RP2 worst target (ours)",
        zorder=3,
    )
    ax1.scatter(
        xs - 0.2,
        [means[i][1].get("worst", math.nan) for i in ids],
        marker="o",
        color="C3",
        label="L-inf strong worst-case accuracy",
        zorder=3,
    )
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("share")
    ax1.set_title("RP2 success (lower is better) and L-inf accuracy")
    keys = ("hf_in_clean", "hf_in_rp2", "hf_l1_clean", "hf_l1_rp2")
    names = ("input, clean", "input, RP2", "conv1 maps, clean", "conv1 maps, RP2")
    for j, (key, name) in enumerate(zip(keys, names, strict=True)):
        ax2.bar(
            xs + (j - 1.5) * 0.2, [means[i][1].get(key, math.nan) for i in ids], 0.2, label=name
        )
    ax2.set_ylabel(f"energy share above {HF_RADIUS:g} cycles/px")
    ax2.set_title("High-frequency share")
    for ax in (ax1, ax2):
        ax.set_xticks(xs)
        ax.set_xticklabels([means[i][0] for i in ids], rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
