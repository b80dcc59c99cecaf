"""Reference implementations of the feature-map filters: scipy.ndimage or a naive loop.

Every reference works in float64 and pads as torch's ``"reflect"`` does, which is scipy's
``"mirror"`` (``d c b | a b c d``). Imported as ``tests._references`` by the shared filter
contract (``tests/filters/test_contract.py``) and by the per-filter known-value tests.
"""

from __future__ import annotations

import math

import torch
from scipy import ndimage


def reference_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """``scipy.ndimage.uniform_filter`` over each k x k window."""
    out = ndimage.uniform_filter(x.double().numpy(), size=(1, 1, k, k), mode="mirror")
    return torch.from_numpy(out)


def reference_median(x: torch.Tensor, k: int) -> torch.Tensor:
    """``scipy.ndimage.median_filter`` over each k x k window."""
    out = ndimage.median_filter(x.double().numpy(), size=(1, 1, k, k), mode="mirror")
    return torch.from_numpy(out)


def reference_gaussian(x: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` truncated to a k x k window."""
    out = ndimage.gaussian_filter(
        x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", radius=(0, 0, k // 2, k // 2)
    )
    return torch.from_numpy(out)


def reference_correlate(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel ``scipy.ndimage.correlate``; ``kernel`` is (C, 1, k, k)."""
    xs, ks = x.double().numpy(), kernel.detach().double().numpy()
    out = torch.empty(x.shape, dtype=torch.float64)
    for c in range(x.shape[1]):
        ref = ndimage.correlate(xs[:, c], ks[c, 0][None], mode="mirror")
        out[:, c] = torch.from_numpy(ref)
    return out


def _mirror(i: int, n: int) -> int:
    """torch "reflect" / scipy "mirror" index: -1 -> 1, n -> n - 2."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


def _bilateral_at(x: torch.Tensor, i: int, j: int, k: int, sc: float, ss: float) -> torch.Tensor:
    """The bilateral filter of the (C, H, W) map ``x`` at position (i, j)."""
    c, h, w = x.shape
    p = k // 2
    num, den = torch.zeros(c, dtype=torch.float64), 0.0
    for di in range(-p, p + 1):
        for dj in range(-p, p + 1):
            xj = x[:, _mirror(i + di, h), _mirror(j + dj, w)]
            color = float(((x[:, i, j] - xj) ** 2).sum())
            weight = math.exp(-color / (2 * sc**2)) * math.exp(-(di**2 + dj**2) / (2 * ss**2))
            num += weight * xj
            den += weight
    return num / den


def reference_bilateral(x: torch.Tensor, k: int, sc: float, ss: float) -> torch.Tensor:
    """The docstring's formula, one position at a time, in float64."""
    x = x.double()
    out = torch.zeros_like(x)
    for bi in range(x.shape[0]):
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                out[bi, :, i, j] = _bilateral_at(x[bi], i, j, k, sc, ss)
    return out


def reference_nonlocal(
    x: torch.Tensor,
    theta: torch.Tensor | None = None,
    phi: torch.Tensor | None = None,
    *,
    mode: str = "gaussian",
    scale: float | None = None,
) -> torch.Tensor:
    """A naive loop over the positions i: y_i = sum_j w_ij x_j, in float64."""
    x = x.double()
    q = x if theta is None else theta.detach().double()
    k = x if phi is None else phi.detach().double()
    b, c, h, w = x.shape
    n = h * w
    if scale is None:
        scale = 1 / math.sqrt(q.shape[1]) if mode == "gaussian" else 1 / n
    xs, qs, ks = x.reshape(b, c, n), q.reshape(b, -1, n), k.reshape(b, -1, n)
    out = torch.zeros_like(xs)
    for bi in range(b):
        for i in range(n):
            logits = torch.stack([scale * (qs[bi, :, i] @ ks[bi, :, j]) for j in range(n)])
            weights = logits.softmax(0) if mode == "gaussian" else logits
            out[bi, :, i] = (xs[bi] * weights).sum(dim=1)
    return out.reshape(b, c, h, w)


def seeded_embeddings(x: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded 1x1-conv embeddings theta, phi of ``x`` with ``width`` channels."""
    g = torch.Generator().manual_seed(1)
    wt = torch.randn(width, x.shape[1], 1, 1, generator=g, dtype=x.dtype) * 0.5
    wp = torch.randn(width, x.shape[1], 1, 1, generator=g, dtype=x.dtype) * 0.5
    conv = torch.nn.functional.conv2d
    return conv(x, wt.to(x.device)), conv(x, wp.to(x.device))
