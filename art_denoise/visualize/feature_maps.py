"""Pictures of feature maps for clean and adversarial inputs, before and after denoising.

The paper's Figures 2-3 (Xie et al., "Feature Denoising for Improving Adversarial
Robustness", CVPR 2019, https://arxiv.org/abs/1812.03411).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from art_denoise._files import atomic_path
from art_denoise._torch import eval_forward
from art_denoise._validation import check_positive_int
from art_denoise.blocks.denoising import DenoisingBlock

__all__ = ["plot_feature_maps"]


def _find_block(module: nn.Module) -> DenoisingBlock | None:
    """The denoising block at ``module``: itself, or one inserted after it."""
    if isinstance(module, DenoisingBlock):
        return module
    block = getattr(module, "denoise", None)
    return block if isinstance(block, DenoisingBlock) else None


def _as_batch(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor or array, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have a batch axis, got shape {tuple(x.shape)}")
    return x


def _capture(
    model: nn.Module, module: nn.Module, block: DenoisingBlock | None, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features at the layer, the block's filter output) for one forward pass."""
    seen: dict[str, torch.Tensor] = {}

    def keep(key: str, value: Any) -> None:
        if key not in seen and isinstance(value, torch.Tensor):
            seen[key] = value.detach().float().cpu()

    if block is None:
        handles = [module.register_forward_hook(lambda m, a, out: keep("features", out))]
    else:
        handles = [
            block.register_forward_pre_hook(lambda m, args: keep("features", args[0])),
            block.filter.register_forward_hook(lambda m, a, out: keep("filtered", out)),
        ]
    eval_forward(model, x, handles)
    if "features" not in seen:
        raise ValueError("the layer was not called in the model's forward pass")
    return seen["features"], seen.get("filtered")


def _checked_pair(
    x_clean: torch.Tensor | np.ndarray, x_adv: torch.Tensor | np.ndarray, index: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two batches as tensors of one shape, with ``index`` inside them."""
    clean, adv = _as_batch(x_clean, "x_clean"), _as_batch(x_adv, "x_adv")
    if clean.shape != adv.shape:
        raise ValueError(
            f"x_clean and x_adv differ in shape: {tuple(clean.shape)} vs {tuple(adv.shape)}"
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__} {index!r}")
    if not 0 <= index < clean.shape[0]:
        raise ValueError(f"index {index} is out of range for a batch of {clean.shape[0]}")
    return clean, adv


def _pick_channels(
    channels: int | Sequence[int], clean: torch.Tensor, adv: torch.Tensor
) -> list[int]:
    """The given channels, or the ``channels`` whose maps the attack changes most."""
    n_channels = clean.shape[0]
    if isinstance(channels, bool):
        raise TypeError(f"channels must be an int or a list of ints, got {channels!r}")
    if isinstance(channels, int):
        count = min(check_positive_int("channels", channels), n_channels)
        change = (adv - clean).abs().mean(dim=(1, 2))
        return sorted(change.argsort(descending=True)[:count].tolist())
    picked = [int(c) for c in channels]
    bad = [c for c in picked if not 0 <= c < n_channels]
    if bad or not picked:
        raise ValueError(f"channels {list(channels)} out of range for {n_channels} channels")
    return picked


def _draw_grid(rows: list[tuple[str, torch.Tensor]], picked: list[int], cmap: str) -> Figure:
    """One row per map set, one column per channel, one colour scale per column."""
    fig = Figure(figsize=(1.8 * len(picked) + 0.8, 1.8 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(picked), squeeze=False)
    for col, c in enumerate(picked):
        lo = min(float(maps[c].min()) for _, maps in rows)
        hi = max(float(maps[c].max()) for _, maps in rows)
        for row, (label, maps) in enumerate(rows):
            ax = axes[row][col]
            ax.imshow(maps[c].numpy(), cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"channel {c}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
    return fig


def plot_feature_maps(
    model: nn.Module,
    layer: str,
    x_clean: torch.Tensor | np.ndarray,
    x_adv: torch.Tensor | np.ndarray,
    *,
    channels: int | Sequence[int] = 4,
    index: int = 0,
    path: str | os.PathLike[str] | None = None,
    cmap: str = "viridis",
) -> Figure:
    """Grid of the same channels of a layer's features for a clean and an adversarial image.

    Rows: the clean features, the adversarial features, and — when ``layer`` is a
    :class:`~art_denoise.blocks.DenoisingBlock` or a layer with one inserted after it —
    the adversarial features after the block's filter (the paper's "denoising
    operation"; for a block, "features" are the block's input). Each column is one
    channel, drawn on one colour scale across rows so the rows compare directly.
    Captured with forward hooks in eval mode without gradients; the model's modes are
    restored afterwards.

    Args:
        model: the network.
        layer: dotted name from ``model.named_modules()``.
        x_clean: clean inputs (B, ...); image ``index`` is shown.
        x_adv: the adversarial versions, same shape.
        channels: channel indices, or a count n for the n channels whose features the
            attack changes most (mean absolute difference).
        index: which image of the batch.
        path: if given, the PNG is written there atomically.
        cmap: matplotlib colour map.

    Returns:
        The matplotlib figure (Agg canvas, no pyplot state).

    Raises:
        ValueError: unknown ``layer`` (the message lists valid names), shapes that
            differ, a channel out of range, or a layer output that is not (B, C, H, W).
        TypeError: inputs that are not floating-point tensors or arrays.

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> from art_denoise.blocks import insert_denoising_blocks
        >>> model = insert_denoising_blocks(SmallCNN(input_shape=(1, 8, 8)), "stages")
        >>> x = torch.rand(1, 1, 8, 8)
        >>> fig = plot_feature_maps(model, "stage1.denoise", x, (x + 0.1).clamp(0, 1))
        >>> len(fig.axes)
        12
    """
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        names = ", ".join(n for n in modules if n)
        raise ValueError(f"unknown layer {layer!r}; valid names are: {names}")
    x_clean, x_adv = _checked_pair(x_clean, x_adv, index)
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32
    module = modules[layer]
    block = _find_block(module)
    one = slice(index, index + 1)
    clean, _ = _capture(model, module, block, x_clean[one].to(device, dtype))
    adv, filtered = _capture(model, module, block, x_adv[one].to(device, dtype))
    if clean.ndim != 4:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(clean.shape)}, not (B, C, H, W)")
    picked = _pick_channels(channels, clean[0], adv[0])
    rows = [("clean", clean[0]), ("adversarial", adv[0])]
    if filtered is not None:
        rows.append(("adversarial, denoised", filtered[0]))
    fig = _draw_grid(rows, picked, cmap)
    fig.suptitle(f"{layer}", fontsize=10)
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    return fig
