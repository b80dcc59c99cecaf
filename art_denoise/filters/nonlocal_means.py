"""Non-local means over all positions of a feature map, as in feature denoising.

Xie, Wu, van der Maaten, Yuille, He, "Feature Denoising for Improving Adversarial
Robustness", CVPR 2019, https://arxiv.org/abs/1812.03411.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._validation import (
    check_choice,
    check_feature_map,
    check_positive,
    check_positive_int,
)

__all__ = ["AUTO_MATERIALISE_RATIO", "NonLocalMeans2d", "nonlocal_means2d"]

_MODES = ("gaussian", "dot")
_IMPLEMENTATIONS = ("auto", "sdpa", "reference")

#: ``implementation="auto"`` materialises the Gaussian affinity matrix when
#: N <= ratio * max(C, C'), with this ratio when q and k must be zero-padded for the fused
#: kernel (C' != C: the padding makes SDPA compute q k^T at the full width), and 1
#: otherwise. There the matrix is at most a few times the size of ``x`` and building it
#: was faster on CPU (``benchmarks/nonlocal.py``); larger maps take the SDPA path.
AUTO_MATERIALISE_RATIO = 4


def _auto_materialises(n: int, c: int, d: int) -> bool:
    """Whether ``implementation="auto"`` builds the matrix: N positions, C values, C' keys."""
    ratio = 1 if c == d else AUTO_MATERIALISE_RATIO
    return n <= ratio * max(c, d)


