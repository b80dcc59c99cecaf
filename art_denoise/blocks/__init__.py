"""Feature-denoising blocks and their insertion into existing models.

A model with blocks records the ``"insert_denoising_blocks"`` transform, which
:func:`art_denoise.models.load_model` replays through its entry point.
"""

from __future__ import annotations

from art_denoise.blocks.denoising import FILTERS, DenoisingBlock, create_filter
from art_denoise.blocks.insert import PRESETS, insert_denoising_blocks, residual_blocks

__all__ = [
    "FILTERS",
    "PRESETS",
    "DenoisingBlock",
    "create_filter",
    "insert_denoising_blocks",
    "residual_blocks",
]
