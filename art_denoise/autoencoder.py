"""Convolutional denoising autoencoders, stacked, with Gaussian noise before each one.

The input-purification defense of the course report in REFERENCES (a conv autoencoder
trained to remove Gaussian noise; at inference noise is added to the input before it;
one to four such layers stacked). Pure torch: the ART wrapper is
:class:`art_denoise.defences.preprocessor.DenoisingAutoencoderPyTorch`. The noise makes the
defense randomised: evaluate it with EOT (Athalye et al., ICML 2018,
https://arxiv.org/abs/1802.00420).
"""

from __future__ import annotations

import torch
from torch import nn

from art_denoise._torch import straight_through_clamp
from art_denoise._validation import check_feature_map, check_non_negative, check_positive_int

__all__ = ["ConvAutoencoder", "NoisyAutoencoderStack", "add_gaussian_noise"]


def add_gaussian_noise(
    x: torch.Tensor, sigma: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``clip(x + sigma * N(0, 1), 0, 1)``, clipped with an identity gradient.

    The noise is additive, so the result is differentiable in ``x`` (gradient 1, also
    where it clips: :func:`~art_denoise._torch.straight_through_clamp`).
    It is drawn from torch's global RNG unless a ``generator`` is given (then on the CPU
    and moved to ``x``'s device), so ``torch.manual_seed`` makes it reproducible.

    Shape:
        - Input: any, values in [0, 1]
        - Output: same as input
    """
    if sigma == 0:
        return x
    if generator is None:
        noise = torch.randn_like(x)
    else:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return straight_through_clamp(x + sigma * noise, 0.0, 1.0)


class ConvAutoencoder(nn.Module):
    """A small conv autoencoder for images in [0, 1]; one level of stride-2 downsampling.

    ``conv3x3(C -> h) -> ReLU -> conv3x3/2(h -> 2h) -> ReLU -> convT3x3/2(2h -> h) -> ReLU
    -> conv3x3(h -> C) -> sigmoid``; the transposed convolution is told the input's size,
    so odd heights and widths come back unchanged.

    Args:
        channels: C, the image channels.
        hidden: h, the width of the first layer.

    Shape:
        - Input: (B, C, H, W) in [0, 1]
        - Output: (B, C, H, W) in (0, 1)

    Example:
        >>> ConvAutoencoder(3, hidden=8)(torch.rand(2, 3, 7, 9)).shape
        torch.Size([2, 3, 7, 9])
    """

    def __init__(self, channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.hidden = check_positive_int("hidden", hidden)
        c, h = self.channels, self.hidden
        self.encoder = nn.Sequential(
            nn.Conv2d(c, h, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(h, 2 * h, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.up = nn.ConvTranspose2d(2 * h, h, 3, stride=2, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.out = nn.Conv2d(h, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_feature_map(x, channels=self.channels)
        z = self.encoder(x)
        z = self.act(self.up(z, output_size=list(x.shape[-2:])))
        return torch.sigmoid(self.out(z))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"


class NoisyAutoencoderStack(nn.Module):
    """``n_layers`` autoencoders in a row, Gaussian noise added before each one.

    ``x -> AE_1(noise(x)) -> AE_2(noise(.)) -> ...`` with
    ``noise(x) = clip(x + sigma * N(0, 1), 0, 1)`` (:func:`add_gaussian_noise`) when
    ``noise`` is on. Randomised (torch's global RNG) and differentiable in ``x``.

    Args:
        channels: C, the image channels.
        n_layers: number of stacked autoencoders, >= 1 (the report used 1 to 4).
        hidden: width of each autoencoder.
        sigma: standard deviation of the noise, >= 0, on the [0, 1] scale.
        noise: add the noise (the report's "with noise"); off gives a deterministic map.

    Shape:
        - Input: (B, C, H, W) in [0, 1]
        - Output: (B, C, H, W) in (0, 1)

    Example:
        >>> stack = NoisyAutoencoderStack(1, n_layers=2, hidden=4, sigma=0.1)
        >>> stack(torch.rand(3, 1, 8, 8)).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        n_layers: int = 1,
        *,
        hidden: int = 16,
        sigma: float = 0.1,
        noise: bool = True,
    ) -> None:
        super().__init__()
        n = check_positive_int("n_layers", n_layers)
        self.sigma = check_non_negative("sigma", sigma)
        self.noise = bool(noise)
        self.layers = nn.ModuleList(ConvAutoencoder(channels, hidden) for _ in range(n))

    def forward(self, x: torch.Tensor, *, upto: int | None = None) -> torch.Tensor:
        """Run the first ``upto`` autoencoders (all by default)."""
        for autoencoder in self.layers[:upto]:
            if self.noise:
                x = add_gaussian_noise(x, self.sigma)
            x = autoencoder(x)
        return x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, noise={self.noise}"
