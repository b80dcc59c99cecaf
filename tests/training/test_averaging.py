"""Weight averaging: the EMA against a naive loop, in fit, in validation (resume: test_loop)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_denoise.models import create_model
from art_denoise.training import PGDTraining, ValidationAttack, WeightAverage, fit


def _model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)


def _naive_ema(states: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    """The average written out: start at ``states[0]``, one warm-up formula per update."""
    avg = {k: v.double().clone() for k, v in states[0].items()}
    for t, state in enumerate(states[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))
        for k, v in state.items():
            avg[k] = d * avg[k] + (1 - d) * v.double() if v.is_floating_point() else v.clone()
    return avg


def test_update_matches_the_naive_formula_with_warm_up():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    states = [{k: v.clone() for k, v in model.state_dict().items()}]
    avg = WeightAverage(model, decay=0.9)
    assert avg.current_decay() == pytest.approx(2 / 11)
    for _ in range(100):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(8, 3))  # moves the BN running stats and the counter
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        avg.update(model)
    assert avg.current_decay() == 0.9  # warm-up is over: (1 + 101) / (10 + 101) > 0.9
    expected = _naive_ema(states, 0.9)
    for name, value in avg.shadow.items():
        if value.is_floating_point():
            torch.testing.assert_close(value.double(), expected[name], rtol=1e-5, atol=1e-6)
        else:  # num_batches_tracked is copied, not averaged
            assert int(value) == 100 == int(expected[name])
    # The average is not the last weights: it lags behind them.
    assert not torch.allclose(avg.shadow["0.weight"], model[0].weight)


def test_applied_swaps_the_average_in_and_restores_the_model():
    model = nn.Linear(2, 2)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    avg = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(4.0)
    avg.update(model)  # decay min(0.5, 2/11): mostly the new weights
    moved = {k: v.clone() for k, v in model.state_dict().items()}
    with avg.applied(model):
        torch.testing.assert_close(model.weight, own["weight"] + 4.0 * (1 - 2 / 11))
    for k, v in model.state_dict().items():
        assert torch.equal(v, moved[k]), k


@pytest.mark.parametrize(
    ("decay", "error"),
    [(1.0, ValueError), (-0.1, ValueError), ("0.9", TypeError), (True, TypeError)],
)
def test_bad_decay_is_refused(decay, error):
    with pytest.raises(error, match="decay"):
        WeightAverage(nn.Linear(1, 1), decay)


def _fit(x, y, *, ema, record):
    """Two epochs of PGD training with averaging; ``record`` gets the weights after each step."""
    model = _model()
    record.append({k: v.clone() for k, v in model.state_dict().items()})
    result = fit(
        model,
        torch.optim.Adam(model.parameters(), lr=3e-3),
        PGDTraining(eps=0.1, steps=2),
        x,
        y,
        epochs=2,
        batch_size=64,
        ema_decay=ema,
        progress=False,
        on_step=lambda _: record.append({k: v.clone() for k, v in model.state_dict().items()}),
    )
    return model, result


def test_fit_returns_the_average_of_the_trajectory(small_digits):
    x, y, _, _ = small_digits
    states: list[dict[str, torch.Tensor]] = []
    model, result = _fit(x, y, ema=0.8, record=states)
    assert result.steps == 14 and len(states) == 15  # the initial weights and 14 steps
    expected = _naive_ema(states, 0.8)
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value.double(), expected[name], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(model.state_dict()["head.3.weight"], states[-1]["head.3.weight"])


def test_validation_sees_the_averaged_weights(small_digits, monkeypatch):
    x, y, xv, yv = small_digits
    seen = []

    def fake_run(self, model, *args, **kwargs):
        seen.append(model.state_dict()["head.3.weight"].clone())
        return 0.9, 0.5

    monkeypatch.setattr(ValidationAttack, "run", fake_run)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    fit(
        model,
        opt,
        PGDTraining(eps=0.1, steps=2),
        x,
        y,
        epochs=1,
        batch_size=64,
        ema_decay=0.9,
        validation=(xv, yv),
        progress=False,
    )
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], model.state_dict()["head.3.weight"])  # the average


def test_fit_refuses_a_bad_ema_decay(small_digits):
    x, y, _, _ = small_digits
    model = _model()
    with pytest.raises(ValueError, match="ema_decay"):
        fit(
            model,
            torch.optim.Adam(model.parameters()),
            PGDTraining(eps=0.1, steps=1),
            x[:64],
            y[:64],
            epochs=1,
            ema_decay=1.5,
            progress=False,
        )
