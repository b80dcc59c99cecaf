"""Auto-PGD (Croce & Hein 2020): PGD with momentum and a step size that adapts itself.

Batched in torch: every example carries its own step size, counters and best point as
rows of tensors, and a misclassified example leaves the batch (on the CPU at once, on a
GPU every few iterations, to avoid waiting for the device at each one), so a step costs
one forward and one backward pass of the examples still standing.

The algorithm, for a budget of ``N`` iterations (REFERENCES.md §6):

- start at a random point of the eps-ball (uniform in the Linf cube; for L2 on the
  sphere of radius eps, as AutoAttack does), clipped to [0, 1]; first step size ``2 eps``;
- ``z = P(x_k + eta * s(g))`` with ``s`` the sign (Linf) or the normalised gradient (L2)
  and ``P`` the projection onto the eps-ball and the [0, 1] box; then
  ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))`` with momentum ``a = 0.75``
  (the first iteration takes ``z``);
- checkpoints after ``w_j = ceil(p_j N)`` iterations (:func:`apgd_checkpoints`); at each
  one an example halves its step if fewer than ``rho`` of the iterations since the last
  checkpoint raised its loss, or if neither its step nor its best loss changed since the
  last checkpoint; an example that halves restarts from its best point (with no momentum
  carried over from the point it left).

Differences from AutoAttack's code, all within the paper's description: the share of
successful steps is compared with ``< rho`` (AutoAttack: ``<=``), the first iteration's
success is judged against the starting point's loss (AutoAttack: against zero), and an
example keeps the first misclassified point it reaches (AutoAttack: the last one).

A randomised model (attacked through :class:`~art_denoise.attacks.eot.EOTModel`, the mean
of several draws) is attacked with ``early_stop=False``: whether the mean of the draws
misclassifies a point says little about the one draw that judges it, so no example stops
at the first point the mean misclassifies (which a fresh draw then often classifies
right), none is skipped because the mean misclassifies the clean image, and every example
runs every iteration and gets its point of highest loss.

| Paper link: https://arxiv.org/abs/2003.01690 (Croce & Hein, ICML 2020)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from art_denoise._torch import attack_guard, model_device, project_to_ball
from art_denoise._validation import (
    as_float_images,
    as_labels,
    check_bool,
    check_choice,
    check_non_negative,
    check_norm,
    check_positive_int,
)
from art_denoise.attacks.native._tiles import tile_size
from art_denoise.attacks.native.losses import _ce, _dlr, _targeted_dlr

__all__ = ["APGD_LOSSES", "apgd", "apgd_checkpoints", "apgd_targeted"]

#: Losses of untargeted APGD.
APGD_LOSSES = ("ce", "dlr")

_LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
_LOSS_FNS: dict[str, _LossFn] = {
    "ce": lambda logits, y, target: _ce(logits, y),
    "dlr": lambda logits, y, target: _dlr(logits, y),
    "dlr-targeted": _targeted_dlr,
}
#: On a GPU, finished examples leave the batch every this many iterations (each time costs
#: a wait for the device); on the CPU at every iteration.
_GPU_COMPACT_EVERY = 5
#: The fewest classes each loss is defined for.
_MIN_CLASSES = {"ce": 2, "dlr": 3, "dlr-targeted": 4}
_LOSS_NAMES = {"ce": "cross-entropy", "dlr": "DLR", "dlr-targeted": "targeted DLR"}


@dataclass(frozen=True)
class _Settings:
    norm: str
    eps: float
    steps: int
    rho: float
    momentum: float
    loss: str
    early_stop: bool = True


@dataclass
class _State:
    """One row per example still in the batch; ``index`` is its row in the attacked batch.

    ``low`` / ``high`` bound each pixel (the Linf ball intersected with the box; the box
    alone for L2). ``done`` marks the examples already misclassified, ``x_found`` the first
    misclassified point of each; they leave the batch at the next compaction.
    """

    index: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    x_adv: torch.Tensor
    x_prev: torch.Tensor
    grad: torch.Tensor
    loss: torch.Tensor
    x_best: torch.Tensor
    grad_best: torch.Tensor
    loss_best: torch.Tensor
    step: torch.Tensor
    successes: torch.Tensor
    loss_best_checkpoint: torch.Tensor
    reduced: torch.Tensor
    done: torch.Tensor
    x_found: torch.Tensor

    def select(self, keep: torch.Tensor) -> _State:
        return _State(**{f.name: getattr(self, f.name)[keep] for f in dataclasses.fields(self)})


@dataclass
class _Result:
    """Per example: the returned point, whether it is misclassified, and its loss."""

    x_adv: torch.Tensor
    fooled: torch.Tensor
    loss: torch.Tensor


# ------------------------------------------------------------------ checks


def _check_fraction(name: str, value: float, *, closed: bool) -> float:
    value = check_non_negative(name, value)
    if value <= 0 or value > 1 or (value == 1 and not closed):
        bound = "(0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")
    return value


def _settings(
    *,
    norm: str,
    eps: float,
    steps: int,
    rho: float,
    momentum: float,
    loss: str,
    early_stop: bool = True,
) -> _Settings:
    return _Settings(
        norm=check_norm(norm),
        eps=check_non_negative("eps", eps),
        steps=check_positive_int("steps", steps),
        rho=_check_fraction("rho", rho, closed=False),
        momentum=_check_fraction("momentum", momentum, closed=True),
        loss=loss,
        early_stop=check_bool("early_stop", early_stop),
    )


def _check_inputs(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    images = as_float_images(x)
    labels = as_labels(y, n=images.shape[0]).to(images.device)
    device = model_device(model, default=images.device)
    if device != images.device:
        raise ValueError(f"x is on {images.device} but the model is on {device}")
    return images, labels


def _clean_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The model's logits on ``x``, checked against the labels and the loss's class count."""
    with torch.no_grad():
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != len(x):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
        raise ValueError(f"the model must return (B, classes) logits, got {shape}")
    classes = logits.shape[1]
    if classes < _MIN_CLASSES[loss]:
        raise ValueError(
            f"the {_LOSS_NAMES[loss]} loss needs at least {_MIN_CLASSES[loss]} classes, "
            f"the model has {classes}"
        )
    if len(y) and int(y.max()) >= classes:
        raise ValueError(f"labels must be in [0, {classes}), got a label {int(y.max())}")
    return logits


