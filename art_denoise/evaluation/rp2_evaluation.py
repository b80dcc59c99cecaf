"""RP2 stickers inside an evaluation: BlurNet's per-target table for every model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from art_denoise._torch import predict
from art_denoise._validation import check_positive, check_positive_int
from art_denoise.attacks.rp2 import RP2Config, per_target_success, rp2_attack, sticker_mask

__all__ = ["RP2Evaluation"]


@dataclass(frozen=True)
class RP2Evaluation:
    """Targeted RP2 with one fixed sticker mask, every target class, on each model.

    The victims are the first ``n_images`` test images the model classifies correctly;
    for each target class the ones of another class are attacked. The mask is
    :func:`~art_denoise.attacks.rp2.sticker_mask` (``n_stickers`` rectangles covering
    about ``area_fraction`` of the image, drawn with ``seed``), the same for every model.

    Args:
        config: the RP2 settings (iterations, learning rate, lambda, transformations...).
        area_fraction: share of the image the stickers cover, in (0, 1].
        n_stickers: rectangles in the mask.
        n_images: victims per model.
        targets: target classes; every class if ``None``.
        seed: seeds the mask.
    """

    config: RP2Config = field(default_factory=RP2Config)
    area_fraction: float = 0.25
    n_stickers: int = 1
    n_images: int = 100
    targets: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.config, RP2Config):
            raise TypeError(f"config must be an RP2Config, got {type(self.config).__name__}")
        frac = check_positive("area_fraction", self.area_fraction)
        if frac > 1:
            raise ValueError(f"area_fraction must be in (0, 1], got {self.area_fraction!r}")
        check_positive_int("n_stickers", self.n_stickers)
        check_positive_int("n_images", self.n_images)
        check_positive_int("seed", self.seed, minimum=0)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The (H, W) 0/1 sticker mask used for images of that size."""
        return sticker_mask(shape, self.n_stickers, self.area_fraction, seed=self.seed)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """Attack ``model`` and return the JSON-ready RP2 section of its report.

        Keys: ``per_target`` (list of ``{"target", "success", "l2_dissimilarity", "n"}``),
        ``average``, ``worst``, ``worst_target``, ``l2_dissimilarity``,
        ``mask_fraction``, ``n_images``, ``config``.
        """
        correct = (predict(model, x) == y).nonzero().flatten()[: self.n_images]
        if len(correct) == 0:
            raise ValueError("RP2 needs images the model classifies correctly; it has none")
        xs, ys = x[correct], y[correct]
        mask = torch.from_numpy(self.mask((int(x.shape[-2]), int(x.shape[-1]))))

        def attack(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            return rp2_attack(model, xb, tb, mask, targeted=True, config=self.config)

        res = per_target_success(
            model, xs, ys, attack, list(self.targets) if self.targets is not None else None
        )
        cfg = self.config
        return {
            "per_target": [
                {
                    "target": int(t),
                    "success": float(res["per_target"][t]),
                    "l2_dissimilarity": float(res["l2_per_target"][t]),
                    "n": int(res["n_per_target"][t]),
                }
                for t in sorted(res["per_target"])
            ],
            "average": float(res["average"]),
            "worst": float(res["worst"]),
            "worst_target": int(res["worst_target"]),
            "l2_dissimilarity": float(res["l2_dissimilarity"]),
            "mask_fraction": float(mask.float().mean()),
            "n_images": len(xs),
            "config": {
                "max_iter": cfg.max_iter,
                "learning_rate": cfg.learning_rate,
                "lambda_reg": cfg.lambda_reg,
                "norm": "inf" if math.isinf(float(cfg.norm)) else float(cfg.norm),
                "nb_transforms": cfg.nb_transforms,
                "n_stickers": self.n_stickers,
                "area_fraction": self.area_fraction,
            },
        }
