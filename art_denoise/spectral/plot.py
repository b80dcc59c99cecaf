"""Clean vs adversarial spectra of the input and of a layer's maps, as a picture and a JSON.

The figure of BlurNet's analysis (Raju & Lipasti, "BlurNet: Defense by Filtering the
Feature Maps", 2019, https://arxiv.org/abs/1908.02256): log-shifted, normalised 2-D FFT
spectra of natural and perturbed inputs and first-layer feature maps, and their
difference, where the perturbation's high frequencies show at the edges.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from art_denoise._files import atomic_path, atomic_write_text
from art_denoise.blurnet.insert import first_conv
from art_denoise.spectral.spectrum import (
    _as_maps,
    high_frequency_energy_ratio,
    layer_features,
    log_spectrum2d,
)

__all__ = ["SPECTRUM_SCHEMA", "plot_spectra", "spectrum_report"]

SPECTRUM_SCHEMA = "art-denoise/spectrum/1"


@dataclass(frozen=True)
class _Pairs:
    """Clean and adversarial inputs and layer maps, on the CPU."""

    layer: str
    inputs: tuple[torch.Tensor, torch.Tensor]
    maps: tuple[torch.Tensor, torch.Tensor]


def _pairs(
    model: nn.Module,
    x_clean: torch.Tensor | np.ndarray,
    x_adv: torch.Tensor | np.ndarray,
    layer: str | None,
) -> _Pairs:
    clean, adv = _as_maps(x_clean, "x_clean"), _as_maps(x_adv, "x_adv")
    if clean.shape != adv.shape:
        raise ValueError(
            f"x_clean and x_adv differ in shape: {tuple(clean.shape)} vs {tuple(adv.shape)}"
        )
    if clean.shape[0] == 0:
        raise ValueError("x_clean is empty: pass at least one image")
    name = first_conv(model) if layer is None else layer
    maps = (layer_features(model, name, clean), layer_features(model, name, adv))
    return _Pairs(name, (clean.float().cpu(), adv.float().cpu()), maps)


def _draw(pairs: _Pairs, cmap: str) -> Figure:
    rows = [("input", pairs.inputs), (f"{pairs.layer} maps", pairs.maps)]
    fig = Figure(figsize=(9.0, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for row, (label, (clean, adv)) in enumerate(rows):
        spec_clean = log_spectrum2d(clean, reduce_batch=True).numpy()
        spec_adv = log_spectrum2d(adv, reduce_batch=True).numpy()
        diff = spec_adv - spec_clean
        bound = max(float(np.abs(diff).max()), 1e-12)
        panels = [
            ("clean", spec_clean, cmap, 0.0, 1.0),
            ("adversarial", spec_adv, cmap, 0.0, 1.0),
            ("adversarial - clean", diff, "RdBu_r", -bound, bound),
        ]
        for col, (title, image, colours, lo, hi) in enumerate(panels):
            ax = axes[row][col]
            shown = ax.imshow(image, cmap=colours, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=10)
            if col == 0:
                ax.set_ylabel(label, fontsize=10)
            if col == 2:
                fig.colorbar(shown, ax=ax, shrink=0.8)
    n = pairs.inputs[0].shape[0]
    fig.suptitle(f"log |FFT|, centred, normalised per image, mean of {n} image(s)", fontsize=10)
    return fig


def _save_png(fig: Figure, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def plot_spectra(
    model: nn.Module,
    x_clean: torch.Tensor | np.ndarray,
    x_adv: torch.Tensor | np.ndarray,
    layer: str | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    cmap: str = "viridis",
) -> Figure:
    """Spectra of clean and adversarial inputs and of a layer's maps, with their difference.

    Rows: the inputs, and the feature maps of ``layer`` (default: the first
    ``nn.Conv2d``, BlurNet's layer 1). Columns: clean, adversarial, adversarial minus
    clean. Each panel is :func:`~art_denoise.spectral.log_spectrum2d` (log-magnitude,
    zero frequency at the centre, each image scaled to [0, 1], channels and then the
    batch averaged); the difference uses a diverging colour map centred on 0, so the
    perturbation's extra high-frequency energy shows red at the edges. The maps come from
    one forward pass in eval mode without gradients (modes restored).

    Args:
        model: the network.
        x_clean: clean inputs.
        x_adv: adversarial inputs, same shape.
        layer: dotted name from ``model.named_modules()``; ``None`` for the first conv.
        path: if given, the PNG is written there atomically.
        cmap: matplotlib colour map of the spectra.

    Returns:
        The matplotlib figure (Agg canvas, no pyplot state).

    Raises:
        ValueError: unknown ``layer`` (the message lists the valid names), shapes that
            differ, an empty batch, or a layer output that is not (B, C, H, W).
        TypeError: inputs that are not floating-point tensors or arrays.

    Shape:
        - x_clean, x_adv: (B, C, H, W)

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> x = torch.rand(4, 1, 8, 8)
        >>> fig = plot_spectra(SmallCNN(input_shape=(1, 8, 8)), x, (x + 0.1).clamp(0, 1))
        >>> [ax.get_title() for ax in fig.axes[:3]]
        ['clean', 'adversarial', 'adversarial - clean']
    """
    fig = _draw(_pairs(model, x_clean, x_adv, layer), cmap)
    if path is not None:
        _save_png(fig, path)
    return fig


def spectrum_report(
    model: nn.Module,
    x_clean: torch.Tensor | np.ndarray,
    x_adv: torch.Tensor | np.ndarray,
    layer: str | None,
    out_dir: str | os.PathLike[str],
    radius: float = 0.25,
    *,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``spectra.png`` and ``spectrum.json`` to ``out_dir``; return the JSON's dict.

    The PNG is :func:`plot_spectra`. The JSON holds the mean
    :func:`~art_denoise.spectral.high_frequency_energy_ratio` (per-channel mean removed,
    cut-off ``radius`` in cycles per pixel) of the clean and adversarial inputs and of the
    layer's maps for them::

        {"schema": "art-denoise/spectrum/1", "layer": "stage1.0", "radius": 0.25,
         "n_images": 64, "input_clean": 0.21, "input_adv": 0.35,
         "layer_clean": 0.18, "layer_adv": 0.27}

    Both files are written atomically; other files in ``out_dir`` are left alone.

    Args:
        model: the network.
        x_clean: clean inputs.
        x_adv: adversarial inputs, same shape.
        layer: dotted name, or ``None`` for the first ``nn.Conv2d``.
        out_dir: the folder (created if missing).
        radius: the high-frequency cut-off, >= 0 (Nyquist is 0.5).
        metadata: JSON-able facts about the run (model, attack, ...), stored as is
            under the key ``"metadata"`` when given.

    Returns:
        The dict written to ``spectrum.json``.

    Raises:
        ValueError / TypeError: as :func:`plot_spectra`, ``radius`` < 0, or
            ``metadata`` that is not JSON-able (checked before anything is written).

    Example:
        >>> import tempfile
        >>> from art_denoise.models import SmallCNN
        >>> x = torch.rand(4, 1, 8, 8)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     report = spectrum_report(SmallCNN(input_shape=(1, 8, 8)), x, x, None, tmp)
        >>> report["layer"], report["input_clean"] == report["input_adv"]
        ('stage1.0', True)
    """
    pairs = _pairs(model, x_clean, x_adv, layer)
    high_frequency_energy_ratio(pairs.inputs[0][:1], radius)  # check radius before writing

    def ratio(x: torch.Tensor) -> float:
        return float(high_frequency_energy_ratio(x, radius).mean())

    report: dict[str, Any] = {
        "schema": SPECTRUM_SCHEMA,
        "layer": pairs.layer,
        "radius": float(radius),
        "n_images": int(pairs.inputs[0].shape[0]),
        "input_clean": ratio(pairs.inputs[0]),
        "input_adv": ratio(pairs.inputs[1]),
        "layer_clean": ratio(pairs.maps[0]),
        "layer_adv": ratio(pairs.maps[1]),
    }
    if metadata is not None:
        report["metadata"] = dict(metadata)
    text = json.dumps(report, indent=2) + "\n"  # not JSON-able: fail before writing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_png(_draw(pairs, "viridis"), out / "spectra.png")
    atomic_write_text(out / "spectrum.json", text)
    return report
