from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from art_denoise.estimators import resolve_device, to_art_classifier


def test_wraps_with_inferred_shape_and_classes(digits_model, digits) -> None:
    _, _, x_te, y_te = digits
    clf = to_art_classifier(digits_model, device="cpu")
    assert clf.input_shape == (1, 8, 8) and clf.nb_classes == 10
    assert clf.clip_values is not None and tuple(clf.clip_values) == (0.0, 1.0)
    pred = clf.predict(x_te[:50]).argmax(1)
    with torch.no_grad():
        ours = digits_model(torch.from_numpy(x_te[:50])).argmax(1).numpy()
    np.testing.assert_array_equal(pred, ours)
    grad = clf.loss_gradient(x_te[:4], np.eye(10)[y_te[:4]])  # ART wants one-hot here
    assert grad.shape == (4, 1, 8, 8) and np.abs(grad).sum() > 0


def test_rejects_non_logit_models() -> None:
    class Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten()

    with pytest.raises(ValueError, match=r"\(B, classes\) logits"):
        to_art_classifier(Flat(), input_shape=(1, 4, 4), device="cpu")
    with pytest.raises(ValueError, match="input_shape is required"):
        to_art_classifier(Flat(), device="cpu")


def test_nb_classes_must_match(digits_model) -> None:
    with pytest.raises(ValueError, match="returns 10 logits but nb_classes=5"):
        to_art_classifier(digits_model, nb_classes=5, device="cpu")


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.warns(RuntimeWarning, match="CUDA is not available"):
            assert resolve_device("cuda") == torch.device("cpu")
        assert resolve_device("auto") == torch.device("cpu")
