"""BlurNet's low-pass layer: a depthwise convolution with a blur kernel, fixed or learned.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256. Adversarial perturbations add high-frequency energy
to the first layer's feature maps; a k x k blur (k = 3, 5, 7 in the paper) after the first
convolution removes much of it. The layer has the shape of timm's ``BlurPool2d`` without
the stride: the fixed kernel is a non-persistent buffer and the filter a
``conv2d(..., groups=C)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._validation import (
    check_choice,
    check_feature_map,
    check_kernel_size,
    check_positive,
    check_positive_int,
)
from art_denoise.blurnet.kernels import box_kernel2d, default_sigma, gaussian_kernel2d

__all__ = ["KINDS", "LowPass2d", "lowpass2d"]


def _box(kernel_size: int, sigma: float | None) -> torch.Tensor:
    return box_kernel2d(kernel_size)


def _gaussian(kernel_size: int, sigma: float | None) -> torch.Tensor:
    return gaussian_kernel2d(kernel_size, sigma)


#: Kind -> builder of the (k, k) starting kernel ``(kernel_size, sigma) -> Tensor``.
#: ``"learnable"`` starts as the box and is trained (see
#: :func:`art_denoise.blurnet.linf_depthwise_penalty`).
KINDS: dict[str, Callable[[int, float | None], torch.Tensor]] = {
    "box": _box,
    "gaussian": _gaussian,
    "learnable": _box,
}


def _depthwise(kernel: Any, channels: int) -> torch.Tensor:
    """``kernel`` as a (C, 1, k, k) depthwise weight, after checking it."""
    if not isinstance(kernel, torch.Tensor) or not kernel.is_floating_point():
        kind = kernel.dtype if isinstance(kernel, torch.Tensor) else type(kernel).__name__
        raise TypeError(f"kernel must be a floating-point tensor, got {kind}")
    shape = tuple(kernel.shape)
    if kernel.ndim == 2:
        kernel = kernel.expand(channels, 1, *shape)
    elif kernel.ndim != 4 or shape[:2] != (channels, 1):
        raise ValueError(
            f"kernel must have shape (k, k) or ({channels}, 1, k, k) for {channels} "
            f"channels, got shape {shape}"
        )
    if kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"kernel must be square, got shape {shape}")
    return kernel


def lowpass2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate each channel of ``x`` with a k x k kernel, with reflect padding.

    ``y[b, c] = sum_{u, v} kernel[c, 0, u, v] * x_pad[b, c, i + u, j + v]``: a depthwise
    ``conv2d(..., groups=C)`` (a cross-correlation, as every torch convolution) after
    padding by ``k // 2`` with torch's ``"reflect"`` mode (d c b | a b c d), which is
    ``scipy.ndimage``'s ``"mirror"`` mode. So the result equals
    ``scipy.ndimage.correlate(x, kernel[None, None], mode="mirror")`` for a (k, k)
    kernel. The kernel is cast to ``x``'s dtype and device.

    Args:
        x: feature map.
        kernel: (k, k), shared by all channels, or (C, 1, k, k), one kernel per channel;
            k odd and at most the map's height and width.

    Returns:
        The filtered map, same shape and dtype as ``x``; differentiable in ``x`` and in
        ``kernel``.

    Raises:
        TypeError: ``x`` or ``kernel`` is not a floating-point tensor.
        ValueError: wrong shapes, or k even or larger than the map.

    Shape:
        - Input: (B, C, H, W), kernel (k, k) or (C, 1, k, k)
        - Output: (B, C, H, W)

    Example:
        >>> from art_denoise.blurnet import box_kernel2d
        >>> lowpass2d(torch.ones(1, 3, 5, 5), box_kernel2d(3)).allclose(torch.ones(1))
        True
    """
    x = check_feature_map(x)
    channels = x.shape[1]
    weight = _depthwise(kernel, channels)
    k = check_kernel_size(int(weight.shape[-1]), x)
    if x.numel() == 0:
        return x.clone()
    p = k // 2
    padded = F.pad(x, (p, p, p, p), mode="reflect") if p else x
    weight = weight.to(dtype=x.dtype, device=x.device)
    return F.conv2d(padded, weight.contiguous(), groups=channels)


class LowPass2d(nn.Module):
    """Depthwise k x k low-pass filter of a C-channel feature map (a BlurNet layer).

    ``kind="box"`` and ``"gaussian"`` keep their kernel as a non-persistent buffer
    ``weight`` (not in the ``state_dict``: it is rebuilt from the settings);
    ``"learnable"`` makes ``weight`` an ``nn.Parameter`` of shape (C, 1, k, k),
    initialised as the box, that trains with the model. Either way ``weight`` holds the
    (C, 1, k, k) depthwise kernel and the filter is :func:`lowpass2d` (reflect padding).

    Args:
        channels: C, the channels of the feature map.
        kernel_size: k, odd (the paper used 3, 5 and 7); at most the map's size.
        kind: ``"box"``, ``"gaussian"`` or ``"learnable"`` (a key of :data:`KINDS`).
        sigma: the Gaussian's standard deviation in pixels (> 0); only for
            ``kind="gaussian"``, where ``None`` means :func:`default_sigma`.

    Raises:
        TypeError: ``channels`` or ``kernel_size`` not an int, ``sigma`` not a number.
        ValueError: ``channels`` < 1, ``kernel_size`` even or < 1, an unknown ``kind``,
            ``sigma`` <= 0, or ``sigma`` given for a kind other than ``"gaussian"``.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> layer = LowPass2d(16, kernel_size=5, kind="box")
        >>> layer(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
        >>> list(LowPass2d(16, 3, "learnable").state_dict())
        ['weight']
    """

    weight: torch.Tensor

    def __init__(
        self, channels: int, kernel_size: int = 5, kind: str = "box", *, sigma: float | None = None
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.kernel_size = check_kernel_size(kernel_size)
        self.kind = check_choice("kind", kind, KINDS)
        if kind == "gaussian":
            self.sigma: float | None = (
                default_sigma(self.kernel_size) if sigma is None else check_positive("sigma", sigma)
            )
        elif sigma is not None:
            raise ValueError(f"sigma is used only with kind='gaussian', got sigma={sigma!r}")
        else:
            self.sigma = None
        k = self.kernel_size
        weight = KINDS[kind](k, self.sigma).expand(self.channels, 1, k, k).clone()
        if kind == "learnable":
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight, persistent=False)

    @property
    def learnable(self) -> bool:
        """Whether the kernel is a trained parameter (``kind="learnable"``)."""
        return isinstance(self.weight, nn.Parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_feature_map(x, channels=self.channels)
        return lowpass2d(x, self.weight)

    def extra_repr(self) -> str:
        sigma = f", sigma={self.sigma:.4g}" if self.sigma is not None else ""
        return f"{self.channels}, kernel_size={self.kernel_size}, kind={self.kind!r}{sigma}"
