"""The one training loop every trainer runs: on the device, resumable, distributed, AMP.

:func:`fit` trains a model with a :class:`~art_denoise.training.methods.TrainingMethod`
(standard, PGD, mix, fast), optionally the prototype conformity loss and extra
regularisers (BlurNet's: on the weights, or on a layer's maps in the training forward),
checkpointing every N steps and at each epoch end, under ``torchrun`` with
DistributedDataParallel when launched that way. Data stays a tensor on the device;
there is no numpy round trip per batch.

``fit`` checks its options (:class:`~art_denoise.training.config.FitConfig`) and its
objects, prepares the run (data, model wrappers, the loop's
:class:`~art_denoise.training.state.LoopState`, resumed from a checkpoint if asked),
then trains epoch by epoch (:func:`_train_epoch`), step by step
(:func:`~art_denoise.training.step.train_step`), validating and deciding on early
stopping at each epoch end (:mod:`~art_denoise.training.early_stopping`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from art_denoise._torch import set_torch_rng_state, torch_rng_state
from art_denoise._validation import check_choice
from art_denoise.training.averaging import WeightAverage
from art_denoise.training.checkpoint import load_checkpoint, model_signature, save_checkpoint
from art_denoise.training.config import AMP_DTYPES, FeatureRegularizer, FitConfig
from art_denoise.training.data import TrainData, as_validation
from art_denoise.training.distributed import DistContext, all_reduce_sum
from art_denoise.training.early_stopping import ValidationAttack, update_best
from art_denoise.training.methods import BatchLoss, TrainingMethod
from art_denoise.training.pcl import PrototypeConformityLoss
from art_denoise.training.state import LoopState, Trainables, new_sums
from art_denoise.training.step import StepContext, _RecordLayers, train_step

__all__ = [
    "CHECKPOINT_NAME",
    "FeatureRegularizer",
    "FitConfig",
    "FitResult",
    "ValidationAttack",
    "fit",
    "make_autocast",
]

#: File name of the latest checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"

#: The defaults of fit's keyword options (``epochs`` has none: ``None`` marks it unset).
_OPTION_DEFAULTS = {f.name: None if f.default is MISSING else f.default for f in fields(FitConfig)}


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


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    method: TrainingMethod,
    x: Any,
    y: Any,
    *,
    epochs: int | None = None,
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
    config: FitConfig | None = None,
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
            skips as many batches of the interrupted epoch as were seen; it sees the same
            ones only if the function replays its order (a shuffling ART generator draws
            a new order from numpy's global RNG, which the checkpoint does not hold, so
            its resumed epoch sees some images twice and others not at all).
        steps_per_epoch: batches per epoch; needed with ``batches``.
        extra_settings: more JSON-able settings a resumed run must match (the
            command line records its learning-rate schedule, dataset, ...).
        config: all the options above as one :class:`FitConfig`, instead of keywords
            (``fit(model, optimizer, method, x, y, config=FitConfig(epochs=2))``);
            giving both is a ``TypeError``.

    Raises:
        ValueError / TypeError: bad data or settings, or an existing checkpoint without
            ``resume``; all are raised before any training.
        CheckpointError: the checkpoint to resume is corrupt or belongs to another run.
    """
    options = {
        "epochs": epochs,
        "batch_size": batch_size,
        "num_classes": num_classes,
        "scheduler": scheduler,
        "scheduler_interval": scheduler_interval,
        "pcl": pcl,
        "pcl_optimizer": pcl_optimizer,
        "regularizers": regularizers,
        "feature_regularizers": feature_regularizers,
        "seed": seed,
        "device": device,
        "checkpoint_dir": checkpoint_dir,
        "checkpoint_every": checkpoint_every,
        "resume": resume,
        "amp": amp,
        "validation": validation,
        "validation_attack": validation_attack,
        "early_stop_drop": early_stop_drop,
        "ema_decay": ema_decay,
        "progress": progress,
        "dist_ctx": dist_ctx,
        "on_step": on_step,
        "batches": batches,
        "steps_per_epoch": steps_per_epoch,
        "extra_settings": extra_settings,
    }
    cfg = _resolve_config(config, options)
    run, state = _prepare(model, optimizer, method, x, y, cfg)
    if cfg.resume:
        _restore(run, state)
    # a run that early stopping ended stays ended when resumed
    stopped = state.stopped
    while not stopped and state.epoch < cfg.epochs:
        stopped = _train_epoch(run, state)
    return _finish(run, state, stopped)


