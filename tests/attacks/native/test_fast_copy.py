"""Batch norm folded into its convolution for DeepFool: the same logits and the same
attack as on the model itself, or no fold where it does not apply."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from art_denoise.attacks.native import deepfool_result
from art_denoise.attacks.native._fast_copy import fast_copy, fold_batchnorm
from tests.attacks.native.test_deepfool import _reference_deepfool


def _bn_cnn(dtype: torch.dtype = torch.float64) -> nn.Module:
    """conv -> BN -> ReLU twice, with batch-norm statistics far from the identity."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Tanh()),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 7),
    ).to(dtype)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _x(n: int = 16, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=dtype)


def test_folded_copy_has_no_batch_norm_and_the_same_logits() -> None:
    model, x = _bn_cnn(), _x()
    before = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model, x)
    assert folded is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2  # model untouched
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    torch.testing.assert_close(folded(x), model(x), atol=1e-12, rtol=1e-12)
    # by hand for the first pair: w * gamma / sqrt(var + eps), -mean * gamma / sqrt(...) + beta
    conv, bn = model[0], model[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    first = next(m for m in folded.modules() if isinstance(m, nn.Conv2d))
    torch.testing.assert_close(first.weight, conv.weight * scale[:, None, None, None])
    torch.testing.assert_close(first.bias, bn.bias - bn.running_mean * scale)


class _Branchy(nn.Module):
    """Python control flow on a tensor's value: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _bn_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.mean()) > 2.0:
            x = x * 0.5
        return self.body(x)


class _Noisy(nn.Module):
    """A randomised model: two calls never give the same logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _bn_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x + 0.1 * torch.randn_like(x))


@pytest.mark.parametrize(
    "make",
    [
        lambda: _bn_cnn().train(),  # batch statistics: no fold
        lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 3)).double().eval(),
        _Branchy,
        lambda: _Noisy().eval(),
    ],
    ids=["training", "no-batch-norm", "untraceable", "randomised"],
)
def test_no_fold_where_it_does_not_apply(make) -> None:
    model = make()
    assert fold_batchnorm(model, _x()) is None
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) in (0, 2)


def test_a_shared_conv_output_is_not_folded() -> None:
    """A conv whose output also feeds another node keeps its batch norm."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(72, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            return self.head(self.bn(h) + h)

    assert fold_batchnorm(Shared().double().eval(), _x()) is None


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_deepfool_on_the_folded_copy_equals_the_model(norm: str) -> None:
    model, x = _bn_cnn(), _x(24)
    y = model(x).argmax(dim=1)
    y[:2] = (y[:2] + 1) % 7  # two misclassified from the start
    folded = deepfool_result(model, x, y, norm=norm, steps=30)
    plain = deepfool_result(model, x, y, norm=norm, steps=30, fast_copy=False)
    ref = _reference_deepfool(model, x, y, norm=norm, steps=30, overshoot=0.02, candidates=10)
    torch.testing.assert_close(folded.x_adv, plain.x_adv, atol=1e-9, rtol=0.0)
    torch.testing.assert_close(folded.x_adv, ref, atol=1e-9, rtol=0.0)
    assert torch.equal(folded.steps, plain.steps)
    assert torch.equal(folded.adversarial, model(folded.x_adv).argmax(dim=1) != y)
    assert bool(folded.adversarial.all())
    assert all(p.grad is None for p in model.parameters())


def test_fast_copy_folds_and_goes_channels_last_on_the_cpu() -> None:
    model, x = _bn_cnn(), _x()
    faster = fast_copy(model, x)
    assert faster is not None and not faster.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in faster.modules())
    convs = [m for m in faster.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, nn.Conv2d))
    torch.testing.assert_close(faster(x), model(x), atol=1e-12, rtol=1e-12)


def test_fast_copy_without_batch_norm_is_a_channels_last_copy() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    model = model.double().eval()
    faster = fast_copy(model, _x())
    assert faster is not None and faster is not model
    assert faster[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.is_contiguous()
    # flat inputs: nothing to fold, no memory format to change
    flat = nn.Sequential(nn.Linear(4, 3)).double().eval()
    assert fast_copy(flat, torch.rand(5, 4, dtype=torch.float64)) is None


@pytest.mark.parametrize("make", [lambda: _bn_cnn().train(), lambda: _Noisy().eval()])
def test_no_fast_copy_for_training_or_randomised_models(make) -> None:
    assert fast_copy(make(), _x()) is None
