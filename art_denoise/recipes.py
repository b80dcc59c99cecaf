"""Recipes: a model and its defenses, assembled and trained the way ``art-denoise train`` does.

A recipe is two frozen, validated records: :class:`ModelRecipe` (the architecture, the
feature-denoising blocks of Xie et al. 2019, https://arxiv.org/abs/1812.03411, and the
BlurNet low-pass layer of Raju & Lipasti 2019, https://arxiv.org/abs/1908.02256, with its
penalties in :class:`BlurNetSettings`) and :class:`TrainingRecipe` (the training method,
PCL, weight averaging, the optimiser and its schedule, the data split). :func:`build_model`
turns the first into a network; :func:`train_recipe` builds and trains it with
:func:`~art_denoise.training.fit`, and the :class:`TrainedRun` it returns writes the model
file and the history. The command line (``art-denoise train`` and ``demo``) only parses
its arguments into these records and prints.

Errors name the settings as the command line spells them (``--blur``, ``--ema``): each
field of the records is the option of the same name. The architecture's own settings
(the model name, the values of ``widths`` and ``hidden``) and the names in
``denoise_after`` and ``pcl_layers`` are checked when the model is built.

This module sits just below the command line: it uses the training loop, the blocks,
BlurNet, the models and :func:`art_denoise.evaluation.metrics.predict`.

Example:
    >>> recipe = ModelRecipe(denoise="nonlocal", blurnet=BlurNetSettings(blur=3))
    >>> model = build_model(recipe, input_shape=(1, 8, 8), num_classes=10, seed=0)
    >>> [name for name, _ in model.named_modules() if name.endswith(("lowpass", "denoise"))]
    ['stage1.0.lowpass', 'stage1.denoise', 'stage2.denoise']
    >>> model(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from art_denoise._files import atomic_write_text
from art_denoise._torch import predict, resolve_device
from art_denoise._validation import check_choice, check_non_negative
from art_denoise.blocks import FILTERS, insert_denoising_blocks
from art_denoise.blurnet import (
    KINDS,
    first_conv,
    insert_lowpass,
    linf_depthwise_penalty,
    total_variation_penalty,
)
from art_denoise.data import Dataset
from art_denoise.models import create_model, save_model
from art_denoise.training import (
    METHODS,
    FitResult,
    PrototypeConformityLoss,
    TrainingMethod,
    create_method,
    fit,
)
from art_denoise.training.averaging import check_decay
from art_denoise.training.distributed import DistContext, init_distributed
from art_denoise.training.loop import CHECKPOINT_NAME, FeatureRegularizer

__all__ = [
    "LR_SCHEDULES",
    "MODEL_FILE",
    "RECIPE_METHODS",
    "BlurNetSettings",
    "ModelRecipe",
    "TrainedRun",
    "TrainingRecipe",
    "build_model",
    "check_run_dir",
    "clean_accuracy",
    "setup_device",
    "split_validation",
    "train_recipe",
]

#: Training methods of a recipe: those of :data:`art_denoise.training.METHODS`, and
#: ``"pcl"``, PCL alone on top of standard training.
RECIPE_METHODS: tuple[str, ...] = (*METHODS, "pcl")
#: Learning-rate schedules: one cycle (linear warm-up over 40% of the steps, then down)
#: or a constant rate.
LR_SCHEDULES = ("onecycle", "constant")
#: The model file a run directory holds (its description is ``model.json`` beside it).
MODEL_FILE = "model.safetensors"


def _as_tuple(value: Any) -> Any:
    """Lists (as the command line parses them) as tuples, so that a record stays frozen."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class BlurNetSettings:
    """BlurNet: a low-pass layer after the first convolution, and the penalties of the paper.

    Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
    https://arxiv.org/abs/1908.02256.

    Args:
        blur: kernel size K of the KxK low-pass layer after the first convolution (odd,
            >= 3; the paper uses 3, 5 and 7), or ``None`` for no layer.
        kind: its kernel, a key of :data:`art_denoise.blurnet.KINDS` (``"box"``,
            ``"gaussian"``, ``"learnable"``); ``"box"`` when left ``None`` with a ``blur``,
            and always ``None`` without one.
        tv: weight of the total variation of the first layer's maps (e.g. 1e-4).
        linf_reg: weight of the L-inf penalty pulling a ``"learnable"`` kernel to a box.

    Raises:
        ValueError: an even or too small ``blur``, a ``kind`` without ``blur``, a negative
            weight, or ``linf_reg`` without a learnable kernel.

    Example:
        >>> BlurNetSettings(blur=5, tv=1e-4)
        BlurNetSettings(blur=5, kind='box', tv=0.0001, linf_reg=None)
    """

    blur: int | None = None
    kind: str | None = None
    tv: float | None = None
    linf_reg: float | None = None

    def __post_init__(self) -> None:
        blur = self.blur
        if blur is not None and (isinstance(blur, bool) or not isinstance(blur, int)):
            raise TypeError(f"--blur must be an int, got {type(blur).__name__} {blur!r}")
        if blur is not None and (blur < 3 or blur % 2 == 0):
            raise ValueError(f"--blur must be an odd kernel size >= 3 (3, 5 or 7), got {blur}")
        if self.kind is not None and blur is None:
            raise ValueError(f"--blur-kind {self.kind} needs --blur K")
        kind = check_choice("--blur-kind", self.kind or "box", KINDS)
        tv = check_non_negative("--tv", self.tv) if self.tv is not None else None
        linf = (
            check_non_negative("--linf-reg", self.linf_reg) if self.linf_reg is not None else None
        )
        if linf is not None and (blur is None or kind != "learnable"):
            raise ValueError(
                f"--linf-reg {self.linf_reg} penalises a learnable low-pass kernel: "
                "add --blur K --blur-kind learnable"
            )
        object.__setattr__(self, "kind", kind if blur is not None else None)
        object.__setattr__(self, "tv", tv)
        object.__setattr__(self, "linf_reg", linf)

    def as_dict(self) -> dict[str, Any]:
        """``{"blur", "kind", "tv", "linf_reg"}``, as the model file and checkpoint record them."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelRecipe:
    """Which network to build, and which defenses go into it.

    Args:
        model: the architecture, a key of :data:`art_denoise.models.MODELS`.
        widths: a ``"smallcnn"``'s channels of its two stages (default 32, 64).
        hidden: a ``"smallcnn"``'s hidden fully-connected units (default 128).
        denoise: the filter of the denoising blocks, a key of
            :data:`art_denoise.blocks.FILTERS`, or ``None`` for no blocks.
        denoise_after: where the blocks go: dotted module names, or one preset
            (``"stages"``, ``"all-blocks"``); see
            :func:`~art_denoise.blocks.insert_denoising_blocks`.
        denoise_options: settings of the blocks' filter (``{"embed": True, "mode": "dot"}``
            for a non-local block, ``{"kernel_size": 5}`` for a mean filter), JSON-able;
            ``None``: the filter's defaults.
        blurnet: the BlurNet layer and penalties, or ``None``.

    Raises:
        ValueError: ``widths`` or ``hidden`` for another model than ``"smallcnn"``, or an
            unknown ``denoise`` filter, or ``denoise_options`` without ``denoise``.

    Example:
        >>> ModelRecipe(widths=[8, 16], denoise="median").denoise_target()
        'stages'
    """

    model: str = "smallcnn"
    widths: tuple[int, ...] | None = None
    hidden: int | None = None
    denoise: str | None = None
    denoise_after: tuple[str, ...] = ("stages",)
    denoise_options: dict[str, Any] | None = None
    blurnet: BlurNetSettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _as_tuple(self.widths))
        after = self.denoise_after
        object.__setattr__(
            self, "denoise_after", (after,) if isinstance(after, str) else tuple(after)
        )
        if self.model_config() and self.model != "smallcnn":
            raise ValueError(f"--widths and --hidden size a smallcnn, not --model {self.model!r}")
        if self.denoise is not None:
            check_choice("--denoise", self.denoise, FILTERS)
        if self.denoise_options is not None:
            if not isinstance(self.denoise_options, dict):
                raise TypeError(
                    "denoise_options must be a dict of filter settings, got "
                    f"{type(self.denoise_options).__name__}"
                )
            if self.denoise is None:
                raise ValueError(f"denoise_options {self.denoise_options} need a --denoise filter")
        if self.blurnet is not None and not isinstance(self.blurnet, BlurNetSettings):
            raise TypeError(
                f"blurnet must be a BlurNetSettings or None, got {type(self.blurnet).__name__}"
            )

    def model_config(self) -> dict[str, Any]:
        """``widths`` / ``hidden`` as constructor arguments (the model checks the values)."""
        widths = list(self.widths) if self.widths is not None else None
        config: dict[str, Any] = {"widths": widths, "hidden": self.hidden}
        return {k: v for k, v in config.items() if v is not None}

    def denoise_target(self) -> str | list[str]:
        """``denoise_after`` as :func:`~art_denoise.blocks.insert_denoising_blocks` takes it."""
        after = self.denoise_after
        return after[0] if len(after) == 1 else list(after)


@dataclass(frozen=True)
class TrainingRecipe:
    """How a model is trained: the method and its attack, PCL, averaging, optimiser, data.

    Args:
        method: one of :data:`RECIPE_METHODS`: ``"none"`` (standard), ``"pgd"`` (Madry /
            Xie), ``"mix"`` (clean and adversarial), ``"fast"`` (FGSM with a random start),
            ``"pcl"`` (PCL alone; with ``pcl=True``, add PCL to ``"pgd"`` instead).
        eps, norm, steps, step_size, restarts, targeted, prob_start_from_clean: the
            training attack (see :mod:`art_denoise.training.methods`); ``step_size``
            defaults to 2.5 eps / steps.
        mix_alpha, mix_attack: clean weight and attack (``"fgsm"``, ``"pgd"``) of ``"mix"``.
        pcl: add Mustafa et al.'s prototype conformity loss to ``method="pgd"``.
        pcl_layers: the layers PCL pulls on (default: the model's ``stages``).
        pcl_weights: its pull and push weights.
        epochs, batch_size, lr, lr_schedule: Adam at ``lr`` (the peak of ``"onecycle"``)
            for ``epochs`` epochs of global batches of ``batch_size``.
        ema: decay of an exponential moving average of the weights, which is then saved.
        val_size: training images held out for validation (0: none).
        train_size: use only the first ``train_size`` training images.
        overfit_drop: ``"fast"``: early-stop threshold on the validation robust accuracy.
        checkpoint_every: optimiser steps between checkpoints.
        amp: mixed precision, ``"bf16"`` or ``"fp16"``.
        seed: the validation split, the initial weights and the training randomness.

    Raises:
        ValueError / TypeError: bad attack settings, ``pcl`` with another method than
            ``"pgd"``, or an ``ema`` decay outside [0, 1). Epochs, batch size, learning
            rate and precision are checked by :func:`~art_denoise.training.fit`.

    Example:
        >>> TrainingRecipe(method="fast", eps=0.1).training_method().config()["method"]
        'fast'
    """

    method: str = "pgd"
    eps: float = 0.1
    norm: str = "inf"
    steps: int = 7
    step_size: float | None = None
    restarts: int = 1
    targeted: bool = False
    prob_start_from_clean: float = 0.2
    mix_alpha: float = 0.5
    mix_attack: str = "fgsm"
    pcl: bool = False
    pcl_layers: tuple[str, ...] | None = None
    pcl_weights: tuple[float, float] = (1.0, 1e-4)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    lr_schedule: str = "onecycle"
    ema: float | None = None
    val_size: int = 1000
    train_size: int | None = None
    overfit_drop: float = 0.2
    checkpoint_every: int = 200
    amp: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcl_layers", _as_tuple(self.pcl_layers))
        object.__setattr__(self, "pcl_weights", tuple(self.pcl_weights))
        check_choice("--method", self.method, RECIPE_METHODS)
        check_choice("--lr-schedule", self.lr_schedule, LR_SCHEDULES)
        self.training_method()  # the attack settings, checked by the method itself
        if self.pcl and self.method != "pgd":
            raise ValueError("--pcl combines PCL with --method pgd; use --method pcl for PCL alone")
        if self.ema is not None:
            check_decay("--ema", self.ema)

    @property
    def uses_pcl(self) -> bool:
        """PCL is trained along (``method="pcl"``, or ``"pgd"`` with ``pcl=True``)."""
        return self.method == "pcl" or self.pcl

    def method_settings(self) -> tuple[str, dict[str, Any]]:
        """The name and settings of the :func:`~art_denoise.training.create_method` call."""
        common = {"eps": self.eps, "norm": self.norm}
        if self.method == "none" or (self.method == "pcl" and not self.pcl):
            return "none", {}
        if self.method in ("pgd", "pcl"):
            return "pgd", {
                **common,
                "steps": self.steps,
                "step_size": self.step_size,
                "restarts": self.restarts,
                "targeted": self.targeted,
                "prob_start_from_clean": self.prob_start_from_clean,
            }
        if self.method == "mix":
            return "mix", {
                **common,
                "alpha": self.mix_alpha,
                "attack": self.mix_attack,
                "steps": self.steps,
                "step_size": self.step_size,
            }
        return "fast", {**common, "step_size": self.step_size}

    def training_method(self) -> TrainingMethod:
        """A fresh :class:`~art_denoise.training.TrainingMethod` of these settings."""
        name, settings = self.method_settings()
        return create_method(name, **settings)


def build_model(
    recipe: ModelRecipe,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int | None = None,
) -> nn.Module:
    """The network of ``recipe``: the architecture, then its low-pass layer, then its blocks.

    Args:
        recipe: what to build.
        input_shape: (C, H, W) of one example.
        num_classes: number of logits.
        seed: seeds torch's global generator first (``torch.manual_seed``), so that the
            initial weights repeat; ``None`` leaves it alone.

    Returns:
        The model on the CPU, in training mode; it records its transforms, so
        :func:`~art_denoise.models.save_model` / ``load_model`` rebuild it.
    """
    if seed is not None:
        torch.manual_seed(seed)
    model = create_model(
        recipe.model, input_shape=input_shape, num_classes=num_classes, **recipe.model_config()
    )
    blurnet = recipe.blurnet
    if blurnet is not None and blurnet.blur is not None:
        model = insert_lowpass(model, kernel_size=blurnet.blur, kind=blurnet.kind or "box")
    if recipe.denoise is not None:
        model = insert_denoising_blocks(
            model,
            after=recipe.denoise_target(),
            filter=recipe.denoise,
            **(recipe.denoise_options or {}),
        )
    return model


def check_run_dir(out: str | os.PathLike[str], *, resume: bool) -> Path:
    """``out`` as a path; a ``ValueError`` if it already holds a run that is not resumed."""
    out = Path(out)
    if not resume and ((out / CHECKPOINT_NAME).exists() or (out / MODEL_FILE).exists()):
        raise ValueError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    return out


def setup_device(device: str | torch.device = "auto") -> tuple[torch.device, DistContext]:
    """The device of this process and its place in a ``torchrun`` job (if any).

    Under ``torchrun`` on CUDA, each process takes the GPU of its local rank.
    """
    dev = resolve_device(device)
    ctx = init_distributed(dev)
    if ctx.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    return dev, ctx


def split_validation(
    x: np.ndarray, y: np.ndarray, *, val_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Hold ``val_size`` random images (seeded) out of (x, y), both parts in their order.

    Returns:
        The kept images and labels, and the held-out pair (``None`` when ``val_size`` is 0).
    """
    if val_size <= 0:
        return x, y, None
    if val_size >= len(x):
        raise ValueError(f"--val-size {val_size} leaves no training images of {len(x)}")
    order = np.random.default_rng(seed).permutation(len(x))
    held, kept = np.sort(order[:val_size]), np.sort(order[val_size:])
    return x[kept], y[kept], (x[held], y[held])


def _pcl(
    model: nn.Module, training: TrainingRecipe, num_classes: int
) -> tuple[PrototypeConformityLoss | None, torch.optim.Optimizer | None]:
    """PCL on the recipe's layers and the SGD optimiser of its centres, or two ``None``."""
    if not training.uses_pcl:
        return None, None
    layers = list(training.pcl_layers or ()) or list(getattr(model, "stages", ()))
    pull, push = training.pcl_weights
    pcl = PrototypeConformityLoss(model, layers, num_classes, pull_weight=pull, push_weight=push)
    return pcl, torch.optim.SGD(pcl.parameters(), lr=0.5)


def _blurnet_penalties(
    model: nn.Module, blurnet: BlurNetSettings | None
) -> tuple[list[Callable[[], torch.Tensor]], dict[str, FeatureRegularizer]]:
    """BlurNet's L-inf kernel penalty and the total variation of the first layer's maps."""
    regularizers: list[Callable[[], torch.Tensor]] = []
    features: dict[str, FeatureRegularizer] = {}
    if blurnet is not None and blurnet.linf_reg:
        alpha = blurnet.linf_reg
        regularizers.append(lambda: linf_depthwise_penalty(model, alpha))
    if blurnet is not None and blurnet.tv:
        # The first conv's output as the rest of the model sees it: after the low-pass
        # layer, whose hook runs before the recording one. Mix training records two
        # forwards per step; concatenating them penalises their mean map.
        weight = blurnet.tv
        features[first_conv(model)] = lambda maps: total_variation_penalty(
            torch.cat(maps).float(), weight
        )
    return regularizers, features


def _optimizer(
    model: nn.Module, training: TrainingRecipe, n_train: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Adam, and the one-cycle schedule over every step of the run (or none)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr)
    if training.lr_schedule != "onecycle":
        return optimizer, None
    steps = -(-n_train // training.batch_size) * training.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=training.lr,
        total_steps=steps + 1,
        pct_start=0.4,
        anneal_strategy="linear",
        cycle_momentum=False,
    )
    return optimizer, scheduler


def _resume_settings(
    recipe: ModelRecipe, training: TrainingRecipe, dataset: str, n_train: int
) -> dict[str, Any]:
    """The settings a resumed run must match, beyond those :func:`fit` records itself."""
    blurnet = recipe.blurnet
    return {
        "model": recipe.model,
        "dataset": dataset,
        "lr": training.lr,
        "lr_schedule": training.lr_schedule,
        "epochs": training.epochs if training.lr_schedule == "onecycle" else None,
        "denoise": [recipe.denoise, list(recipe.denoise_after)],
        # Only when set, so that runs without them resume from older checkpoints.
        **({"denoise_options": recipe.denoise_options} if recipe.denoise_options else {}),
        # Only when set, so that runs without BlurNet resume from older checkpoints.
        **({"blurnet": blurnet.as_dict()} if blurnet is not None else {}),
        "train_size": n_train,
        "val_size": training.val_size,
    }


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`train_recipe` returns; :meth:`save` writes it as ``art-denoise train`` does.

    Attributes:
        model: the trained model (the weight average with ``ema``), on the training device.
        recipe, training: the recipe it was built and trained with.
        method: the training method that ran.
        pcl: the trained PCL centres, if any.
        result: the history and early-stopping record of :func:`~art_denoise.training.fit`.
        dataset: the dataset's name.
        seconds: wall-clock time of the training loop.
    """

    model: nn.Module
    recipe: ModelRecipe
    training: TrainingRecipe
    method: TrainingMethod
    pcl: PrototypeConformityLoss | None
    result: FitResult
    dataset: str
    seconds: float

    def metadata(self, test_accuracy: float) -> dict[str, Any]:
        """The ``metadata`` of the model file."""
        blurnet = self.recipe.blurnet
        return {
            "dataset": self.dataset,
            "training": self.method.config(),
            "pcl": self.pcl.config() if self.pcl is not None else None,
            "blurnet": blurnet.as_dict() if blurnet is not None else None,
            "epochs": len(self.result.history),
            "seed": self.training.seed,
            "test_accuracy": test_accuracy,
            "best_epoch": self.result.best_epoch,
            "ema_decay": self.training.ema,
            "stopped_early": self.result.stopped_early,
        }

    def save(self, out: str | os.PathLike[str], *, test_accuracy: float) -> Path:
        """Write ``model.safetensors`` (and ``model.json``) and ``history.json`` in ``out``.

        Returns:
            The model file's path.
        """
        out = Path(out)
        path = save_model(self.model, out / MODEL_FILE, metadata=self.metadata(test_accuracy))
        history = {"history": self.result.history, "train_seconds": self.seconds}
        atomic_write_text(out / "history.json", json.dumps(history, indent=2) + "\n")
        return path


def clean_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device) -> float:
    """Share of the images (x, y) that ``model`` (on ``device``) classifies right."""
    pred = predict(model, torch.from_numpy(x).to(device)).cpu()
    return float((pred == torch.from_numpy(y)).float().mean())


def train_recipe(
    recipe: ModelRecipe,
    training: TrainingRecipe,
    data: Dataset,
    *,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    dist_ctx: DistContext | None = None,
) -> TrainedRun:
    """Build ``recipe``'s model and train it on ``data``'s training split with ``training``.

    The steps, in the order that fixes the random numbers: the first ``train_size``
    images, the validation split, :func:`build_model` seeded with ``training.seed``, PCL,
    Adam and its schedule, then :func:`~art_denoise.training.fit`.

    Args:
        recipe: the model.
        training: how to train it.
        data: the dataset (its test split is not used).
        device: where to train.
        checkpoint_dir: where :func:`fit` keeps its checkpoint (``None``: no checkpoint).
        resume: continue from the checkpoint in ``checkpoint_dir``.
        progress: show progress bars.
        dist_ctx: this process's place in a distributed job (see :func:`setup_device`).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((40, 1, 8, 8), dtype=np.float32)
        >>> y = rng.integers(0, 2, 40)
        >>> data = Dataset("toy", x, y, x, y, num_classes=2)
        >>> run = train_recipe(
        ...     ModelRecipe(widths=[4, 8], hidden=8),
        ...     TrainingRecipe(method="none", epochs=1, batch_size=20, val_size=0),
        ...     data,
        ...     progress=False,
        ... )
        >>> len(run.result.history)
        1
    """
    x, y = data.x_train, data.y_train
    if training.train_size is not None:
        x, y = x[: training.train_size], y[: training.train_size]
    x, y, val = split_validation(x, y, val_size=training.val_size, seed=training.seed)
    model = build_model(
        recipe, input_shape=data.input_shape, num_classes=data.num_classes, seed=training.seed
    )
    model.to(device)
    pcl, pcl_opt = _pcl(model, training, data.num_classes)
    regularizers, feature_regularizers = _blurnet_penalties(model, recipe.blurnet)
    optimizer, scheduler = _optimizer(model, training, len(x))
    name, settings = training.method_settings()
    method = create_method(name, **settings)
    early_stop = name == "fast" and val is not None
    started = time.perf_counter()
    result = fit(
        model,
        optimizer,
        method,
        x,
        y,
        epochs=training.epochs,
        batch_size=training.batch_size,
        num_classes=data.num_classes,
        scheduler=scheduler,
        pcl=pcl,
        pcl_optimizer=pcl_opt,
        regularizers=regularizers,
        feature_regularizers=feature_regularizers,
        seed=training.seed,
        device=device,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=training.checkpoint_every,
        resume=resume,
        amp=training.amp,
        validation=val,
        early_stop_drop=training.overfit_drop if early_stop else None,
        ema_decay=training.ema,
        progress=progress,
        dist_ctx=dist_ctx,
        extra_settings=_resume_settings(recipe, training, data.name, len(x)),
    )
    seconds = time.perf_counter() - started
    return TrainedRun(model, recipe, training, method, pcl, result, data.name, seconds)
