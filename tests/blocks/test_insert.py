from __future__ import annotations

import copy
import io
import json

import pytest
import torch
from torch import nn

from art_denoise.blocks import DenoisingBlock, insert_denoising_blocks, residual_blocks
from art_denoise.models import SmallCNN, load_model, save_model


# --- a torchvision-style ResNet, written here (no torchvision needed) ----------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's layout: conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc."""

    def __init__(self, block: type[nn.Module], layers: list[int], width: int = 4) -> None:
        super().__init__()
        self.cin = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._layer(block, width, layers[0], 1)
        self.layer2 = self._layer(block, width * 2, layers[1], 2)
        self.layer3 = self._layer(block, width * 4, layers[2], 2)
        self.layer4 = self._layer(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 8 * block.expansion, 5)

    def _layer(self, block, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.cin != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.cin, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.cin, planes, stride, downsample)]
        self.cin = planes * block.expansion
        layers += [block(self.cin, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _randomise_blocks(model: nn.Module) -> None:
    """Give the blocks non-zero gammas so that they change the output."""
    for module in model.modules():
        if isinstance(module, DenoisingBlock):
            nn.init.normal_(module.bn.weight)


def _blocks(model: nn.Module) -> dict[str, DenoisingBlock]:
    return {n: m for n, m in model.named_modules() if isinstance(m, DenoisingBlock)}


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(input_shape=(1, 12, 12), widths=(4, 6), hidden=8).eval()


@pytest.mark.parametrize("filter_name", ["nonlocal", "mean", "median", "bilateral", "none"])
def test_stages_of_smallcnn_keep_the_output(small_cnn: SmallCNN, filter_name: str) -> None:
    x = torch.rand(2, 1, 12, 12)
    before = small_cnn(x)
    model = insert_denoising_blocks(small_cnn, "stages", filter_name)
    assert model is not small_cnn
    blocks = _blocks(model)
    assert list(blocks) == ["stage1.denoise", "stage2.denoise"]
    assert [b.channels for b in blocks.values()] == [4, 6]
    assert torch.equal(model(x), before)  # exact: a fresh block adds BN(.) = 0 (gamma = 0)
    assert not _blocks(small_cnn)  # the original is left unchanged
    assert model._art_denoise_transforms[-1] == {
        "name": "insert_denoising_blocks",
        "kwargs": {"after": ["stage1", "stage2"], "filter": filter_name},
    }


def test_inplace_and_blocks_act_after_training(small_cnn: SmallCNN) -> None:
    x = torch.rand(2, 1, 12, 12)
    before = small_cnn(x)
    model = insert_denoising_blocks(small_cnn, ["stage1"], "mean", inplace=True)
    assert model is small_cnn
    _randomise_blocks(model)
    assert not torch.allclose(model(x), before)


@pytest.mark.parametrize(
    ("block", "layers", "expected"),
    [
        (BasicBlock, [2, 1, 1, 1], [4, 8, 16, 32]),
        (Bottleneck, [1, 2, 1, 1], [16, 32, 64, 128]),
    ],
    ids=["basicblock", "bottleneck"],
)
def test_torchvision_style_resnet(block, layers: list[int], expected: list[int]) -> None:
    torch.manual_seed(0)
    resnet = ResNet(block, layers).eval()
    x = torch.rand(2, 3, 16, 16)
    before = resnet(x)
    staged = insert_denoising_blocks(resnet, "stages", input_shape=(3, 16, 16))
    assert [b.channels for b in _blocks(staged).values()] == expected
    assert list(_blocks(staged)) == [f"layer{i}.denoise" for i in range(1, 5)]
    assert torch.equal(staged(x), before)
    every = insert_denoising_blocks(
        resnet, "all-blocks", "nonlocal", mode="dot", input_shape=(3, 16, 16)
    )
    names = residual_blocks(resnet)
    assert len(names) == sum(layers) and names[0] == "layer1.0"
    assert list(_blocks(every)) == [f"{n}.denoise" for n in names]
    assert torch.equal(every(x), before)
    _randomise_blocks(every)
    assert not torch.allclose(every(x), before)


def test_all_blocks_of_preact_resnet() -> None:
    from art_denoise.models import PreActResNet18

    assert residual_blocks(PreActResNet18()) == [
        f"layer{i}.{j}" for i in range(1, 5) for j in (0, 1)
    ]


def test_plain_sequential_and_nested_modules() -> None:
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.ModuleDict({"conv": nn.Conv2d(3, 5, 3, padding=1)})
            self.body = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Conv2d(5, 7, 1), nn.ReLU()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(self.features["conv"](x))

    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    x = torch.rand(2, 3, 8, 8)
    out = insert_denoising_blocks(seq, ["0", "2"], "median", input_shape=(3, 8, 8))
    assert torch.equal(out(x), seq(x))
    assert [b.channels for b in _blocks(out).values()] == [4, 2]
    net = Net().eval()
    out = insert_denoising_blocks(net, ["features.conv", "body.1.0"], input_shape=[3, 8, 8])
    assert list(_blocks(out)) == ["features.conv.denoise", "body.1.0.denoise"]
    assert torch.equal(out(x), net(x))
    _randomise_blocks(out)
    conv, inner = out.features["conv"], out.body[1][0]
    y = conv.denoise(nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)).relu()
    y = inner.denoise(nn.functional.conv2d(y, inner.weight, inner.bias)).relu()
    torch.testing.assert_close(out(x), y)


def test_state_dict_round_trip(small_cnn: SmallCNN) -> None:
    model = insert_denoising_blocks(small_cnn, "stages", "nonlocal", embed=True)
    _randomise_blocks(model)
    state = model.state_dict()
    original_keys = set(small_cnn.state_dict())
    assert original_keys <= set(state)  # the original keys are kept
    assert all(".denoise." in k for k in set(state) - original_keys)
    # a checkpoint with blocks loads strictly into the same insertion on a fresh model
    fresh = insert_denoising_blocks(
        SmallCNN(input_shape=(1, 12, 12), widths=(4, 6), hidden=8), "stages", embed=True
    ).eval()
    fresh.load_state_dict(state, strict=True)
    x = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(fresh(x), model(x))
    # a checkpoint without blocks loads with strict=False, missing only the blocks
    result = fresh.load_state_dict(small_cnn.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".denoise." in k for k in result.missing_keys)


def test_deepcopy_and_pickle_keep_the_blocks(small_cnn: SmallCNN) -> None:
    seq = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU()).eval()
    model = insert_denoising_blocks(seq, ["0"], "mean", input_shape=(1, 6, 6))
    _randomise_blocks(model)
    x = torch.rand(2, 1, 6, 6)
    expected = model(x)
    assert not torch.allclose(expected, seq(x))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for clone in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
        torch.testing.assert_close(clone(x), expected)
        nn.init.zeros_(clone[0].denoise.bn.weight)  # the clone's hook uses the clone's block
        torch.testing.assert_close(clone(x), seq(x))
        torch.testing.assert_close(model(x), expected)


