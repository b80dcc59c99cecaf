from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from art_denoise.blocks import DenoisingBlock, insert_denoising_blocks
from art_denoise.models import SmallCNN
from art_denoise.visualize import plot_feature_maps


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    base = SmallCNN(input_shape=(1, 12, 12), widths=(6, 8), hidden=8)
    return insert_denoising_blocks(base, "stages", "median", kernel_size=3)


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.rand(3, 1, 12, 12)
    return x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)


def _image(fig: Figure, row: int, col: int, ncols: int) -> np.ndarray:
    return np.asarray(fig.axes[row * ncols + col].images[0].get_array())


def test_block_rows_are_clean_adversarial_and_denoised(model, images) -> None:
    x, x_adv = images
    fig = plot_feature_maps(model, "stage1.denoise", x, x_adv, channels=[0, 2, 5], index=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 9
    assert [fig.axes[3 * r].get_ylabel() for r in range(3)] == [
        "clean",
        "adversarial",
        "adversarial, denoised",
    ]
    block: DenoisingBlock = model.stage1.denoise
    model.eval()
    with torch.no_grad():
        clean = model.stage1[:4](model.normalize(x[1:2]))
        adv = model.stage1[:4](model.normalize(x_adv[1:2]))
        denoised = block.filter(adv)
    for col, c in enumerate([0, 2, 5]):
        np.testing.assert_allclose(_image(fig, 0, col, 3), clean[0, c].numpy(), rtol=1e-6)
        np.testing.assert_allclose(_image(fig, 1, col, 3), adv[0, c].numpy(), rtol=1e-6)
        np.testing.assert_allclose(_image(fig, 2, col, 3), denoised[0, c].numpy(), rtol=1e-6)


def test_layer_with_inserted_block_and_plain_layer(model, images) -> None:
    x, x_adv = images
    assert len(plot_feature_maps(model, "stage2", x, x_adv, channels=2).axes) == 6
    plain = plot_feature_maps(model, "stage1.0", x.numpy(), x_adv.numpy(), channels=3)
    assert len(plain.axes) == 6  # no block: clean and adversarial rows only


def test_count_picks_the_most_changed_channels(model, images) -> None:
    x, x_adv = images
    fig = plot_feature_maps(model, "stage1.0", x, x_adv, channels=2)
    with torch.no_grad():
        conv = model.stage1[0]
        change = (conv(model.normalize(x_adv[:1])) - conv(model.normalize(x[:1]))).abs()
    top = sorted(change.mean(dim=(0, 2, 3)).argsort(descending=True)[:2].tolist())
    assert [ax.get_title() for ax in fig.axes[:2]] == [f"channel {c}" for c in top]


def test_writes_png_atomically_and_restores_modes(model, images, tmp_path) -> None:
    x, x_adv = images
    model.train()
    path = tmp_path / "sub" / "maps.png"
    plot_feature_maps(model, "stage2.denoise", x, x_adv, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["maps.png"]
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize(
    ("layer", "kwargs", "error", "match"),
    [
        ("stage9", {}, ValueError, "unknown layer 'stage9'; valid names are: normalize"),
        ("head", {}, ValueError, "not \\(B, C, H, W\\)"),
        ("stage1", {"channels": [6]}, ValueError, r"channels \[6\] out of range for 6"),
        ("stage1", {"channels": 0}, ValueError, "channels must be >= 1"),
        ("stage1", {"index": 3}, ValueError, "index 3 is out of range"),
    ],
    ids=["unknown-layer", "not-a-map", "channel-range", "zero-count", "index"],
)
def test_bad_arguments(model, images, layer, kwargs, error, match) -> None:
    x, x_adv = images
    with pytest.raises(error, match=match):
        plot_feature_maps(model, layer, x, x_adv, **kwargs)


def test_shape_mismatch_and_integer_input(model, images) -> None:
    x, x_adv = images
    with pytest.raises(ValueError, match="differ in shape"):
        plot_feature_maps(model, "stage1", x, x_adv[:2])
    with pytest.raises(TypeError, match="floating-point"):
        plot_feature_maps(model, "stage1", x.long(), x_adv)
