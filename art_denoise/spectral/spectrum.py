"""2-D Fourier spectra of images and feature maps, and their high-frequency energy.

BlurNet's analysis (Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps",
2019, https://arxiv.org/abs/1908.02256): adversarial perturbations add high-frequency
energy to the input and to the first layer's feature maps, seen in log-shifted,
normalised 2-D FFT spectra (low frequencies at the centre, high ones at the edges).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from art_denoise._torch import capture_features, eval_forward
from art_denoise._validation import check_feature_map, check_non_negative
from art_denoise.blurnet.insert import first_conv

__all__ = [
    "feature_spectra",
    "high_frequency_energy_ratio",
    "highest_frequency",
    "layer_features",
    "log_spectrum2d",
    "radial_frequency",
]


def _as_maps(x: Any, name: str = "x") -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name} must hold floating-point values, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    x = check_feature_map(x, name=name)
    return x.detach()


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def radial_frequency(
    height: int, width: int, *, dtype: torch.dtype = torch.float64, device: Any = None
) -> torch.Tensor:
    """Distance of each FFT bin from zero frequency, in cycles per pixel (unshifted order).

    Bin (i, j) of an H x W ``fft2`` has frequencies ``fy = fftfreq(H)[i]`` and
    ``fx = fftfreq(W)[j]`` in cycles per pixel (Nyquist = 0.5); its radius is
    ``sqrt(fy**2 + fx**2)``, from 0 (the mean) to ``sqrt(0.5) ~ 0.707`` (the checkerboard).
    A bin ``(u, v)`` bins away from the centre of a shifted spectrum has radius
    ``sqrt((u / H)**2 + (v / W)**2)``.

    Shape:
        - Output: (H, W)

    Example:
        >>> round(radial_frequency(4, 4)[2, 2].item(), 6)  # the Nyquist corner
        0.707107
    """
    fy = torch.fft.fftfreq(height, dtype=dtype, device=device)
    fx = torch.fft.fftfreq(width, dtype=dtype, device=device)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def highest_frequency(height: int, width: int) -> float:
    """The largest :func:`radial_frequency` of an H x W image, in cycles per pixel.

    A cut-off at or above it leaves no frequency above it: every energy ratio would be 0.
    It is ``sqrt(0.5) ~ 0.707`` for even sizes, a little less for odd ones.

    Example:
        >>> round(highest_frequency(8, 8), 6), round(highest_frequency(7, 7), 6)
        (0.707107, 0.606092)
    """
    return float(radial_frequency(height, width).max())


def log_spectrum2d(
    x: torch.Tensor | np.ndarray, *, normalize: bool = True, reduce_batch: bool = False
) -> torch.Tensor:
    """Log-magnitude, centred 2-D spectra of a batch, averaged over channels.

    For each image and channel, ``log(1 + |fft2(x)|)`` (``log1p`` keeps empty bins finite),
    shifted so that zero frequency sits at ``(H // 2, W // 2)`` (``fftshift``), then
    averaged over the channels. With ``normalize`` each image's spectrum is scaled to
    [0, 1] by its own minimum and maximum (a flat spectrum becomes 0), as in BlurNet's
    figures; then ``reduce_batch`` averages the images. Computed in float64.

    Args:
        x: images or feature maps (numpy or torch).
        normalize: min-max scale each image's spectrum to [0, 1].
        reduce_batch: average over the batch (needs at least one image).

    Returns:
        Float tensor (float32, or float64 for float64 input) on ``x``'s device.

    Raises:
        TypeError: not a floating-point tensor or array.
        ValueError: not (B, C, H, W), or ``reduce_batch`` with an empty batch.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, H, W), or (H, W) with ``reduce_batch``

    Example:
        >>> j = torch.arange(16, dtype=torch.float64)
        >>> x = torch.cos(2 * torch.pi * 3 * j / 16).expand(1, 1, 8, 16)
        >>> spec = log_spectrum2d(x)[0]
        >>> (spec[4, 8 - 3].item(), spec[4, 8 + 3].item())
        (1.0, 1.0)
    """
    x = _as_maps(x)
    if reduce_batch and x.shape[0] == 0:
        raise ValueError("reduce_batch needs at least one image, got an empty batch")
    if x.numel() == 0:  # some FFT backends reject empty inputs
        shape = (x.shape[0], *x.shape[-2:])
        return x.new_zeros(shape if not reduce_batch else shape[1:], dtype=_out_dtype(x))
    spectrum = torch.fft.fft2(x.to(torch.float64)).abs().log1p()
    spectrum = torch.fft.fftshift(spectrum, dim=(-2, -1)).mean(dim=1)
    if normalize and spectrum.numel():
        lo = spectrum.amin(dim=(-2, -1), keepdim=True)
        span = spectrum.amax(dim=(-2, -1), keepdim=True) - lo
        spectrum = torch.where(span > 0, (spectrum - lo) / span.clamp_min(1e-300), 0.0)
    if reduce_batch:
        spectrum = spectrum.mean(dim=0)
    return spectrum.to(_out_dtype(x))


def high_frequency_energy_ratio(
    x: torch.Tensor | np.ndarray, radius: float = 0.25, *, exclude_dc: bool = True
) -> torch.Tensor:
    """Share of each image's spectral energy at frequencies above ``radius``.

    Energy is ``|fft2(x)|**2`` summed over channels (Parseval: the image's squared norm up
    to ``H * W``); a bin counts as high-frequency when its :func:`radial_frequency` is
    strictly greater than ``radius``, in cycles per pixel (Nyquist is 0.5; 0.25 is half of
    it). With ``exclude_dc`` each channel's mean is removed first, so the ratio is the
    high-frequency share of the image's *variation* and a bright background does not
    dilute it. An image with no energy left (constant with ``exclude_dc``, or all zeros)
    has ratio 0. So a constant image gives 0, and a checkerboard (all its variation at
    the Nyquist corner, radius 0.707) gives 1.

    Args:
        x: images or feature maps (numpy or torch).
        radius: the cut-off in cycles per pixel, in [0, :func:`highest_frequency`).
        exclude_dc: remove each channel's mean before measuring.

    Returns:
        Float64 tensor of ratios in [0, 1], one per image, on ``x``'s device.

    Raises:
        TypeError: not a floating-point tensor or array, or ``radius`` not a number.
        ValueError: not (B, C, H, W), ``radius`` < 0, or ``radius`` at or above the
            :func:`highest_frequency` of the maps (every ratio would be 0).

    Shape:
        - Input: (B, C, H, W)
        - Output: (B,)

    Example:
        >>> board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
        >>> high_frequency_energy_ratio(board.float().expand(1, 3, 8, 8), 0.25)
        tensor([1.], dtype=torch.float64)
    """
    r = check_non_negative("radius", radius)
    x = _as_maps(x).to(torch.float64)
    h, w = x.shape[-2:]
    top = highest_frequency(h, w)
    if r >= top:
        raise ValueError(
            f"radius {radius!r} leaves no frequency above it: the highest of a {h}x{w} "
            f"image is {top:.4g} cycles/px"
        )
    if x.numel() == 0:  # some FFT backends reject empty inputs
        return x.new_zeros(x.shape[0])
    reference = x.pow(2).sum(dim=(1, 2, 3)) * (h * w)  # the energy before removing the mean
    if exclude_dc:
        x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(dim=1)  # (B, H, W)
    outside = radial_frequency(h, w, device=x.device) > r
    total = power.sum(dim=(-2, -1))
    high = (power * outside).sum(dim=(-2, -1))
    empty = total <= 1e-12 * reference
    return torch.where(empty, 0.0, high / torch.where(empty, 1.0, total))


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    ref = next(iter(model.parameters()), None)
    if ref is None or not ref.is_floating_point():
        return torch.device("cpu"), torch.float32
    return ref.device, ref.dtype


def layer_features(
    model: nn.Module, layer: str | None, x: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """The (B, C, H, W) output of ``model``'s submodule ``layer`` for inputs ``x``.

    One forward pass in eval mode without gradients (modes restored afterwards); the
    inputs are moved to the model's device and dtype. ``layer=None`` takes the first
    ``nn.Conv2d`` (BlurNet's "layer 1"). The output is the one the rest of the model sees,
    after any layer inserted there by a hook (see
    :func:`art_denoise.blurnet.capture_features`).

    Raises:
        ValueError: unknown ``layer`` (the message lists valid names), a layer not called
            in the forward pass, or an output that is not (B, C, H, W).

    Shape:
        - Input: (B, *input_shape)
        - Output: (B, C, H, W) on the CPU
    """
    name = first_conv(model) if layer is None else layer
    x = _as_maps(x)
    device, dtype = _device_dtype(model)
    with capture_features(model, name, detach=True) as maps:
        eval_forward(model, x.to(device=device, dtype=dtype))
    if not maps:
        raise ValueError(f"layer {name!r} is not called in the model's forward pass")
    if maps[0].ndim != 4:
        raise ValueError(f"layer {name!r} outputs shape {tuple(maps[0].shape)}, not (B, C, H, W)")
    return maps[0].float().cpu()


def feature_spectra(
    model: nn.Module,
    layer: str | None,
    x: torch.Tensor | np.ndarray,
    *,
    normalize: bool = True,
    reduce_batch: bool = False,
) -> torch.Tensor:
    """:func:`log_spectrum2d` of a layer's feature maps (see :func:`layer_features`).

    Shape:
        - Input: (B, *input_shape)
        - Output: (B, H', W') of the layer's maps, or (H', W') with ``reduce_batch``

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> feature_spectra(SmallCNN(input_shape=(1, 8, 8)), None, torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 8, 8])
    """
    maps = layer_features(model, layer, x)
    return log_spectrum2d(maps, normalize=normalize, reduce_batch=reduce_batch)
