"""BlurNet's two loss penalties that make a network low-pass its first-layer features.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256:

- the L-infinity penalty on a learnable depthwise kernel,
  ``alpha / K * sum_j ||W_depthwise[:, :, j]||_inf``, which pushes each kernel towards
  equal weights (a box blur);
- the total variation of the layer-1 feature maps,
  ``alpha_TV / (N K) * sum_i sum_k TV(F[i, :, :, k])``, which makes neighbouring feature
  values similar, so the spikes a perturbation adds are smoothed away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from art_denoise._validation import check_feature_map, check_non_negative
from art_denoise.blurnet.lowpass import LowPass2d

__all__ = [
    "depthwise_weights",
    "linf_depthwise_penalty",
    "total_variation",
    "total_variation_penalty",
]


def _add(terms: list[torch.Tensor]) -> torch.Tensor:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _is_depthwise_conv(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels
        and module.weight.shape[1] == 1
    )


def _weights_of(item: Any) -> list[torch.Tensor]:
    if isinstance(item, torch.Tensor):
        if item.ndim != 4 or item.shape[1] != 1 or not item.is_floating_point():
            raise ValueError(
                "a depthwise kernel must be a floating-point tensor of shape (K, 1, k, k), "
                f"got shape {tuple(item.shape)} and dtype {item.dtype}"
            )
        return [item]
    if isinstance(item, LowPass2d):
        return [item.weight]
    if _is_depthwise_conv(item):
        return [item.weight]
    if isinstance(item, nn.Module):
        return [m.weight for m in item.modules() if isinstance(m, LowPass2d) and m.learnable]
    raise TypeError(
        f"expected a model, a LowPass2d, a depthwise nn.Conv2d or a (K, 1, k, k) tensor, "
        f"got {type(item).__name__}"
    )


def depthwise_weights(
    model_or_layers: nn.Module | torch.Tensor | Iterable[nn.Module | torch.Tensor],
) -> list[torch.Tensor]:
    """The (K, 1, k, k) depthwise kernels that :func:`linf_depthwise_penalty` acts on.

    A model gives the weights of its learnable :class:`LowPass2d` layers; a
    ``LowPass2d``, a depthwise ``nn.Conv2d`` (``groups == in_channels``) or a tensor gives
    its own; a list gives those of each item.

    Raises:
        TypeError: an item of another type.
        ValueError: a tensor of the wrong shape, or no kernel found at all.
    """
    items: Iterable[Any]
    if isinstance(model_or_layers, (nn.Module, torch.Tensor)):
        items = [model_or_layers]
    elif isinstance(model_or_layers, Iterable):
        items = model_or_layers
    else:
        raise TypeError(
            f"model_or_layers must be a module, a tensor or a list of them, "
            f"got {type(model_or_layers).__name__}"
        )
    weights = [w for item in items for w in _weights_of(item)]
    if not weights:
        raise ValueError(
            "no learnable depthwise kernel found: insert one with "
            "insert_lowpass(model, kind='learnable'), or pass the layers"
        )
    return weights


def linf_depthwise_penalty(
    model_or_layers: nn.Module | torch.Tensor | Iterable[nn.Module | torch.Tensor],
    alpha: float = 1.0,
) -> torch.Tensor:
    r"""BlurNet's L-infinity penalty on depthwise kernels.

    For one depthwise layer with K kernels :math:`W_j` (k x k, one per channel),

    .. math::
        R(W) = \frac{\alpha}{K} \sum_{j=1}^{K} \lVert W_j \rVert_\infty,\qquad
        \lVert W_j \rVert_\infty = \max_{u, v} |W_j[u, v]|,

    the largest absolute weight of each kernel (the vector norm of the flattened kernel,
    which is what TensorFlow's ``tf.norm(w, ord=inf)`` computes on a kernel, not the
    induced matrix norm). Among kernels with the same sum, it is smallest for equal
    weights, so it pulls a learnable kernel towards a box blur. Several layers add up.
    Its gradient flows only to the largest weight(s) of each kernel.

    Args:
        model_or_layers: a model (its learnable :class:`LowPass2d` layers), or layers /
            (K, 1, k, k) tensors; see :func:`depthwise_weights`.
        alpha: the penalty's weight, >= 0 (the paper used 1e-5 to 0.1).

    Returns:
        A scalar tensor, differentiable in the kernels.

    Raises:
        TypeError: bad types.
        ValueError: ``alpha`` < 0, or no learnable kernel found.

    Shape:
        - Kernels: (K, 1, k, k)
        - Output: () scalar

    Example:
        >>> layer = LowPass2d(4, kernel_size=3, kind="learnable")  # starts as a box
        >>> linf_depthwise_penalty(layer, alpha=9.0)
        tensor(1., grad_fn=<MulBackward0>)
    """
    a = check_non_negative("alpha", alpha)
    weights = depthwise_weights(model_or_layers)
    terms = [w.abs().flatten(1).amax(dim=1).mean() for w in weights]
    return a * _add(terms)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    r"""Anisotropic total variation of each (H, W) map of a batch.

    .. math::
        TV(x) = \sum_{i, j} |x_{i+1, j} - x_{i, j}| + |x_{i, j+1} - x_{i, j}|,

    the sums running over the pairs inside the map (as ``tf.image.total_variation``).

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is not (B, C, H, W).

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C)

    Example:
        >>> total_variation(torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]]))
        tensor([[6.]])
    """
    x = check_feature_map(x)
    vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().sum(dim=(-2, -1))
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().sum(dim=(-2, -1))
    return vertical + horizontal


def total_variation_penalty(
    feature_maps: torch.Tensor | Sequence[torch.Tensor], alpha: float = 1.0
) -> torch.Tensor:
    r"""BlurNet's total-variation penalty on (first-layer) feature maps.

    .. math::
        R(F) = \frac{\alpha_{TV}}{N K} \sum_{i=1}^{N} \sum_{k=1}^{K} TV(F[i, k]),

    with N images, K channels and :func:`total_variation`: the mean TV of one map. Capture
    the maps with :func:`art_denoise.blurnet.capture_features` during the training
    forward pass; a list of captures adds up (each with its own N and K).

    Args:
        feature_maps: (N, K, H, W) maps with their autograd graph, or a list of them.
        alpha: :math:`\alpha_{TV}` >= 0 (the paper used 1e-4 and 1e-5).

    Returns:
        A scalar tensor; 0 for an empty batch.

    Raises:
        TypeError: not a tensor (or list of tensors) of a floating dtype.
        ValueError: ``alpha`` < 0, a map that is not (N, K, H, W), or an empty list.

    Shape:
        - Input: (N, K, H, W)
        - Output: () scalar

    Example:
        >>> total_variation_penalty(torch.ones(2, 3, 4, 4), alpha=1e-4)
        tensor(0.)
    """
    a = check_non_negative("alpha", alpha)
    maps = [feature_maps] if isinstance(feature_maps, torch.Tensor) else list(feature_maps)
    if not maps:
        raise ValueError("feature_maps is empty: capture at least one forward pass")
    terms = []
    for f in maps:
        tv = total_variation(check_feature_map(f, name="feature_maps"))
        terms.append(tv.sum() / max(tv.numel(), 1))
    return a * _add(terms)
