"""Robust Physical Perturbations (RP2) in plain torch, and the metrics BlurNet reports.

RP2 (Eykholt et al., CVPR 2018) looks for a perturbation ``delta`` confined to a mask
``M`` (the "stickers") that fools a classifier under a distribution of physical
conditions, here simulated by random affine warps and lighting changes ``t``:

    min_delta  lambda * ||M * delta||_p + E_t J(f(t(x + M * delta)), y*)
               [+ nps_weight * NPS(x + M * delta)]

``J`` is the cross-entropy of the target ``y*`` (targeted); untargeted, ``J`` drives the
true label's probability down through ``-log(1 - p_y)``, which orders solutions like
minus the true label's cross-entropy but keeps a usable gradient on confidently
classified images, where ``-CE`` saturates to a zero gradient in float32. NPS is the
non-printability score of Sharif et al. (2016), which pulls the sticker pixels towards
a set of printable colours. The expectation is estimated with ``nb_transforms`` samples
per step and minimised with Adam.

The RP2 paper draws ``x`` from photographs of the object under varying conditions and
aligns the sticker with each photograph; with one digital image per example, this
module applies the sampled transforms to the whole perturbed image instead (an
expectation over transformation, as in Athalye et al., 2018).

This module knows nothing of ART; :mod:`art_denoise.attacks.evasion.rp2_pytorch` wraps it.

| Paper link: https://arxiv.org/abs/1707.08945 (RP2)
| BlurNet metrics: https://arxiv.org/abs/1908.02256
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from art_denoise._torch import eval_forward
from art_denoise._validation import (
    as_float_images,
    as_labels,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from art_denoise.attacks._transforms import (
    TransformRanges,
    apply_transforms,
    check_range,
    sample_transforms,
)
from art_denoise.attacks.backends.base import attack_guard, infer_num_classes

__all__ = [
    "RP2Config",
    "as_mask",
    "non_printability_score",
    "per_target_success",
    "rp2_attack",
    "rp2_metrics",
    "sticker_mask",
]

#: The norms of the regulariser: ART's spellings -> the ``ord`` of ``vector_norm``.
NORMS: dict[Any, float] = {1: 1.0, 2: 2.0, np.inf: math.inf, "inf": math.inf}


def _check_norm(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"unknown norm {value!r}; expected 1, 2 or np.inf")
    try:
        return NORMS[value]
    except (KeyError, TypeError):
        raise ValueError(f"unknown norm {value!r}; expected 1, 2 or np.inf") from None


def _check_colors(value: Any, clip_values: tuple[float, float]) -> tuple[tuple[float, ...], ...]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes)):
        raise TypeError(f"nps_colors must be a (K, C) array of colours, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"nps_colors must be a (K, C) array of colours, got {value!r}") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"nps_colors must have shape (K, C) with K >= 1, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("nps_colors contains NaN or inf values")
    lo, hi = clip_values
    if arr.min() < lo or arr.max() > hi:
        raise ValueError(
            f"nps_colors has values in [{arr.min():.4g}, {arr.max():.4g}], "
            f"outside clip_values {clip_values}"
        )
    return tuple(tuple(float(v) for v in row) for row in arr)


@dataclass(frozen=True)
class RP2Config:
    """The settings of an RP2 attack, checked on construction.

    Args:
        max_iter: Adam steps per batch.
        learning_rate: Adam's step size (in input units).
        lambda_reg: weight ``lambda`` of the perturbation norm, ``>= 0``.
        norm: ``p`` of ``||M * delta||_p``: 1, 2 or ``np.inf`` (``"inf"`` also accepted);
            stored as a float.
        nb_transforms: samples of the transformation distribution per step.
        transforms: the ranges of the transformation distribution (identity by default).
        nps_colors: optional printable colours, shape (K, C), within ``clip_values``; when
            given, the non-printability score is added with weight ``nps_weight``. Stored
            as a tuple of tuples.
        nps_weight: weight of the non-printability score, ``>= 0``.
        clip_values: the valid input range ``(min, max)``.
        batch_size: images optimised together (each has its own ``delta``).
        random_seed: seeds the transformation samples.

    Raises:
        TypeError, ValueError: a setting of the wrong type or out of range; the message
            names it and the value received.
    """

    max_iter: int = 100
    learning_rate: float = 0.1
    lambda_reg: float = 0.002
    norm: float | str = 2.0
    nb_transforms: int = 8
    transforms: TransformRanges = field(default_factory=TransformRanges)
    nps_colors: np.ndarray | Sequence[Sequence[float]] | None = None
    nps_weight: float = 1.0
    clip_values: tuple[float, float] = (0.0, 1.0)
    batch_size: int = 128
    random_seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_iter", check_positive_int("max_iter", self.max_iter))
        set_(self, "learning_rate", check_positive("learning_rate", self.learning_rate))
        set_(self, "lambda_reg", check_non_negative("lambda_reg", self.lambda_reg))
        set_(self, "norm", _check_norm(self.norm))
        set_(self, "nb_transforms", check_positive_int("nb_transforms", self.nb_transforms))
        if not isinstance(self.transforms, TransformRanges):
            raise TypeError(
                f"transforms must be a TransformRanges, got {type(self.transforms).__name__}"
            )
        clip = check_range("clip_values", self.clip_values)
        if not clip[0] < clip[1]:
            raise ValueError(f"clip_values must have min < max, got {self.clip_values!r}")
        set_(self, "clip_values", clip)
        set_(self, "nps_weight", check_non_negative("nps_weight", self.nps_weight))
        if self.nps_colors is not None:
            set_(self, "nps_colors", _check_colors(self.nps_colors, clip))
        set_(self, "batch_size", check_positive_int("batch_size", self.batch_size))
        set_(self, "random_seed", check_positive_int("random_seed", self.random_seed, minimum=0))


def as_mask(mask: Any, shape: Sequence[int]) -> torch.Tensor:
    """Check a 0/1 mask and return it as a float32 tensor expanded to ``shape``.

    Args:
        mask: numpy array or tensor (bool or numeric) of shape (H, W), (C, H, W) or
            (N, C, H, W), broadcastable to ``shape``; every value must be 0 or 1.
        shape: the images' shape (N, C, H, W).

    Returns:
        A contiguous float32 CPU tensor of shape ``shape``.

    Raises:
        TypeError: not an array or tensor.
        ValueError: a shape that does not broadcast to ``shape``, or a value other than 0/1.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(mask, np.ndarray):
        if mask.dtype == object:
            raise TypeError("mask must be a numeric or boolean array, got dtype object")
        t = torch.from_numpy(np.ascontiguousarray(mask))
    elif isinstance(mask, torch.Tensor):
        t = mask.detach().cpu()
    else:
        raise TypeError(f"mask must be a numpy array or torch tensor, got {type(mask).__name__}")
    try:
        broadcast = tuple(torch.broadcast_shapes(t.shape, shape))
    except RuntimeError:
        broadcast = ()
    if t.ndim not in (2, 3, 4) or broadcast != shape:
        raise ValueError(
            f"mask of shape {tuple(t.shape)} does not broadcast to the images' shape {shape}; "
            "expected (H, W), (C, H, W) or (N, C, H, W)"
        )
    t = t.to(torch.float32)
    bad = ~((t == 0) | (t == 1))
    if bool(bad.any()):
        examples = torch.unique(t[bad])[:5].tolist()
        raise ValueError(f"mask must hold only 0 and 1, got values such as {examples}")
    return t.expand(shape).contiguous()


