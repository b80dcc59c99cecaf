"""Batched DeepFool, L2 and Linf (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016).

| Paper link: https://arxiv.org/abs/1511.04599

DeepFool looks for the smallest perturbation that changes the prediction: it linearises
the classifier around the current point and steps to the closest linearised decision
boundary, again and again. Per step, for each candidate class ``k`` (the ``candidates - 1``
most likely classes of the clean image other than ``y``):

- ``f_k = z_k - z_y`` and ``w_k = grad f_k`` at the current point, for the whole batch at
  once: one forward pass, then one backward pass per candidate (CPU) or all of them in one
  vmapped backward pass (CUDA; ``batched_backward``);
- the distance to the linearised boundary ``d_k = |f_k| / (||w_k||_q + 1e-8)``, with ``q``
  the dual norm (2 for L2, 1 for Linf); ``l = argmin_k d_k``;
- the step ``r = (d_l + 1e-4) * w_l / (||w_l||_2 + 1e-8)`` (L2) or
  ``r = (d_l + 1e-4) * sign(w_l)`` (Linf), lengthened by an absolute 1e-4.

Overshoot, as foolbox 3.3.4 applies it: the steps add up in ``r_total`` and the next point
is ``x = clip(x0 + (1 + overshoot) * r_total, 0, 1)``, so the overshoot scales the whole
perturbation at every step and the next step is linearised at that overshot point (not
torchattacks' ``x + (1 + overshoot) * r`` per step, which stalls on the boundary). These
are foolbox's ``L2DeepFoolAttack`` / ``LinfDeepFoolAttack`` with ``loss="logits"``, step
for step.

On a model in eval mode, the attack runs on a faster copy
(:func:`~art_denoise.attacks.native._fast_copy.fast_copy`: each convolution -> batch-norm
pair folded into one convolution, channels-last on the CPU; the same function up to float
rounding; 1.5-1.6x faster on the small CNN on 2 CPU cores), and
:attr:`DeepFoolResult.adversarial` is then judged on the model itself. ``fast_copy=False``
attacks the model as it is. The outputs agree with it up to rounding, except that for Linf
a gradient component within rounding of 0 can take the other sign.

On the CPU the batch is attacked in tiles of :data:`CPU_TILE` images (``tile``), whose
activation maps the allocator reuses instead of faulting in fresh pages from the kernel at
every pass (``_tiles``); the images do not interact, so only the speed changes. On
the small CNN, 1,000 Fashion-MNIST images on 2 CPU cores, tiles of 128 take about half the
time of one batch (L2 4.4 s vs 8.6 s, Linf 3.6 s vs 6.8 s; tiles of 64, 256 and 512: 4.8,
4.5, 5.6 s and 3.7, 3.7, 4.9 s).
An output that the fast copy misclassifies and the model does not (a tie within float
rounding) is attacked on from there with the model itself, within the same step budget.

Each image stops as soon as it is misclassified (with respect to ``y``): from then on it
is neither attacked nor evaluated again, so the batch shrinks as the images flip. An
image misclassified at the start is returned unchanged. An image still correctly
classified after ``steps`` steps is returned as it is, and counted as not adversarial in
:attr:`DeepFoolResult.adversarial`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from art_denoise._validation import check_non_negative, check_norm, check_positive_int
from art_denoise.attacks.native import _fast_copy
from art_denoise.attacks.native._checks import check_batch
from art_denoise.attacks.native._tiles import CPU_TILE, tile_size

__all__ = ["CPU_TILE", "DeepFoolResult", "deepfool", "deepfool_result"]


class DeepFoolResult(NamedTuple):
    """What :func:`deepfool_result` returns.

    Attributes:
        x_adv: the output images (B, ...), detached.
        adversarial: (B,) bool, whether each output is misclassified by the model.
        steps: (B,) int64, the DeepFool steps taken for each image (0 for an image
            misclassified at the start).
    """

    x_adv: torch.Tensor
    adversarial: torch.Tensor
    steps: torch.Tensor


class _Linearisation(NamedTuple):
    """The closest linearised boundary of each image: its distance and direction."""

    distance: torch.Tensor
    grad: torch.Tensor


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "2",
    steps: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
    batched_backward: bool | None = None,
    fast_copy: bool = True,
    tile: int | None = None,
) -> torch.Tensor:
    """Batched DeepFool; returns the output images (see :func:`deepfool_result`).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.full((4, 1, 2, 2), 0.5)
        >>> y = model(x).argmax(dim=1)
        >>> bool((model(deepfool(model, x, y)).argmax(dim=1) != y).all())
        True
    """
    return deepfool_result(
        model,
        x,
        y,
        norm=norm,
        steps=steps,
        overshoot=overshoot,
        candidates=candidates,
        batched_backward=batched_backward,
        fast_copy=fast_copy,
        tile=tile,
    ).x_adv


def deepfool_result(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "2",
    steps: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
    batched_backward: bool | None = None,
    fast_copy: bool = True,
    tile: int | None = None,
) -> DeepFoolResult:
    """Batched DeepFool (module docstring), with which outputs are adversarial.

    Args:
        model: maps (B, ...) inputs in [0, 1] to (B, classes) logits; used in its mode.
        x: clean images (B, ...) in [0, 1].
        y: true labels (B,).
        norm: ``"2"`` or ``"inf"``.
        steps: the most DeepFool steps per image, >= 1.
        overshoot: >= 0, applied to the total perturbation (module docstring).
        candidates: classes considered, the true one included (>= 2; at most the class
            count): the most likely ones of the clean image.
        batched_backward: take the candidates' gradients in one vmapped backward pass
            (``is_grads_batched``) instead of one backward pass each. ``None`` (default):
            on CUDA, where the passes are short and their count is what costs; on the CPU
            the loop is faster. Both give the same gradients.
        fast_copy: attack a faster copy of the model where it computes the same logits
            (module docstring); the outputs are judged on ``model`` either way.
        tile: images attacked at once, >= 1 (each image's attack is independent of the
            others, so this changes the speed, not the result beyond float rounding).
            ``None`` (default): :data:`CPU_TILE` on the CPU, about twice as fast as 1,000
            images at once (module docstring); the whole batch elsewhere.

    Returns:
        A :class:`DeepFoolResult`: the images, which are adversarial, and the steps taken.

    Raises:
        TypeError, ValueError: a bad model, batch, label or setting (the message names it).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(6, 1, 2, 2)
        >>> result = deepfool_result(model, x, model(x).argmax(dim=1), norm="inf")
        >>> bool(result.adversarial.all()), bool((result.steps >= 1).all())
        (True, True)
    """
    x0, labels = check_batch(model, x, y)
    norm = check_norm(norm)
    check_positive_int("steps", steps)
    overshoot = check_non_negative("overshoot", overshoot)
    check_positive_int("candidates", candidates, minimum=2)
    size = tile_size(x0, tile)
    if batched_backward is None:
        batched_backward = x0.device.type == "cuda"
    if len(x0) == 0:
        return _State(x0, labels).result()
    others, correct = _candidate_classes(model, x0, labels, candidates)
    # the copy is checked against the model on the first tile (module docstring)
    faster = _fast_copy.fast_copy(model, x0[:size]) if fast_copy else None
    attacked = model if faster is None else faster
    parts = [
        _attack(
            model,
            attacked,
            x0[i : i + size],
            labels[i : i + size],
            others[i : i + size],
            correct[i : i + size],
            norm=norm,
            steps=steps,
            overshoot=overshoot,
            batched_backward=batched_backward,
        )
        for i in range(0, len(x0), size)
    ]
    if len(parts) == 1:
        return parts[0]
    return DeepFoolResult(*(torch.cat(field) for field in zip(*parts, strict=True)))


def _attack(
    model: nn.Module,
    attacked: nn.Module,
    x0: torch.Tensor,
    labels: torch.Tensor,
    others: torch.Tensor,
    correct: torch.Tensor,
    *,
    norm: str,
    steps: int,
    overshoot: float,
    batched_backward: bool,
) -> DeepFoolResult:
    """DeepFool on one tile of checked inputs, its candidate classes ``others`` and which
    of its images are ``correct`` at the start: ``attacked`` (the model or its faster
    copy) is attacked, ``model`` judges the outputs."""
    state = _State(x0, labels)
    state.adversarial |= ~correct  # misclassified at the start: left as they are
    settings = (others, norm, overshoot, batched_backward)
    _steps(attacked, state, x0, correct.nonzero().flatten(), steps, settings)
    if attacked is not model:  # the outputs judged on the model itself, not on its copy
        with torch.no_grad():
            state.adversarial = model(state.x_adv).argmax(dim=1) != labels
        # an output the copy misclassifies and the model does not (a tie within float
        # rounding) is attacked on from where it stopped, on the model itself
        again = (correct & ~state.adversarial & (state.taken < steps)).nonzero().flatten()
        if len(again):
            left = steps - int(state.taken[again].max())
            _steps(model, state, x0, again, left, settings)
    return state.result()


def _steps(
    model: nn.Module,
    state: _State,
    x0: torch.Tensor,
    active: torch.Tensor,
    steps: int,
    settings: tuple[torch.Tensor, str, float, bool],
) -> None:
    """At most ``steps`` DeepFool steps on the images ``active`` of ``state``, in place;
    ``settings``: the candidate classes, norm, overshoot and ``batched_backward``."""
    others, norm, overshoot, batched_backward = settings
    labels = state.labels
    for step in range(steps + 1):
        batch = _check(model, state, active, last=step == steps)
        if batch is None:
            break
        closest = _closest_boundary(
            batch.logits, batch.x, labels[batch.rows], others[batch.rows], norm, batched_backward
        )
        active = batch.rows
        if batch.keep is not None:
            active = active[batch.keep]
            closest = _Linearisation(closest.distance[batch.keep], closest.grad[batch.keep])
        with torch.no_grad():
            state.r_total[active] += _step(closest.distance, closest.grad, norm)
            state.x_adv[active] = (x0[active] + (1.0 + overshoot) * state.r_total[active]).clamp(
                0.0, 1.0
            )
        state.taken[active] += 1


class _State:
    """The running DeepFool state of a batch: images, total steps, flags, step counts."""

    def __init__(self, x0: torch.Tensor, labels: torch.Tensor) -> None:
        self.labels = labels
        self.x_adv = x0.clone()
        self.r_total = torch.zeros_like(x0)
        self.adversarial = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        self.taken = torch.zeros(len(x0), dtype=torch.int64, device=x0.device)

    def result(self) -> DeepFoolResult:
        return DeepFoolResult(self.x_adv.detach(), self.adversarial, self.taken)


#: Share of the checked images that flipped above which the forward pass is run again on
#: the others alone, rather than taking the candidates' gradients of the flipped ones too
#: (a forward pass costs about as much as one of the ``candidates - 1`` backward passes).
_REFORWARD_SHARE = 0.1


class _Batch(NamedTuple):
    """The images still to attack: inputs (gradients on), their logits and indices.

    ``keep`` (when not ``None``) marks the rows of ``x`` still correctly classified: the
    others flipped but stay in the graph, their gradients unused.
    """

    x: torch.Tensor
    logits: torch.Tensor
    rows: torch.Tensor
    keep: torch.Tensor | None


def _check(model: nn.Module, state: _State, active: torch.Tensor, *, last: bool) -> _Batch | None:
    """Mark the images of ``active`` that are misclassified now; return the others.

    ``None`` when none is left, or when this was the final check (``last``).
    """
    if len(active) == 0:
        return None
    xa = state.x_adv[active].requires_grad_(not last)
    with torch.set_grad_enabled(not last):
        logits = model(xa)
    flipped = logits.argmax(dim=1) != state.labels[active]
    state.adversarial[active[flipped]] = True
    n_flipped = int(flipped.sum())
    if last or n_flipped == len(active):
        return None
    if n_flipped == 0:
        return _Batch(xa, logits, active, None)
    if n_flipped < _REFORWARD_SHARE * len(active):
        return _Batch(xa, logits, active, ~flipped)
    rows = active[~flipped]
    xa = state.x_adv[rows].requires_grad_(True)
    return _Batch(xa, model(xa), rows, None)


def _candidate_classes(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, candidates: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, k - 1): the most likely classes of the clean images other than ``y``, in order;
    and (B,) whether each clean image is classified correctly."""
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(
            f"model must return (B, classes) logits, got shape {tuple(logits.shape)} for input "
            f"{tuple(x.shape)}"
        )
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError(f"model must return at least 2 class logits, got {num_classes}")
    if int(y.max()) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got up to {int(y.max())}")
    k = min(candidates, num_classes)
    masked = logits.scatter(1, y[:, None], float("-inf"))
    return masked.topk(k - 1, dim=1).indices, logits.argmax(dim=1) == y


