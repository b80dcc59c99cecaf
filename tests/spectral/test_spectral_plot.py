from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from art_denoise.blurnet import insert_lowpass
from art_denoise.models import SmallCNN
from art_denoise.spectral import SPECTRUM_SCHEMA, plot_spectra, spectrum_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(input_shape=(1, 8, 8), widths=(4, 8), hidden=8).eval()


def _fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def test_plot_has_input_and_layer_rows(model, tmp_path) -> None:
    x = torch.rand(4, 1, 8, 8)
    x_adv = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    path = tmp_path / "sub" / "spectra.png"
    fig = plot_spectra(model, x, x_adv, path=path)
    assert isinstance(fig, Figure)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 6
    assert [ax.get_title() for ax in images[:3]] == ["clean", "adversarial", "adversarial - clean"]
    assert [images[0].get_ylabel(), images[3].get_ylabel()] == ["input", "stage1.0 maps"]
    diff = np.asarray(images[2].images[0].get_array())
    assert diff.shape == (8, 8) and float(np.abs(diff).max()) > 0
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in path.parent.iterdir()] == ["spectra.png"]  # no temporary left


def test_plot_bad_arguments(model) -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="differ in shape"):
        plot_spectra(model, x, x[:1])
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        plot_spectra(model, x, x, layer="nope")
    with pytest.raises(ValueError, match="empty"):
        plot_spectra(model, x[:0], x[:0])


def test_report_writes_json_and_png(digits, model, tmp_path) -> None:
    _, _, x_te, y_te = digits
    x = torch.from_numpy(x_te[:128])
    x_adv = _fgsm(model, x, torch.from_numpy(y_te[:128]), eps=0.2)
    report = spectrum_report(model, x, x_adv, None, tmp_path / "out", radius=0.25)
    keys = {"input_clean", "input_adv", "layer_clean", "layer_adv"}
    assert set(report) == {"schema", "layer", "radius", "n_images", *keys}
    assert report["schema"] == SPECTRUM_SCHEMA and report["layer"] == "stage1.0"
    assert report["n_images"] == 128 and report["radius"] == 0.25
    assert all(0.0 <= report[k] <= 1.0 for k in keys)
    # FGSM's sign pattern adds high-frequency energy to the input and the layer-1 maps
    assert report["input_adv"] > report["input_clean"]
    assert report["layer_adv"] > report["layer_clean"]
    assert json.loads((tmp_path / "out" / "spectrum.json").read_text()) == report
    assert (tmp_path / "out" / "spectra.png").read_bytes()[:8] == PNG


def test_lowpass_layer_lowers_the_layer_ratio(model, tmp_path) -> None:
    torch.manual_seed(1)
    x = torch.rand(8, 1, 8, 8)
    blurred = insert_lowpass(model, kernel_size=3)
    plain = spectrum_report(model, x, x, "stage1.0", tmp_path / "a")
    low = spectrum_report(blurred, x, x, "stage1.0", tmp_path / "b")
    assert low["input_clean"] == plain["input_clean"]
    assert low["layer_clean"] < plain["layer_clean"]


def test_report_bad_radius_writes_nothing(model, tmp_path) -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="radius"):
        spectrum_report(model, x, x, None, tmp_path / "out", radius=-1.0)
    assert not (tmp_path / "out").exists()
