"""Tiles of a large CPU batch, for the native attacks whose images do not interact.

On the CPU an attack on 1,000 images at once spends much of its time moving activations
between memory and the cache; tiles of :data:`CPU_TILE` images keep them in the cache. On
the small CNN (1,000 Fashion-MNIST images, 2 CPU cores) PGD-20 takes 9.7 s in one batch and
3.9 s in tiles of 128; DeepFool about half the time (``deepfool``'s module docstring);
APGD-CE-100 and APGD-T-100 (3 targets) at eps 0.03 17.1 s and 64.1 s in one batch, 12.2 s
and 34.0 s in tiles of 128 (11.9 s and 41.1 s in tiles of 256). On CUDA a batch runs
whole: there the count of kernel launches is what costs. The gain varies between runs on a
shared machine (what else uses the cache): PGD-20 on 1,000 images took 3.6 s in one
benchmark run and 7.0 s in another, against 8.9 and 9.6 s for torchattacks in one batch.
"""

from __future__ import annotations

import torch

from art_denoise._validation import check_positive_int

__all__ = ["CPU_TILE", "tile_size"]

#: Images attacked at once on the CPU by default.
CPU_TILE = 128


def tile_size(x: torch.Tensor, tile: int | None) -> int:
    """The images of ``x`` to attack at once: ``tile`` when given (>= 1), else
    :data:`CPU_TILE` on the CPU and the whole batch elsewhere.

    Example:
        >>> tile_size(torch.zeros(1000, 1, 2, 2), None), tile_size(torch.zeros(5, 1), 2)
        (128, 2)
    """
    if tile is not None:
        return check_positive_int("tile", tile)
    return CPU_TILE if x.device.type == "cpu" else max(len(x), 1)