def _closest_boundary(
    logits: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    others: torch.Tensor,
    norm: str,
    batched: bool,
) -> _Linearisation:
    """Per image, the candidate whose linearised boundary is closest (the first on ties)."""
    rows = torch.arange(len(y), device=y.device)
    f = (logits.gather(1, others) - logits[rows, y][:, None]).detach()  # (A, k - 1)
    if batched:
        grads = _batched_gradients(logits, x, y, others)  # (k - 1, A, ...)
        distance = f.T.abs() / (_dual_norms(grads.flatten(2), norm) + 1e-8)
        best = distance.argmin(dim=0)
        return _Linearisation(distance[best, rows], grads[best, rows])
    closest: _Linearisation | None = None
    shape = (-1, *([1] * (x.ndim - 1)))
    for k in range(others.shape[1]):
        (w_k,) = torch.autograd.grad(
            logits[rows, others[:, k]].sum() - logits[rows, y].sum(),
            x,
            retain_graph=k < others.shape[1] - 1,
        )
        d_k = f[:, k].abs() / (_dual_norms(w_k.flatten(1), norm) + 1e-8)
        if closest is None:
            closest = _Linearisation(d_k, w_k)
            continue
        closer = d_k < closest.distance
        closest = _Linearisation(
            torch.where(closer, d_k, closest.distance),
            torch.where(closer.view(shape), w_k, closest.grad),
        )
    assert closest is not None  # others has at least one column (candidates >= 2)
    return closest


