"""PreAct-ResNet-18 for 32x32 colour images (He et al. 2016, "Identity Mappings")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise.models.layers import Normalize, check_normalization

__all__ = ["PreActBlock", "PreActResNet18"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


class PreActBlock(nn.Module):
    """BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, plus a (projected) shortcut."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct-ResNet-18 with named stages ``stem, layer1..layer4, head``.

    Args:
        input_shape: (C, H, W), 32x32 colour by default.
        num_classes: number of logits.
        mean, std: normalisation inside the model (CIFAR-10's by default), one value per
            channel of ``input_shape``: a grey ``input_shape`` needs its own.

    Raises:
        ValueError: ``mean`` or ``std`` of another length than the channels.

    Shape:
        - Input: (B, 3, 32, 32) in [0, 1]
        - Output: (B, num_classes) logits
    """

    stages = ("layer1", "layer2", "layer3", "layer4")

    def __init__(
        self,
        *,
        input_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        c, h, w = (int(v) for v in input_shape)
        check_normalization((c, h, w), mean, std)
        self.input_shape = (c, h, w)
        self.num_classes = int(num_classes)
        self._config: dict[str, Any] = {
            "input_shape": [c, h, w],
            "num_classes": self.num_classes,
            "mean": list(mean),
            "std": list(std),
        }
        self.normalize = Normalize(mean, std)
        self.stem = nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._layer(64, 64, stride=1)
        self.layer2 = self._layer(64, 128, stride=2)
        self.layer3 = self._layer(128, 256, stride=2)
        self.layer4 = self._layer(256, 512, stride=2)
        self.head = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(512, num_classes),
        )

    @staticmethod
    def _layer(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1))

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this architecture."""
        return dict(self._config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)
