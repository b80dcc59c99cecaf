"""The RP2 optimisation loop: :func:`rp2_attack` and its per-batch steps."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from art_denoise._torch import attack_guard, model_device
from art_denoise._validation import as_float_images, as_labels
from art_denoise.attacks._transforms import apply_transforms, sample_transforms
from art_denoise.attacks.backends.base import infer_num_classes
from art_denoise.attacks.rp2.config import RP2Config
from art_denoise.attacks.rp2.masks import as_mask
from art_denoise.attacks.rp2.printability import non_printability_score

__all__ = ["rp2_attack"]


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
    cfg = _check_call(model, targeted, config)
    x_in = as_float_images(x, clip_values=cfg.clip_values)
    m_all = as_mask(mask, x_in.shape)
    colors = _nps_colors(cfg, channels=int(x_in.shape[1]))
    if len(x_in) == 0:
        as_labels(y, n=0)
        return x_in.clone()
    device = model_device(model)
    out = _attack_batches(
        model,
        x_in.to(device),
        y,
        m_all,
        colors.to(device) if colors is not None else None,
        targeted=targeted,
        cfg=cfg,
        verbose=verbose,
    )
    return out.to(x_in.device)


def _attack_batches(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | np.ndarray,
    mask: torch.Tensor,
    colors: torch.Tensor | None,
    *,
    targeted: bool,
    cfg: RP2Config,
    verbose: bool,
) -> torch.Tensor:
    """:func:`_attack_batch` on ``cfg.batch_size`` images at a time, under ``attack_guard``.

    ``x`` and ``colors`` are on the model's device; ``mask`` (CPU) moves there per batch.
    One generator seeded with ``cfg.random_seed`` draws the transforms of every batch.
    """
    generator = torch.Generator().manual_seed(cfg.random_seed)
    out = x.clone()
    with attack_guard(model):
        num_classes = infer_num_classes(model, x)
        yt = as_labels(y, n=len(x), num_classes=num_classes).to(x.device)
        starts = range(0, len(x), cfg.batch_size)
        for start in tqdm(starts, desc="RP2", disable=not verbose):
            sl = slice(start, start + cfg.batch_size)
            out[sl] = _attack_batch(
                model,
                x[sl],
                yt[sl],
                mask[sl].to(x.device),
                colors,
                targeted=targeted,
                cfg=cfg,
                generator=generator,
            )
    return out


def _check_call(model: object, targeted: object, config: object) -> RP2Config:
    """The config of :func:`rp2_attack` (``RP2Config()`` for ``None``), its types checked."""
    cfg = config if config is not None else RP2Config()
    if not isinstance(cfg, RP2Config):
        raise TypeError(f"config must be an RP2Config, got {type(cfg).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be a bool, got {type(targeted).__name__} {targeted!r}")
    return cfg


def _nps_colors(cfg: RP2Config, *, channels: int) -> torch.Tensor | None:
    """The printable colours of ``cfg`` as a (K, C) float32 tensor, or ``None``.

    Raises:
        ValueError: the colours have a channel count other than ``channels``.
    """
    if cfg.nps_colors is None:
        return None
    colors = torch.tensor(cfg.nps_colors, dtype=torch.float32)
    if colors.shape[1] != channels:
        raise ValueError(f"nps_colors have {colors.shape[1]} channels but x has {channels}")
    return colors


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
    """Optimise one batch's ``delta`` with Adam; return ``x`` with the stickers applied."""
    lo, hi = cfg.clip_values
    delta = torch.zeros_like(x, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=cfg.learning_rate)
    y_rep = y.repeat(cfg.nb_transforms)
    nps_colors = colors if cfg.nps_weight > 0 else None
    for _ in range(cfg.max_iter):
        loss = _batch_loss(
            model,
            x,
            y_rep,
            mask,
            delta,
            nps_colors,
            targeted=targeted,
            cfg=cfg,
            generator=generator,
        )
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        delta.grad = grad
        optimizer.step()
        with torch.no_grad():
            # Keep x + delta in the valid range and delta zero outside the mask.
            delta.copy_(((x + delta).clamp(lo, hi) - x) * mask)
    with torch.no_grad():
        return torch.where(mask.bool(), (x + delta).clamp(lo, hi), x)


def _batch_loss(
    model: nn.Module,
    x: torch.Tensor,
    y_rep: torch.Tensor,
    mask: torch.Tensor,
    delta: torch.Tensor,
    nps_colors: torch.Tensor | None,
    *,
    targeted: bool,
    cfg: RP2Config,
    generator: torch.Generator,
) -> torch.Tensor:
    """Per-image RP2 objective for the current ``delta``, shape (B,).

    The classification term averaged over ``cfg.nb_transforms`` sampled transformations
    (``y_rep`` is ``y`` repeated that many times), plus ``lambda * ||M * delta||_p`` when
    ``cfg.lambda_reg > 0`` and ``nps_weight * NPS`` when ``nps_colors`` is given.
    """
    b, t = x.shape[0], cfg.nb_transforms
    masked = mask * delta
    x_adv = x + masked
    params = sample_transforms(t * b, cfg.transforms, generator, x.device)
    logits = model(apply_transforms(x_adv.repeat(t, 1, 1, 1), params, cfg.clip_values))
    if targeted:
        per_sample = F.cross_entropy(logits, y_rep, reduction="none")
    else:
        per_sample = _true_label_loss(logits, y_rep)
    loss = per_sample.view(t, b).mean(dim=0)
    if cfg.lambda_reg > 0:
        flat = masked.reshape(b, -1)
        loss = loss + cfg.lambda_reg * torch.linalg.vector_norm(flat, ord=float(cfg.norm), dim=1)
    if nps_colors is not None:
        loss = loss + cfg.nps_weight * non_printability_score(x_adv, mask, nps_colors)
    return loss