def _is_default(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and bool(value == default))


def _resolve_config(config: FitConfig | None, options: dict[str, Any]) -> FitConfig:
    """The run's :class:`FitConfig`: ``config``, or one built (and checked) from keywords."""
    if config is None:
        if options["epochs"] is None:
            raise TypeError("fit() missing 1 required keyword-only argument: 'epochs'")
        return FitConfig(**options)
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(config).__name__}")
    mixed = [k for k, v in options.items() if not _is_default(v, _OPTION_DEFAULTS[k])]
    if mixed:
        raise TypeError(
            "fit() takes its options either as keywords or as config=, not both; got "
            f"config and {', '.join(mixed)}"
        )
    return config


@dataclass
class _Run:
    """What stays fixed while the loop runs, once :func:`_prepare` has checked it all."""

    cfg: FitConfig
    method: TrainingMethod
    ctx: DistContext
    device: torch.device
    data: TrainData
    step: StepContext
    validation: tuple[torch.Tensor, torch.Tensor] | None
    validation_attack: ValidationAttack | None
    checkpoint_path: Path | None
    signature: dict[str, list[int]]
    settings: dict[str, Any]
    written: Path | None = None  # the checkpoint, once one is written


def _check_layer_names(model: nn.Module, features: Mapping[str, FeatureRegularizer]) -> None:
    names = {name for name, _ in model.named_modules() if name}
    for name in features:
        if name not in names:
            raise ValueError(
                f"feature_regularizers names unknown layer {name!r}; valid names are: "
                f"{', '.join(sorted(names))}"
            )


