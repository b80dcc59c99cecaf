"""Expectation over Transformation: the wrapper, every backend, and what it changes."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from art_denoise.attacks import AttackSpec
from art_denoise.attacks.backends import available_backends, get_backend
from art_denoise.attacks.eot import EOTModel, is_randomized
from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch
from art_denoise.evaluation import evaluate


class Noisy(nn.Module):
    """Adds fresh Gaussian noise at every call, then a fixed linear classifier."""

    def __init__(self, sigma: float = 0.3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(64, 10)
        self.sigma = sigma
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear((x + self.sigma * torch.randn_like(x)).flatten(1))


class Defended(nn.Module):
    """An ART preprocessor (the noisy autoencoder) in front of a classifier."""

    def __init__(self, pre: DenoisingAutoencoderPyTorch, model: nn.Module) -> None:
        super().__init__()
        self.pre, self.model = pre, model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.pre.forward(x)[0])


def test_eot_model_is_the_mean_of_independent_draws() -> None:
    model = Noisy()
    x = torch.rand(3, 1, 8, 8)
    torch.manual_seed(5)
    got = EOTModel(model, 4)(x)
    torch.manual_seed(5)
    ref = torch.stack([model(x) for _ in range(4)]).mean(0)
    torch.testing.assert_close(got, ref)
    det = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    torch.testing.assert_close(EOTModel(det, 16)(x), det(x))


def test_eot_gradient_is_the_mean_of_the_per_draw_gradients() -> None:
    model = Noisy()
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    torch.manual_seed(1)
    (g_eot,) = torch.autograd.grad(EOTModel(model, 8)(x)[:, 3].sum(), x)
    torch.manual_seed(1)
    grads = []
    for _ in range(8):
        (g,) = torch.autograd.grad(model(x)[:, 3].sum(), x)
        grads.append(g)
    torch.testing.assert_close(g_eot, torch.stack(grads).mean(0))


def test_is_randomized() -> None:
    x = torch.rand(4, 1, 8, 8)
    assert is_randomized(Noisy(), x)
    assert not is_randomized(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), x)


def test_bad_eot_settings() -> None:
    with pytest.raises(ValueError, match="eot_samples"):
        AttackSpec(attack="pgd", eps=0.1, step_size=0.01, steps=2, eot_samples=0)
    with pytest.raises(ValueError, match="samples"):
        EOTModel(Noisy(), 0)
    with pytest.raises(TypeError, match="Module"):
        EOTModel("model", 4)  # type: ignore[arg-type]
    spec = AttackSpec(attack="pgd", eps=0.1, step_size=0.01, steps=2, eot_samples=16)
    assert spec.name == "pgd-linf+eot16" and spec.key == "pgd-linf+eot16@0.1"


@pytest.mark.parametrize("backend", ["art", "native", "torchattacks", "foolbox"])
def test_every_backend_attacks_the_eot_model(backend) -> None:
    if backend not in available_backends():
        pytest.skip(f"{backend} plugin not installed")
    model = Noisy()
    x, y = torch.rand(5, 1, 8, 8) * 0.5 + 0.25, torch.arange(5)
    plain = AttackSpec(attack="pgd", eps=0.05, step_size=0.01, steps=3, random_start=False)
    counts = {}
    for k in (1, 4):
        model.calls = 0
        get_backend(backend).run(model, x, y, plain.replace(eot_samples=k), seed=0)
        counts[k] = model.calls
    # every forward pass the library makes (3 gradient steps, and whatever predictions it
    # needs) costs 4 calls of the model; the harness's own class-count probe costs one
    library_calls = counts[1] - 1
    assert library_calls >= 3
    assert counts[4] - 1 == 4 * library_calls


@pytest.fixture(scope="module")
def noisy_autoencoder(digits) -> DenoisingAutoencoderPyTorch:
    x_tr = digits[0]
    pre = DenoisingAutoencoderPyTorch((1, 8, 8), noise_sigma=0.3, device_type="cpu")
    pre.fit(x_tr, nb_epochs=10, seed=0)
    return pre


def test_eot_pgd_beats_plain_pgd_on_the_noisy_autoencoder(
    digits, digits_model, noisy_autoencoder
) -> None:
    """Same seed, same PGD: averaging 8 draws per gradient breaks more images."""
    _, _, x_te, y_te = digits
    model = Defended(noisy_autoencoder, digits_model).eval()
    x, y = torch.from_numpy(x_te[:150]), torch.from_numpy(y_te[:150])
    spec = AttackSpec(attack="pgd", eps=0.1, step_size=0.02, steps=10, random_start=True)

    def robust(k: int) -> float:
        adv = get_backend("art").run(model, x, y, spec.replace(eot_samples=k), seed=0)
        torch.manual_seed(123)  # the same 10 deployment draws for both
        with torch.no_grad():
            return float(torch.stack([model(adv).argmax(1) == y for _ in range(10)]).float().mean())

    plain, eot = robust(1), robust(8)
    assert eot < plain - 0.02, (plain, eot)


def test_evaluate_records_eot_and_warns_without_it() -> None:
    model = Noisy(sigma=0.05)
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    spec = AttackSpec(attack="fgsm", eps=0.05)
    with pytest.warns(RuntimeWarning, match="randomised"):
        evaluate(model, x, y, attacks=[spec], backends=["art"], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = evaluate(
            model,
            x,
            y,
            attacks=[spec, spec.replace(eot_samples=4)],
            backends=["art"],
            progress=False,
        )
    first, second = report.models[0].results
    assert (first.eot_samples, second.eot_samples) == (1, 4)
    assert second.attack == "fgsm-linf+eot4"
    assert "+eotK" in report.to_markdown()
    assert report.to_dict()["models"][0]["results"][1]["eot_samples"] == 4


def _nan_weights() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight[3, 5] = float("nan")
    return model


class _NaNSometimes(nn.Module):
    """NaN logits on every other call: what a broken randomised model would look like."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.linear(x.flatten(1))
        return out * float("nan") if self.calls % 2 == 0 else out


NOT_FINITE = {
    "NaN weights": (_nan_weights, "(4 and 4 of 40"),
    "NaN on one of the two calls": (_NaNSometimes, "(0 and 40 of 40"),
}


@pytest.mark.parametrize("case", NOT_FINITE.values(), ids=NOT_FINITE.keys())
def test_non_finite_outputs_are_an_error_not_randomness(case) -> None:
    make, counted = case
    with pytest.raises(ValueError) as info:
        is_randomized(make(), torch.rand(4, 1, 8, 8))
    message = str(info.value)
    assert "\n" not in message and counted in message and "not a randomised one" in message


def test_evaluate_refuses_nan_weights_without_calling_them_randomised() -> None:
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "randomised, use EOT" warning
        with pytest.raises(ValueError) as info:
            evaluate(_nan_weights(), x, y, attacks=[AttackSpec(attack="fgsm", eps=0.05)])
    message = str(info.value)
    # the planning's randomisation probe sees the NaN first
    assert "NaN or inf" in message and "not a randomised one" in message
    assert "\n" not in message and "EOT" not in message