# ------------------------------------------------------------------ pieces of one run


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD may halve an example's step size.

    ``w_j = ceil(p_j * steps)`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, the ones in ``[1, steps]``, each once.

    Example:
        >>> apgd_checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    steps = check_positive_int("steps", steps)
    found: list[int] = []
    previous, p = 0.0, 0.22
    while (w := math.ceil(round(p * steps, 9))) <= steps:
        if w not in found:
            found.append(w)
        previous, p = p, p + max(p - previous - 0.03, 0.06)
    return found


def _rows(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (B,) tensor shaped to broadcast against ``like`` (B, ...)."""
    return t.view(-1, *([1] * (like.ndim - 1)))


def _bounds(x: torch.Tensor, cfg: _Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds: ``[x - eps, x + eps]`` within [0, 1] for Linf, [0, 1] for L2."""
    if cfg.norm == "inf":
        return (x - cfg.eps).clamp_min(0.0), (x + cfg.eps).clamp_max(1.0)
    return torch.zeros_like(x), torch.ones_like(x)


def _project(s: _State, point: torch.Tensor, cfg: _Settings) -> torch.Tensor:
    """``point`` projected onto the eps-ball around ``s.x`` and then clipped to [0, 1].

    For Linf the two are one clamp between the precomputed bounds (a single kernel).
    """
    if cfg.norm == "2":
        delta = point - s.x
        factor = (cfg.eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp_max(1.0)
        point = torch.addcmul(s.x, delta, _rows(factor, delta))
    return torch.clamp(point, min=s.low, max=s.high)


def _random_start(
    x: torch.Tensor, cfg: _Settings, generator: torch.Generator | None
) -> torch.Tensor:
    """Uniform in the Linf cube, or on the L2 sphere of radius eps; then clipped to [0, 1].

    Drawn on the generator's device (the CPU, with torch's global RNG, when it is ``None``),
    so a seed gives the same start on every device.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    if cfg.norm == "inf":
        noise = (torch.rand(x.shape, generator=generator, device=device) * 2 - 1) * cfg.eps
    else:
        noise = torch.randn(x.shape, generator=generator, device=device)
        noise = cfg.eps * noise / _rows(noise.flatten(1).norm(dim=1) + 1e-12, noise)
    return project_to_ball(x, x + noise.to(x.device), cfg.eps, cfg.norm)


def _loss_and_grad(
    model: nn.Module, loss: str, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, per-example loss and its gradient with respect to ``x_adv`` (only)."""
    x_in = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_in)
        values = _LOSS_FNS[loss](logits, y, target)
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), x_in)
        else:  # the model ignores its input
            grad = torch.zeros_like(x_in)
    return logits.detach(), values.detach(), grad.detach()


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "inf":
        return grad.sign()
    return grad / _rows(grad.flatten(1).norm(dim=1) + 1e-12, grad)


def _initial_state(
    model: nn.Module,
    cfg: _Settings,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    x0: torch.Tensor,
    offset: int,
) -> _State:
    """The state of the tile ``x`` (rows ``offset``... of the attacked batch) at ``x0``."""
    low, high = _bounds(x, cfg)
    logits, loss, grad = _loss_and_grad(model, cfg.loss, x0, y, target)
    n, device = len(x), x.device
    return _State(
        index=torch.arange(offset, offset + n, device=device),
        x=x,
        y=y,
        target=target,
        low=low,
        high=high,
        x_adv=x0,
        x_prev=x0,
        grad=grad,
        loss=loss,
        x_best=x0,
        grad_best=grad,
        loss_best=loss,
        step=torch.full((n,), 2.0 * cfg.eps, device=device),
        successes=torch.zeros(n, device=device),
        loss_best_checkpoint=loss,
        reduced=torch.ones(n, dtype=torch.bool, device=device),
        done=_misclassified(logits, y, cfg),
        x_found=x0,
    )


@torch.no_grad()
def _next_point(s: _State, cfg: _Settings, first: bool) -> torch.Tensor:
    """``z = P(x + eta s(g))``, then the momentum step (the first iteration takes ``z``).

    ``x + a (z - x) + (1 - a)(x - x_prev)`` is written ``lerp(2 x - x_prev, z, a)``.
    """
    z = _project(s, torch.addcmul(s.x_adv, _rows(s.step, s.x), _direction(s.grad, cfg.norm)), cfg)
    if first:
        return z
    return _project(s, torch.lerp(torch.lerp(s.x_prev, s.x_adv, 2.0), z, cfg.momentum), cfg)


def _misclassified(logits: torch.Tensor, y: torch.Tensor, cfg: _Settings) -> torch.Tensor:
    """The examples that stop here: misclassified, and only with ``cfg.early_stop``."""
    if not cfg.early_stop:
        return torch.zeros(len(y), dtype=torch.bool, device=y.device)
    return logits.argmax(dim=1) != y


def _advance(model: nn.Module, s: _State, cfg: _Settings, first: bool) -> None:
    """One iteration for every example in the batch, in place."""
    x_new = _next_point(s, cfg, first)
    logits, loss, grad = _loss_and_grad(model, cfg.loss, x_new, s.y, s.target)
    with torch.no_grad():
        s.successes.add_(loss > s.loss)
        better = loss > s.loss_best
        s.x_best = torch.where(_rows(better, x_new), x_new, s.x_best)
        s.grad_best = torch.where(_rows(better, grad), grad, s.grad_best)
        s.loss_best = torch.where(better, loss, s.loss_best)
        s.x_prev, s.x_adv, s.grad, s.loss = s.x_adv, x_new, grad, loss
        fooled = _misclassified(logits, s.y, cfg)
        s.x_found = torch.where(_rows(fooled & ~s.done, x_new), x_new, s.x_found)
        s.done = s.done | fooled


@torch.no_grad()
def _checkpoint(s: _State, rho: float, interval: int) -> None:
    """Halve the step where progress stalled and restart those examples from their best."""
    few_successes = s.successes < rho * interval
    stalled = ~s.reduced & (s.loss_best <= s.loss_best_checkpoint)
    halve = few_successes | stalled
    rows = _rows(halve, s.x)
    s.step = torch.where(halve, s.step / 2, s.step)
    s.x_adv = torch.where(rows, s.x_best, s.x_adv)
    s.x_prev = torch.where(rows, s.x_best, s.x_prev)
    s.grad = torch.where(rows, s.grad_best, s.grad)
    s.loss = torch.where(halve, s.loss_best, s.loss)
    s.reduced = halve
    s.loss_best_checkpoint = s.loss_best.clone()
    s.successes = torch.zeros_like(s.successes)


def _compact_every(device: torch.device) -> int:
    return 1 if device.type == "cpu" else _GPU_COMPACT_EVERY


def _compact(s: _State, out: _Result) -> _State:
    """Write the misclassified examples' first adversarial points to ``out``; drop them.

    Asking whether any example is done waits for the device, so on a GPU this runs every
    few iterations, not at each one (finished examples ride along until then).
    """
    if not bool(s.done.any()):
        return s
    rows = s.index[s.done]
    out.x_adv[rows] = s.x_found[s.done]
    out.fooled[rows] = True
    return s.select(~s.done)


def _run(
    model: nn.Module,
    cfg: _Settings,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    generator: torch.Generator | None,
) -> _Result:
    """One APGD run on ``x``: the first misclassified point, else the best-loss point.

    The random start is drawn for the whole batch; the iterations then run tile by tile
    (:func:`~art_denoise.attacks.native._tiles.tile_size`: 128 images on the CPU, where
    larger batches fault in fresh memory pages at every pass; the whole batch elsewhere).
    The images do not interact, so the tiles change the speed only.
    """
    out = _Result(
        x_adv=x.clone(),
        fooled=torch.zeros(len(x), dtype=torch.bool, device=x.device),
        loss=torch.full((len(x),), float("-inf"), device=x.device),
    )
    start = _random_start(x, cfg, generator)
    size = tile_size(x, None)
    for i in range(0, len(x), size):
        tile = slice(i, i + size)
        state = _initial_state(model, cfg, x[tile], y[tile], target[tile], start[tile], i)
        _iterate(model, cfg, _compact(state, out), out)
    return out


def _iterate(model: nn.Module, cfg: _Settings, state: _State, out: _Result) -> None:
    """The APGD iterations of one tile's ``state``, written to ``out``."""
    checkpoints = apgd_checkpoints(cfg.steps)
    intervals = {w: w - v for v, w in zip([0, *checkpoints], checkpoints, strict=False)}
    every = _compact_every(state.x.device)
    for i in range(1, cfg.steps + 1):
        if len(state.index) == 0:
            break
        _advance(model, state, cfg, first=i == 1)
        if i in intervals:
            _checkpoint(state, cfg.rho, intervals[i])
        if i % every == 0 or i == cfg.steps:
            state = _compact(state, out)
    out.x_adv[state.index] = state.x_best
    out.loss[state.index] = state.loss_best


# ------------------------------------------------------------------ public attacks


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int = 100,
    loss: str = "ce",
    rho: float = 0.75,
    momentum: float = 0.75,
    generator: torch.Generator | None = None,
    early_stop: bool = True,
) -> torch.Tensor:
    """Untargeted Auto-PGD on the cross-entropy or the DLR loss (one run, no restarts).

    Images the model already misclassifies are returned unchanged. Every other image gets
    the first misclassified point the attack reaches, or else the point of highest loss.
    The model runs in eval mode with frozen parameters during the attack; its modes,
    ``requires_grad`` flags and ``.grad`` are restored afterwards. For a randomised model
    pass :class:`~art_denoise.attacks.eot.EOTModel` (EOT: the gradient of the mean logits)
    and ``early_stop=False``: every image is then attacked for every iteration and gets
    its point of highest loss (the module docstring says why).

    Args:
        model: maps (B, C, H, W) images in [0, 1] to (B, classes) logits.
        x: (B, C, H, W) clean images in [0, 1], on the model's device.
        y: (B,) true labels.
        norm: ``"inf"`` or ``"2"`` (``np.inf``, ``2``, ``"linf"``, ``"l2"`` accepted).
        eps: radius of the threat model's ball, >= 0.
        steps: iterations, >= 1 (one forward and backward pass each).
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (needs >= 3 classes).
        rho: share of loss-raising iterations below which a checkpoint halves the step,
            in (0, 1).
        momentum: weight ``a`` of the new step against the last move, in (0, 1].
        generator: RNG of the random start; ``None`` uses torch's global CPU RNG.
        early_stop: stop at the first misclassified point and skip misclassified images
            (``True``, for a deterministic model); ``False`` for a randomised one.

    Returns:
        (B, C, H, W) float32 adversarial images, within ``eps`` of ``x`` and in [0, 1].

    Raises:
        TypeError: ``model`` is not a module, bad ``x``/``y`` types, bad ``generator``,
            ``early_stop`` not a bool.
        ValueError: a bad setting, shape or device; too few classes for the loss.

    Shape:
        - x: (B, C, H, W); y: (B,)
        - Output: (B, C, H, W)

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x, y = torch.full((2, 1, 2, 2), 0.5), torch.tensor([0, 1])
        >>> gen = torch.Generator().manual_seed(0)
        >>> x_adv = apgd(model, x, y, norm="inf", eps=0.1, steps=10, generator=gen)
        >>> x_adv.shape, bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
        (torch.Size([2, 1, 2, 2]), True)
    """
    cfg = _settings(
        norm=norm,
        eps=eps,
        steps=steps,
        rho=rho,
        momentum=momentum,
        loss=check_choice("loss", loss, APGD_LOSSES),
        early_stop=early_stop,
    )
    x, y = _check_inputs(model, x, y, generator)
    with attack_guard(model):
        logits = _clean_logits(model, x, y, cfg.loss)
        todo = ~_misclassified(logits, y, cfg)
        x_adv = x.clone()
        if bool(todo.any()):
            x_adv[todo] = _run(model, cfg, x[todo], y[todo], y[todo], generator).x_adv
    return x_adv


def _ranked_targets(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, K - 1): the classes other than ``y``, most likely first."""
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.argsort(dim=1, descending=True)[:, :-1]


def apgd_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int = 100,
    target_classes: int = 9,
    rho: float = 0.75,
    momentum: float = 0.75,
    generator: torch.Generator | None = None,
    early_stop: bool = True,
) -> torch.Tensor:
    """APGD-T: Auto-PGD on the targeted DLR loss towards each likely wrong class in turn.

    The targets are the clean logits' most likely classes other than ``y`` (ranks 2 to
    ``target_classes + 1``, at most all ``classes - 1`` of them). For each target rank one
    APGD run of ``steps`` iterations attacks the images no earlier rank has broken. The
    attack is untargeted in what it counts: an image is broken by any misclassification.
    An image never broken gets the point of highest targeted-DLR loss over the ranks.
    With ``early_stop=False`` (a randomised model, see :func:`apgd`) every image runs
    every rank and gets that point.

    Args:
        model: maps (B, C, H, W) images in [0, 1] to (B, classes) logits, classes >= 4.
        x: (B, C, H, W) clean images in [0, 1], on the model's device.
        y: (B,) true labels.
        norm: ``"inf"`` or ``"2"``.
        eps: radius of the threat model's ball, >= 0.
        steps: iterations per target class, >= 1.
        target_classes: how many target classes to try, >= 1 (AutoAttack: 9).
        rho: as in :func:`apgd`.
        momentum: as in :func:`apgd`.
        generator: RNG of the random starts (one per target rank).
        early_stop: as in :func:`apgd`.

    Returns:
        (B, C, H, W) float32 adversarial images, within ``eps`` of ``x`` and in [0, 1].

    Raises:
        TypeError: ``model`` is not a module, bad ``x``/``y`` types, bad ``generator``.
        ValueError: a bad setting, shape or device; fewer than 4 classes.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5))
        >>> x, y = torch.full((2, 1, 2, 2), 0.5), torch.tensor([0, 1])
        >>> gen = torch.Generator().manual_seed(0)
        >>> x_adv = apgd_targeted(model, x, y, norm="2", eps=0.1, steps=5, generator=gen)
        >>> bool((x_adv - x).flatten(1).norm(dim=1).max() <= 0.1 + 1e-6)
        True
    """
    cfg = _settings(
        norm=norm,
        eps=eps,
        steps=steps,
        rho=rho,
        momentum=momentum,
        loss="dlr-targeted",
        early_stop=early_stop,
    )
    target_classes = check_positive_int("target_classes", target_classes)
    x, y = _check_inputs(model, x, y, generator)
    with attack_guard(model):
        logits = _clean_logits(model, x, y, cfg.loss)
        alive = ~_misclassified(logits, y, cfg)
        ranked = _ranked_targets(logits, y)
        x_adv, best = x.clone(), torch.full((len(x),), float("-inf"), device=x.device)
        for rank in range(min(target_classes, ranked.shape[1])):
            rows = alive.nonzero().squeeze(1)
            if len(rows) == 0:
                break
            res = _run(model, cfg, x[rows], y[rows], ranked[rows, rank], generator)
            keep = res.fooled | (res.loss > best[rows])
            x_adv[rows[keep]] = res.x_adv[keep]
            best[rows[keep]] = res.loss[keep]
            alive[rows[res.fooled]] = False
    return x_adv
