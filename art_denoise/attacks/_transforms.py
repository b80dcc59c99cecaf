"""The transformation distribution of RP2: random affine warps and lighting changes.

Every transform is differentiable in the image, so an attack can average its loss over
samples of the distribution (expectation over transformation). The geometric part
(rotation, scale, translation about the image centre) runs through
:func:`torch.nn.functional.affine_grid` and :func:`~torch.nn.functional.grid_sample`; the
photometric part is a contrast factor about each channel's mean and an additive
brightness offset. The result is clipped to the valid input range.

| Paper link: https://arxiv.org/abs/1707.08945 (Eykholt et al., 2018)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "TransformParams",
    "TransformRanges",
    "apply_transforms",
    "check_range",
    "sample_transforms",
]


def check_range(
    name: str,
    value: Any,
    *,
    lower: float | None = None,
    upper: float | None = None,
    strict_lower: bool = False,
) -> tuple[float, float]:
    """Return ``value`` as a ``(min, max)`` pair of floats, checked.

    Args:
        name: the argument's name, used in error messages.
        value: a sequence of two finite numbers with ``min <= max``.
        lower: smallest value allowed for ``min`` (exclusive if ``strict_lower``).
        upper: largest value allowed for ``max``.
        strict_lower: ``min`` must be strictly greater than ``lower``.

    Raises:
        TypeError: ``value`` is not a pair of numbers.
        ValueError: ``min > max``, a non-finite entry, or an entry outside the bounds.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a (min, max) pair, got {type(value).__name__} {value!r}")
    if len(value) != 2:
        raise ValueError(f"{name} must be a (min, max) pair, got {len(value)} values: {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must hold numbers, got {type(v).__name__} {v!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo > hi:
        raise ValueError(f"{name} must have min <= max, got {value!r}")
    if lower is not None and (lo <= lower if strict_lower else lo < lower):
        op = ">" if strict_lower else ">="
        raise ValueError(f"{name} must have values {op} {lower:g}, got {value!r}")
    if upper is not None and hi > upper:
        raise ValueError(f"{name} must have values <= {upper:g}, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class TransformRanges:
    """Uniform ranges of the transformation distribution; the defaults are the identity.

    Args:
        rotation: angle in degrees, within [-180, 180]; positive turns the image
            counter-clockwise as displayed.
        scale: zoom factor (> 0); 1 keeps the size, 2 doubles it.
        translation: shift along each axis as a fraction of the image's width and height,
            drawn independently for x and y, within [-1, 1].
        brightness: additive offset, as a fraction of the clip range ``max - min``.
        contrast: factor (>= 0) applied to each channel's deviation from its mean.

    Raises:
        TypeError, ValueError: a range is not ``(min, max)`` with ``min <= max`` within
            its bounds (the message names it).
    """

    rotation: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    translation: tuple[float, float] = (0.0, 0.0)
    brightness: tuple[float, float] = (0.0, 0.0)
    contrast: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        checked = {
            "rotation": check_range("rotation_range", self.rotation, lower=-180.0, upper=180.0),
            "scale": check_range("scale_range", self.scale, lower=0.0, strict_lower=True),
            "translation": check_range("translation_range", self.translation, lower=-1, upper=1),
            "brightness": check_range("brightness_range", self.brightness),
            "contrast": check_range("contrast_range", self.contrast, lower=0.0),
        }
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    @property
    def is_identity(self) -> bool:
        """Whether every sample of this distribution is the identity transform."""
        return self == TransformRanges()


class TransformParams(NamedTuple):
    """One transform per row: each field has shape (n,), float32."""

    angle: torch.Tensor
    scale: torch.Tensor
    shift_x: torch.Tensor
    shift_y: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def sample_transforms(
    n: int,
    ranges: TransformRanges,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> TransformParams:
    """Draw ``n`` transforms uniformly from ``ranges``.

    The numbers are drawn on the CPU from ``generator`` (so a seed gives the same
    transforms on every device) and then moved to ``device``.

    Args:
        n: how many transforms.
        ranges: the distribution.
        generator: a CPU ``torch.Generator``; its state advances by 6 draws of ``n``.
        device: where the returned tensors live.

    Returns:
        The parameters, angles in radians.
    """
    values = [
        _uniform(n, ranges.rotation, generator) * (math.pi / 180.0),
        _uniform(n, ranges.scale, generator),
        _uniform(n, ranges.translation, generator),
        _uniform(n, ranges.translation, generator),
        _uniform(n, ranges.brightness, generator),
        _uniform(n, ranges.contrast, generator),
    ]
    return TransformParams(*(v.to(device=device, dtype=torch.float32) for v in values))


def affine_matrices(params: TransformParams, height: int, width: int) -> torch.Tensor:
    """The (n, 2, 3) ``affine_grid`` matrices of the geometric part of ``params``.

    In pixel units about the image centre, a transform maps an input point ``p`` to
    ``scale * R p + (shift_x * width, shift_y * height)``, where ``R`` turns the image
    counter-clockwise by ``angle`` as displayed (rows downwards, like ``torch.rot90`` and
    torchvision). ``affine_grid`` wants the inverse map in normalised coordinates
    (``[-1, 1]`` spans each axis), so the rotation is conjugated by the aspect ratio to
    stay a rotation on non-square images.
    """
    # With the y axis pointing down, a counter-clockwise turn by `angle` is R(-angle).
    cos, sin = torch.cos(params.angle), -torch.sin(params.angle)
    inv_s = 1.0 / params.scale
    aspect = height / width
    # D^-1 R(-angle) D / scale, with D = diag(width / 2, height / 2).
    a11 = cos * inv_s
    a12 = sin * aspect * inv_s
    a21 = -sin / aspect * inv_s
    a22 = cos * inv_s
    tx, ty = 2.0 * params.shift_x, 2.0 * params.shift_y
    b1 = -(a11 * tx + a12 * ty)
    b2 = -(a21 * tx + a22 * ty)
    row1 = torch.stack([a11, a12, b1], dim=1)
    row2 = torch.stack([a21, a22, b2], dim=1)
    return torch.stack([row1, row2], dim=1)


def apply_transforms(
    x: torch.Tensor,
    params: TransformParams,
    clip_values: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Apply transform ``i`` of ``params`` to image ``i`` of ``x``, differentiably.

    Geometry first (bilinear sampling, border pixels repeated outside the image), then
    contrast about each channel's mean, then brightness, then clipping to ``clip_values``.
    With identity parameters the output equals the input up to float rounding (~1e-7).

    Args:
        x: images, shape (n, C, H, W).
        params: n transforms, e.g. from :func:`sample_transforms`.
        clip_values: the valid range; brightness is in units of its width.

    Shape:
        - Input: (n, C, H, W)
        - Output: (n, C, H, W)

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> p = sample_transforms(2, TransformRanges(rotation=(-10, 10)), g)
        >>> apply_transforms(torch.rand(2, 1, 8, 8), p).shape
        torch.Size([2, 1, 8, 8])
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (n, C, H, W), got shape {tuple(x.shape)}")
    if params.angle.shape != (x.shape[0],):
        raise ValueError(
            f"params hold {tuple(params.angle.shape)} transforms but x has {x.shape[0]} images"
        )
    n, c, h, w = x.shape
    theta = affine_matrices(params, h, w).to(dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = params.contrast.to(dtype=x.dtype, device=x.device).view(n, 1, 1, 1)
    mean = out.mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    lo, hi = clip_values
    brightness = params.brightness.to(dtype=x.dtype, device=x.device).view(n, 1, 1, 1)
    out = out + brightness * (hi - lo)
    return out.clamp(lo, hi)