def sticker_mask(
    shape: Sequence[int],
    n_stickers: int = 2,
    area_fraction: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Random rectangular stickers: a 0/1 mask of shape (H, W).

    Each sticker has area ``area_fraction * H * W / n_stickers`` (rounded to whole pixels)
    and a random aspect ratio in [1/2, 2]; stickers are placed uniformly at random,
    avoiding overlap when 50 tries allow it, so the total area is about
    ``area_fraction * H * W``.

    Args:
        shape: (H, W), or any shape whose last two entries are H and W (e.g. ``x.shape``).
        n_stickers: number of rectangles, ``>= 1``.
        area_fraction: total sticker area as a fraction of the image, in (0, 1].
        seed: seeds the placement; the same seed gives the same mask.

    Returns:
        A float32 array of 0s and 1s, shape (H, W).

    Example:
        >>> int(sticker_mask((8, 8), n_stickers=1, area_fraction=0.25).sum())
        16
    """
    if len(shape) < 2:
        raise ValueError(f"shape must end with (H, W), got {tuple(shape)!r}")
    h = check_positive_int("height", shape[-2])
    w = check_positive_int("width", shape[-1])
    n_stickers = check_positive_int("n_stickers", n_stickers)
    area_fraction = check_positive("area_fraction", area_fraction)
    if area_fraction > 1:
        raise ValueError(f"area_fraction must be in (0, 1], got {area_fraction!r}")
    seed = check_positive_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    per = area_fraction * h * w / n_stickers
    mask = np.zeros((h, w), dtype=np.float32)
    for _ in range(n_stickers):
        ratio = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        sh = int(min(max(round(math.sqrt(per * ratio)), 1), h))
        sw = int(min(max(round(per / sh), 1), w))
        top = left = 0
        for _ in range(50):
            top = int(rng.integers(0, h - sh + 1))
            left = int(rng.integers(0, w - sw + 1))
            if not mask[top : top + sh, left : left + sw].any():
                break
        mask[top : top + sh, left : left + sw] = 1.0
    return mask


def non_printability_score(
    x: torch.Tensor, mask: torch.Tensor, colors: torch.Tensor
) -> torch.Tensor:
    """Per-image non-printability score of the masked pixels (Sharif et al., 2016).

    ``NPS(p) = prod_k ||p - c_k||_2`` for a pixel colour ``p`` (a C-vector) and printable
    colours ``c_1..c_K``; it is 0 exactly when ``p`` is a printable colour. The score of an
    image is the mean over its masked pixels (a pixel is masked if any channel is).

    Args:
        x: images, (N, C, H, W).
        mask: 0/1 mask of the same shape.
        colors: printable colours, (K, C).

    Returns:
        Shape (N,); 0 for an image with no masked pixel.

    | Paper link: https://dl.acm.org/doi/10.1145/2976749.2978392
    """
    pixels = x.permute(0, 2, 3, 1).unsqueeze(-2)  # (N, H, W, 1, C)
    dist = torch.linalg.vector_norm(pixels - colors.to(x), ord=2, dim=-1)  # (N, H, W, K)
    per_pixel = dist.prod(dim=-1)
    where = mask.amax(dim=1).to(x.dtype)  # (N, H, W)
    return (per_pixel * where).sum(dim=(1, 2)) / where.sum(dim=(1, 2)).clamp_min(1.0)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def rp2_attack(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    *,
    targeted: bool = True,
    config: RP2Config | None = None,
    verbose: bool = False,
) -> torch.Tensor:
    """Run RP2 on a batch of images and return ``clip(x + M * delta)``.

    Args:
        model: maps (B, C, H, W) inputs within ``config.clip_values`` to (B, classes) logits.
            It runs in eval mode with frozen parameters; afterwards every submodule's mode,
            every ``requires_grad`` flag and every ``.grad`` are as they were.
        x: images, (N, C, H, W), within ``config.clip_values``.
        y: target labels (targeted) or true labels (untargeted), shape (N,) or one-hot.
        mask: 0/1 mask broadcastable to (N, C, H, W) (see :func:`as_mask`).
        targeted: minimise the target's cross-entropy (True) or lower the true label's
            probability, minimising ``-log(1 - p_y)`` (False).
        config: the settings; ``RP2Config()`` if omitted.
        verbose: show a progress bar over batches.

    Returns:
        float32 adversarial images on ``x``'s device (a numpy input gives a CPU tensor).
        Pixels where the mask is 0 are bit-identical to ``x``; all values lie within
        ``config.clip_values``. The same seed and inputs give the same output.

    Raises:
        TypeError, ValueError: bad images, labels, mask or model output.

    Example:
        >>> from art_denoise.models import create_model
        >>> model = create_model("smallcnn", input_shape=(1, 8, 8)).eval()
        >>> x = torch.rand(2, 1, 8, 8)
        >>> m = torch.zeros(8, 8)
        >>> m[:4, :4] = 1
        >>> adv = rp2_attack(model, x, torch.tensor([3, 3]), m, config=RP2Config(max_iter=5))
        >>> bool((adv[:, :, 4:] == x[:, :, 4:]).all())
        True
    """
    cfg = config if config is not None else RP2Config()
    if not isinstance(cfg, RP2Config):
        raise TypeError(f"config must be an RP2Config, got {type(cfg).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be a bool, got {type(targeted).__name__} {targeted!r}")
    x_in = as_float_images(x, clip_values=cfg.clip_values)
    m_all = as_mask(mask, x_in.shape)
    colors = None
    if cfg.nps_colors is not None:
        colors = torch.tensor(cfg.nps_colors, dtype=torch.float32)
        if colors.shape[1] != x_in.shape[1]:
            raise ValueError(
                f"nps_colors have {colors.shape[1]} channels but x has {x_in.shape[1]}"
            )
    if len(x_in) == 0:
        as_labels(y, n=0)
        return x_in.clone()
    device = _model_device(model)
    xt = x_in.to(device)
    generator = torch.Generator().manual_seed(cfg.random_seed)
    out = xt.clone()
    with attack_guard(model):
        num_classes = infer_num_classes(model, xt)
        yt = as_labels(y, n=len(xt), num_classes=num_classes).to(device)
        starts = range(0, len(xt), cfg.batch_size)
        for start in tqdm(starts, desc="RP2", disable=not verbose):
            sl = slice(start, start + cfg.batch_size)
            out[sl] = _attack_batch(
                model,
                xt[sl],
                yt[sl],
                m_all[sl].to(device),
                colors.to(device) if colors is not None else None,
                targeted=targeted,
                cfg=cfg,
                generator=generator,
            )
    return out.to(x_in.device)


def _true_label_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``-log(1 - p_y)``, computed as ``logsumexp(z) - logsumexp(z_j, j != y)``.

    Minimising it lowers ``p_y`` just as maximising the cross-entropy ``-log p_y`` does,
    but its gradient does not vanish when the softmax saturates: for a confident
    prediction ``p_y`` rounds to 1 in float32, the gradient of ``-CE`` is ~1e-13 and Adam's
    ``eps`` stops the attack (10 of 60 digits test images never moved).
    """
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -math.inf)
    return torch.logsumexp(logits, dim=1) - torch.logsumexp(others, dim=1)


