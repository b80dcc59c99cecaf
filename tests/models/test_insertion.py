"""Insertion after a named layer, shared by the denoising blocks and the low-pass layers."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from torch import nn

from art_denoise.blocks import insert_denoising_blocks
from art_denoise.blurnet import insert_lowpass
from art_denoise.models import SmallCNN, load_model, save_model
from art_denoise.models.insertion import (
    ApplyChild,
    attach_after,
    example_input,
    first_conv,
    layer_names,
    output_shapes,
    resolve_layer_names,
    taken_layers,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 2, 1))
        self.extras = nn.ModuleList([nn.Identity()])
        self.flat = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat(self.extras[0](self.block(self.conv(x))))


def _net() -> Net:
    torch.manual_seed(0)
    return Net()


def test_layer_names_skip_containers_that_do_not_run() -> None:
    assert layer_names(_net()) == ["conv", "block", "block.0", "block.1", "extras.0", "flat"]


@pytest.mark.parametrize(
    ("after", "error", "match"),
    [
        ("x", ValueError, r"unknown layer name\(s\) \['x'\]; valid names are: conv, block,"),
        ([], ValueError, "after is empty"),
        (["conv", "conv"], ValueError, "names a layer twice"),
        ([0], TypeError, "after must be a name, got \\[0\\]"),
        ("extras", ValueError, "unknown layer"),  # a ModuleList is not a layer
    ],
)
def test_resolve_layer_names_errors(after: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        resolve_layer_names(_net(), after, expected="a name")  # type: ignore[arg-type]


def test_resolve_layer_names_accepts_one_name_or_a_list() -> None:
    assert resolve_layer_names(_net(), "block.1", expected="") == ["block.1"]
    assert resolve_layer_names(_net(), ("conv", "block.1"), expected="") == ["conv", "block.1"]


def test_output_shapes_and_example_input() -> None:
    net = _net().double()
    x = example_input(net, (1, 5, 5))
    assert x.shape == (1, 1, 5, 5) and x.dtype == torch.float64 and not x.any()
    shapes = output_shapes(net, ["conv", "block.1"], x)
    assert shapes == {"conv": (1, 3, 5, 5), "block.1": (1, 2, 5, 5)}
    with pytest.raises(ValueError, match="not a feature map"):
        output_shapes(net, ["flat"], x)
    with pytest.raises(ValueError, match="no `input_shape`"):
        example_input(net, None)
    with pytest.raises(ValueError, match="positive ints"):
        example_input(net, (1, 0, 5))


def test_first_conv() -> None:
    assert first_conv(_net()) == "conv"
    with pytest.raises(ValueError, match=r"has no nn\.Conv2d; name the layer, from: 0"):
        first_conv(nn.Sequential(nn.Flatten()))


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


class Double(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _double(x)


@pytest.mark.parametrize("name", ["conv", "block"])  # a plain module (hook), a Sequential (child)
def test_attach_after_runs_the_layer_on_the_output(name: str) -> None:
    net = _net().eval()
    x = torch.rand(2, 1, 4, 4)
    module = dict(net.named_modules())[name]
    inp = net.conv(x).detach() if name == "block" else x
    with torch.no_grad():
        before = module(inp)
    attach_after(module, "post", Double())
    with torch.no_grad():
        after = module(inp)
    torch.testing.assert_close(after, _double(before))
    # after a Sequential, its last child's output is the Sequential's: both are taken
    taken = ["block", "block.1"] if name == "block" else [name]
    assert taken_layers(net, ["conv", "block", "block.1"], "post") == taken
    assert taken_layers(net, [f"{name}.post"], "post", Double) == [f"{name}.post"]
    hooks = list(module._forward_hooks.values())
    assert hooks == ([] if isinstance(module, nn.Sequential) else [hooks[0]])


def test_the_hook_survives_deepcopy_and_pickle() -> None:
    net = _net().eval()
    attach_after(net.conv, "post", Double())
    x = torch.rand(2, 1, 4, 4)
    expected = net(x)
    for copied in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        torch.testing.assert_close(copied(x), expected)
        assert repr(next(iter(copied.conv._forward_hooks.values()))) == "ApplyChild('post')"
    assert isinstance(next(iter(net.conv._forward_hooks.values())), ApplyChild)


# ------------------------------------------- a second layer where one already is


class Twice(NamedTuple):
    id: str
    first: Callable[[nn.Module], nn.Module]
    second: Callable[[nn.Module], nn.Module]
    layer: str  # named in the message


def _lowpass(after: str | None = None) -> Callable[[nn.Module], nn.Module]:
    return lambda m: insert_lowpass(m, after, kernel_size=3)


def _blocks(after: str | list[str]) -> Callable[[nn.Module], nn.Module]:
    return lambda m: insert_denoising_blocks(m, after, "mean", kernel_size=3)


TWICE = [
    Twice("lowpass, default placement twice", _lowpass(), _lowpass(), "stage1.0"),
    Twice("lowpass after the same conv", _lowpass("stage1.0"), _lowpass("stage1.0"), "stage1.0"),
    Twice("lowpass after the first conv's", _lowpass(), _lowpass("stage1.0.lowpass"), "lowpass"),
    Twice("lowpass after a Sequential's last", _lowpass("stage1"), _lowpass("stage1.3"), "1.3"),
    Twice("blocks after the same stages", _blocks("stages"), _blocks("stages"), "stage1"),
    Twice("blocks after the same layer", _blocks(["stage2"]), _blocks(["stage2"]), "stage2"),
    Twice("blocks after a block", _blocks(["stage2"]), _blocks(["stage2.denoise"]), "denoise"),
    Twice("blocks after a Sequential's last", _blocks(["stage1.3"]), _blocks(["stage1"]), "stage1"),
]


@pytest.mark.parametrize("case", TWICE, ids=lambda c: c.id)
def test_a_second_layer_where_one_already_is_is_refused(case: Twice, tmp_path) -> None:
    torch.manual_seed(0)
    once = case.first(SmallCNN(input_shape=(1, 16, 16), widths=(4, 8), hidden=8)).eval()
    state, transforms = copy.deepcopy(once.state_dict()), list(once._art_denoise_transforms)
    with pytest.raises(ValueError) as info:
        case.second(once)
    message = str(info.value)
    assert "\n" not in message and case.layer in message and "already ha" in message
    assert once._art_denoise_transforms == transforms
    assert once.state_dict().keys() == state.keys()
    # what save_model writes, load_model rebuilds: the file is never refused
    loaded = load_model(save_model(once, tmp_path / "m.safetensors"))
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loaded(x), once(x), rtol=0, atol=0)
