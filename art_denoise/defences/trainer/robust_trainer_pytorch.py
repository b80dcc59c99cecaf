"""The shared base of the ART trainers: an ART ``Trainer`` over :func:`~art_denoise.training.fit`.

ART's own trainers craft each batch's examples with numpy round trips and start over
when killed. These run the whole loop in torch on the classifier's device, write
checkpoints, resume, and run under ``torchrun`` unchanged.
"""

from __future__ import annotations

import os
import reprlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from art.defences.trainer.trainer import Trainer
from torch import nn

from art_denoise._validation import check_positive_int
from art_denoise.estimators.classification.preprocessed import estimator_module
from art_denoise.training.distributed import DistContext, init_distributed
from art_denoise.training.loop import FitResult, fit
from art_denoise.training.methods import TrainingMethod
from art_denoise.training.pcl import PrototypeConformityLoss

if TYPE_CHECKING:
    from art.data_generators import DataGenerator
    from art.estimators.classification import PyTorchClassifier

__all__ = ["RobustTrainerPyTorch"]


class RobustTrainerPyTorch(Trainer):
    """Base class; subclasses build their :class:`TrainingMethod` in :meth:`_method`.

    Args:
        classifier: an ART ``PyTorchClassifier`` with an optimizer and ``clip_values``.
        nb_epochs, batch_size: training length and *global* batch size.
        checkpoint_dir, checkpoint_every: write ``checkpoint.pt`` there every N steps and
            at each epoch end (rank 0, atomically).
        amp: ``None``, ``"bf16"`` or ``"fp16"`` (CUDA).
        seed: seeds the data order and the attacks' random draws.
        scheduler: an LR scheduler on the classifier's optimizer (stepped per step).
        pcl: a :class:`PrototypeConformityLoss` added to the objective.
        centre_lr: learning rate of the PCL centres' SGD optimiser.
        ema_decay: train with an exponential moving average of the weights (e.g. 0.999);
            the classifier's model ends with the averaged weights.
        distributed: join the ``torchrun`` process group when launched by it.
        verbose: progress bar with loss, clean and adversarial accuracy.
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        *,
        nb_epochs: int = 10,
        batch_size: int = 128,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        amp: str | None = None,
        seed: int = 0,
        scheduler: Any = None,
        pcl: PrototypeConformityLoss | None = None,
        centre_lr: float = 0.5,
        ema_decay: float | None = None,
        distributed: bool = True,
        verbose: bool = True,
    ) -> None:
        from art.estimators.classification import PyTorchClassifier

        if not isinstance(classifier, PyTorchClassifier):
            raise TypeError(
                f"classifier must be an ART PyTorchClassifier, got {type(classifier).__name__}"
            )
        if classifier.optimizer is None:
            raise ValueError(
                "the classifier has no optimizer; build it with "
                "PyTorchClassifier(..., optimizer=torch.optim.Adam(model.parameters()))"
            )
        if classifier.clip_values is None:
            raise ValueError("the classifier needs clip_values, e.g. (0.0, 1.0)")
        super().__init__(classifier)
        self.nb_epochs = check_positive_int("nb_epochs", nb_epochs)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.amp = amp
        self.seed = seed
        self.scheduler = scheduler
        self.pcl = pcl
        self.pcl_optimizer = (
            torch.optim.SGD(pcl.parameters(), lr=centre_lr) if pcl is not None else None
        )
        self.ema_decay = ema_decay
        self.distributed = distributed
        self.verbose = verbose
        self.last_result: FitResult | None = None
        self._module = self._torch_module(classifier)

    @staticmethod
    def _torch_module(classifier: PyTorchClassifier) -> nn.Module:
        return estimator_module(classifier, fit=True, who="the ART trainers (torch loop)")

    @property
    def clip_values(self) -> tuple[float, float]:
        lo, hi = self._classifier.clip_values  # type: ignore[misc]
        return float(np.min(lo)), float(np.max(hi))

    def _method(self) -> TrainingMethod:
        raise NotImplementedError

    def _fit_kwargs(self, x: Any, y: Any, has_validation: bool) -> dict[str, Any]:
        """Extra keyword arguments for :func:`fit` (validation, early stopping)."""
        return {}

    def _derived_settings(self) -> dict[str, tuple[str, Any]]:
        """The options :meth:`_fit_kwargs` sets from a trainer setting: option -> (setting, value).

        A keyword of the same name is refused. The other options :meth:`_fit_kwargs`
        returns are defaults that a keyword replaces.
        """
        return {}

    def _loop_settings(self) -> dict[str, tuple[str, Any]]:
        """Each :func:`fit` option the trainer sets -> (the trainer's name for it, its value)."""
        clf = self._classifier
        return {
            "epochs": ("nb_epochs", self.nb_epochs),
            "batch_size": ("batch_size", self.batch_size),
            "num_classes": ("the classifier's nb_classes", clf.nb_classes),
            "scheduler": ("scheduler", self.scheduler),
            "pcl": ("pcl", self.pcl),
            "pcl_optimizer": ("centre_lr", self.pcl_optimizer),
            "seed": ("seed", self.seed),
            "device": ("the classifier's device", clf._device),
            "checkpoint_dir": ("checkpoint_dir", self.checkpoint_dir),
            "checkpoint_every": ("checkpoint_every", self.checkpoint_every),
            "amp": ("amp", self.amp),
            "ema_decay": ("ema_decay", self.ema_decay),
            "progress": ("verbose", self.verbose),
            "dist_ctx": ("distributed", self.distributed),
            "config": ("the trainer's settings", None),
        }

    def _check_kwargs(self, kwargs: dict[str, Any], own: dict[str, tuple[str, Any]]) -> None:
        """Refuse a keyword that the trainer sets itself: two values, one silently ignored.

        Raises:
            ValueError: naming the keyword, the trainer's setting and both values.
        """
        taken = {**self._loop_settings(), **own}
        for key in sorted(set(kwargs) & set(taken)):
            name, value = taken[key]
            source = f"{name}={reprlib.repr(value)}" if name.isidentifier() else name
            if not name.isidentifier():
                hint = f"leave {key} out"
            elif name == key:
                hint = f"set the trainer's {key} instead"
            else:
                hint = f"set {name} instead"
            raise ValueError(
                f"{type(self).__name__}.fit got {key}={reprlib.repr(kwargs[key])}, but the "
                f"trainer sets {key} itself from {source}; {hint}"
            )

    def _run(self, x: Any, y: Any, **kwargs: Any) -> FitResult:
        clf = self._classifier
        device = clf._device
        ctx = init_distributed(device) if self.distributed else DistContext()
        options = {k: value for k, (_, value) in self._loop_settings().items() if k != "config"}
        options.update(device=device, dist_ctx=ctx, **kwargs)
        result = fit(self._module, clf.optimizer, self._method(), x, y, **options)
        self.last_result = result
        return result

    def fit(  # type: ignore[override]
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        nb_epochs: int | None = None,
        batch_size: int | None = None,
        resume: bool = False,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        **kwargs: Any,
    ) -> FitResult:
        """Train the classifier's model on (x, y): NCHW images in ``clip_values``.

        Args:
            x: training images; y: integer or one-hot labels.
            nb_epochs, batch_size: as in ART's trainers; they replace the values given to
                the constructor.
            resume: continue from ``checkpoint_dir/checkpoint.pt``.
            validation_data: held-out (x, y) evaluated with PGD-10 at each epoch end.
            kwargs: more :func:`art_denoise.training.fit` options (e.g. ``on_step``); not
                those the trainer sets itself.

        Returns:
            The history of the run; the classifier's model is trained in place.

        Raises:
            ValueError: a keyword the trainer sets from its own setting (``epochs`` beside
                ``nb_epochs``, ``validation`` beside ``validation_data``, ...), or a bad
                value; nothing is trained then.
        """
        if nb_epochs is not None:
            self.nb_epochs = check_positive_int("nb_epochs", nb_epochs)
        if batch_size is not None:
            self.batch_size = check_positive_int("batch_size", batch_size)
        generator = ("fit_generator (for a DataGenerator)", None)
        own = {
            "validation": ("validation_data", validation_data),
            "batches": generator,
            "steps_per_epoch": generator,
        }
        self._check_kwargs(kwargs, {**own, **self._derived_settings()})
        extra = self._fit_kwargs(x, y, validation_data is not None)
        x, y = extra.pop("x", x), extra.pop("y", y)
        if validation_data is not None:
            extra["validation"] = validation_data
        extra.update(kwargs)
        return self._run(x, y, resume=resume, **extra)

    def fit_generator(  # type: ignore[override]
        self, generator: DataGenerator, nb_epochs: int | None = None, **kwargs: Any
    ) -> FitResult:
        """Train from an ART ``DataGenerator`` (``size // batch_size`` batches per epoch).

        A resumed run skips the batches of the interrupted epoch it has seen, counted, not
        replayed: with a shuffling generator (ART's draw their order from numpy's global
        RNG) the resumed epoch is not the uninterrupted one. Resume array training
        (:meth:`fit`) where the exact run matters.

        Raises:
            ValueError: the generator does not know its size, or a keyword the trainer
                sets itself (``epochs``, ``batch_size``: the generator's, ...).
        """
        if generator.size is None:
            raise ValueError("the DataGenerator must know its size")
        if nb_epochs is not None:
            self.nb_epochs = check_positive_int("nb_epochs", nb_epochs)
        own = {
            "batch_size": ("the generator's batch_size", generator.batch_size),
            "batches": ("the generator", None),
            "steps_per_epoch": ("the generator's size", generator.size),
        }
        self._check_kwargs(kwargs, own)
        steps = max(1, int(generator.size) // int(generator.batch_size))
        old_batch = self.batch_size
        self.batch_size = int(generator.batch_size)
        try:
            return self._run(
                None, None, batches=generator.get_batch, steps_per_epoch=steps, **kwargs
            )
        finally:
            self.batch_size = old_batch
