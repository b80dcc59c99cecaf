"""Batched FGSM and PGD, Linf and L2, in plain torch, with the libraries' conventions.

Projected gradient descent (Madry et al., ICLR 2018, https://arxiv.org/abs/1706.06083)
on the cross-entropy of the batch (its mean, as torchattacks takes it), each step

- Linf: ``x = clip(x0 + clamp(x + step * sign(g) - x0, -eps, eps), 0, 1)``;
- L2: ``x = clip(x0 + P_eps(x + step * g / max(||g||_2, 1e-12) - x0), 0, 1)`` with
  ``P_eps(d) = d * min(1, eps / max(||d||_2, 1e-12))``, in foolbox's arithmetic order,

i.e. projection onto the eps-ball first, then clipping to [0, 1], as torchattacks and
foolbox do (ART clips first; only L2 tells the orders apart). A targeted attack descends
the cross-entropy of the target label. FGSM (Goodfellow et al., ICLR 2015,
https://arxiv.org/abs/1412.6572) is one step of ``eps``.

The random start is drawn as foolbox 3.3.4 draws it, from torch's default generator on
``x``'s device (or from ``generator``): Linf ``x0 + (2 * U[0, 1) - 1) * eps``, the draw of
torchattacks' ``PGD`` too; L2 ``x0 + eps * s[:, :n]`` with ``s`` a Gaussian vector of
``n + 2`` entries over its norm (Voelker et al. 2017), a uniform point of the n-ball. The
start is clipped to [0, 1]. At the same seed the native attack therefore takes the very
steps of torchattacks (Linf) and foolbox (Linf and L2), up to float32 rounding.

Gradients are taken with respect to the input only (``torch.autograd.grad``): no
parameter ``.grad`` is written. The model is used in the mode it is in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._validation import check_non_negative, check_norm, check_positive_int
from art_denoise.attacks.native._checks import check_batch
from art_denoise.attacks.native._tiles import tile_size

__all__ = ["fgsm", "pgd", "random_start_point"]


def random_start_point(
    x: torch.Tensor, eps: float, norm: str, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniform point of the eps-ball around each image of ``x``, clipped to [0, 1].

    Drawn as foolbox draws it (see the module docstring): from ``generator``, or from
    torch's default generator of ``x``'s device when ``generator`` is ``None``.

    Args:
        x: images (B, ...) in [0, 1].
        eps: the ball's radius, >= 0.
        norm: ``"inf"`` or ``"2"``.
        generator: optional source of randomness (the draw is made on its device).

    Returns:
        ``x`` plus the draw, clipped to [0, 1]; same shape, dtype and device as ``x``.

    Example:
        >>> x = torch.full((3, 1, 4, 4), 0.5)
        >>> start = random_start_point(x, 0.25, "2", generator=torch.Generator().manual_seed(0))
        >>> bool(((start - x).flatten(1).norm(dim=1) <= 0.25).all())
        True
    """
    norm = check_norm(norm)
    eps = check_non_negative("eps", eps)
    device = x.device if generator is None else generator.device
    if norm == "inf":
        u = torch.rand(x.shape, dtype=x.dtype, device=device, generator=generator)
        delta = u * (2 * eps) - eps
    else:
        n = x[0].numel()
        g = torch.randn((x.shape[0], n + 2), dtype=x.dtype, device=device, generator=generator)
        sphere = g / g.square().sum(dim=1, keepdim=True).sqrt()
        delta = eps * sphere[:, :n].reshape(x.shape)
    return (x + delta.to(x.device)).clamp(0.0, 1.0)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    step_size: float,
    steps: int,
    targeted: bool = False,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    tile: int | None = None,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy, batched.

    Args:
        model: maps (B, ...) inputs in [0, 1] to (B, classes) logits.
        x: clean images (B, ...) in [0, 1].
        y: true labels (B,), or the target labels when ``targeted``.
        norm: ``"inf"`` or ``"2"``.
        eps: the budget, >= 0.
        step_size: the step (absolute), > 0.
        steps: iterations, >= 1.
        targeted: descend the cross-entropy of ``y`` instead of ascending it.
        random_start: start from :func:`random_start_point` instead of ``x``.
        generator: the random start's source (default: torch's generator of ``x``'s device).
        tile: images stepped at once, >= 1; ``None``: ``CPU_TILE`` (128) on the CPU, where
            larger batches fault in fresh memory pages at every pass (PGD-20 on 1,000
            images, small CNN, 2 cores: 3.7 s against 4.0 to 9.7 s in one batch;
            ``art_denoise.attacks.native._tiles``), the whole batch elsewhere. The random
            start is drawn for the whole batch first, so the result does not depend on the
            tile beyond float rounding.

    Returns:
        The adversarial images, detached, within the eps-ball and [0, 1].

    Raises:
        TypeError, ValueError: a bad model, batch, label or setting (the message names it).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
        >>> x_adv = pgd(model, x, y, norm="inf", eps=0.1, step_size=0.05, steps=3)
        >>> bool(((x_adv - x).abs() <= 0.1 + 1e-6).all())
        True
    """
    x0, labels = check_batch(model, x, y)
    norm = check_norm(norm)
    eps = check_non_negative("eps", eps)
    step = check_non_negative("step_size", step_size)
    if step == 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    check_positive_int("steps", steps)
    size = tile_size(x0, tile)
    x_adv = random_start_point(x0, eps, norm, generator=generator) if random_start else x0
    parts = []
    for i in range(0, len(x0), size):
        x_tile, start, y_tile = x0[i : i + size], x_adv[i : i + size], labels[i : i + size]
        for _ in range(steps):
            start = _pgd_step(model, x_tile, start, y_tile, norm, eps, step, targeted)
        parts.append(start)
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts) if parts else x_adv  # no parts: an empty batch


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    targeted: bool = False,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The fast gradient (sign) method: one :func:`pgd` step of ``eps``.

    With ``random_start`` it is FGSM from a random start (torchattacks' ``FFGSM`` with
    ``alpha=eps``, foolbox's fast gradient attacks with ``random_start=True``).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.full((2, 1, 2, 2), 0.5)
        >>> x_adv = fgsm(model, x, torch.tensor([0, 1]), norm="inf", eps=0.1)
        >>> torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.1))
        True
    """
    eps = check_non_negative("eps", eps)
    if eps == 0:
        x0, _ = check_batch(model, x, y)
        check_norm(norm)
        return x0.clone()
    return pgd(
        model,
        x,
        y,
        norm=norm,
        eps=eps,
        step_size=eps,
        steps=1,
        targeted=targeted,
        random_start=random_start,
        generator=generator,
    )


def _pgd_step(
    model: nn.Module,
    x0: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps: float,
    step: float,
    targeted: bool,
) -> torch.Tensor:
    """One ascent step from ``x_adv`` (descent when ``targeted``), projected and clipped."""
    x_adv = x_adv.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y)
    (grad,) = torch.autograd.grad(-loss if targeted else loss, x_adv)
    with torch.no_grad():
        if norm == "inf":
            delta = (x_adv + step * grad.sign() - x0).clamp_(-eps, eps)
        else:
            direction = grad * (1.0 / _l2(grad).clamp_min(1e-12))
            delta = x_adv + step * direction - x0
            delta = delta * (eps / _l2(delta).clamp_min(1e-12)).clamp_max(1.0)
        return (x0 + delta).clamp_(0.0, 1.0)


def _l2(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm as foolbox computes it, shaped to broadcast against ``t``."""
    norms = t.flatten(1).square().sum(dim=1).sqrt()
    return norms.view(-1, *([1] * (t.ndim - 1)))
