"""ART evasion attacks, as ART's ``art.attacks.evasion``: RP2 as an ``EvasionAttack``."""

from __future__ import annotations

from art_denoise.attacks.evasion.rp2_pytorch import RobustPhysicalPerturbationPyTorch

__all__ = ["RobustPhysicalPerturbationPyTorch"]
