"""Training loops (torch only; the ART trainers wrap them)."""

from __future__ import annotations

from art_denoise.training.standard import train_standard

__all__ = ["train_standard"]
