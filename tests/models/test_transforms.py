"""The model-file transforms are found by name: registered at run time or by entry point."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from torch import nn

from art_denoise.blocks.insert import replay_denoising_blocks
from art_denoise.blurnet.insert import replay_lowpass
from art_denoise.models import ModelFileError, SmallCNN, load_model, save_model
from art_denoise.models.transforms import (
    ENTRY_POINT_GROUP,
    MODEL_TRANSFORMS,
    get_transform,
    record_transform,
    register_transform,
)


def test_the_package_lists_its_transforms_as_entry_points() -> None:
    names = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert names == {
        "insert_denoising_blocks": "art_denoise.blocks.insert:replay_denoising_blocks",
        "insert_lowpass": "art_denoise.blurnet.insert:replay_lowpass",
    }
    assert get_transform("insert_denoising_blocks") is replay_denoising_blocks
    assert get_transform("insert_lowpass") is replay_lowpass


@pytest.mark.parametrize("name", ["no_such_transform", None, 3])
def test_unknown_transform_is_none(name: object) -> None:
    assert get_transform(name) is None


def _append_linear(model: nn.Module, *, width: int) -> nn.Module:
    model.head.append(nn.Linear(width, width))  # type: ignore[operator]
    record_transform(model, "test_append_linear", width=width)
    return model


def test_a_transform_registered_at_run_time_is_replayed(tmp_path) -> None:
    model = _append_linear(SmallCNN(input_shape=(1, 8, 8)), width=10)
    path = save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match="unknown transform 'test_append_linear'"):
        load_model(path)
    register_transform("test_append_linear", _append_linear)
    try:
        loaded = load_model(path)  # strict load: only works if the replay rebuilt the layer
    finally:
        MODEL_TRANSFORMS.pop("test_append_linear")
    assert loaded._art_denoise_transforms == [
        {"name": "test_append_linear", "kwargs": {"width": 10}}
    ]
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize(
    ("name", "transform", "error"),
    [("", print, ValueError), (None, print, ValueError), ("x", 3, TypeError)],
)
def test_register_refuses_bad_input(name: object, transform: object, error: type) -> None:
    with pytest.raises(error):
        register_transform(name, transform)  # type: ignore[arg-type]