def _attack_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    colors: torch.Tensor | None,
    *,
    targeted: bool,
    cfg: RP2Config,
    generator: torch.Generator,
) -> torch.Tensor:
    lo, hi = cfg.clip_values
    b, t = x.shape[0], cfg.nb_transforms
    delta = torch.zeros_like(x, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=cfg.learning_rate)
    y_rep = y.repeat(t)
    use_nps = colors is not None and cfg.nps_weight > 0
    for _ in range(cfg.max_iter):
        masked = mask * delta
        x_adv = x + masked
        params = sample_transforms(t * b, cfg.transforms, generator, x.device)
        x_t = apply_transforms(x_adv.repeat(t, 1, 1, 1), params, cfg.clip_values)
        logits = model(x_t)
        if targeted:
            per_sample = F.cross_entropy(logits, y_rep, reduction="none")
        else:
            per_sample = _true_label_loss(logits, y_rep)
        loss = per_sample.view(t, b).mean(dim=0)
        if cfg.lambda_reg > 0:
            flat = masked.reshape(b, -1)
            loss = loss + cfg.lambda_reg * torch.linalg.vector_norm(
                flat, ord=float(cfg.norm), dim=1
            )
        if use_nps and colors is not None:
            loss = loss + cfg.nps_weight * non_printability_score(x_adv, mask, colors)
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        delta.grad = grad
        optimizer.step()
        with torch.no_grad():
            # Keep x + delta in the valid range and delta zero outside the mask.
            delta.copy_(((x + delta).clamp(lo, hi) - x) * mask)
    with torch.no_grad():
        return torch.where(mask.bool(), (x + delta).clamp(lo, hi), x)


