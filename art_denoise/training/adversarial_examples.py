"""Torch-native attacks used *inside* training loops: PGD and FGSM (with a random start).

These generate training examples on the device, batch by batch, with no numpy round
trip. Evaluation goes through the attack backends instead (ART, torchattacks,
foolbox), so that training never grades its own homework.

All randomness (random starts, random target labels) is drawn from an explicit
``torch.Generator`` on the CPU and then moved to the device, so that a run is
reproducible and a distributed run can draw the noise of the *global* batch on every
rank and keep its own slice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._torch import project_delta, random_ball, random_targets
from art_denoise._validation import check_choice, check_non_negative, check_positive_int

__all__ = [
    "bn_inference_mode",
    "fgsm_examples",
    "pgd_examples",
    "random_ball",
    "random_targets",
]

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


@contextlib.contextmanager
def bn_inference_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every BatchNorm layer in inference mode (running statistics, no update).

    Xie et al. run the attack with BN in inference mode, so that crafting the examples
    neither uses the batch's statistics nor moves the running averages. Other layers
    keep their mode; the previous modes are restored on exit.
    """
    saved = [(m, m.training) for m in model.modules() if isinstance(m, _BN_TYPES)]
    try:
        for m, _ in saved:
            m.eval()
        yield model
    finally:
        for m, mode in saved:
            m.train(mode)


def _step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "inf":
        return grad.sign()
    flat = grad.flatten(1)
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(grad)


def pgd_examples(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "inf",
    random_start: bool = True,
    targeted: bool = False,
    start_from_clean: torch.Tensor | None = None,
    generator: torch.Generator,
    noise: torch.Tensor | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    autocast: torch.autocast | None = None,
) -> torch.Tensor:
    """Projected gradient descent examples (Madry et al. 2018), for training.

    The gradient is taken w.r.t. the input only (``torch.autograd.grad``), so no
    parameter gradient is touched. The model is used in whatever mode it is in: wrap
    the call in :func:`bn_inference_mode` for Xie et al.'s setting.

    Args:
        model: maps inputs in ``clip_values`` to logits.
        x: clean inputs (B, C, H, W); y: labels, or the targets when ``targeted``.
        eps, step_size, steps, norm: the threat model (``"inf"`` or ``"2"``).
        random_start: start from a uniform point of the eps-ball.
        targeted: descend the loss of ``y`` (the target) instead of ascending it.
        start_from_clean: optional (B,) bool mask of examples that start from ``x``
            even when ``random_start`` is set (Xie et al.'s ``prob_start_from_clean``).
        generator: the source of the random start.
        noise: a precomputed random start (B, C, H, W); overrides the generator (used by
            the distributed loop, which draws the global batch's noise on every rank).
        clip_values: valid input range.
        autocast: an optional autocast context for the forward passes (AMP).

    Returns:
        The adversarial examples, detached, within the eps-ball and ``clip_values``.
    """
    check_choice("norm", norm, ("inf", "2"))
    eps = check_non_negative("eps", eps)
    step_size = check_non_negative("step_size", step_size)
    check_positive_int("steps", steps, minimum=0)
    lo, hi = clip_values
    x = x.detach()
    if eps == 0 or (steps == 0 and not random_start):
        return x.clone()
    if random_start:
        start = noise if noise is not None else random_ball(x.shape, eps, norm, generator)
        delta = start.to(device=x.device, dtype=x.dtype)
        if start_from_clean is not None:
            keep = start_from_clean.to(x.device).view(-1, *([1] * (x.ndim - 1)))
            delta = torch.where(keep, torch.zeros_like(delta), delta)
    else:
        delta = torch.zeros_like(x)
    delta = ((x + delta).clamp(lo, hi) - x).detach()
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        delta.requires_grad_(True)
        ctx = autocast if autocast is not None else contextlib.nullcontext()
        with ctx:
            logits = model(x + delta)
        loss = F.cross_entropy(logits.float(), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + sign * step_size * _step(grad, norm)
            delta = project_delta(delta, eps, norm)
            delta = (x + delta).clamp(lo, hi) - x
    return (x + delta).detach()


def fgsm_examples(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float | None = None,
    norm: str = "inf",
    random_start: bool = False,
    generator: torch.Generator,
    noise: torch.Tensor | None = None,
    clip_values: tuple[float, float] = (0.0, 1.0),
    autocast: torch.autocast | None = None,
) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015), or FGSM from a random start (Wong et al. 2020).

    One step of ``step_size`` (default ``eps``; Wong et al. use ``1.25 * eps`` with a
    random start), projected back onto the eps-ball and ``clip_values``.
    """
    step = eps if step_size is None else step_size
    return pgd_examples(
        model,
        x,
        y,
        eps=eps,
        step_size=step,
        steps=1,
        norm=norm,
        random_start=random_start,
        generator=generator,
        noise=noise,
        clip_values=clip_values,
        autocast=autocast,
    )