def _check_trains(name: str, optimizer: torch.optim.Optimizer, owner: nn.Module, arg: str) -> None:
    """Refuse an optimiser that holds none of ``owner``'s parameters (it would train nothing).

    Holding only some of them is fine: that is how a part of a model is fine-tuned.
    """
    own = {id(p) for p in owner.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(id(p) in own for p in held):
        raise ValueError(
            f"{name} holds {len(held)} parameter tensor(s), none of the {len(own)} of {arg}: "
            f"it would train nothing; build it over {arg}.parameters()"
        )


def _checkpoint_path(cfg: FitConfig) -> Path | None:
    return Path(cfg.checkpoint_dir) / CHECKPOINT_NAME if cfg.checkpoint_dir is not None else None


def _check_objects(
    model: nn.Module, optimizer: torch.optim.Optimizer, method: TrainingMethod, cfg: FitConfig
) -> tuple[torch.device, torch.autocast | None, int | None]:
    """Check what the config cannot, before any work.

    Returns:
        The device, the autocast context and the number of classes (if known yet).
    """
    if not isinstance(method, TrainingMethod):
        raise TypeError(f"method must be a TrainingMethod, got {type(method).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch optimizer, got {type(optimizer).__name__}")
    _check_trains("optimizer", optimizer, model, "model")
    if cfg.pcl is not None and cfg.pcl_optimizer is not None:
        _check_trains("pcl_optimizer", cfg.pcl_optimizer, cfg.pcl, "pcl")
    _check_layer_names(model, cfg.features)
    dev = torch.device(cfg.device) if cfg.device is not None else next(model.parameters()).device
    autocast = make_autocast(cfg.amp, dev)
    k = cfg.num_classes if cfg.num_classes is not None else getattr(model, "num_classes", None)
    if cfg.batches is not None and k is None:
        raise ValueError("num_classes is needed when training from batches")
    path = _checkpoint_path(cfg)
    if not cfg.resume and path is not None and path.exists():
        raise ValueError(
            f"{path} already exists: pass resume=True to continue that run, or choose "
            "another checkpoint directory (it is never overwritten by a new run)"
        )
    return dev, autocast, k


def _load_data(
    x: Any, y: Any, cfg: FitConfig, num_classes: int | None, clip: Any, device: torch.device
) -> TrainData:
    if cfg.batches is not None:
        assert cfg.steps_per_epoch is not None and num_classes is not None  # checked before
        return TrainData.from_batches(
            cfg.batches,
            steps_per_epoch=cfg.steps_per_epoch,
            batch_size=cfg.batch_size,
            num_classes=num_classes,
            clip=clip,
            device=device,
        )
    return TrainData.from_arrays(
        x, y, batch_size=cfg.batch_size, num_classes=num_classes, clip=clip, device=device
    )


def _step_context(
    model: nn.Module,
    method: TrainingMethod,
    cfg: FitConfig,
    device: torch.device,
    autocast: torch.autocast | None,
    k: int,
) -> StepContext:
    """Wrap the model for the training forward (DDP, then the layer recorder)."""
    ctx, features = cfg.ctx, cfg.features
    train_model: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        index = device.index if device.index is not None else ctx.local_rank
        ids = [index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids)
    recorder = _RecordLayers(train_model, model, list(features)) if features else None
    return StepContext(
        method=method,
        loss_model=recorder if recorder is not None else train_model,
        recorder=recorder,
        features=features,
        regularizers=cfg.regularizers,
        ctx=ctx,
        autocast=autocast,
        num_classes=k,
        step_scheduler=cfg.scheduler_interval == "step",
    )


def _settings(cfg: FitConfig, method: TrainingMethod, data: TrainData) -> dict[str, Any]:
    """The training settings a checkpoint records and a resumed run must match."""
    return {
        "method": method.config(),
        "batch_size": cfg.batch_size,
        "num_train": data.size,
        "num_classes": data.num_classes,
        "seed": cfg.seed,
        "amp": cfg.amp,
        "pcl": cfg.pcl.config() if cfg.pcl is not None else None,
        "world_size": cfg.ctx.world_size,
        # Only when set, so that runs without averaging resume from older checkpoints.
        **({"ema_decay": cfg.ema_decay} if cfg.ema_decay is not None else {}),
        **(cfg.extra_settings or {}),
    }


def _load_validation(
    cfg: FitConfig, method: TrainingMethod, num_classes: int, device: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, ValidationAttack | None]:
    """The held-out data on the device and its attack (PGD-10 at the method's eps)."""
    if cfg.validation is None:
        return None, cfg.validation_attack
    val = as_validation(
        cfg.validation, num_classes=num_classes, clip=method.clip_values, device=device
    )
    attack = cfg.validation_attack
    if attack is None:
        eps = float(getattr(method, "eps", 0.0))
        attack = ValidationAttack(eps=eps, norm=getattr(method, "norm", "inf"))
    return val, attack


def _prepare(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    method: TrainingMethod,
    x: Any,
    y: Any,
    cfg: FitConfig,
) -> tuple[_Run, LoopState]:
    """Check the objects, load the data, wrap the model; the run and its fresh state."""
    dev, autocast, k = _check_objects(model, optimizer, method, cfg)
    data = _load_data(x, y, cfg, k, method.clip_values, dev)
    val, attack = _load_validation(cfg, method, data.num_classes, dev)
    model.to(dev)
    parts = Trainables(
        model,
        optimizer,
        scheduler=cfg.scheduler,
        pcl=cfg.pcl,
        pcl_optimizer=cfg.pcl_optimizer,
        scaler=torch.amp.GradScaler(dev.type) if cfg.amp == "fp16" else None,
        averager=WeightAverage(model, cfg.ema_decay) if cfg.ema_decay is not None else None,
    )
    run = _Run(
        cfg=cfg,
        method=method,
        ctx=cfg.ctx,
        device=dev,
        data=data,
        step=_step_context(model, method, cfg, dev, autocast, data.num_classes),
        validation=val,
        validation_attack=attack,
        checkpoint_path=_checkpoint_path(cfg),
        signature=model_signature(model),
        settings=_settings(cfg, method, data),
    )
    state = LoopState(parts, torch.Generator().manual_seed(cfg.seed), new_sums(dev))
    return run, state


def _restore(run: _Run, state: LoopState) -> None:
    """Continue from the run's checkpoint (checked against the model and the settings)."""
    assert run.checkpoint_path is not None  # FitConfig: resume needs checkpoint_dir
    checkpoint = load_checkpoint(
        run.checkpoint_path,
        signature=run.signature,
        settings=run.settings,
        map_location=run.device,
    )
    state.restore(checkpoint)
    set_torch_rng_state(checkpoint["rng"])


def _save(run: _Run, state: LoopState) -> None:
    """Write the checkpoint (rank 0, atomically), if the run keeps one."""
    if run.checkpoint_path is None or not run.ctx.is_main:
        return
    payload = state.to_checkpoint(
        signature=run.signature, settings=run.settings, rng=torch_rng_state()
    )
    save_checkpoint(run.checkpoint_path, payload)
    run.written = run.checkpoint_path


def _train_epoch(run: _Run, state: LoopState) -> bool:
    """Train, validate and checkpoint one epoch; returns whether to stop early."""
    started = time.perf_counter()
    state.order = run.data.start_epoch(state.order, state.step_in_epoch, state.generator)
    state.parts.model.train()
    _run_steps(run, state)
    entry = _epoch_entry(run, state)
    stop = _validate(run, state, entry)
    if state.parts.scheduler is not None and run.cfg.scheduler_interval == "epoch":
        state.parts.scheduler.step()
    entry["seconds"] = time.perf_counter() - started
    state.history.append(entry)
    state.end_epoch()
    state.stopped = stop
    _save(run, state)
    if run.ctx.is_main and run.cfg.progress:
        shown = {key: round(v, 4) for key, v in entry.items() if isinstance(v, float)}
        tqdm.write(f"epoch {state.epoch}: {shown}")
    return stop


def _run_steps(run: _Run, state: LoopState) -> None:
    """The epoch's remaining steps, with the progress bar, checkpoints and ``on_step``."""
    cfg, steps, first = run.cfg, run.data.steps_per_epoch, state.step_in_epoch
    bar = tqdm(
        range(first, steps),
        total=steps,
        initial=first,
        desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and run.ctx.is_main),
        leave=False,
    )
    for step in bar:
        xg, yg = run.data.batch(state.order, step)
        out = train_step(run.step, state, xg, yg)
        state.global_step += 1
        state.step_in_epoch = step + 1
        if run.ctx.is_main and cfg.progress and (step % 10 == 0 or step == steps - 1):
            bar.set_postfix(_progress(state.sums, out))
        if cfg.checkpoint_every is not None and state.global_step % cfg.checkpoint_every == 0:
            _save(run, state)
        if cfg.on_step is not None:
            cfg.on_step(state.global_step)
    bar.close()


