"""One optimiser step of the training loop: draw, loss, backward, update, tally.

:func:`train_step` takes one global batch: it draws the method's randomness for the
whole batch, keeps this rank's shard, computes the method's loss plus the PCL term and
the regularisers, steps the optimisers (through the AMP scaler when there is one), the
per-step scheduler and the weight average, and adds the batch to the epoch's sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from art_denoise._torch import capture_features
from art_denoise.training.config import FeatureRegularizer
from art_denoise.training.distributed import DistContext, all_reduce_sum, shard
from art_denoise.training.methods import BatchLoss, TrainingMethod
from art_denoise.training.pcl import PrototypeConformityLoss
from art_denoise.training.state import LoopState, Trainables

__all__ = ["StepContext", "train_step"]


class _RecordLayers(nn.Module):
    """Runs ``inner`` and keeps what the named layers of ``model`` output meanwhile.

    :func:`~art_denoise.training.loop.fit` hands this wrapper to ``method.loss`` as the
    module to train through and the bare model as the one to attack, so only the
    training forward passes are recorded: not the attack's forwards that craft the
    examples, nor the no-grad clean pass of the progress bar, nor the validation attack.
    The hooks live only while the wrapper runs (a hook added after an inserted layer's
    hook sees that layer's output).
    """

    def __init__(self, inner: nn.Module, model: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self._hooked = [model]  # a list, so that it is not registered a second time
        self.outputs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with contextlib.ExitStack() as stack:
            captured = {
                name: stack.enter_context(capture_features(self._hooked[0], name))
                for name in self.outputs
            }
            out = self.inner(*args, **kwargs)
        for name, maps in captured.items():
            self.outputs[name].extend(maps)
        return out

    def clear(self) -> None:
        """Forget the recorded outputs (and the graphs they hold)."""
        for maps in self.outputs.values():
            maps.clear()


@dataclass(frozen=True)
class StepContext:
    """What a step needs besides the trained objects; fixed for the whole run.

    Attributes:
        method: the per-batch objective.
        loss_model: the module the loss trains through (the DDP wrapper, and the layer
            recorder when there are feature regularisers).
        recorder: the layer recorder, if any.
        features: layer name -> penalty on its recorded outputs.
        regularizers: penalties added to the loss after the forward pass.
        ctx: the distributed context.
        autocast: the mixed-precision context, if any.
        num_classes: the number of classes.
        step_scheduler: step the scheduler after every optimiser step.
    """

    method: TrainingMethod
    loss_model: nn.Module
    recorder: _RecordLayers | None
    features: dict[str, FeatureRegularizer]
    regularizers: Sequence[Callable[[], torch.Tensor]]
    ctx: DistContext
    autocast: torch.autocast | None
    num_classes: int
    step_scheduler: bool


def train_step(
    step: StepContext, state: LoopState, xg: torch.Tensor, yg: torch.Tensor
) -> BatchLoss:
    """One optimiser step on the global batch (xg, yg); returns the method's output.

    Adds the batch's loss and hits to ``state.sums``; leaves the step counters alone.
    """
    parts, ctx = state.parts, step.ctx
    draws = step.method.draw(yg, tuple(xg.shape), step.num_classes, state.generator)
    xb, yb = shard(xg, ctx), shard(yg, ctx)
    draws = {name: shard(t, ctx) for name, t in draws.items()}
    parts.optimizer.zero_grad(set_to_none=True)
    if parts.pcl_optimizer is not None:
        parts.pcl_optimizer.zero_grad(set_to_none=True)
    if step.recorder is not None:
        step.recorder.clear()
    out = step.method.loss(step.loss_model, parts.model, xb, yb, draws, step.autocast)
    per_example = out.losses
    if parts.pcl is not None:
        per_example = per_example + parts.pcl.loss(yb)
    # Sum over the shard / global batch, times the ranks DDP averages over.
    loss = per_example.sum() * ctx.world_size / len(xg)
    loss = _add_penalties(step, loss)
    _update(parts, ctx, loss, step.step_scheduler)
    _tally(state.sums, out, yb, per_example)
    return out


def _add_penalties(step: StepContext, loss: torch.Tensor) -> torch.Tensor:
    """``loss`` plus the regularisers' and the feature regularisers' terms, in that order."""
    for reg in step.regularizers:
        loss = loss + reg()
    if step.recorder is None:
        return loss
    for name, penalty in step.features.items():
        if not step.recorder.outputs[name]:
            raise RuntimeError(
                f"layer {name!r} of feature_regularizers was not called in the "
                "training forward pass"
            )
        loss = loss + penalty(list(step.recorder.outputs[name]))
    step.recorder.clear()
    return loss


def _update(parts: Trainables, ctx: DistContext, loss: torch.Tensor, step_scheduler: bool) -> None:
    """Backward, then step the optimisers, the per-step scheduler and the weight average."""
    scaler = parts.scaler
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    _average_centre_grads(parts.pcl, ctx)
    optimizers = [parts.optimizer]
    if parts.pcl_optimizer is not None:
        optimizers.append(parts.pcl_optimizer)
    for optimizer in optimizers:
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()
    if scaler is not None:
        scaler.update()
    if parts.scheduler is not None and step_scheduler:
        parts.scheduler.step()
    if parts.averager is not None:
        parts.averager.update(parts.model)


def _average_centre_grads(pcl: PrototypeConformityLoss | None, ctx: DistContext) -> None:
    """Average the PCL centres' gradients over the ranks (DDP only averages the model's)."""
    if not ctx.enabled or pcl is None:
        return
    for p in pcl.parameters():
        if p.grad is not None:
            all_reduce_sum(p.grad, ctx).div_(ctx.world_size)


def _tally(sums: torch.Tensor, out: BatchLoss, yb: torch.Tensor, per_example: torch.Tensor) -> None:
    """Add the batch's loss, clean and adversarial hits and sizes to ``sums`` (no sync)."""
    with torch.no_grad():
        zero = torch.zeros((), dtype=torch.float64, device=sums.device)
        clean = adv = n_clean = zero
        if out.logits_adv is not None:
            adv = (out.logits_adv.argmax(1) == yb).sum().double()
        if out.logits_clean is not None:
            clean = (out.logits_clean.argmax(1) == yb).sum().double()
            n_clean = zero + len(yb)
        sums += torch.stack(
            [per_example.detach().double().sum(), clean, adv, zero + len(yb), n_clean]
        )