def test_save_and_load_model(small_cnn: SmallCNN, tmp_path) -> None:
    model = insert_denoising_blocks(small_cnn, "stages", "bilateral", kernel_size=3)
    _randomise_blocks(model)
    model.train()
    model(torch.rand(8, 1, 12, 12))  # non-trivial BatchNorm statistics
    model.eval()
    path = save_model(model, tmp_path / "m.safetensors")
    description = json.loads(path.with_suffix(".json").read_text())
    assert description["transforms"] == [
        {
            "name": "insert_denoising_blocks",
            "kwargs": {"after": ["stage1", "stage2"], "filter": "bilateral", "kernel_size": 3},
        }
    ]
    loaded = load_model(path)
    x = torch.rand(3, 1, 12, 12)
    torch.testing.assert_close(loaded(x), model(x))
    assert list(_blocks(loaded)) == ["stage1.denoise", "stage2.denoise"]


def test_training_mode_and_bn_statistics_untouched(small_cnn: SmallCNN) -> None:
    small_cnn.train()
    stats = small_cnn.stage1[1].running_mean.clone()
    model = insert_denoising_blocks(small_cnn, "stages")
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model.stage1[1].running_mean, stats)


BAD = {
    "unknown-name": (
        {"after": ["stage3"]},
        ValueError,
        r"unknown layer name\(s\) \['stage3'\]; valid names are: normalize, stage1, stage1.0",
    ),
    "not-a-map": ({"after": ["head"]}, ValueError, "'head' outputs shape"),
    "all-blocks-without-residuals": ({"after": "all-blocks"}, ValueError, "no residual blocks"),
    "unknown-filter": ({"filter": "gauss"}, ValueError, "unknown filter 'gauss'"),
    "bad-setting": ({"filter": "median", "size": 3}, TypeError, "size"),
    "kernel-larger-than-map": (
        {"filter": "median", "kernel_size": 5},
        ValueError,
        "after 'stage2'.*kernel_size 5 is larger than the 3x3",
    ),
    "after-type": ({"after": 3}, TypeError, "after must be"),
    "after-empty": ({"after": []}, ValueError, "empty"),
    "after-twice": ({"after": ["stage1", "stage1"]}, ValueError, "twice"),
    "bad-input-shape": ({"input_shape": (1, 0, 4)}, ValueError, r"\(1, 0, 4\)"),
}


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
def test_bad_arguments(small_cnn: SmallCNN, case) -> None:
    kwargs, error, match = case
    with pytest.raises(error, match=match):
        insert_denoising_blocks(small_cnn, **kwargs)
    assert not _blocks(small_cnn)


def test_missing_input_shape_stages_and_double_insertion(small_cnn: SmallCNN) -> None:
    seq = nn.Sequential(nn.Conv2d(1, 2, 1))
    with pytest.raises(ValueError, match="input_shape"):
        insert_denoising_blocks(seq, ["0"])
    with pytest.raises(ValueError, match=r"after='stages' needs the stages.*layer1"):
        insert_denoising_blocks(seq, "stages", input_shape=(1, 4, 4))
    once = insert_denoising_blocks(small_cnn, ["stage1"], inplace=True)
    with pytest.raises(ValueError, match="'stage1' already has a denoising block"):
        insert_denoising_blocks(once, ["stage1"])
