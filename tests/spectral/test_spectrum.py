from __future__ import annotations

import numpy as np
import pytest
import torch

from art_denoise.models import SmallCNN
from art_denoise.spectral import (
    feature_spectra,
    high_frequency_energy_ratio,
    layer_features,
    log_spectrum2d,
    radial_frequency,
)


def _sinusoid(h: int, w: int, fy: int, fx: int, channels: int = 1) -> torch.Tensor:
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    wave = torch.cos(2 * torch.pi * (fy * i / h + fx * j / w))
    return wave.expand(1, channels, h, w).clone()


def _checkerboard(h: int, w: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    board = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2
    return torch.where(board == 1, high, low).to(torch.float64).expand(1, 3, h, w)


def _reference_ratio(x: np.ndarray, radius: float) -> np.ndarray:
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    power = (np.abs(np.fft.fft2(x)) ** 2).sum(axis=1)
    fy, fx = np.fft.fftfreq(x.shape[-2]), np.fft.fftfreq(x.shape[-1])
    outside = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) > radius
    return (power * outside).sum(axis=(-2, -1)) / power.sum(axis=(-2, -1))


@pytest.mark.parametrize(
    ("h", "w", "fy", "fx"), [(12, 16, 2, 3), (9, 11, 1, 4), (8, 8, 0, 2), (7, 10, 3, 0)]
)
def test_sinusoid_peaks_at_its_frequency(h: int, w: int, fy: int, fx: int) -> None:
    spec = log_spectrum2d(_sinusoid(h, w, fy, fx, channels=2))[0]
    cy, cx = h // 2, w // 2  # zero frequency after fftshift, odd or even sizes
    peaks = {(cy + fy, cx + fx), (cy - fy, cx - fx)}
    # the two conjugate peaks are equal in exact arithmetic, not always in the FFT's
    top = torch.isclose(spec, spec.max(), rtol=0.0, atol=1e-12)
    assert {tuple(p) for p in top.nonzero().tolist()} == peaks
    assert all(float(spec[p]) == pytest.approx(1.0, abs=1e-12) for p in peaks)
    assert float(spec.min()) == 0.0  # exact: (min - min) / span


def test_unnormalised_spectrum_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 7))
    expected = np.fft.fftshift(np.log1p(np.abs(np.fft.fft2(x))), axes=(-2, -1)).mean(axis=1)
    out = log_spectrum2d(x, normalize=False)
    assert out.dtype == torch.float64 and out.shape == (2, 6, 7)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(
        log_spectrum2d(x, normalize=False, reduce_batch=True).numpy(), expected.mean(axis=0)
    )


def test_normalised_spectrum_is_in_unit_range_and_float32_for_float32() -> None:
    out = log_spectrum2d(torch.rand(3, 2, 8, 8))
    assert out.dtype == torch.float32
    assert torch.allclose(out.amin(dim=(1, 2)), torch.zeros(3))
    assert torch.allclose(out.amax(dim=(1, 2)), torch.ones(3))
    assert log_spectrum2d(torch.zeros(0, 1, 4, 4)).shape == (0, 4, 4)
    assert bool((log_spectrum2d(torch.zeros(1, 1, 4, 4)) == 0).all())  # flat spectrum


def test_ratio_of_a_constant_image_is_zero() -> None:
    x = torch.full((2, 3, 8, 8), 0.6)
    # exact: a spectrum without energy is reported as 0, not as rounding noise over itself
    assert high_frequency_energy_ratio(x, 0.1).tolist() == [0.0, 0.0]
    assert high_frequency_energy_ratio(x, 0.1, exclude_dc=False).abs().max() < 1e-12
    assert high_frequency_energy_ratio(torch.zeros(1, 1, 4, 4), 0.0).tolist() == [0.0]


def test_ratio_of_a_checkerboard_is_one() -> None:
    board = _checkerboard(8, 10)
    torch.testing.assert_close(high_frequency_energy_ratio(board, 0.25), torch.ones(1).double())
    # with the mean kept, a {0, 1} board has as much energy at DC as at the Nyquist corner
    torch.testing.assert_close(
        high_frequency_energy_ratio(board, 0.25, exclude_dc=False), torch.tensor([0.5]).double()
    )
    signed = _checkerboard(6, 6, -1.0, 1.0)
    torch.testing.assert_close(
        high_frequency_energy_ratio(signed, 0.7, exclude_dc=False), torch.ones(1).double()
    )


def test_radius_is_in_cycles_per_pixel() -> None:
    wave = _sinusoid(16, 16, 0, 3)  # 3 / 16 = 0.1875 cycles per pixel
    assert float(high_frequency_energy_ratio(wave, 0.19)) < 1e-20
    torch.testing.assert_close(high_frequency_energy_ratio(wave, 0.18), torch.ones(1).double())
    r = radial_frequency(16, 16)
    # sqrt is not correctly rounded on every CPU's vector path: compare within a few ulps
    assert float(r[0, 3]) == pytest.approx(0.1875, rel=1e-15)
    assert float(r[0, 0]) == 0.0  # exact: sqrt(0)
    assert float(r.max()) == pytest.approx(0.5**0.5, rel=1e-15)


def test_ratio_matches_numpy_per_image() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 2, 9, 8))
    out = high_frequency_energy_ratio(x, 0.2)
    assert out.shape == (4,)
    np.testing.assert_allclose(out.numpy(), _reference_ratio(x, 0.2), rtol=1e-12)
    assert high_frequency_energy_ratio(torch.rand(0, 1, 4, 4)).shape == (0,)


def test_white_noise_raises_the_ratio() -> None:
    torch.manual_seed(0)
    smooth = _sinusoid(16, 16, 1, 1).expand(8, 1, 16, 16)
    noisy = smooth + 0.3 * torch.randn(8, 1, 16, 16, dtype=torch.float64)
    assert bool((high_frequency_energy_ratio(noisy) > high_frequency_energy_ratio(smooth)).all())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"radius must be a finite number >= 0, got -0.1"):
        high_frequency_energy_ratio(torch.rand(1, 1, 4, 4), -0.1)
    with pytest.raises(TypeError, match="radius must be a number"):
        high_frequency_energy_ratio(torch.rand(1, 1, 4, 4), "0.2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got shape \(4, 4\)"):
        log_spectrum2d(torch.rand(4, 4))
    with pytest.raises(TypeError, match="int64"):
        log_spectrum2d(np.zeros((1, 1, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="empty batch"):
        log_spectrum2d(torch.rand(0, 1, 4, 4), reduce_batch=True)


def test_feature_spectra_of_the_first_conv() -> None:
    torch.manual_seed(0)
    model = SmallCNN(input_shape=(1, 8, 8), widths=(4, 8), hidden=8).train()
    x = torch.rand(3, 1, 8, 8)
    maps = layer_features(model, None, x)
    assert maps.shape == (3, 4, 8, 8) and not maps.requires_grad
    assert model.training and all(m.training for m in model.modules())
    with torch.no_grad():
        expected = model.eval().stage1[0](model.normalize(x))
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(feature_spectra(model, "stage1.0", x), log_spectrum2d(expected))
    assert feature_spectra(model, "stage2", x, reduce_batch=True).shape == (2, 2)


def test_feature_spectra_bad_layer() -> None:
    model = SmallCNN(input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="unknown layer 'conv1'; valid names are: normalize"):
        feature_spectra(model, "conv1", torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"outputs shape \(1, 10\), not \(B, C, H, W\)"):
        feature_spectra(model, "head", torch.rand(1, 1, 8, 8))
