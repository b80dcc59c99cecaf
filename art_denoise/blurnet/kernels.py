"""Low-pass kernels for BlurNet: the box and the Gaussian, each summing to 1.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256.
"""

from __future__ import annotations

import torch

from art_denoise._validation import check_kernel_size, check_positive

__all__ = ["box_kernel2d", "default_sigma", "gaussian_kernel2d"]


def default_sigma(kernel_size: int) -> float:
    """The Gaussian's standard deviation used when none is given (OpenCV's rule).

    ``0.3 * ((k - 1) / 2 - 1) + 0.8``: 0.8 for k = 3, 1.1 for k = 5, 1.4 for k = 7.

    Example:
        >>> round(default_sigma(5), 6)
        1.1
    """
    k = check_kernel_size(kernel_size)
    return 0.3 * ((k - 1) * 0.5 - 1.0) + 0.8


def box_kernel2d(
    kernel_size: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The k x k box (mean) kernel, every weight ``1 / k**2``.

    Args:
        kernel_size: k, odd and >= 1.
        dtype: floating dtype of the kernel.
        device: device of the kernel.

    Returns:
        A (k, k) tensor that sums to 1.

    Raises:
        TypeError: ``kernel_size`` is not an int.
        ValueError: ``kernel_size`` is even or < 1.

    Shape:
        - Output: (k, k)

    Example:
        >>> box_kernel2d(3).sum()
        tensor(1.)
    """
    k = check_kernel_size(kernel_size)
    return torch.full((k, k), 1.0 / (k * k), dtype=dtype, device=device)


def gaussian_kernel2d(
    kernel_size: int,
    sigma: float | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The k x k Gaussian kernel, truncated at radius ``k // 2`` and normalised to sum 1.

    The kernel is the outer product of the 1-D weights ``exp(-t**2 / (2 sigma**2))``,
    ``t = -k//2 .. k//2``, each normalised to sum 1; this is the kernel of
    ``scipy.ndimage.gaussian_filter(x, sigma, radius=k // 2)`` (equivalently
    ``truncate=(k // 2) / sigma``).

    Args:
        kernel_size: k, odd and >= 1.
        sigma: standard deviation in pixels, > 0; ``None`` for :func:`default_sigma`.
        dtype: floating dtype of the kernel.
        device: device of the kernel.

    Returns:
        A (k, k) tensor that sums to 1, symmetric, largest at the centre.

    Raises:
        TypeError: ``kernel_size`` is not an int or ``sigma`` not a number.
        ValueError: ``kernel_size`` even or < 1, or ``sigma`` <= 0 or not finite.

    Shape:
        - Output: (k, k)

    Example:
        >>> kernel = gaussian_kernel2d(5, 1.0)
        >>> kernel.shape, kernel.argmax().item()
        (torch.Size([5, 5]), 12)
    """
    k = check_kernel_size(kernel_size)
    s = default_sigma(k) if sigma is None else check_positive("sigma", sigma)
    r = k // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / s) ** 2)  # the centre weight is 1, so the sum is >= 1
    g = g / g.sum()
    return torch.outer(g, g).to(dtype=dtype, device=device)
