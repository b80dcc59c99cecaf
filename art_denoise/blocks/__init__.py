"""Feature-denoising blocks and their insertion into existing models.

Importing this package registers the ``"insert_denoising_blocks"`` transform, so that
:func:`art_denoise.models.load_model` can rebuild a saved model with blocks.
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
