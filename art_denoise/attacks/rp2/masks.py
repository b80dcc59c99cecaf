"""The sticker masks of RP2: check a user's 0/1 mask, or draw random rectangles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from art_denoise._validation import check_positive, check_positive_int

__all__ = ["as_mask", "sticker_mask"]


def _mask_tensor(mask: Any) -> torch.Tensor:
    """``mask`` as a CPU tensor, from a numeric or boolean numpy array or a tensor."""
    if isinstance(mask, np.ndarray):
        if mask.dtype == object:
            raise TypeError("mask must be a numeric or boolean array, got dtype object")
        return torch.from_numpy(np.ascontiguousarray(mask))
    if isinstance(mask, torch.Tensor):
        return mask.detach().cpu()
    raise TypeError(f"mask must be a numpy array or torch tensor, got {type(mask).__name__}")


def as_mask(mask: Any, shape: Sequence[int]) -> torch.Tensor:
    """Check a 0/1 mask and return it as a float32 tensor expanded to ``shape``.

    Args:
        mask: numpy array or tensor (bool or numeric) of shape (H, W), (C, H, W) or
            (N, C, H, W), broadcastable to ``shape``; every value must be 0 or 1.
        shape: the images' shape (N, C, H, W).

    Returns:
        A contiguous float32 CPU tensor of shape ``shape``.

    Raises:
        TypeError: not an array or tensor.
        ValueError: a shape that does not broadcast to ``shape``, or a value other than 0/1.
    """
    shape = tuple(int(s) for s in shape)
    t = _mask_tensor(mask)
    try:
        broadcast = tuple(torch.broadcast_shapes(t.shape, shape))
    except RuntimeError:
        broadcast = ()
    if t.ndim not in (2, 3, 4) or broadcast != shape:
        raise ValueError(
            f"mask of shape {tuple(t.shape)} does not broadcast to the images' shape {shape}; "
            "expected (H, W), (C, H, W) or (N, C, H, W)"
        )
    t = t.to(torch.float32)
    bad = ~((t == 0) | (t == 1))
    if bool(bad.any()):
        examples = torch.unique(t[bad])[:5].tolist()
        raise ValueError(f"mask must hold only 0 and 1, got values such as {examples}")
    return t.expand(shape).contiguous()


def _place_sticker(mask: np.ndarray, rng: np.random.Generator, area: float) -> None:
    """Draw one rectangle of about ``area`` pixels into ``mask`` (in place).

    The aspect ratio is log-uniform in [1/2, 2]; up to 50 random positions are tried for
    one that does not overlap an earlier sticker, and the last one tried is used.
    """
    h, w = mask.shape
    ratio = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    sh = int(min(max(round(math.sqrt(area * ratio)), 1), h))
    sw = int(min(max(round(area / sh), 1), w))
    top = left = 0
    for _ in range(50):
        top = int(rng.integers(0, h - sh + 1))
        left = int(rng.integers(0, w - sw + 1))
        if not mask[top : top + sh, left : left + sw].any():
            break
    mask[top : top + sh, left : left + sw] = 1.0


def sticker_mask(
    shape: Sequence[int],
    n_stickers: int = 2,
    area_fraction: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Random rectangular stickers: a 0/1 mask of shape (H, W).

    Each sticker has area ``area_fraction * H * W / n_stickers`` (rounded to whole pixels)
    and a random aspect ratio in [1/2, 2]; stickers are placed uniformly at random,
    avoiding overlap when 50 tries allow it, so the total area is about
    ``area_fraction * H * W``.

    Args:
        shape: (H, W), or any shape whose last two entries are H and W (e.g. ``x.shape``).
        n_stickers: number of rectangles, ``>= 1``.
        area_fraction: total sticker area as a fraction of the image, in (0, 1].
        seed: seeds the placement; the same seed gives the same mask.

    Returns:
        A float32 array of 0s and 1s, shape (H, W).

    Example:
        >>> int(sticker_mask((8, 8), n_stickers=1, area_fraction=0.25).sum())
        16
    """
    if len(shape) < 2:
        raise ValueError(f"shape must end with (H, W), got {tuple(shape)!r}")
    h = check_positive_int("height", shape[-2])
    w = check_positive_int("width", shape[-1])
    n_stickers = check_positive_int("n_stickers", n_stickers)
    area_fraction = check_positive("area_fraction", area_fraction)
    if area_fraction > 1:
        raise ValueError(f"area_fraction must be in (0, 1], got {area_fraction!r}")
    seed = check_positive_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=np.float32)
    for _ in range(n_stickers):
        _place_sticker(mask, rng, area_fraction * h * w / n_stickers)
    return mask
