"""Prototype conformity loss training (Mustafa et al., ICCV 2019) as an ART trainer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from art_denoise._validation import check_norm
from art_denoise.defences.trainer.robust_trainer_pytorch import RobustTrainerPyTorch
from art_denoise.training.methods import PGDTraining, StandardTraining, TrainingMethod
from art_denoise.training.pcl import PrototypeConformityLoss

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

__all__ = ["PrototypeConformityTrainerPyTorch"]


class PrototypeConformityTrainerPyTorch(RobustTrainerPyTorch):
    """Cross-entropy plus PCL on ``layers`` (https://arxiv.org/abs/1904.00887), optionally with PGD.

    Class centres are learned on each named layer (hooks; the model still returns
    logits), with their own SGD optimiser (``centre_lr``). With ``eps`` set, the
    examples are PGD examples as in :class:`AdversarialTrainerPGDPyTorch`.

    PCL alone looked robust under PGD and fell to 0.3% under AutoAttack: evaluate the
    result with AutoAttack, not PGD alone.

    Args:
        classifier: ART ``PyTorchClassifier`` with an optimizer and ``clip_values``.
        layers: dotted submodule names whose outputs get centres.
        pull_weight, push_weight: the PCL weights (reference code: 1 and 1e-4).
        centre_lr: SGD learning rate of the centres.
        eps, eps_step, max_iter, norm, num_random_init: PGD training, if ``eps`` is set.
        **kwargs: :class:`RobustTrainerPyTorch` settings.
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        *,
        layers: Sequence[str],
        pull_weight: float = 1.0,
        push_weight: float = 1e-4,
        centre_lr: float = 0.5,
        eps: float | None = None,
        eps_step: float | None = None,
        max_iter: int = 7,
        norm: Any = np.inf,
        num_random_init: int = 1,
        **kwargs: Any,
    ) -> None:
        pcl = PrototypeConformityLoss(
            classifier.model,
            layers,
            classifier.nb_classes,
            input_shape=classifier.input_shape,
            pull_weight=pull_weight,
            push_weight=push_weight,
        )
        super().__init__(classifier, pcl=pcl, centre_lr=centre_lr, **kwargs)
        self._settings: TrainingMethod
        if eps is None:
            self._settings = StandardTraining(clip_values=self.clip_values)
        else:
            self._settings = PGDTraining(
                eps=eps,
                step_size=eps_step,
                steps=max_iter,
                norm=check_norm(norm),
                restarts=num_random_init,
                clip_values=self.clip_values,
            )

    def _method(self) -> TrainingMethod:
        return self._settings