def _tokens(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, N, C), contiguous: the layout the fused SDPA kernels need."""
    return t.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()


def _gaussian_sdpa(
    x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, scale: float, same: bool
) -> torch.Tensor:
    """Softmax-weighted mean through ``scaled_dot_product_attention`` (no N x N matrix).

    The fused CPU kernel runs only on 4-D contiguous q, k, v with one last dimension and
    ``stride(-1) == 1``; anything else silently falls back to the math kernel, which
    materialises the N x N matrix. So the tokens are made contiguous, and the narrower of
    (q, k) and v is zero-padded to the wider width: zero columns add nothing to the dot
    products, and padded value columns are cut off the output. The scale is passed
    explicitly since the default ``1/sqrt(width)`` would see the padded width. On CUDA the
    width is also rounded up to a multiple of 8, which the fused CUDA kernels want.
    """
    b, c, h, w = x.shape
    d = q.shape[1]
    width = max(c, d)
    if x.is_cuda:  # the fused CUDA kernels want head dims that are multiples of 8
        width = -(-width // 8) * 8
    v_t = _tokens(x)
    if c < width:
        v_t = F.pad(v_t, (0, width - c))
    if same:
        q_t = k_t = v_t
    else:
        q_t, k_t = _tokens(q), _tokens(k)
        if d < width:
            q_t, k_t = F.pad(q_t, (0, width - d)), F.pad(k_t, (0, width - d))
    out = F.scaled_dot_product_attention(q_t, k_t, v_t, scale=scale)  # (B, 1, N, width)
    out = out[..., :c].squeeze(1).transpose(1, 2)  # (B, C, N)
    return out.reshape(b, c, h, w).contiguous()


def _dot_reassociated(
    x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, scale: float
) -> torch.Tensor:
    """``scale * V K^T Q``: with V (C, N), K, Q (C', N) the inner product is C x C'."""
    b, c, h, w = x.shape
    v, k_, q_ = x.flatten(2), k.flatten(2), q.flatten(2)
    m = torch.bmm(v, k_.transpose(1, 2))  # (B, C, C')
    return (torch.bmm(m, q_) * scale).view(b, c, h, w)


def _materialised(
    x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, scale: float, softmax: bool
) -> torch.Tensor:
    """The reference: builds the (B, N, N) affinity matrix ``A_ij = f(x_i, x_j)``."""
    b, c, h, w = x.shape
    v, k_, q_ = x.flatten(2), k.flatten(2), q.flatten(2)
    affinity = torch.bmm(q_.transpose(1, 2), k_) * scale  # (B, N, N), row i = query i
    if softmax:
        affinity = affinity.softmax(dim=-1)
    return torch.bmm(v, affinity.transpose(1, 2)).view(b, c, h, w)


def _queries_keys(
    x: torch.Tensor, theta: torch.Tensor | None, phi: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The checked queries and keys: ``theta`` and ``phi`` in ``x``'s dtype, else ``x``."""
    if (theta is None) != (phi is None):
        raise ValueError("theta and phi must be given together (or neither)")
    if theta is None or phi is None:
        return x, x
    q = check_feature_map(theta, name="theta")
    k = check_feature_map(phi, name="phi")
    if q.shape != k.shape:
        raise ValueError(
            f"theta and phi must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if (q.shape[0], *q.shape[2:]) != (x.shape[0], *x.shape[2:]):
        raise ValueError(
            f"theta must have x's batch and spatial size {tuple(x.shape)}, got {tuple(q.shape)}"
        )
    if q.shape[1] == 0:
        raise ValueError(f"theta must have at least 1 channel, got shape {tuple(q.shape)}")
    return q.to(x.dtype), k.to(x.dtype)


def nonlocal_means2d(
    x: torch.Tensor,
    theta: torch.Tensor | None = None,
    phi: torch.Tensor | None = None,
    *,
    mode: str = "gaussian",
    scale: float | None = None,
    implementation: str = "auto",
) -> torch.Tensor:
    r"""Non-local means of a feature map: a weighted mean over all N = H * W positions.

    For every position i, :math:`y_i = \sum_j w_{ij} x_j` with, writing
    :math:`q_i = \theta(x)_i` and :math:`k_j = \phi(x)_j` (both ``x`` itself when
    ``theta`` and ``phi`` are not given):

    - ``mode="gaussian"`` (softmax): :math:`w_{ij} = \mathrm{softmax}_j(s\, q_i^\top k_j)`,
      with :math:`s = 1/\sqrt{C'}` by default, C' the channels of q and k. This is
      attention with Q = theta, K = phi, V = x over the positions, and the ``"sdpa"``
      implementation computes it with :func:`torch.nn.functional.scaled_dot_product_attention`
      without ever building the N x N matrix (q, k and v are made contiguous and
      zero-padded to one width, which the fused CPU kernel needs; zero columns change
      no dot product, and the scale is passed explicitly).
    - ``mode="dot"``: :math:`w_{ij} = s\, q_i^\top k_j` with :math:`s = 1/N` by default
      (no softmax). The ``"sdpa"`` implementation reassociates the product as
      :math:`s\, V (K^\top Q)`, a C x C' product in O(N C C'), whenever both C and C' are
      smaller than N; otherwise it builds the matrix like the reference.

    ``implementation="reference"`` always materialises the (B, N, N) affinity matrix:
    memory grows as N^2; it is kept for tests and benchmarks. ``implementation="auto"``
    (the default) takes the ``"sdpa"`` path, except in Gaussian mode when the matrix is
    small: N <= max(C, C'), or N <= 4 max(C, C') when C' != C (see
    :data:`AUTO_MATERIALISE_RATIO`). There materialising is faster on CPU and costs at
    most a few feature maps of memory (e.g. 14 x 14 maps with C >= 196, or embedded with
    C >= 49).

    Args:
        x: feature map averaged over positions (the values V).
        theta: optional embedded queries, e.g. a 1x1 convolution of ``x``.
        phi: optional embedded keys; given together with ``theta``.
        mode: ``"gaussian"`` or ``"dot"``.
        scale: factor on the dot products ``q_i^T k_j``; ``None`` for the defaults above.
        implementation: ``"auto"``, ``"sdpa"`` (memory-efficient) or ``"reference"``
            (materialised).

    Returns:
        The denoised map, same shape and dtype as ``x``. Differentiable in ``x``,
        ``theta`` and ``phi``.

    Raises:
        TypeError: an input is not a floating-point tensor.
        ValueError: wrong rank; ``theta``/``phi`` given alone, or with shapes that do not
            match ``x`` or each other; unknown ``mode`` or ``implementation``; ``scale <= 0``.

    Shape:
        - x: (B, C, H, W)
        - theta, phi: (B, C', H, W)
        - Output: (B, C, H, W)

    Example:
        >>> x = torch.randn(2, 8, 5, 5)
        >>> nonlocal_means2d(x).shape
        torch.Size([2, 8, 5, 5])
        >>> torch.allclose(nonlocal_means2d(x), nonlocal_means2d(x, implementation="reference"),
        ...                atol=1e-5)
        True
    """
    x = check_feature_map(x)
    check_choice("mode", mode, _MODES)
    check_choice("implementation", implementation, _IMPLEMENTATIONS)
    same = theta is None
    q, k = _queries_keys(x, theta, phi)
    if scale is not None:
        scale = check_positive("scale", scale)
    if x.numel() == 0:
        return x.clone()
    n = x.shape[2] * x.shape[3]
    if scale is not None:
        s = scale
    else:
        s = 1.0 / math.sqrt(q.shape[1]) if mode == "gaussian" else 1.0 / n
    if implementation == "auto":
        small = _auto_materialises(n, x.shape[1], q.shape[1])
        implementation = "reference" if small and mode == "gaussian" else "sdpa"
    if implementation == "reference":
        return _materialised(x, q, k, s, softmax=mode == "gaussian")
    if mode == "gaussian":
        return _gaussian_sdpa(x, q, k, s, same)
    if max(x.shape[1], q.shape[1]) < n:
        return _dot_reassociated(x, q, k, s)
    return _materialised(x, q, k, s, softmax=False)


class NonLocalMeans2d(nn.Module):
    """Non-local means over all positions, optionally with embedded queries and keys.

    With ``embed=True`` the queries and keys are learned 1x1 convolutions theta, phi of
    ``x`` to ``embed_channels`` (C/2 by default) channels, without bias, initialised from
    N(0, 0.01^2) (the std of the paper's reference code); the softmax scale is then
    ``1/sqrt(embed_channels)``. Otherwise ``NonLocalMeans2d()(x) == nonlocal_means2d(x)``.
    See :func:`nonlocal_means2d` for the maths and the implementations.

    Args:
        channels: C, required with ``embed=True``; when given, inputs are checked against it.
        embed: learn theta and phi (the paper's "embedded" Gaussian / dot product).
        embed_channels: C', the width of theta and phi; default ``max(1, C // 2)``.
        mode: ``"gaussian"`` or ``"dot"``.
        scale: factor on the dot products; ``None`` for ``1/sqrt(C')`` or ``1/N``.
        implementation: ``"auto"``, ``"sdpa"`` or ``"reference"``.

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> layer = NonLocalMeans2d(8, embed=True)
        >>> layer(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(
        self,
        channels: int | None = None,
        *,
        embed: bool = False,
        embed_channels: int | None = None,
        mode: str = "gaussian",
        scale: float | None = None,
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        self.channels = None if channels is None else check_positive_int("channels", channels)
        self.mode = check_choice("mode", mode, _MODES)
        self.implementation = check_choice("implementation", implementation, _IMPLEMENTATIONS)
        self.scale = None if scale is None else check_positive("scale", scale)
        self.embed = bool(embed)
        self.theta: nn.Conv2d | None = None
        self.phi: nn.Conv2d | None = None
        if self.embed:
            if self.channels is None:
                raise ValueError("embed=True needs channels, got channels=None")
            ce = max(1, self.channels // 2) if embed_channels is None else embed_channels
            ce = check_positive_int("embed_channels", ce)
            self.theta = nn.Conv2d(self.channels, ce, 1, bias=False)
            self.phi = nn.Conv2d(self.channels, ce, 1, bias=False)
            for conv in (self.theta, self.phi):
                nn.init.normal_(conv.weight, std=0.01)
        elif embed_channels is not None:
            raise ValueError(f"embed_channels={embed_channels!r} needs embed=True")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_feature_map(x, channels=self.channels)
        theta = phi = None
        if self.theta is not None and self.phi is not None:
            theta, phi = self.theta(x), self.phi(x)
        return nonlocal_means2d(
            x, theta, phi, mode=self.mode, scale=self.scale, implementation=self.implementation
        )

    def extra_repr(self) -> str:
        parts: list[Any] = [
            f"channels={self.channels}",
            f"embed={self.embed}",
            f"mode={self.mode!r}",
            f"implementation={self.implementation!r}",
        ]
        if self.scale is not None:
            parts.append(f"scale={self.scale}")
        return ", ".join(parts)
