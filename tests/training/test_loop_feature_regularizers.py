"""``fit(feature_regularizers=...)``: penalties on a layer's maps of the training forward only."""

from __future__ import annotations

import copy
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from art_denoise.blurnet import capture_features, insert_lowpass, total_variation_penalty
from art_denoise.models import create_model
from art_denoise.training import MixTraining, PGDTraining, StandardTraining, TrainingMethod, fit


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)
    return insert_lowpass(model, kernel_size=3, kind="learnable")


def test_tv_term_matches_a_step_computed_by_hand(small_digits) -> None:
    x, y = (torch.from_numpy(a[:64]) for a in small_digits[:2])
    weight = 0.5
    model = _model()
    by_hand = copy.deepcopy(model).train()
    seen: list[torch.Tensor] = []

    def tv(maps: list[torch.Tensor]) -> torch.Tensor:
        value = total_variation_penalty(torch.cat(maps), weight)
        seen.append(value.detach())
        return value

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # one step on the whole batch: CE mean, BN statistics and TV mean ignore the shuffle
    fit(
        model,
        opt,
        StandardTraining(),
        x,
        y,
        epochs=1,
        batch_size=64,
        progress=False,
        feature_regularizers={"stage1.0": tv},
    )

    with capture_features(by_hand, "stage1.0") as maps:
        logits = by_hand(x)
    expected = total_variation_penalty(maps[0], weight)  # after the low-pass layer
    (F.cross_entropy(logits, y) + expected).backward()
    torch.optim.SGD(by_hand.parameters(), lr=0.1).step()

    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected.detach())
    assert float(expected.detach()) > 0.01  # the term is not negligible next to the CE
    for (name, got), want in zip(model.named_parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


class Case(NamedTuple):
    method: TrainingMethod
    forwards: int


CASES = {
    "standard": Case(StandardTraining(), 1),
    "pgd": Case(PGDTraining(eps=0.1, steps=3, restarts=2), 1),  # attack and clean pass unseen
    "mix": Case(MixTraining(eps=0.1, attack="pgd", steps=2), 2),  # clean and adversarial
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_only_the_training_forwards_are_penalised(case, small_digits) -> None:
    x, y = small_digits[0][:96], small_digits[1][:96]
    calls: list[list[tuple[int, ...]]] = []

    def record(maps: list[torch.Tensor]) -> torch.Tensor:
        assert all(m.requires_grad for m in maps)
        calls.append([tuple(m.shape) for m in maps])
        return torch.cat(maps).pow(2).mean() * 0.0

    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(
        model,
        opt,
        case.method,
        x,
        y,
        epochs=1,
        batch_size=64,
        progress=False,
        validation=(x[:32], y[:32]),
        feature_regularizers={"stage1.0": record},
    )
    assert calls == [[(64, 8, 8, 8)] * case.forwards, [(32, 8, 8, 8)] * case.forwards]


def test_bad_feature_regularizers_are_refused_before_training(small_digits) -> None:
    x, y = small_digits[0][:64], small_digits[1][:64]
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"unknown layer 'nope'.*stage1\.0"):
        fit(
            model,
            opt,
            StandardTraining(),
            x,
            y,
            epochs=1,
            progress=False,
            feature_regularizers={"nope": lambda maps: maps[0].sum()},
        )
    with pytest.raises(TypeError, match=r"feature_regularizers\['stage1.0'\] must be callable"):
        fit(
            model,
            opt,
            StandardTraining(),
            x,
            y,
            epochs=1,
            progress=False,
            feature_regularizers={"stage1.0": 1.0},
        )
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
