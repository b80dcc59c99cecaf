"""The one training loop every trainer runs: on the device, resumable, distributed, AMP.

:func:`fit` trains a model with a :class:`~art_denoise.training.methods.TrainingMethod`
(standard, PGD, mix, fast), optionally the prototype conformity loss and extra
regularisers (BlurNet's: on the weights, or on a layer's maps in the training forward),
checkpointing every N steps and at each epoch end, under ``torchrun`` with
DistributedDataParallel when launched that way. Data stays a tensor on the device;
there is no numpy round trip per batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from art_denoise._torch import capture_features
from art_denoise._validation import (
    as_float_images,
    as_labels,
    check_choice,
    check_non_negative,
    check_positive_int,
)
from art_denoise.training.adversarial_examples import pgd_examples, random_ball
from art_denoise.training.averaging import WeightAverage, check_decay
from art_denoise.training.checkpoint import (
    load_checkpoint,
    model_signature,
    save_checkpoint,
)
from art_denoise.training.distributed import DistContext, all_reduce_sum, shard
from art_denoise.training.methods import TrainingMethod
from art_denoise.training.pcl import PrototypeConformityLoss

__all__ = [
    "CHECKPOINT_NAME",
    "FeatureRegularizer",
    "FitResult",
    "ValidationAttack",
    "fit",
    "make_autocast",
]

#: File name of the latest checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: A penalty on a layer's outputs: receives the (B, ...) outputs of one step's training
#: forward pass(es), with their autograd graph, and returns a scalar.
FeatureRegularizer = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class ValidationAttack:
    """The PGD run on the held-out slice at each epoch end (for early stopping)."""

    eps: float
    steps: int = 10
    step_size: float | None = None
    norm: str = "inf"
    seed: int = 12345

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: DistContext, clip: Any
    ) -> tuple[float, float]:
        """(clean accuracy, PGD accuracy) of ``model`` in eval mode on (x, y)."""
        was_training = model.training
        model.eval()
        gen = torch.Generator().manual_seed(self.seed)
        noise = shard(random_ball(tuple(x.shape), self.eps, self.norm, gen), ctx)
        xs, ys = shard(x, ctx), shard(y, ctx)
        step = self.step_size if self.step_size is not None else self.eps / 4
        counts = torch.zeros(3, dtype=torch.float64, device=x.device)
        for start in range(0, len(xs), 512):
            xb, yb = xs[start : start + 512], ys[start : start + 512]
            with torch.no_grad():
                clean = model(xb).argmax(1) == yb
            adv = pgd_examples(
                model,
                xb,
                yb,
                eps=self.eps,
                step_size=step,
                steps=self.steps,
                norm=self.norm,
                generator=gen,
                noise=noise[start : start + 512],
                clip_values=clip,
            )
            with torch.no_grad():
                robust = (model(adv).argmax(1) == yb) & clean
            counts += torch.stack([clean.sum(), robust.sum(), torch.tensor(len(yb))]).to(counts)
        model.train(was_training)
        all_reduce_sum(counts, ctx)
        n = max(float(counts[2]), 1.0)
        return float(counts[0]) / n, float(counts[1]) / n


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict per finished epoch (loss, clean_acc, adv_acc, val_clean,
            val_adv, lr, seconds).
        steps: optimiser steps taken in total (including before a resume).
        stopped_early: early stopping fired (catastrophic overfitting).
        best_epoch: the epoch whose weights were restored, when early stopping is on.
        checkpoint: path of the latest checkpoint, if any was written.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    stopped_early: bool = False
    best_epoch: int | None = None
    checkpoint: Path | None = None


class _RecordLayers(nn.Module):
    """Runs ``inner`` and keeps what the named layers of ``model`` output meanwhile.

    :func:`fit` hands this wrapper to ``method.loss`` as the module to train through and
    the bare model as the one to attack, so only the training forward passes are
    recorded: not the attack's forwards that craft the examples, nor the no-grad clean
    pass of the progress bar, nor the validation attack. The hooks live only while the
    wrapper runs (a hook added after an inserted layer's hook sees that layer's output).
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


