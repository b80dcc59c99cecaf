from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from art_denoise.blurnet import LowPass2d, capture_features, first_conv, insert_lowpass, lowpass2d
from art_denoise.blurnet.kernels import box_kernel2d
from art_denoise.models import SmallCNN, load_model, save_model


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(input_shape=(1, 12, 12), widths=(6, 8), hidden=8).eval()


def _lowpass_layers(model: nn.Module) -> dict[str, LowPass2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LowPass2d)}


def test_default_is_after_the_first_conv(small_cnn: SmallCNN) -> None:
    assert first_conv(small_cnn) == "stage1.0"
    model = insert_lowpass(small_cnn, kernel_size=3)
    assert list(_lowpass_layers(model)) == ["stage1.0.lowpass"]
    layer = model.stage1[0].lowpass
    assert (layer.channels, layer.kernel_size, layer.kind) == (6, 3, "box")
    x = torch.rand(2, 1, 12, 12)
    with capture_features(small_cnn, "stage1.0") as raw, capture_features(model, "stage1.0") as out:
        small_cnn(x)
        model(x)
    torch.testing.assert_close(out[0], lowpass2d(raw[0], box_kernel2d(3)))
    expected = small_cnn.head(small_cnn.stage2(small_cnn.stage1[1:](out[0])))
    torch.testing.assert_close(model(x), expected)


def test_after_a_sequential_appends_a_child(small_cnn: SmallCNN) -> None:
    model = insert_lowpass(small_cnn, "stage1", kernel_size=3, kind="gaussian", sigma=0.7)
    assert list(model.stage1._modules)[-1] == "lowpass"
    assert model.stage1.lowpass.sigma == 0.7
    x = torch.rand(2, 1, 12, 12)
    maps = small_cnn.stage1(small_cnn.normalize(x))
    torch.testing.assert_close(model.stage1(small_cnn.normalize(x)), model.stage1.lowpass(maps))


def test_original_untouched_unless_inplace(small_cnn: SmallCNN) -> None:
    keys = list(small_cnn.state_dict())
    model = insert_lowpass(small_cnn)
    assert model is not small_cnn and not _lowpass_layers(small_cnn)
    assert list(small_cnn.state_dict()) == keys
    assert list(model.state_dict()) == keys  # fixed kernels add no keys
    same = insert_lowpass(small_cnn, inplace=True)
    assert same is small_cnn and list(_lowpass_layers(small_cnn)) == ["stage1.0.lowpass"]


def test_learnable_adds_its_weight_key(small_cnn: SmallCNN) -> None:
    model = insert_lowpass(small_cnn, kind="learnable")
    extra = set(model.state_dict()) - set(small_cnn.state_dict())
    assert extra == {"stage1.0.lowpass.weight"}
    model(torch.rand(2, 1, 12, 12)).sum().backward()
    assert model.stage1[0].lowpass.weight.grad is not None


def test_unknown_name_lists_valid_names(small_cnn: SmallCNN) -> None:
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['conv1'\].*stage1\.0"):
        insert_lowpass(small_cnn, "conv1")


def test_bad_placements(small_cnn: SmallCNN) -> None:
    model = insert_lowpass(small_cnn)
    with pytest.raises(ValueError, match="already have a low-pass layer"):
        insert_lowpass(model, "stage1.0")
    with pytest.raises(ValueError, match="kernel_size 5 is larger than the 3x3 output"):
        insert_lowpass(small_cnn, "stage2", kernel_size=5)
    with pytest.raises(ValueError, match="not a feature map"):
        insert_lowpass(small_cnn, "head")
    with pytest.raises(TypeError, match="after must be"):
        insert_lowpass(small_cnn, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="twice"):
        insert_lowpass(small_cnn, ["stage1", "stage1"])
    with pytest.raises(ValueError, match="odd, got 4"):
        insert_lowpass(small_cnn, kernel_size=4)
    with pytest.raises(ValueError, match="'median'"):
        insert_lowpass(small_cnn, kind="median")
    assert not _lowpass_layers(small_cnn)


def test_model_without_input_shape() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    out = insert_lowpass(model, kernel_size=3)  # a Conv2d: its out_channels is enough
    assert out[0].lowpass.channels == 4
    assert out(torch.rand(1, 1, 6, 6)).shape == (1, 2, 6, 6)
    with pytest.raises(ValueError, match="input_shape"):
        insert_lowpass(model, "1")
    relu = insert_lowpass(model, "1", input_shape=(1, 6, 6))
    assert relu[1].lowpass.channels == 4


def test_no_conv_in_model() -> None:
    with pytest.raises(ValueError, match=r"has no nn.Conv2d"):
        insert_lowpass(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_training_mode_and_bn_statistics_untouched(small_cnn: SmallCNN) -> None:
    small_cnn.train()
    stats = small_cnn.stage1[1].running_mean.clone()
    model = insert_lowpass(small_cnn)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model.stage1[1].running_mean, stats)


@pytest.mark.parametrize(
    ("settings", "kwargs"),
    [
        ({"kind": "learnable", "kernel_size": 3}, {"after": ["stage1.0"], "kernel_size": 3}),
        ({"kind": "gaussian", "after": "stage1"}, {"after": ["stage1"], "kernel_size": 5}),
    ],
    ids=["learnable", "gaussian"],
)
def test_save_and_load_model(small_cnn: SmallCNN, tmp_path, settings, kwargs) -> None:
    model = insert_lowpass(small_cnn, **settings)
    with torch.no_grad():
        for layer in _lowpass_layers(model).values():
            if layer.learnable:
                layer.weight.normal_()
    path = save_model(model, tmp_path / "m.safetensors")
    description = json.loads(path.with_suffix(".json").read_text())
    (step,) = description["transforms"]
    assert step["name"] == "insert_lowpass"
    assert {k: step["kwargs"][k] for k in kwargs} == kwargs
    assert step["kwargs"]["kind"] == settings["kind"]
    loaded = load_model(path)
    x = torch.rand(3, 1, 12, 12)
    torch.testing.assert_close(loaded(x), model(x))
    assert list(_lowpass_layers(loaded)) == list(_lowpass_layers(model))
