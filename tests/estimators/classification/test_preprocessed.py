"""One "ART preprocessing, then the model" module for the trainers, RP2 and evaluate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.defences.preprocessor import SpatialSmoothing
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from torch import nn

from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch
from art_denoise.estimators import PreprocessedModel, to_art_classifier
from art_denoise.estimators.classification.preprocessed import estimator_module


class Shift(PreprocessorPyTorch):
    def __init__(self, by: float, *, fit: bool = True, predict: bool = True) -> None:
        super().__init__(device_type="cpu", apply_fit=fit, apply_predict=predict)
        self.by = by

    def forward(self, x: torch.Tensor, y: object = None) -> tuple[torch.Tensor, object]:
        return x + self.by, y


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_the_chain_runs_in_order() -> None:
    net = _net()
    x = torch.rand(2, 1, 4, 4)
    out = PreprocessedModel(net, [Shift(0.5), Shift(-0.25)])(x)
    torch.testing.assert_close(out, net(x + 0.25))


@pytest.mark.parametrize("register", [True, False])
def test_register_defences(register: bool) -> None:
    ae = DenoisingAutoencoderPyTorch((1, 4, 4), n_layers=1, device_type="cpu")
    wrapped = PreprocessedModel(_net(), [ae], register_defences=register)
    has_ae_keys = any(k.startswith("_defence_modules") for k in wrapped.state_dict())
    assert has_ae_keys is register
    ae.model.eval()
    wrapped.train()
    assert ae.model.training is register


def test_estimator_module_without_preprocessing_is_the_model() -> None:
    net = _net()
    clf = to_art_classifier(net, input_shape=(1, 4, 4), nb_classes=3, device="cpu")
    assert estimator_module(clf, fit=True, who="t") is net
    assert estimator_module(clf, fit=False, who="t") is net


@pytest.mark.parametrize("fit", [True, False])
def test_estimator_module_takes_the_steps_of_fit_or_predict(fit: bool) -> None:
    net = _net()
    steps = [Shift(0.5, predict=False), Shift(0.25, fit=False)]
    clf = to_art_classifier(
        net, input_shape=(1, 4, 4), nb_classes=3, preprocessing_defences=steps, device="cpu"
    )
    module = estimator_module(clf, fit=fit, who="t")
    x = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(module(x), net(x + (0.5 if fit else 0.25)))
    if not fit:  # the same logits as ART's own prediction
        expected = clf.predict(x.numpy())
        np.testing.assert_allclose(module(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_estimator_module_refuses_numpy_steps_and_names_the_caller() -> None:
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        _net(),
        nn.CrossEntropyLoss(),
        (1, 4, 4),
        3,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[SpatialSmoothing(window_size=3)],
    )
    with pytest.raises(ValueError, match=r"^MyAttack needs gradients .* got \[SpatialSmoothing"):
        estimator_module(clf, fit=False, who="MyAttack")
