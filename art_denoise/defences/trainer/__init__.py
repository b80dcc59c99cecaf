"""ART trainers (``art.defences.trainer.Trainer`` subclasses) over the torch training loop.

Each takes an ART ``PyTorchClassifier`` with an optimizer and trains its model in place
with :func:`art_denoise.training.fit`: on the classifier's device, with checkpoints,
``resume=True``, AMP, and DistributedDataParallel when launched by ``torchrun``.
"""

from __future__ import annotations

from art_denoise.defences.trainer.adversarial_trainer_fast_pytorch import (
    AdversarialTrainerFastPyTorch,
)
from art_denoise.defences.trainer.adversarial_trainer_mix_pytorch import (
    AdversarialTrainerMixPyTorch,
)
from art_denoise.defences.trainer.adversarial_trainer_pgd_pytorch import (
    AdversarialTrainerPGDPyTorch,
)
from art_denoise.defences.trainer.prototype_conformity_trainer_pytorch import (
    PrototypeConformityTrainerPyTorch,
)
from art_denoise.defences.trainer.robust_trainer_pytorch import RobustTrainerPyTorch

__all__ = [
    "AdversarialTrainerFastPyTorch",
    "AdversarialTrainerMixPyTorch",
    "AdversarialTrainerPGDPyTorch",
    "PrototypeConformityTrainerPyTorch",
    "RobustTrainerPyTorch",
]
