"""A model's first call on the data: each mistake is one line naming both sides.

The root is :func:`art_denoise._torch.probe_logits`, run by ``infer_num_classes`` (the
evaluation, every backend, RP2, the checkpointed PGD) and by ``to_art_classifier``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from torch import nn

from art_denoise.attacks.backends.base import infer_num_classes
from art_denoise.estimators import to_art_classifier
from art_denoise.models import Normalize, PreActResNet18, SmallCNN, create_model


def _colour() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(input_shape=(3, 8, 8), widths=(4, 8), hidden=8).eval()


class _Cast(nn.Module):
    """The colour model with its logits cast to ``dtype``."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner, self.dtype = _colour(), dtype
        self.input_shape = self.inner.input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).to(self.dtype)


def _nan_weights() -> nn.Module:
    model = _colour()
    with torch.no_grad():
        model.head[3].bias[4] = float("nan")
    return model


def _on_meta() -> nn.Module:
    return _colour().to("meta")


def _buffers_on_meta() -> nn.Module:
    model = _colour()
    model.normalize.to("meta")  # the parameters stay on the CPU
    return model


def _no_input_shape() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _grey_into_colour_normalisation() -> nn.Module:
    return nn.Sequential(Normalize([0.5] * 3, [0.25] * 3), _no_input_shape())


class Mistake(NamedTuple):
    id: str
    model: Callable[[], nn.Module]
    x_shape: tuple[int, ...]
    error: type[Exception]
    named: tuple[str, ...]  # both sides, in the message


MISTAKES = [
    Mistake("NHWC images", _colour, (2, 8, 8, 3), ValueError, ("(B, 3, 8, 8)", "(2, 8, 8, 3)")),
    Mistake("channels-last named", _colour, (2, 8, 8, 3), ValueError, ("channels-last",)),
    Mistake("wrong size", _colour, (2, 3, 16, 16), ValueError, ("(B, 3, 8, 8)", "(2, 3, 16, 16)")),
    Mistake("grey into colour", _colour, (2, 1, 8, 8), ValueError, ("1 channel(s)", "takes 3")),
    Mistake(
        "grey into a colour Normalize",
        _grey_into_colour_normalisation,
        (2, 1, 8, 8),
        ValueError,
        ("3-channel", "1 channel(s)"),
    ),
    Mistake(
        "no input_shape, layers refuse",
        _no_input_shape,
        (2, 8, 8, 3),
        ValueError,
        ("(2, 8, 8, 3)", "torch.float32", "cpu"),
    ),
    Mistake(
        "int64 logits", lambda: _Cast(torch.int64), (2, 3, 8, 8), TypeError, ("int64", "float32")
    ),
    Mistake(
        "float16 logits",
        lambda: _Cast(torch.float16),
        (2, 3, 8, 8),
        TypeError,
        ("float16", "float32"),
    ),
    Mistake(
        "bfloat16 logits", lambda: _Cast(torch.bfloat16), (2, 3, 8, 8), TypeError, ("bfloat16",)
    ),
    Mistake(
        "NaN weights", _nan_weights, (2, 3, 8, 8), ValueError, ("2 NaN or inf logit(s) of 20",)
    ),
    Mistake("model on another device", _on_meta, (2, 3, 8, 8), ValueError, ("meta", "on cpu")),
    Mistake("buffers on another device", _buffers_on_meta, (2, 3, 8, 8), ValueError, ("meta",)),
]


@pytest.mark.parametrize("case", MISTAKES, ids=lambda c: c.id)
def test_each_model_mistake_is_one_line_naming_both_sides(case: Mistake) -> None:
    model = case.model()
    state = {k: v.clone() for k, v in model.state_dict().items() if v.device.type != "meta"}
    with pytest.raises(case.error) as info:
        infer_num_classes(model, torch.rand(case.x_shape))
    message = str(info.value)
    assert "\n" not in message
    for part in case.named:
        assert part in message, message
    for key, value in model.state_dict().items():  # nothing changed on the model
        if key in state:
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, equal_nan=True)


def test_a_model_that_fits_gives_its_class_count() -> None:
    assert infer_num_classes(_colour(), torch.rand(5, 3, 8, 8)) == 10
    assert infer_num_classes(_Cast(torch.float64), torch.rand(5, 3, 8, 8)) == 10


class EstimatorMistake(NamedTuple):
    id: str
    model: Callable[[], nn.Module]
    input_shape: tuple[int, ...] | None
    error: type[Exception]
    named: tuple[str, ...]


ESTIMATOR_MISTAKES = [
    EstimatorMistake(
        "NHWC input_shape", _colour, (8, 8, 3), ValueError, ("(B, 3, 8, 8)", "(2, 8, 8, 3)")
    ),
    EstimatorMistake("float16 logits", lambda: _Cast(torch.float16), None, TypeError, ("float16",)),
    EstimatorMistake("NaN weights", _nan_weights, None, ValueError, ("NaN or inf logit",)),
]


@pytest.mark.parametrize("case", ESTIMATOR_MISTAKES, ids=lambda c: c.id)
def test_to_art_classifier_checks_the_model_the_same_way(case: EstimatorMistake) -> None:
    with pytest.raises(case.error) as info:
        to_art_classifier(case.model(), input_shape=case.input_shape, device="cpu")
    message = str(info.value)
    assert "\n" not in message and all(part in message for part in case.named), message


def test_a_grey_preact_resnet_needs_its_own_normalisation() -> None:
    with pytest.raises(ValueError) as info:
        create_model("preact-resnet18", input_shape=(1, 32, 32))
    message = str(info.value)
    assert "3 values" in message and "1 channel(s)" in message and "\n" not in message
    grey = PreActResNet18(input_shape=(1, 32, 32), mean=[0.5], std=[0.25]).eval()
    assert grey(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"normalises 3-channel images but got 1 channel"):
        PreActResNet18().eval()(torch.rand(2, 1, 32, 32))  # called directly, no harness


def test_normalize_matches_the_formula() -> None:
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    expected = torch.empty_like(x)
    for c in range(3):
        expected[:, c] = (x[:, c] - mean[c]) / std[c]
    torch.testing.assert_close(Normalize(mean, std).double()(x), expected)
