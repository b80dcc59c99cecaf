"""The options of :func:`~art_denoise.training.loop.fit` as one frozen, validated value.

:class:`FitConfig` holds every keyword option of ``fit`` (epochs, batch size,
scheduler, PCL, regularisers, checkpointing, AMP, validation, early stopping, weight
averaging, distribution, hooks) and checks them when it is built, before any data is
touched. The checks that need the model, the optimiser or the method (their types, the
regularised layers' names, the device, the number of classes) run in ``fit``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from art_denoise._validation import check_choice, check_non_negative, check_positive_int
from art_denoise.training.averaging import check_decay
from art_denoise.training.distributed import DistContext

if TYPE_CHECKING:
    from art_denoise.training.early_stopping import ValidationAttack
    from art_denoise.training.pcl import PrototypeConformityLoss

__all__ = ["AMP_DTYPES", "FeatureRegularizer", "FitConfig"]

#: Mixed precisions ``fit(..., amp=...)`` accepts, with their torch dtypes.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: A penalty on a layer's outputs: receives the (B, ...) outputs of one step's training
#: forward pass(es), with their autograd graph, and returns a scalar.
FeatureRegularizer = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class FitConfig:
    """Every keyword option of :func:`~art_denoise.training.loop.fit`, checked once.

    The attributes are ``fit``'s keyword arguments, with the same names, defaults and
    meaning (see :func:`~art_denoise.training.loop.fit`). Building one validates it:
    counts become ``int``, fractions ``float``; a bad value raises the ``ValueError`` or
    ``TypeError`` that ``fit`` raises for it. Pass one as ``fit(..., config=...)``.

    Example:
        >>> FitConfig(epochs=2, batch_size=64).batch_size
        64
    """

    epochs: int
    batch_size: int = 128
    num_classes: int | None = None
    scheduler: Any = None
    scheduler_interval: str = "step"
    pcl: PrototypeConformityLoss | None = None
    pcl_optimizer: torch.optim.Optimizer | None = None
    regularizers: Sequence[Callable[[], torch.Tensor]] = ()
    feature_regularizers: Mapping[str, FeatureRegularizer] | None = None
    seed: int = 0
    device: torch.device | str | None = None
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    amp: str | None = None
    validation: tuple[Any, Any] | None = None
    validation_attack: ValidationAttack | None = None
    early_stop_drop: float | None = None
    ema_decay: float | None = None
    progress: bool = True
    dist_ctx: DistContext | None = None
    on_step: Callable[[int], None] | None = None
    batches: Callable[[], tuple[Any, Any]] | None = None
    steps_per_epoch: int | None = None
    extra_settings: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._set("epochs", check_positive_int("epochs", self.epochs))
        self._set("batch_size", check_positive_int("batch_size", self.batch_size))
        check_choice("scheduler_interval", self.scheduler_interval, ("step", "epoch"))
        self._check_optional_numbers()
        if self.pcl is not None and self.pcl_optimizer is None:
            raise ValueError("pcl needs pcl_optimizer (the centres' own optimiser)")
        _check_penalties(self.feature_regularizers)
        if self.amp is not None:
            check_choice("amp", self.amp, AMP_DTYPES)
        self._check_sources()

    @property
    def ctx(self) -> DistContext:
        """The distributed context (a single process when none was given)."""
        return self.dist_ctx or DistContext()

    @property
    def features(self) -> dict[str, FeatureRegularizer]:
        """``feature_regularizers`` as a dict (empty when none were given)."""
        return dict(self.feature_regularizers or {})

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # normalising a frozen instance while built

    def _check_optional_numbers(self) -> None:
        if self.checkpoint_every is not None:
            self._set(
                "checkpoint_every", check_positive_int("checkpoint_every", self.checkpoint_every)
            )
        if self.early_stop_drop is not None:
            self._set(
                "early_stop_drop", check_non_negative("early_stop_drop", self.early_stop_drop)
            )
            if self.validation is None:
                raise ValueError("early_stop_drop needs validation data")
        if self.ema_decay is not None:
            self._set("ema_decay", check_decay("ema_decay", self.ema_decay))

    def _check_sources(self) -> None:
        """The data source, the checkpoint to resume, the batch against the ranks."""
        if self.batches is not None:
            if self.steps_per_epoch is None:
                raise ValueError("batches needs steps_per_epoch")
            self._set(
                "steps_per_epoch", check_positive_int("steps_per_epoch", self.steps_per_epoch)
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        ctx = self.ctx
        if ctx.enabled and self.batch_size < ctx.world_size:
            raise ValueError(
                f"batch_size {self.batch_size} is smaller than the {ctx.world_size} ranks"
            )


def _check_penalties(feature_regularizers: object) -> None:
    """A mapping of names to callables (the names are checked against the model in fit)."""
    if feature_regularizers is None:
        return
    if not isinstance(feature_regularizers, Mapping):
        raise TypeError(
            "feature_regularizers must map layer names to callables, got "
            f"{type(feature_regularizers).__name__}"
        )
    for name, penalty in feature_regularizers.items():
        if not callable(penalty):
            raise TypeError(
                f"feature_regularizers[{name!r}] must be callable, got {type(penalty).__name__}"
            )
