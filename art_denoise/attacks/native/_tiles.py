"""Tiles of a large CPU batch, for the native attacks whose images do not interact.

On the CPU, glibc's allocator gives every freed block above 32 MB back to the kernel, so
an attack on 1,000 small-CNN images at once (activation maps of 100 MB) gets fresh pages
from the kernel at every pass, each page faulted in and zeroed. Tiles of :data:`CPU_TILE`
images keep the maps small enough to be reused. Measured on 1,000 Fashion-MNIST images,
small CNN, AMD EPYC with 2 cores (`getrusage`):

- Linf DeepFool: 6.7 s in one batch, 5.1 s of it system time, 3.4 million page faults;
  3.4 s in tiles of 128, 0.14 s system, 74 thousand faults;
- PGD-20: 8.5 s, 7.8 s system, 5.1 million faults; 3.7 s, no system time, 20 faults;
- APGD-CE-100 and APGD-T-100 (3 targets) at eps 0.03: 17.1 s and 64.1 s in one batch,
  12.2 s and 34.0 s in tiles of 128.

How much one batch loses varies between runs (PGD-20 in one batch took 4.0 to 9.7 s);
the tiles did not. On CUDA a batch runs whole: there the count of kernel launches is what
costs.
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
