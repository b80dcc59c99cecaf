"""The native attack losses against the formulas, computed by hand in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_denoise.attacks.native import ce_loss, dlr_loss, targeted_dlr_loss


def _logits(seed: int = 0, n: int = 7, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)) * 3, rng.integers(0, k, size=n)


def _reference_ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(y)), y]


def _reference_dlr(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = []
    for row, label in zip(z, y, strict=True):
        ranked = sorted(row, reverse=True)
        best_other = max(v for i, v in enumerate(row) if i != label)
        out.append(-(row[label] - best_other) / (ranked[0] - ranked[2] + 1e-12))
    return np.array(out)


def _reference_targeted_dlr(z: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = []
    for row, label, target in zip(z, y, t, strict=True):
        r = sorted(row, reverse=True)
        out.append(-(row[label] - row[target]) / (r[0] - (r[2] + r[3]) / 2 + 1e-12))
    return np.array(out)


def test_ce_loss_is_the_per_example_cross_entropy() -> None:
    z, y = _logits()
    got = ce_loss(torch.from_numpy(z), torch.from_numpy(y))
    np.testing.assert_allclose(got.numpy(), _reference_ce(z, y), rtol=1e-12, atol=1e-12)


def test_dlr_loss_against_the_formula() -> None:
    z, y = _logits(1)
    y[0] = int(np.argmax(z[0]))  # one correctly classified row: the margin uses the 2nd logit
    y[1] = int(np.argmin(z[1]))
    got = dlr_loss(torch.from_numpy(z), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(got, _reference_dlr(z, y), rtol=1e-12)
    assert got[0] < 0 < got[1]  # positive exactly when misclassified


def test_dlr_by_hand() -> None:
    # sorted 5 > 2 > 1 > 0: denominator 5 - 1; y=0 is the top class, the margin is 5 - 2
    z = torch.tensor([[5.0, 2.0, 0.0, 1.0], [5.0, 2.0, 0.0, 1.0]])
    got = dlr_loss(z, torch.tensor([0, 3]))
    torch.testing.assert_close(got, torch.tensor([-3.0 / 4.0, 4.0 / 4.0]))
    got_t = targeted_dlr_loss(z, torch.tensor([0, 0]), torch.tensor([1, 2]))
    # denominator 5 - (1 + 0) / 2 = 4.5
    torch.testing.assert_close(got_t, torch.tensor([-3.0 / 4.5, -5.0 / 4.5]))


def test_dlr_is_shift_and_scale_invariant() -> None:
    z, y = _logits(2)
    t = torch.from_numpy(z)
    torch.testing.assert_close(
        dlr_loss(7.0 * t - 3.0, torch.from_numpy(y)), dlr_loss(t, torch.from_numpy(y))
    )


def test_targeted_dlr_loss_against_the_formula() -> None:
    z, y = _logits(3)
    t = (y + 1 + np.arange(len(y)) % 4) % z.shape[1]
    got = targeted_dlr_loss(torch.from_numpy(z), torch.from_numpy(y), torch.from_numpy(t))
    np.testing.assert_allclose(got.numpy(), _reference_targeted_dlr(z, y, t), rtol=1e-12)


def test_losses_in_float32_match_float64() -> None:
    z, y = _logits(4)
    z32, y_t = torch.from_numpy(z).float(), torch.from_numpy(y)
    torch.testing.assert_close(
        dlr_loss(z32, y_t).double(), dlr_loss(torch.from_numpy(z), y_t), rtol=1e-5, atol=1e-6
    )


def test_too_few_classes_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="at least 3 classes, got logits with 2"):
        dlr_loss(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 4 classes, got logits with 3"):
        targeted_dlr_loss(
            torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"shape \(B, classes\)"):
        ce_loss(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        ce_loss(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="target must have shape"):
        targeted_dlr_loss(
            torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(1, dtype=torch.long)
        )
