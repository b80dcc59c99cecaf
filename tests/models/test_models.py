from __future__ import annotations

import json

import pytest
import torch

from art_denoise.models import (
    ModelFileError,
    PreActResNet18,
    SmallCNN,
    create_model,
    load_model,
    save_model,
)


@pytest.mark.parametrize(
    ("name", "shape", "stages"),
    [
        ("smallcnn", (1, 8, 8), ("stage1", "stage2")),
        ("smallcnn", (1, 28, 28), ("stage1", "stage2")),
        ("preact-resnet18", (3, 32, 32), ("layer1", "layer2", "layer3", "layer4")),
    ],
)
def test_models_give_logits_and_named_stages(name: str, shape: tuple[int, ...], stages) -> None:
    torch.manual_seed(0)
    model = create_model(name, input_shape=shape).eval()
    out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10)
    names = dict(model.named_modules())
    assert all(s in names for s in stages) and tuple(model.stages) == stages


def test_normalisation_is_inside_the_model() -> None:
    model = SmallCNN(input_shape=(1, 8, 8), mean=[0.25], std=[0.5]).eval()
    x = torch.rand(3, 1, 8, 8)
    expected = model.head(model.stage2(model.stage1((x - 0.25) / 0.5)))
    torch.testing.assert_close(model(x), expected)


def test_preact_resnet18_has_resnet18_size() -> None:
    n = sum(p.numel() for p in PreActResNet18().parameters())
    assert 11_000_000 < n < 11_300_000  # 11.17M as in the literature


def test_unknown_model_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        create_model("vgg")
    with pytest.raises(ValueError, match="divisible by 4"):
        create_model("smallcnn", input_shape=(1, 9, 9))
    with pytest.raises(ValueError, match=r"widths must be 2 channel counts >= 1, got \[16, 0\]"):
        create_model("smallcnn", widths=(16, 0))
    with pytest.raises(ValueError, match="hidden must be >= 1, got 0"):
        create_model("smallcnn", hidden=0)


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(1)
    model = create_model("smallcnn", input_shape=(1, 28, 28), widths=(8, 16), hidden=32)
    # non-trivial BatchNorm statistics
    model.train()
    model(torch.rand(16, 1, 28, 28))
    model.eval()
    path = save_model(model, tmp_path / "m.safetensors", metadata={"note": "test"})
    desc = json.loads((tmp_path / "m.json").read_text())
    assert desc["arch"] == "smallcnn" and desc["config"]["widths"] == [8, 16]
    assert desc["metadata"] == {"note": "test"}
    loaded = load_model(path)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not loaded.training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_corrupt_and_missing_files(tmp_path) -> None:
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    path = save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "other.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match the hash"):
        load_model(path)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupt model description"):
        load_model(path)
    (tmp_path / "m.json").unlink()
    with pytest.raises(ModelFileError, match="description not found"):
        load_model(path)


def test_failed_save_leaves_previous_files(tmp_path) -> None:
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    path = save_model(model, tmp_path / "m.safetensors")
    before = path.read_bytes(), (tmp_path / "m.json").read_text()
    with pytest.raises(TypeError):
        save_model(model, path, metadata={"bad": object()})
    assert (path.read_bytes(), (tmp_path / "m.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_model(model, tmp_path / "m.pt")
    with pytest.raises(TypeError, match="cannot save a Linear"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "lin.safetensors")
