from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from art_denoise.blocks import FILTERS, DenoisingBlock, create_filter
from art_denoise.filters import MedianFilter2d, NonLocalMeans2d, nonlocal_means2d

SETTINGS = {
    "nonlocal": {},
    "nonlocal-embedded-dot": {"embed": True, "mode": "dot"},
    "bilateral": {"kernel_size": 3, "sigma_color": 2.0},
    "mean": {"kernel_size": 3},
    "median": {"kernel_size": 3},
    "none": {},
}


@pytest.mark.parametrize("key", list(SETTINGS))
@pytest.mark.parametrize("training", [True, False])
def test_fresh_block_is_the_identity(key: str, training: bool) -> None:
    torch.manual_seed(0)
    block = DenoisingBlock(6, key.split("-")[0], **SETTINGS[key]).train(training)
    x = torch.randn(3, 6, 5, 5)
    assert torch.equal(block(x), x)  # exact: x + BN(.) with gamma = 0 adds zeros


def test_block_computes_filter_conv_bn_residual() -> None:
    torch.manual_seed(0)
    block = DenoisingBlock(4, "nonlocal").eval()
    nn.init.normal_(block.bn.weight)
    nn.init.normal_(block.bn.bias)
    x = torch.randn(2, 4, 3, 3)
    expected = x + block.bn(block.conv(nonlocal_means2d(x)))
    torch.testing.assert_close(block(x), expected)
    assert isinstance(block.filter, NonLocalMeans2d)


def test_ablations() -> None:
    torch.manual_seed(0)
    no_residual = DenoisingBlock(4, "median", residual=False).eval()
    assert torch.equal(no_residual.bn.weight, torch.ones(4))  # gamma = 0 would output zeros
    x = torch.randn(2, 4, 5, 5)
    expected = no_residual.bn(no_residual.conv(no_residual.filter(x)))
    torch.testing.assert_close(no_residual(x), expected)
    assert isinstance(DenoisingBlock(4, "none").filter, nn.Identity)
    assert "residual=False" in repr(no_residual)


def test_gradients_reach_the_block() -> None:
    torch.manual_seed(0)
    block = DenoisingBlock(4, "nonlocal", embed=True)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    block(x).pow(2).sum().backward()
    assert block.bn.weight.grad is not None and block.bn.weight.grad.abs().sum() > 0
    assert x.grad is not None


def test_factory_is_a_dict() -> None:
    assert set(FILTERS) == {"nonlocal", "bilateral", "mean", "median", "none"}
    assert isinstance(create_filter("median", 8, kernel_size=5), MedianFilter2d)


class Bad(NamedTuple):
    args: tuple
    kwargs: dict
    error: type[Exception]
    match: str


BAD = {
    "unknown-filter": Bad((4, "gaussian"), {}, ValueError, "unknown filter 'gaussian'"),
    "unknown-setting": Bad((4, "median"), {"size": 3}, TypeError, "size"),
    "none-with-setting": Bad((4, "none"), {"kernel_size": 3}, TypeError, "kernel_size"),
    "even-kernel": Bad((4, "mean"), {"kernel_size": 4}, ValueError, "odd, got 4"),
    "zero-channels": Bad((0,), {}, ValueError, "channels must be >= 1, got 0"),
    "float-channels": Bad((4.0,), {}, TypeError, "4.0"),
}


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
def test_bad_arguments(case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        DenoisingBlock(*case.args, **case.kwargs)


def test_channel_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match=r"8 channels, got shape \(1, 3, 4, 4\)"):
        DenoisingBlock(8, "mean")(torch.zeros(1, 3, 4, 4))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_cuda_block_matches_reference(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    block = DenoisingBlock(16, "nonlocal", embed=True).eval()
    nn.init.normal_(block.bn.weight)
    reference = DenoisingBlock(16, "nonlocal", embed=True, implementation="reference").eval()
    reference.load_state_dict(block.state_dict())
    x = torch.randn(2, 16, 12, 12)
    expected = reference.double()(x.double())
    out = block.to("cuda", dtype)(x.to("cuda", dtype))
    torch.testing.assert_close(out.double().cpu(), expected, atol=5e-2, rtol=5e-2)
