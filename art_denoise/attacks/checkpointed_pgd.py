"""PGD that records every example's state at chosen step counts, in one pass.

A step sweep (robust accuracy after 10, 20, 50, ... 2000 steps, Xie et al. 2019, Fig. 6)
run as separate attacks repeats the first 10 steps eight times and the first 1000
twice. :func:`pgd_checkpoint_states` runs once to the largest count and checks the
predictions at each checkpoint, so the sweep costs one attack of the largest count.

The loop is torchattacks 3.5.1's ``PGD`` (Linf) and ``PGDL2`` (L2) step for step: the
same random start drawn from the global torch RNG (seeded once per restart, then batch
after batch as :meth:`AttackBackend.run` does), the same mean cross-entropy, the same
sign / normalised-gradient step, projection and clipping. The state after ``s`` steps is
therefore exactly the output of a separate ``s``-step run at the same seed (tested
against the torchattacks backend).

The L2 random start is a uniform point in the L2 ball (``training.attacks.random_ball``,
seeded with the restart's seed; torchattacks draws the radius uniformly, which the
backends refuse). The step is written out rather than taken from ``project_to_ball`` so that
its arithmetic (``eps_for_division``, the min with 1) is torchattacks' to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._torch import random_ball
from art_denoise._validation import as_float_images, as_labels
from art_denoise.attacks.backends.base import attack_guard, infer_num_classes, seed_everything
from art_denoise.attacks.eot import EOTModel
from art_denoise.attacks.spec import AttackSpec

__all__ = ["pgd_checkpoint_states"]

#: torchattacks' ``PGDL2(eps_for_division=...)``, pinned by the backend too.
_L2_DIVISION_EPS = 1e-10


def _check_spec(spec: AttackSpec) -> None:
    if not isinstance(spec, AttackSpec):
        raise TypeError(f"spec must be an AttackSpec, got {type(spec).__name__}")
    if spec.attack != "pgd":
        raise ValueError(f"a checkpointed sweep runs PGD; got attack {spec.attack!r}")
    if spec.targeted:
        raise ValueError("a checkpointed sweep is untargeted; got targeted=True")


def _checkpoints(values: Sequence[int]) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"checkpoint steps must be positive integers, got {v!r}")
        out.append(int(v))
    if not out:
        raise ValueError("checkpoints must name at least one step count")
    if out != sorted(set(out)):
        raise ValueError(f"checkpoints must be strictly increasing, got {list(values)!r}")
    return out


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    if norm == "inf":
        # torchattacks PGD: uniform in the cube from the global RNG, then clipped to [0, 1]
        return (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0.0, 1.0)
    delta = random_ball(tuple(x.shape), eps, "2", gen).to(device=x.device, dtype=x.dtype)
    return (x + delta).clamp(0.0, 1.0)


def _step(
    x: torch.Tensor, x_adv: torch.Tensor, grad: torch.Tensor, spec: AttackSpec
) -> torch.Tensor:
    eps, alpha = float(spec.eps or 0.0), float(spec.step_size or 0.0)
    if spec.norm == "inf":
        x_adv = x_adv.detach() + alpha * grad.sign()
        delta = torch.clamp(x_adv - x, min=-eps, max=eps)
        return torch.clamp(x + delta, min=0, max=1).detach()
    shape = (-1, *([1] * (x.ndim - 1)))
    grad_norms = torch.norm(grad.reshape(len(x), -1), p=2, dim=1) + _L2_DIVISION_EPS
    x_adv = x_adv.detach() + alpha * grad / grad_norms.view(shape)
    delta = x_adv - x
    delta_norms = torch.norm(delta.reshape(len(x), -1), p=2, dim=1)
    factor = torch.min(eps / delta_norms, torch.ones_like(delta_norms))
    return torch.clamp(x + delta * factor.view(shape), min=0, max=1).detach()


def pgd_checkpoint_states(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    spec: AttackSpec,
    checkpoints: Sequence[int],
    *,
    restarts: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Run untargeted PGD to ``max(checkpoints)`` steps and record, at every checkpoint,
    whether each example is still classified correctly.

    Args:
        model: (B, C, H, W) in [0, 1] -> (B, classes) logits.
        x: images in [0, 1]; y: true labels (B,) or one-hot.
        spec: the PGD settings (eps, step_size, norm, random_start, batch_size,
            eot_samples); ``spec.steps`` and ``spec.restarts`` are ignored.
        checkpoints: strictly increasing step counts, e.g. ``(10, 20, 50, 100)``.
        restarts: independent runs, restart ``r`` seeded with ``seed + r`` (default
            ``spec.restarts``). Every restart attacks every example.
        seed: seeds torch, numpy and ``random`` before each restart.

    Returns:
        A bool tensor (len(checkpoints), restarts, B) on ``x``'s device:
        ``[i, r, j]`` is True when, after ``checkpoints[i]`` steps of restart ``r``, the model
        (one draw, as deployed) still predicts ``y[j]``. Clean correctness is not folded
        in. Gradients come from the mean of ``spec.eot_samples`` draws when it is > 1.
        The model's modes and gradients are restored.
    """
    _check_spec(spec)
    steps = _checkpoints(checkpoints)
    n_restarts = spec.restarts if restarts is None else restarts
    if isinstance(n_restarts, bool) or not isinstance(n_restarts, int) or n_restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {n_restarts!r}")
    x_in = as_float_images(x)
    device = next(iter(model.parameters()), x_in.new_empty(0)).device
    xt = x_in.to(device)
    out = torch.ones(len(steps), n_restarts, len(xt), dtype=torch.bool, device=x_in.device)
    if len(xt) == 0:
        return out
    num_classes = infer_num_classes(model, xt)
    yt = as_labels(y, n=len(xt), num_classes=num_classes).to(device)
    eps = float(spec.eps or 0.0)
    with attack_guard(model):
        grad_model = EOTModel(model, spec.eot_samples).eval() if spec.eot_samples > 1 else model
        for r in range(n_restarts):
            seed_everything(seed + r)
            gen = torch.Generator().manual_seed(seed + r)
            for start in range(0, len(xt), spec.batch_size):
                xb = xt[start : start + spec.batch_size]
                yb = yt[start : start + spec.batch_size]
                x_adv = xb.clone().detach()
                if spec.random_start and eps > 0:
                    x_adv = _random_start(x_adv, eps, spec.norm, gen).detach()
                done = 0
                for i, target in enumerate(steps):
                    while done < target and eps > 0:
                        x_adv.requires_grad_(True)
                        loss = F.cross_entropy(grad_model(x_adv), yb)
                        grad = torch.autograd.grad(loss, x_adv)[0]
                        x_adv = _step(xb, x_adv, grad, spec)
                        done += 1
                    # the check must not shift the RNG stream of a randomised model
                    devices = [device] if device.type == "cuda" else []
                    with torch.random.fork_rng(devices=devices), torch.no_grad():
                        pred = model(x_adv).argmax(dim=1)
                    out[i, r, start : start + len(xb)] = (pred == yb).to(out.device)
    return out
