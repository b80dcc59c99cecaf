"""Fast adversarial training, FGSM from a random start (Wong, Rice, Kolter 2020), for ART."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from art_denoise._validation import check_non_negative, check_norm, check_positive
from art_denoise.defences.trainer.robust_trainer_pytorch import RobustTrainerPyTorch
from art_denoise.training.loop import ValidationAttack
from art_denoise.training.methods import FastTraining, TrainingMethod

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

__all__ = ["AdversarialTrainerFastPyTorch"]


class AdversarialTrainerFastPyTorch(RobustTrainerPyTorch):
    """FGSM-RS with a cyclic learning rate and early stopping (https://arxiv.org/abs/2001.03994).

    Each batch: a uniform random start in the eps-ball, one FGSM step of
    ``eps_step = 1.25 eps``, projection. The learning rate rises linearly from
    ``lr_max / 25`` to ``lr_max`` over the first 40% of the steps and falls to ~0
    (``OneCycleLR``, linear). Robustness of FGSM training can collapse within an epoch
    ("catastrophic overfitting"): at each epoch end PGD-10 runs on a held-out slice,
    and when its accuracy falls ``overfit_drop`` below the best seen, training stops
    and the best weights are restored.

    Args:
        classifier: ART ``PyTorchClassifier`` with an optimizer and ``clip_values``.
        eps: budget; eps_step: FGSM step (default 1.25 eps); norm: ``np.inf`` or 2.
        lr_max: peak of the cyclic learning rate.
        validation_size: images held out of ``x`` (seeded) when ``fit`` gets no
            ``validation_data``.
        overfit_drop: the fall in validation PGD accuracy (fraction) that stops training.
        **kwargs: :class:`RobustTrainerPyTorch` settings.
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        *,
        eps: float,
        eps_step: float | None = None,
        norm: Any = np.inf,
        lr_max: float = 2e-3,
        validation_size: int = 1000,
        overfit_drop: float = 0.2,
        bn_eval: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(classifier, **kwargs)
        self._settings = FastTraining(
            eps=eps,
            step_size=eps_step,
            norm=check_norm(norm),
            bn_eval=bn_eval,
            clip_values=self.clip_values,
        )
        self.lr_max = check_positive("lr_max", lr_max)
        self.validation_size = int(check_non_negative("validation_size", validation_size))
        self.overfit_drop = check_non_negative("overfit_drop", overfit_drop)
        self._own_scheduler = False

    def _method(self) -> TrainingMethod:
        return self._settings

    def _derived_settings(self) -> dict[str, tuple[str, Any]]:
        return {"early_stop_drop": ("overfit_drop", self.overfit_drop)}

    def _fit_kwargs(self, x: Any, y: Any, has_validation: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "validation_attack": ValidationAttack(
                eps=self._settings.eps, steps=10, norm=self._settings.norm
            ),
        }
        n = len(x)
        hold_out = not has_validation and 0 < self.validation_size < n
        if has_validation or hold_out:
            out["early_stop_drop"] = self.overfit_drop
        n_train = n - self.validation_size if hold_out else n
        steps = -(-n_train // self.batch_size) * self.nb_epochs
        if self.scheduler is None or self._own_scheduler:
            self._own_scheduler = True
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self._classifier.optimizer,
                max_lr=self.lr_max,
                total_steps=steps + 1,  # the last scheduler.step() stays in range
                pct_start=0.4,
                anneal_strategy="linear",
                cycle_momentum=False,
            )
        if hold_out:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).numpy()
            held, kept = order[: self.validation_size], np.sort(order[self.validation_size :])
            out.update(x=x[kept], y=y[kept], validation=(x[held], y[held]))
        return out
