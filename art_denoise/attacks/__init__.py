"""Attacks: the :class:`AttackSpec` threat model and the backends that run it."""

from __future__ import annotations

from art_denoise.attacks.spec import ATTACKS, AttackSpec

__all__ = ["ATTACKS", "AttackSpec"]
