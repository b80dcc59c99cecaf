"""The non-printability score (NPS) of Sharif et al. (2016), RP2's optional colour term."""

from __future__ import annotations

import torch

__all__ = ["non_printability_score"]


def non_printability_score(
    x: torch.Tensor, mask: torch.Tensor, colors: torch.Tensor
) -> torch.Tensor:
    """Per-image non-printability score of the masked pixels (Sharif et al., 2016).

    ``NPS(p) = prod_k ||p - c_k||_2`` for a pixel colour ``p`` (a C-vector) and printable
    colours ``c_1..c_K``; it is 0 exactly when ``p`` is a printable colour. The score of an
    image is the mean over its masked pixels (a pixel is masked if any channel is).

    Args:
        x: images, (N, C, H, W).
        mask: 0/1 mask of the same shape.
        colors: printable colours, (K, C).

    Returns:
        Shape (N,); 0 for an image with no masked pixel.

    | Paper link: https://dl.acm.org/doi/10.1145/2976749.2978392
    """
    pixels = x.permute(0, 2, 3, 1).unsqueeze(-2)  # (N, H, W, 1, C)
    dist = torch.linalg.vector_norm(pixels - colors.to(x), ord=2, dim=-1)  # (N, H, W, K)
    per_pixel = dist.prod(dim=-1)
    where = mask.amax(dim=1).to(x.dtype)  # (N, H, W)
    return (per_pixel * where).sum(dim=(1, 2)) / where.sum(dim=(1, 2)).clamp_min(1.0)
