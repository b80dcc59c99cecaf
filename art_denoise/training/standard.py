"""Standard (non-adversarial) training: the baseline every defense is compared with."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from art_denoise._validation import as_float_images, as_labels, check_positive, check_positive_int

__all__ = ["train_standard"]


def train_standard(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> nn.Module:
    """Train ``model`` with Adam and cross-entropy on (x, y); returns it in eval mode.

    Args:
        model: maps (B, C, H, W) inputs in [0, 1] to logits.
        x: training images in [0, 1]; y: integer or one-hot labels.
        epochs, batch_size, lr, weight_decay: the optimisation settings.
        seed: seeds the parameter-independent randomness (shuffling).
        device: where to train.
        progress: show a progress bar with the running loss.
        on_epoch_end: called with (epoch, mean loss) after each epoch.
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    dev = torch.device(device)
    xt = as_float_images(x).to(dev)
    yt = as_labels(y, n=len(xt)).to(dev)
    if len(xt) == 0:
        raise ValueError("x holds no training images")
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(range(epochs), disable=not progress, desc="train", leave=False)
    for epoch in bar:
        order = torch.randperm(len(xt), generator=gen).to(dev)
        total, count = 0.0, 0
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        bar.set_postfix(loss=f"{total / count:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, total / count)
    opt.zero_grad(set_to_none=True)
    return model.eval()