def _progress(sums: torch.Tensor, out: BatchLoss) -> dict[str, str]:
    """The progress bar's running loss, clean and adversarial accuracy."""
    s = sums.tolist()
    post = {"loss": f"{s[0] / max(s[3], 1):.3f}"}
    if s[4]:
        post["clean"] = f"{s[1] / s[4]:.3f}"
    if out.logits_adv is not None:
        post["adv"] = f"{s[2] / max(s[3], 1):.3f}"
    return post


def _epoch_entry(run: _Run, state: LoopState) -> dict[str, Any]:
    """The epoch's history entry from the sums over all ranks (before validation)."""
    totals = all_reduce_sum(state.sums.clone(), run.ctx).tolist()
    adversarial = run.method.name != "none"
    return {
        "epoch": state.epoch + 1,
        "loss": totals[0] / max(totals[3], 1),
        "clean_acc": totals[1] / totals[4] if totals[4] else None,
        "adv_acc": totals[2] / totals[3] if adversarial and totals[3] else None,
        "lr": state.parts.optimizer.param_groups[0]["lr"],
    }


def _validate(run: _Run, state: LoopState, entry: dict[str, Any]) -> bool:
    """Attack the held-out slice (averaged weights, if any); returns whether to stop."""
    if run.validation is None or run.validation_attack is None:
        return False
    model, averager = state.parts.model, state.parts.averager
    with averager.applied(model) if averager is not None else contextlib.nullcontext():
        xv, yv = run.validation
        v_clean, v_adv = run.validation_attack.run(model, xv, yv, run.ctx, run.method.clip_values)
    entry.update(val_clean=v_clean, val_adv=v_adv)
    drop = run.cfg.early_stop_drop
    if drop is None:
        return False
    weights = averager.shadow if averager is not None else model.state_dict()
    state.best, stop = update_best(state.best, v_adv, state.epoch + 1, weights, drop)
    return stop


def _finish(run: _Run, state: LoopState, stopped: bool) -> FitResult:
    """Restore the best (or averaged) weights; the model is left in eval mode."""
    model, parts = state.parts.model, state.parts
    result = FitResult(
        history=state.history,
        steps=state.global_step,
        stopped_early=stopped,
        checkpoint=run.written,
    )
    if run.cfg.early_stop_drop is not None and state.best["state"] is not None:
        model.load_state_dict(copy.deepcopy(state.best["state"]))
        result.best_epoch = state.best["epoch"]
    elif parts.averager is not None:
        parts.averager.copy_to(model)
    parts.optimizer.zero_grad(set_to_none=True)
    model.eval()
    return result
