"""PGD adversarial training (Madry et al. 2018) with Xie et al.'s options, as an ART trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from art_denoise._validation import check_norm
from art_denoise.defences.trainer.robust_trainer_pytorch import RobustTrainerPyTorch
from art_denoise.training.methods import PGDTraining, TrainingMethod

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

__all__ = ["AdversarialTrainerPGDPyTorch"]


class AdversarialTrainerPGDPyTorch(RobustTrainerPyTorch):
    """Train on PGD examples only (https://arxiv.org/abs/1706.06083).

    Xie et al.'s settings (https://arxiv.org/abs/1812.03411) are options: ``targeted``
    with a random wrong label, ``prob_start_from_clean`` (their 0.2), and BatchNorm in
    inference mode while the attack runs (``bn_eval``, on by default).

    Args:
        classifier: ART ``PyTorchClassifier`` with an optimizer and ``clip_values``.
        eps, eps_step, max_iter, norm: the attack (``np.inf`` or 2); pinned explicitly.
        num_random_init: PGD restarts per example (the strongest is kept; at least 1).
        random_start: start from a random point of the ball (else from the clean image).
        targeted, prob_start_from_clean, bn_eval: Xie et al.'s options.
        **kwargs: :class:`RobustTrainerPyTorch` settings (``nb_epochs``, ``batch_size``,
            ``checkpoint_dir``, ``amp``, ``seed``, ``pcl``, ...).

    Example:
        >>> import torch
        >>> from art_denoise.estimators import to_art_classifier
        >>> from art_denoise.models import create_model
        >>> model = create_model("smallcnn", input_shape=(1, 8, 8))
        >>> adam = torch.optim.Adam(model.parameters())
        >>> clf = to_art_classifier(model, optimizer=adam, device="cpu")
        >>> trainer = AdversarialTrainerPGDPyTorch(
        ...     clf, eps=0.1, eps_step=0.025, max_iter=7, nb_epochs=1, verbose=False
        ... )
        >>> x_train = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
        >>> trainer.fit(x_train, np.arange(8)).steps
        1
    """

    def __init__(
        self,
        classifier: PyTorchClassifier,
        *,
        eps: float,
        eps_step: float,
        max_iter: int = 7,
        norm: Any = np.inf,
        num_random_init: int = 1,
        random_start: bool = True,
        targeted: bool = False,
        prob_start_from_clean: float = 0.2,
        bn_eval: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(classifier, **kwargs)
        self._settings = PGDTraining(
            eps=eps,
            step_size=eps_step,
            steps=max_iter,
            norm=check_norm(norm),
            restarts=num_random_init,
            random_start=random_start,
            targeted=targeted,
            prob_start_from_clean=prob_start_from_clean,
            bn_eval=bn_eval,
            clip_values=self.clip_values,
        )

    def _method(self) -> TrainingMethod:
        return self._settings
