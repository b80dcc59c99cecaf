"""Input low-pass filters as an ART ``PreprocessorPyTorch``: box, Gaussian, median, bilateral.

The input-filter baseline of BlurNet (Raju & Lipasti, "BlurNet: Defense by Filtering the
Feature Maps", 2019, https://arxiv.org/abs/1908.02256, Table 1), and the local filters of
Xie et al., CVPR 2019 (https://arxiv.org/abs/1812.03411) applied to images. Every kind is
differentiable (the median almost everywhere), so ART's white-box attacks get true
gradients through the filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_denoise._torch import straight_through_clamp
from art_denoise._validation import (
    check_bool,
    check_choice,
    check_clip_values,
    check_kernel_size,
    check_positive,
)
from art_denoise.blurnet.kernels import default_sigma, gaussian_kernel2d
from art_denoise.blurnet.lowpass import lowpass2d
from art_denoise.filters import bilateral_filter2d, mean_filter2d, median_filter2d

__all__ = ["LOWPASS_KINDS", "LowPassFilterPyTorch"]


def _box(x: torch.Tensor, k: int, sigma: float, sigma_color: float) -> torch.Tensor:
    return mean_filter2d(x, kernel_size=k)


def _gaussian(x: torch.Tensor, k: int, sigma: float, sigma_color: float) -> torch.Tensor:
    return lowpass2d(x, gaussian_kernel2d(k, sigma, dtype=x.dtype, device=x.device))


def _median(x: torch.Tensor, k: int, sigma: float, sigma_color: float) -> torch.Tensor:
    return median_filter2d(x, kernel_size=k)


def _bilateral(x: torch.Tensor, k: int, sigma: float, sigma_color: float) -> torch.Tensor:
    return bilateral_filter2d(x, kernel_size=k, sigma_color=sigma_color, sigma_space=sigma)


#: Kind -> ``(x, kernel_size, sigma, sigma_color) -> filtered x`` on (B, C, H, W).
LOWPASS_KINDS: dict[str, Callable[[torch.Tensor, int, float, float], torch.Tensor]] = {
    "box": _box,
    "gaussian": _gaussian,
    "median": _median,
    "bilateral": _bilateral,
}

_USES_SIGMA = ("gaussian", "bilateral")


class LowPassFilterPyTorch(PreprocessorPyTorch):
    """Filter each channel of the input with a k x k low-pass filter (ART preprocessor).

    ``"box"`` is :func:`art_denoise.filters.mean_filter2d`, ``"gaussian"`` the BlurNet
    Gaussian kernel (:func:`art_denoise.blurnet.gaussian_kernel2d`), ``"median"``
    :func:`~art_denoise.filters.median_filter2d` and ``"bilateral"``
    :func:`~art_denoise.filters.bilateral_filter2d` (colour distance over all channels).
    All pad with torch's ``"reflect"`` mode (scipy's ``"mirror"``). The output is clipped
    to ``clip_values`` with an identity gradient (:func:`straight_through_clamp`); the
    filters are convex combinations or medians, so for inputs in range it changes nothing.

    Args:
        kind: ``"box"``, ``"gaussian"``, ``"median"`` or ``"bilateral"``.
        kernel_size: k, odd, at most the image's height and width.
        sigma: the Gaussian's standard deviation / the bilateral filter's spatial scale,
            in pixels, > 0; ``None`` for :func:`art_denoise.blurnet.default_sigma` (0.8 at
            k = 3). Only for ``"gaussian"`` and ``"bilateral"``.
        sigma_color: the bilateral filter's scale of pixel-value distances, > 0.
        clip_values: ``(min, max)`` of valid inputs, or ``None`` for no clipping.
        channels_first: inputs are NCHW (else NHWC, filtered as NCHW and permuted back).
        apply_fit: apply when training the classifier.
        apply_predict: apply at prediction (and attack) time.
        device_type: ``"gpu"`` (CUDA when present) or ``"cpu"``.

    Raises:
        ValueError: unknown ``kind``, ``kernel_size`` even or < 1, ``sigma`` or
            ``sigma_color`` <= 0, ``sigma`` given for box or median, bad ``clip_values``.
        TypeError: arguments of the wrong type.

    Shape:
        - Input: (B, C, H, W), or (B, H, W, C) with ``channels_first=False``
        - Output: same as input

    Example:
        >>> pre = LowPassFilterPyTorch("median", kernel_size=3, device_type="cpu")
        >>> x = torch.zeros(1, 1, 5, 5)
        >>> x[0, 0, 2, 2] = 1.0
        >>> pre.forward(x)[0].abs().max()
        tensor(0.)
    """

    params: ClassVar[list[str]] = [
        "kind",
        "kernel_size",
        "sigma",
        "sigma_color",
        "clip_values",
        "channels_first",
    ]

    def __init__(
        self,
        kind: str = "box",
        *,
        kernel_size: int = 3,
        sigma: float | None = None,
        sigma_color: float = 0.1,
        clip_values: tuple[float, float] | None = (0.0, 1.0),
        channels_first: bool = True,
        apply_fit: bool = False,
        apply_predict: bool = True,
        device_type: str = "gpu",
    ) -> None:
        check_choice("device_type", device_type, ("cpu", "gpu"))
        super().__init__(device_type=device_type, apply_fit=apply_fit, apply_predict=apply_predict)
        self.kind = kind
        self.kernel_size = kernel_size
        self.sigma = sigma
        self.sigma_color = sigma_color
        self.clip_values = clip_values
        self.channels_first = channels_first
        self._check_params()

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Filter ``x``; ``y`` passes through. Differentiable in ``x``."""
        if x.ndim != 4:
            layout = "(B, C, H, W)" if self.channels_first else "(B, H, W, C)"
            raise ValueError(f"x must have shape {layout}, got shape {tuple(x.shape)}")
        x_nchw = x if self.channels_first else x.permute(0, 3, 1, 2)
        k = self.kernel_size
        sigma = default_sigma(k) if self.sigma is None else float(self.sigma)
        out = LOWPASS_KINDS[self.kind](x_nchw, k, sigma, float(self.sigma_color))
        if self.clip_values is not None:
            out = straight_through_clamp(out, *self.clip_values)
        if not self.channels_first:
            out = out.permute(0, 2, 3, 1)
        return out, y

    def _check_params(self) -> None:
        check_choice("kind", self.kind, LOWPASS_KINDS)
        self.kernel_size = check_kernel_size(self.kernel_size)
        if self.sigma is not None:
            if self.kind not in _USES_SIGMA:
                raise ValueError(
                    f"sigma is used only with kind 'gaussian' or 'bilateral', got sigma="
                    f"{self.sigma!r} for kind {self.kind!r}"
                )
            self.sigma = check_positive("sigma", self.sigma)
        self.sigma_color = check_positive("sigma_color", self.sigma_color)
        self.clip_values = check_clip_values(self.clip_values)
        check_bool("channels_first", self.channels_first)

    def __repr__(self) -> str:
        settings: dict[str, Any] = {p: getattr(self, p) for p in self.params}
        inner = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return f"{type(self).__name__}({inner})"