def _check_feature_regularizers(
    model: nn.Module, feature_regularizers: Mapping[str, FeatureRegularizer]
) -> dict[str, FeatureRegularizer]:
    if not isinstance(feature_regularizers, Mapping):
        raise TypeError(
            "feature_regularizers must map layer names to callables, got "
            f"{type(feature_regularizers).__name__}"
        )
    names = {name for name, _ in model.named_modules() if name}
    for name, penalty in feature_regularizers.items():
        if name not in names:
            raise ValueError(
                f"feature_regularizers names unknown layer {name!r}; valid names are: "
                f"{', '.join(sorted(names))}"
            )
        if not callable(penalty):
            raise TypeError(
                f"feature_regularizers[{name!r}] must be callable, got {type(penalty).__name__}"
            )
    return dict(feature_regularizers)


def make_autocast(amp: str | None, device: torch.device) -> torch.autocast | None:
    """The autocast context for ``amp`` (``None``, ``"bf16"`` or ``"fp16"``) on ``device``.

    Raises:
        ValueError: unknown precision, or fp16 requested on the CPU.
    """
    if amp is None:
        return None
    check_choice("amp", amp, AMP_DTYPES)
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' on the CPU")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    method: TrainingMethod,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int = 128,
    num_classes: int | None = None,
    scheduler: Any = None,
    scheduler_interval: str = "step",
    pcl: PrototypeConformityLoss | None = None,
    pcl_optimizer: torch.optim.Optimizer | None = None,
    regularizers: Sequence[Callable[[], torch.Tensor]] = (),
    feature_regularizers: Mapping[str, FeatureRegularizer] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    amp: str | None = None,
    validation: tuple[Any, Any] | None = None,
    validation_attack: ValidationAttack | None = None,
    early_stop_drop: float | None = None,
    ema_decay: float | None = None,
    progress: bool = True,
    dist_ctx: DistContext | None = None,
    on_step: Callable[[int], None] | None = None,
    batches: Callable[[], tuple[Any, Any]] | None = None,
    steps_per_epoch: int | None = None,
    extra_settings: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` in place with ``method``; returns the history.

    Args:
        model: maps (B, C, H, W) inputs within ``method.clip_values`` to logits.
        optimizer: over the model's parameters.
        method: the per-batch objective (see :mod:`art_denoise.training.methods`).
        x, y: training images (numpy or tensor, NCHW in the clip range) and labels
            (integers or one-hot).
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: the *global* batch size (split over ranks when distributed).
        num_classes: defaults to ``model.num_classes`` or ``max(y) + 1``.
        scheduler: an LR scheduler stepped every step (``scheduler_interval="step"``) or
            every epoch (``"epoch"``).
        pcl: a :class:`PrototypeConformityLoss` on this model, added to the loss; its
            centres are trained by ``pcl_optimizer``.
        regularizers: callables returning scalar penalties added to the loss after the
            training forward (e.g. BlurNet's L-inf penalty on the low-pass kernels).
        feature_regularizers: layer name (from ``model.named_modules()``) -> a penalty
            on that layer's outputs (a :data:`FeatureRegularizer`), added to the loss.
            It receives the outputs of the step's *training* forward passes only, the
            ones the loss is computed on: one per step, or two for mix training (clean
            and adversarial); the attack's forward passes that craft the examples are
            not recorded. The outputs are dropped after each step. BlurNet's total
            variation of the first layer's maps is
            ``{"stage1.0": lambda maps: total_variation_penalty(torch.cat(maps), 1e-4)}``.
            In a distributed run each rank penalises its own shard and DDP averages.
        seed: seeds the data order and every random draw of the method.
        device: defaults to the model's device.
        checkpoint_dir: where ``checkpoint.pt`` is written (rank 0 only, atomically)
            every ``checkpoint_every`` steps and at each epoch end.
        resume: continue from ``checkpoint_dir/checkpoint.pt``. Without ``resume`` an
            existing checkpoint there is an error, never overwritten.
        amp: ``None``, ``"bf16"`` or ``"fp16"`` (CUDA only) mixed precision.
        validation: held-out (x, y) evaluated at each epoch end with
            ``validation_attack`` (default: PGD-10 at the method's eps).
        early_stop_drop: stop when the validation PGD accuracy falls this far (a
            fraction, e.g. 0.2) below its best, and restore the best weights: the guard
            against catastrophic overfitting of fast adversarial training.
        ema_decay: keep an exponential moving average of the weights with this decay
            (:class:`~art_denoise.training.averaging.WeightAverage`, e.g. 0.999);
            validation, early stopping and the trained model then use the averaged
            weights.
        progress: show a progress bar (rank 0) with loss, clean and adversarial accuracy.
        dist_ctx: the distributed context (:func:`~art_denoise.training.distributed.
            init_distributed`); the model is wrapped in DistributedDataParallel.
        on_step: called with the global step number after each optimiser step.
        batches: instead of (x, y), a function returning the next global batch (x, y)
            (ART's ``DataGenerator.get_batch``); ``x`` and ``y`` are then ignored. In a
            distributed run it must return the same batch on every rank. A resumed run
            skips the batches of the interrupted epoch already seen.
        steps_per_epoch: batches per epoch; needed with ``batches``.
        extra_settings: more JSON-able settings a resumed run must match (the
            command line records its learning-rate schedule, dataset, ...).

    Raises:
        ValueError / TypeError: bad data or settings, or an existing checkpoint without
            ``resume``.
        CheckpointError: the checkpoint to resume is corrupt or belongs to another run.
    """
    ctx = dist_ctx or DistContext()
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    check_choice("scheduler_interval", scheduler_interval, ("step", "epoch"))
    if not isinstance(method, TrainingMethod):
        raise TypeError(f"method must be a TrainingMethod, got {type(method).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch optimizer, got {type(optimizer).__name__}")
    if checkpoint_every is not None:
        checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    if early_stop_drop is not None:
        early_stop_drop = check_non_negative("early_stop_drop", early_stop_drop)
        if validation is None:
            raise ValueError("early_stop_drop needs validation data")
    if pcl is not None and pcl_optimizer is None:
        raise ValueError("pcl needs pcl_optimizer (the centres' own optimiser)")
    if ema_decay is not None:
        ema_decay = check_decay("ema_decay", ema_decay)
    features = _check_feature_regularizers(model, feature_regularizers or {})
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    autocast = make_autocast(amp, dev)
    clip = method.clip_values
    k = num_classes if num_classes is not None else getattr(model, "num_classes", None)
    if batches is not None:
        if steps_per_epoch is None:
            raise ValueError("batches needs steps_per_epoch")
        steps_per_epoch = check_positive_int("steps_per_epoch", steps_per_epoch)
        if k is None:
            raise ValueError("num_classes is needed when training from batches")
        xt = torch.empty(0, device=dev)
        yt = torch.empty(0, dtype=torch.int64, device=dev)
        n = steps_per_epoch * batch_size
    else:
        xt = as_float_images(x, clip_values=clip).to(dev)
        if len(xt) == 0:
            raise ValueError("x holds no training images")
        yt = as_labels(y, n=len(xt), num_classes=k).to(dev)
        n = len(xt)
        steps_per_epoch = math.ceil(n / batch_size)
    k = int(k) if k is not None else int(yt.max()) + 1

    def next_batch(order_now: torch.Tensor | None, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if batches is None:
            assert order_now is not None
            idx = order_now[step * batch_size : (step + 1) * batch_size].to(dev)
            return xt[idx], yt[idx]
        xb_raw, yb_raw = batches()
        xb_ = as_float_images(xb_raw, clip_values=clip).to(dev)
        return xb_, as_labels(yb_raw, n=len(xb_), num_classes=k).to(dev)

    if ctx.enabled and batch_size < ctx.world_size:
        raise ValueError(f"batch_size {batch_size} is smaller than the {ctx.world_size} ranks")
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    if validation is not None:
        xv = as_float_images(validation[0], name="validation x", clip_values=clip).to(dev)
        val = (xv, as_labels(validation[1], n=len(xv), num_classes=k).to(dev))
        if validation_attack is None:
            eps = float(getattr(method, "eps", 0.0))
            validation_attack = ValidationAttack(eps=eps, norm=getattr(method, "norm", "inf"))

    model.to(dev)
    averager = WeightAverage(model, ema_decay) if ema_decay is not None else None
    train_model: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = (
            [dev.index if dev.index is not None else ctx.local_rank] if dev.type == "cuda" else None
        )
        train_model = DistributedDataParallel(model, device_ids=ids)
    recorder = _RecordLayers(train_model, model, list(features)) if features else None
    loss_model: nn.Module = recorder if recorder is not None else train_model
    scaler = torch.amp.GradScaler(dev.type) if amp == "fp16" else None

    settings = {
        "method": method.config(),
        "batch_size": batch_size,
        "num_train": n,
        "num_classes": k,
        "seed": seed,
        "amp": amp,
        "pcl": pcl.config() if pcl is not None else None,
        "world_size": ctx.world_size,
        # Only when set, so that runs without averaging resume from older checkpoints.
        **({"ema_decay": ema_decay} if ema_decay is not None else {}),
        **(extra_settings or {}),
    }
    signature = model_signature(model)
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    gen = torch.Generator().manual_seed(seed)
    result = FitResult()
    start_epoch, start_step = 0, 0
    order: torch.Tensor | None = None
    sums = torch.zeros(5, dtype=torch.float64, device=dev)  # loss, clean, adv, n, n_clean
    best: dict[str, Any] = {"acc": None, "epoch": None, "state": None}
    if resume:
        if ckpt_path is None:
            raise ValueError("resume=True needs checkpoint_dir")
        state = load_checkpoint(ckpt_path, signature=signature, settings=settings, map_location=dev)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if pcl is not None:
            pcl.load_state_dict(state["pcl"])
            assert pcl_optimizer is not None
            pcl_optimizer.load_state_dict(state["pcl_optimizer"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        if averager is not None:
            averager.load_state_dict(state["ema"])
        gen.set_state(state["generator"])
        _set_rng_state(state["rng"])
        start_epoch, start_step = int(state["epoch"]), int(state["step_in_epoch"])
        order = state["order"]
        sums = state["sums"].to(dev)
        result.history = list(state["history"])
        result.steps = int(state["global_step"])
        best = dict(state["best"])
    elif ckpt_path is not None and ckpt_path.exists():
        raise ValueError(
            f"{ckpt_path} already exists: pass resume=True to continue that run, or choose "
            "another checkpoint directory (it is never overwritten by a new run)"
        )

    def checkpoint(epoch: int, step_in_epoch: int, order_now: torch.Tensor | None) -> None:
        if ckpt_path is None or not ctx.is_main:
            return
        save_checkpoint(
            ckpt_path,
            {
                "signature": signature,
                "settings": settings,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "pcl": pcl.state_dict() if pcl is not None else None,
                "pcl_optimizer": pcl_optimizer.state_dict() if pcl_optimizer is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "ema": averager.state_dict() if averager is not None else None,
                "generator": gen.get_state(),
                "rng": _rng_state(),
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": result.steps,
                "order": order_now,
                "sums": sums.cpu(),
                "history": result.history,
                "best": best,
            },
        )
        result.checkpoint = ckpt_path

    centre_params = list(pcl.parameters()) if pcl is not None else []
    stopped = False
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        if order is None and batches is None:
            order = torch.randperm(n, generator=gen)
        elif batches is not None:
            for _ in range(start_step):  # resumed mid-epoch: skip the batches already seen
                batches()
        model.train()
        bar = tqdm(
            range(start_step, steps_per_epoch),
            total=steps_per_epoch,
            initial=start_step,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=not (progress and ctx.is_main),
            leave=False,
        )
        for step in bar:
            xg, yg = next_batch(order, step)
            draws = method.draw(yg, tuple(xg.shape), k, gen)
            xb, yb = shard(xg, ctx), shard(yg, ctx)
            draws = {name: shard(t, ctx) for name, t in draws.items()}
            optimizer.zero_grad(set_to_none=True)
            if pcl_optimizer is not None:
                pcl_optimizer.zero_grad(set_to_none=True)
            if recorder is not None:
                recorder.clear()
            out = method.loss(loss_model, model, xb, yb, draws, autocast)
            per_example = out.losses
            if pcl is not None:
                per_example = per_example + pcl.loss(yb)
            # Sum over the shard / global batch, times the ranks DDP averages over.
            loss = per_example.sum() * ctx.world_size / len(xg)
            for reg in regularizers:
                loss = loss + reg()
            if recorder is not None:
                for name, penalty in features.items():
                    if not recorder.outputs[name]:
                        raise RuntimeError(
                            f"layer {name!r} of feature_regularizers was not called in the "
                            "training forward pass"
                        )
                    loss = loss + penalty(list(recorder.outputs[name]))
                recorder.clear()
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            if ctx.enabled and centre_params:
                for p in centre_params:
                    if p.grad is not None:
                        all_reduce_sum(p.grad, ctx).div_(ctx.world_size)
            if scaler is not None:
                scaler.step(optimizer)
                if pcl_optimizer is not None:
                    scaler.step(pcl_optimizer)
                scaler.update()
            else:
                optimizer.step()
                if pcl_optimizer is not None:
                    pcl_optimizer.step()
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            if averager is not None:
                averager.update(model)
            with torch.no_grad():  # running sums stay on the device: no sync per step
                zero = torch.zeros((), dtype=torch.float64, device=dev)
                clean = adv = n_clean = zero
                if out.logits_adv is not None:
                    adv = (out.logits_adv.argmax(1) == yb).sum().double()
                if out.logits_clean is not None:
                    clean = (out.logits_clean.argmax(1) == yb).sum().double()
                    n_clean = zero + len(yb)
                sums += torch.stack(
                    [per_example.detach().double().sum(), clean, adv, zero + len(yb), n_clean]
                )
            result.steps += 1
            if ctx.is_main and progress and (step % 10 == 0 or step == steps_per_epoch - 1):
                s = sums.tolist()
                post = {"loss": f"{s[0] / max(s[3], 1):.3f}"}
                if s[4]:
                    post["clean"] = f"{s[1] / s[4]:.3f}"
                if out.logits_adv is not None:
                    post["adv"] = f"{s[2] / max(s[3], 1):.3f}"
                bar.set_postfix(post)
            if checkpoint_every is not None and result.steps % checkpoint_every == 0:
                checkpoint(epoch, step + 1, order)
            if on_step is not None:
                on_step(result.steps)
        bar.close()
        totals = all_reduce_sum(sums.clone(), ctx).tolist()
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": totals[0] / max(totals[3], 1),
            "clean_acc": totals[1] / totals[4] if totals[4] else None,
            "adv_acc": totals[2] / totals[3] if method.name != "none" and totals[3] else None,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if val is not None and validation_attack is not None:
            with averager.applied(model) if averager is not None else contextlib.nullcontext():
                v_clean, v_adv = validation_attack.run(model, val[0], val[1], ctx, clip)
            entry.update(val_clean=v_clean, val_adv=v_adv)
            if early_stop_drop is not None:
                if best["acc"] is None or v_adv > best["acc"]:
                    best = {
                        "acc": v_adv,
                        "epoch": epoch + 1,
                        "state": {
                            n_: t.detach().cpu().clone()
                            for n_, t in (
                                averager.shadow if averager is not None else model.state_dict()
                            ).items()
                        },
                    }
                elif v_adv < best["acc"] - early_stop_drop:
                    stopped = True
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        entry["seconds"] = time.perf_counter() - t0
        result.history.append(entry)
        sums.zero_()
        order, start_step = None, 0
        checkpoint(epoch + 1, 0, None)
        if ctx.is_main and progress:
            shown = {key: round(v, 4) for key, v in entry.items() if isinstance(v, float)}
            tqdm.write(f"epoch {epoch + 1}: {shown}")
        if stopped:
            break
    if early_stop_drop is not None and best["state"] is not None:
        model.load_state_dict(copy.deepcopy(best["state"]))
        result.best_epoch = best["epoch"]
    elif averager is not None:
        averager.copy_to(model)
    result.stopped_early = stopped
    optimizer.zero_grad(set_to_none=True)
    model.eval()
    return result
