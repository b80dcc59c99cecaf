"""Run by ``torchrun`` in test_distributed.py: train the tiny net, rank 0 saves the weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10)
    )
    net.num_classes = 10  # type: ignore[assignment]
    return net


def train(data: Path, out: Path, ckpt: Path | None) -> None:
    from art_denoise.training import PGDTraining, fit
    from art_denoise.training.distributed import init_distributed

    torch.set_num_threads(1)
    arrays = np.load(data)
    model = tiny_net()
    ctx = init_distributed(torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    result = fit(
        model,
        opt,
        PGDTraining(eps=0.1, steps=2, prob_start_from_clean=0.3),
        arrays["x"],
        arrays["y"],
        epochs=2,
        batch_size=64,
        dist_ctx=ctx,
        progress=False,
        checkpoint_dir=ckpt,
        validation=(arrays["x"][:100], arrays["y"][:100]),
    )
    if ctx.is_main:
        torch.save({"state": model.state_dict(), "history": result.history}, out)


if __name__ == "__main__":
    train(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