@runtime_checkable
class Predictor(Protocol):
    """Anything with ART's ``predict(x, batch_size=...)`` returning (N, classes) scores."""

    def predict(self, x: np.ndarray, batch_size: int = ...) -> np.ndarray: ...


def _predict_labels(
    classifier_or_model: nn.Module | Predictor, x: torch.Tensor, batch_size: int
) -> torch.Tensor:
    if isinstance(classifier_or_model, nn.Module):
        device = _model_device(classifier_or_model)
        outs = [
            eval_forward(classifier_or_model, x[i : i + batch_size].to(device)).argmax(dim=1).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.int64)
    if isinstance(classifier_or_model, Predictor):
        scores = np.asarray(classifier_or_model.predict(x.cpu().numpy(), batch_size=batch_size))
        if scores.ndim != 2 or scores.shape[0] != len(x):
            raise ValueError(
                f"predict must return (N, classes) scores, got shape {scores.shape} for N={len(x)}"
            )
        return torch.from_numpy(scores.argmax(axis=1)).to(torch.int64)
    raise TypeError(
        "classifier_or_model must be a torch.nn.Module or have a predict(x, batch_size) method, "
        f"got {type(classifier_or_model).__name__}"
    )


def rp2_metrics(
    classifier_or_model: nn.Module | Predictor,
    x: torch.Tensor | np.ndarray,
    x_adv: torch.Tensor | np.ndarray,
    y_true: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray | int | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, float]:
    """The attack metrics of BlurNet (Raju & Lipasti, 2019) on one set of images.

    - ``success_rate``: untargeted ``1/N sum 1[F(x) != F(x_adv)]`` (the predictions are
      compared with each other, not with ``y_true``); targeted
      ``1/N sum 1[F(x_adv) == target]``.
    - ``l2_dissimilarity``: ``1/N sum ||x - x_adv||_2 / ||x_adv||_2``, per image over all
      its pixels; an all-zero ``x_adv`` counts 0 if it equals ``x`` and ``inf`` otherwise.
    - ``clean_accuracy`` / ``adversarial_accuracy``: ``F(x) == y_true`` and
      ``F(x_adv) == y_true``.

    Args:
        classifier_or_model: a ``nn.Module`` returning logits, or an ART classifier (anything
            with ``predict(x, batch_size=...)``).
        x, x_adv: clean and adversarial images, (N, C, H, W), N >= 1.
        y_true: true labels, (N,) or one-hot.
        target: target labels (N,) or one class for all, for a targeted attack.
        batch_size: images per forward pass.

    Returns:
        A dict with the four float metrics above.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.zeros(2, 1, 2, 2)
        >>> rp2_metrics(model, x, x, torch.tensor([0, 1]))["success_rate"]
        0.0
    """
    batch_size = check_positive_int("batch_size", batch_size)
    xt = as_float_images(x, clip_values=None)
    xa = as_float_images(x_adv, name="x_adv", clip_values=None)
    if xt.shape != xa.shape:
        raise ValueError(f"x has shape {tuple(xt.shape)} but x_adv has shape {tuple(xa.shape)}")
    if len(xt) == 0:
        raise ValueError("x is empty: the metrics need at least one image")
    yt = as_labels(y_true, n=len(xt)).cpu()
    pred_clean = _predict_labels(classifier_or_model, xt, batch_size)
    pred_adv = _predict_labels(classifier_or_model, xa, batch_size)
    if target is None:
        success = pred_clean != pred_adv
    else:
        if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            target = torch.full((len(xt),), int(target), dtype=torch.int64)
        tt = as_labels(target, n=len(xt)).cpu()
        success = pred_adv == tt
    diff = (xt - xa).reshape(len(xt), -1).to(torch.float64).cpu()
    norm_adv = xa.reshape(len(xa), -1).to(torch.float64).cpu().norm(dim=1)
    norm_diff = diff.norm(dim=1)
    ratio = torch.where(
        norm_adv > 0,
        norm_diff / norm_adv.clamp_min(1e-300),
        torch.where(norm_diff > 0, math.inf, 0.0),
    )
    return {
        "success_rate": float(success.double().mean()),
        "l2_dissimilarity": float(ratio.mean()),
        "clean_accuracy": float((pred_clean == yt).double().mean()),
        "adversarial_accuracy": float((pred_adv == yt).double().mean()),
    }