def _batched_gradients(
    logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, others: torch.Tensor
) -> torch.Tensor:
    """``grad (z_k - z_y)`` for every candidate column ``k`` of ``others``: (k - 1, A, ...)."""
    rows = torch.arange(len(y), device=y.device)
    seeds = torch.zeros((others.shape[1], *logits.shape), dtype=logits.dtype, device=x.device)
    seeds.scatter_(2, others.T[:, :, None], 1.0)
    seeds[:, rows, y] -= 1.0
    (grads,) = torch.autograd.grad(logits, x, grad_outputs=seeds, is_grads_batched=True)
    return grads


def _dual_norms(flat: torch.Tensor, norm: str) -> torch.Tensor:
    """The dual norm of the last axis: L2 for L2 DeepFool, L1 for Linf DeepFool."""
    return flat.norm(p=2, dim=-1) if norm == "2" else flat.abs().sum(dim=-1)


def _step(distance: torch.Tensor, grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The step to the closest linearised boundary, lengthened by an absolute 1e-4."""
    shape = (-1, *([1] * (grad.ndim - 1)))
    length = (distance + 1e-4).view(shape)
    if norm == "inf":
        return length * grad.sign()
    return length / (grad.flatten(1).norm(dim=1).view(shape) + 1e-8) * grad
