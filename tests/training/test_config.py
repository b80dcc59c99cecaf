"""FitConfig: fit's options as one checked value, given as keywords or as config=."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
from typing import Any, NamedTuple

import pytest
import torch

from art_denoise.models import create_model
from art_denoise.training import FitConfig, PrototypeConformityLoss, StandardTraining, fit
from art_denoise.training import config as config_module
from art_denoise.training.distributed import DistContext


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)


def test_fit_keywords_are_the_config_fields_with_the_same_defaults() -> None:
    params = inspect.signature(fit).parameters
    keywords = {name: p.default for name, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert keywords.pop("config") is None
    assert keywords.pop("epochs") is None  # required unless config= is given
    fields = {f.name: f.default for f in dataclasses.fields(FitConfig) if f.name != "epochs"}
    assert keywords == fields


def test_config_trains_like_the_same_keywords(small_digits) -> None:
    x, y = small_digits[0][:128], small_digits[1][:128]
    options: dict[str, Any] = {"epochs": 2, "batch_size": 32, "seed": 4, "progress": False}
    by_keywords, by_config = _model(), _model()
    a = fit(
        by_keywords, torch.optim.Adam(by_keywords.parameters()), StandardTraining(), x, y, **options
    )
    b = fit(
        by_config,
        torch.optim.Adam(by_config.parameters()),
        StandardTraining(),
        x,
        y,
        config=FitConfig(**options),
    )
    for (name, p), q in zip(
        by_keywords.state_dict().items(), by_config.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 64}, "batch_size"),
        ({"epochs": 1}, "epochs"),
        ({"progress": False, "seed": 1}, "seed, progress"),
        ({"regularizers": []}, "regularizers"),
    ],
    ids=["batch", "epochs", "two", "empty-list"],
)
def test_config_and_keywords_together_are_refused(small_digits, kwargs, match) -> None:
    x, y = small_digits[0][:64], small_digits[1][:64]
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters())
    config = FitConfig(epochs=1)
    with pytest.raises(TypeError, match=f"not both; got config and {match}"):
        fit(model, opt, StandardTraining(), x, y, config=config, **kwargs)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_config_must_be_a_fit_config_and_epochs_is_required(small_digits) -> None:
    x, y = small_digits[0][:64], small_digits[1][:64]
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(TypeError, match="config must be a FitConfig, got dict"):
        fit(model, opt, StandardTraining(), x, y, config={"epochs": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'epochs'"):
        fit(model, opt, StandardTraining(), x, y)


class Bad(NamedTuple):
    kwargs: dict[str, Any]
    error: type[Exception]
    match: str


def _pcl() -> PrototypeConformityLoss:
    return PrototypeConformityLoss(_model(), ["stage2"], 10)


BAD = {
    "epochs": Bad({"epochs": 0}, ValueError, "epochs must be >= 1"),
    "epochs-type": Bad({"epochs": 1.5}, TypeError, "epochs must be an int"),
    "batch": Bad({"batch_size": -1}, ValueError, "batch_size"),
    "interval": Bad({"scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
    "every": Bad({"checkpoint_every": 0}, ValueError, "checkpoint_every"),
    "drop": Bad({"early_stop_drop": -0.1, "validation": (0, 0)}, ValueError, "early_stop_drop"),
    "drop-needs-val": Bad({"early_stop_drop": 0.1}, ValueError, "needs validation"),
    "pcl": Bad({"pcl": "lazy"}, ValueError, "pcl needs pcl_optimizer"),
    "ema": Bad({"ema_decay": 1.0}, ValueError, "ema_decay"),
    "features": Bad({"feature_regularizers": [1]}, TypeError, "must map layer names"),
    "feature": Bad({"feature_regularizers": {"a": 1}}, TypeError, r"\['a'\] must be callable"),
    "amp": Bad({"amp": "fp8"}, ValueError, "unknown amp"),
    "batches": Bad({"batches": lambda: (0, 0)}, ValueError, "batches needs steps_per_epoch"),
    "steps": Bad({"batches": lambda: (0, 0), "steps_per_epoch": 0}, ValueError, "steps_per"),
    "resume": Bad({"resume": True}, ValueError, "resume=True needs checkpoint_dir"),
    "ranks": Bad({"batch_size": 2, "dist_ctx": DistContext(0, 4)}, ValueError, "4 ranks"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_options_are_refused_when_the_config_is_built(case: Bad) -> None:
    kwargs = {"epochs": 1, **case.kwargs}
    if kwargs.get("pcl") == "lazy":
        kwargs["pcl"] = _pcl()
    with pytest.raises(case.error, match=case.match):
        FitConfig(**kwargs)


def test_config_is_frozen_and_normalised() -> None:
    import numpy as np

    cfg = FitConfig(epochs=np.int64(3), early_stop_drop=0, validation=(0, 0), ema_decay=0)
    assert type(cfg.epochs) is int and cfg.early_stop_drop == 0.0
    assert type(cfg.early_stop_drop) is float and type(cfg.ema_decay) is float
    assert cfg.ctx == DistContext() and cfg.features == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 4  # type: ignore[misc]


def test_docstring_example_runs() -> None:
    outcome = doctest.testmod(config_module)
    assert outcome.attempted >= 1 and outcome.failed == 0
