"""The mixed clean / adversarial objective (Goodfellow et al. 2015) as an ART trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from art_denoise._validation import check_norm
from art_denoise.defences.trainer.robust_trainer_pytorch import RobustTrainerPyTorch
from art_denoise.training.methods import MixTraining, TrainingMethod

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

__all__ = ["AdversarialTrainerMixPyTorch"]


class AdversarialTrainerMixPyTorch(RobustTrainerPyTorch):
    """Minimise ``a J(x, y) + (1 - a) J(x_adv, y)`` (https://arxiv.org/abs/1412.6572).

    Args:
        classifier: ART ``PyTorchClassifier`` with an optimizer and ``clip_values``.
        eps: the attack budget; norm: ``np.inf`` or 2.
        alpha: the clean loss's weight a (0.5, as in the paper).
        attack: ``"fgsm"`` (one step of eps) or ``"pgd"`` (``max_iter`` steps of
            ``eps_step`` from a random start).
        **kwargs: :class:`RobustTrainerPyTorch` settings.
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        *,
        eps: float,
        alpha: float = 0.5,
        attack: str = "fgsm",
        eps_step: float | None = None,
        max_iter: int = 7,
        norm: Any = np.inf,
        bn_eval: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(classifier, **kwargs)
        self._settings = MixTraining(
            eps=eps,
            alpha=alpha,
            attack=attack,
            step_size=eps_step,
            steps=max_iter,
            norm=check_norm(norm),
            bn_eval=bn_eval,
            clip_values=self.clip_values,
        )

    def _method(self) -> TrainingMethod:
        return self._settings
