from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from scipy import ndimage
from torch import nn

from art_denoise.defences.preprocessor import LowPassFilterPyTorch
from art_denoise.filters import bilateral_filter2d

KINDS = ["box", "gaussian", "median", "bilateral"]


def _classifier(model: nn.Module, pre: LowPassFilterPyTorch) -> PyTorchClassifier:
    return PyTorchClassifier(
        model,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[pre],
        device_type="cpu",
    )


def _one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[y]


@pytest.mark.parametrize("k", [3, 5])
def test_box_equals_scipy_uniform_filter_mirror(digits, k: int) -> None:
    x = digits[2][:16].astype(np.float64)
    pre = LowPassFilterPyTorch("box", kernel_size=k, device_type="cpu")
    ref = ndimage.uniform_filter(x, size=(1, 1, k, k), mode="mirror")
    np.testing.assert_allclose(pre.forward(torch.from_numpy(x))[0].numpy(), ref, atol=1e-12)
    out, _ = pre(x.astype(np.float32))  # ART's numpy entry point
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_gaussian_and_median_equal_scipy(digits) -> None:
    x = digits[2][:8].astype(np.float64)
    gauss = LowPassFilterPyTorch("gaussian", kernel_size=5, sigma=1.2, device_type="cpu")
    ref = ndimage.gaussian_filter(x, sigma=(0, 0, 1.2, 1.2), mode="mirror", radius=(0, 0, 2, 2))
    np.testing.assert_allclose(gauss.forward(torch.from_numpy(x))[0].numpy(), ref, atol=1e-12)
    median = LowPassFilterPyTorch("median", kernel_size=3, device_type="cpu")
    ref = ndimage.median_filter(x, size=(1, 1, 3, 3), mode="mirror")
    np.testing.assert_allclose(median.forward(torch.from_numpy(x))[0].numpy(), ref)


def test_bilateral_uses_sigma_and_sigma_color() -> None:
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    pre = LowPassFilterPyTorch(
        "bilateral", kernel_size=3, sigma=1.5, sigma_color=0.2, device_type="cpu"
    )
    expected = bilateral_filter2d(x, kernel_size=3, sigma_color=0.2, sigma_space=1.5)
    torch.testing.assert_close(pre.forward(x)[0], expected)


@pytest.mark.parametrize("kind", KINDS)
def test_channels_last_and_labels_pass_through(kind: str) -> None:
    x = torch.rand(2, 3, 7, 6)
    y = torch.tensor([1, 2])
    first = LowPassFilterPyTorch(kind, device_type="cpu")
    last = LowPassFilterPyTorch(kind, channels_first=False, device_type="cpu")
    out, y_out = last.forward(x.permute(0, 2, 3, 1), y)
    torch.testing.assert_close(out, first.forward(x)[0].permute(0, 2, 3, 1))
    assert y_out is y


@pytest.mark.parametrize("kind", KINDS)
def test_inside_an_art_classifier(digits, digits_model, kind: str) -> None:
    _, _, x_te, y_te = digits
    x, y = x_te[:64], y_te[:64]
    pre = LowPassFilterPyTorch(kind, kernel_size=3, device_type="cpu")
    clf = _classifier(digits_model, pre)
    pred = clf.predict(x)
    assert pred.shape == (64, 10)
    grad = clf.loss_gradient(x, _one_hot(y))
    assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    # the gradient is the true one through the filter, not ART's identity estimate
    xt = torch.from_numpy(x).requires_grad_(True)
    loss = nn.functional.cross_entropy(digits_model(pre.forward(xt)[0]), torch.from_numpy(y))
    (expected,) = torch.autograd.grad(loss, xt)
    np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-4, atol=1e-7)


def test_set_params_revalidates() -> None:
    pre = LowPassFilterPyTorch("gaussian", device_type="cpu")
    pre.set_params(kernel_size=5, sigma=2.0)
    assert (pre.kernel_size, pre.sigma) == (5, 2.0)
    with pytest.raises(ValueError, match="odd, got 4"):
        pre.set_params(kernel_size=4)
    assert "kind='gaussian'" in repr(pre)


def test_kernel_larger_than_the_image() -> None:
    with pytest.raises(ValueError, match="kernel_size 5 is larger than the 4x4"):
        LowPassFilterPyTorch("box", kernel_size=5, device_type="cpu").forward(
            torch.rand(1, 1, 4, 4)
        )
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got shape \(4, 4\)"):
        LowPassFilterPyTorch(device_type="cpu").forward(torch.rand(4, 4))


class BadCase(NamedTuple):
    kwargs: dict
    error: type[Exception]
    match: str


BAD = {
    "even kernel": BadCase({"kernel_size": 4}, ValueError, "odd, got 4"),
    "zero kernel": BadCase({"kernel_size": 0}, ValueError, "got 0"),
    "negative kernel": BadCase({"kernel_size": -3}, ValueError, "got -3"),
    "float kernel": BadCase({"kernel_size": 3.0}, TypeError, "3.0"),
    "negative sigma": BadCase({"kind": "gaussian", "sigma": -1.0}, ValueError, "-1.0"),
    "zero sigma": BadCase({"kind": "bilateral", "sigma": 0.0}, ValueError, "sigma must be > 0"),
    "sigma for box": BadCase({"kind": "box", "sigma": 1.0}, ValueError, "sigma=1.0 for kind 'box'"),
    "sigma_color": BadCase({"kind": "bilateral", "sigma_color": -2}, ValueError, "-2"),
    "kind": BadCase({"kind": "wiener"}, ValueError, "'wiener'.*bilateral, box"),
    "clip order": BadCase({"clip_values": (1.0, 0.0)}, ValueError, r"\(1.0, 0.0\)"),
    "clip type": BadCase({"clip_values": "01"}, TypeError, "'01'"),
    "clip scalar": BadCase({"clip_values": 1.0}, TypeError, "1.0"),
    "channels_first": BadCase({"channels_first": "yes"}, TypeError, "'yes'"),
    "device": BadCase({"device_type": "tpu"}, ValueError, "'tpu'"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_arguments(case: BadCase) -> None:
    kwargs = {"device_type": "cpu", **case.kwargs}
    with pytest.raises(case.error, match=case.match):
        LowPassFilterPyTorch(**kwargs)