#: attack_fn(x, target_labels) -> x_adv, in the caller's array type.
AttackFn = Callable[[Any, Any], Any]


def per_target_success(
    model: nn.Module | Predictor,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    attack_fn: AttackFn,
    targets: Sequence[int] | None = None,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Targeted success per target class, and its average and worst case (BlurNet's table).

    For each target class ``t`` the images whose true label is not ``t`` are attacked
    with ``attack_fn(x_subset, targets_subset)`` (numpy in, numpy out for numpy ``x``;
    tensors otherwise) and scored with :func:`rp2_metrics`. Pass only the images the
    model classifies correctly to follow the papers' victim sets.

    Args:
        model: a ``nn.Module`` returning logits, or an ART classifier.
        x: images, (N, C, H, W).
        y: true labels, (N,) or one-hot.
        attack_fn: a targeted attack, e.g. ``lambda x, t: attack.generate(x, t)``.
        targets: the target classes; every class of the model if omitted.
        batch_size: images per forward pass of the metrics.

    Returns:
        ``{"per_target": {t: success}, "l2_per_target": {t: l2}, "n_per_target": {t: n},
        "average": mean success over targets, "worst": the highest success over targets
        (the defender's worst case, BlurNet's "worst success rate"), "worst_target": its
        class, "l2_dissimilarity": mean of the per-target L2 dissimilarities}``. Targets
        with no image to attack are left out.

    Raises:
        ValueError: no target has an image to attack, or bad inputs.
    """
    xt = as_float_images(x, clip_values=None)
    if isinstance(model, nn.Module):
        num_classes: int | None = infer_num_classes(model, xt.to(_model_device(model)))
    else:
        num_classes = getattr(model, "nb_classes", None)
    yt = as_labels(y, n=len(xt), num_classes=num_classes).cpu()
    if targets is None:
        if num_classes is None:
            raise ValueError("targets are required for a model whose class count is unknown")
        targets = list(range(num_classes))
    per: dict[int, float] = {}
    l2: dict[int, float] = {}
    counts: dict[int, int] = {}
    for target in targets:
        t = check_positive_int("target", target, minimum=0)
        if num_classes is not None and t >= num_classes:
            raise ValueError(f"target {t} is not a class of a model with {num_classes} classes")
        keep = yt != t
        n = int(keep.sum())
        if n == 0:
            continue
        labels = torch.full((n,), t, dtype=torch.int64)
        if isinstance(x, np.ndarray):
            x_adv = attack_fn(x[keep.numpy()], labels.numpy())
        else:
            x_adv = attack_fn(x[keep.to(x.device)], labels.to(x.device))
        m = rp2_metrics(model, xt[keep], x_adv, yt[keep], labels, batch_size=batch_size)
        per[t], l2[t], counts[t] = m["success_rate"], m["l2_dissimilarity"], n
    if not per:
        raise ValueError(f"no image to attack for targets {list(targets)!r}")
    worst_target = max(per, key=lambda k: per[k])
    return {
        "per_target": per,
        "l2_per_target": l2,
        "n_per_target": counts,
        "average": float(np.mean(list(per.values()))),
        "worst": per[worst_target],
        "worst_target": worst_target,
        "l2_dissimilarity": float(np.mean(list(l2.values()))),
    }
