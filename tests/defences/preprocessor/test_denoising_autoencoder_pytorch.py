from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_denoise.autoencoder import add_gaussian_noise
from art_denoise.defences.preprocessor import AUTOENCODER_SCHEMA, DenoisingAutoencoderPyTorch
from art_denoise.models import ModelFileError

SHAPE = (1, 8, 8)


def _new(**kwargs) -> DenoisingAutoencoderPyTorch:
    return DenoisingAutoencoderPyTorch(SHAPE, device_type="cpu", **kwargs)


def _reconstruction_mse(pre: DenoisingAutoencoderPyTorch, x: torch.Tensor) -> float:
    """MSE to the clean ``x`` of the deterministic map on ``x`` + N(0, 0.1^2) (seeded)."""
    torch.manual_seed(123)
    noisy = add_gaussian_noise(x, 0.1)
    noise_on = pre.inference_noise
    pre.inference_noise = False
    try:
        with torch.no_grad():
            out = pre.forward(noisy)[0]
    finally:
        pre.inference_noise = noise_on
    return float(((out - x) ** 2).mean())


@pytest.fixture(scope="module")
def fitted(digits) -> tuple[DenoisingAutoencoderPyTorch, float]:
    """(one autoencoder fitted on digits, its reconstruction MSE before fitting)."""
    x_tr, _, x_te, _ = digits
    torch.manual_seed(0)
    pre = _new(n_layers=1, hidden=16, noise_sigma=0.1)
    pre._is_fitted = True  # to measure the untrained autoencoder
    before = _reconstruction_mse(pre, torch.from_numpy(x_te))
    pre._is_fitted = False
    pre.fit(x_tr, nb_epochs=10, batch_size=32, lr=3e-3, seed=0)
    return pre, before


def test_fit_lowers_the_reconstruction_error(fitted, digits) -> None:
    pre, before = fitted
    x_te = torch.from_numpy(digits[2])
    after = _reconstruction_mse(pre, x_te)
    torch.manual_seed(123)
    noise_only = float(((add_gaussian_noise(x_te, 0.1) - x_te) ** 2).mean())
    message = f"MSE before {before:.5f}, after {after:.5f}, noisy input {noise_only:.5f}"
    assert after < 0.1 * before, message
    assert after < noise_only, message  # it removes noise, not only learns the digits
    losses = pre.train_losses
    assert len(losses) == 1 and len(losses[0]) == 10 and losses[0][-1] < losses[0][0]
    assert pre.is_fitted


def test_forward_is_random_through_the_global_rng(fitted) -> None:
    pre, _ = fitted
    x = torch.rand(4, *SHAPE)
    with torch.no_grad():
        torch.manual_seed(7)
        a = pre.forward(x)[0]
        b = pre.forward(x)[0]
        torch.manual_seed(7)
        c = pre.forward(x)[0]
    assert float((a - b).abs().max()) > 1e-3
    torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-6)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_gradients_flow_through_the_noise(fitted) -> None:
    pre, _ = fitted
    x = torch.rand(3, *SHAPE, requires_grad=True)
    pre.forward(x)[0].pow(2).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().sum()) > 0


def test_inside_an_art_classifier(fitted, digits, digits_model) -> None:
    pre, _ = fitted
    _, _, x_te, y_te = digits
    clf = PyTorchClassifier(
        digits_model,
        loss=nn.CrossEntropyLoss(),
        input_shape=SHAPE,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[pre],
        device_type="cpu",
    )
    pred = clf.predict(x_te[:64])
    assert pred.shape == (64, 10)
    grad = clf.loss_gradient(x_te[:64], np.eye(10, dtype=np.float32)[y_te[:64]])
    assert grad.shape == (64, *SHAPE) and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    accuracy = float((clf.predict(x_te).argmax(1) == y_te).mean())
    assert accuracy > 0.8, f"clean accuracy through the autoencoder: {accuracy:.3f}"


def test_save_and_load_round_trip(fitted, tmp_path) -> None:
    pre, _ = fitted
    path = pre.save(tmp_path / "ae.safetensors")
    description = json.loads(path.with_suffix(".json").read_text())
    assert description["schema"] == AUTOENCODER_SCHEMA and description["is_fitted"]
    assert description["config"]["input_shape"] == [1, 8, 8]
    loaded = DenoisingAutoencoderPyTorch.load(path, device_type="cpu", inference_noise=False)
    assert loaded.is_fitted and loaded.train_losses == pre.train_losses
    assert (loaded.n_layers, loaded.hidden, loaded.noise_sigma) == (1, 16, 0.1)
    x = torch.rand(5, *SHAPE)
    pre.inference_noise = False
    try:
        assert torch.equal(loaded.forward(x)[0], pre.forward(x)[0])  # exact: the same weights
    finally:
        pre.inference_noise = True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ae.json", "ae.safetensors"]


def test_load_errors(fitted, tmp_path) -> None:
    pre, _ = fitted
    path = pre.save(tmp_path / "ae.safetensors")
    with pytest.raises(TypeError, match=r"cannot override \['n_layers'\]"):
        DenoisingAutoencoderPyTorch.load(path, n_layers=2)
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match="does not match the hash"):
        DenoisingAutoencoderPyTorch.load(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelFileError, match="description not found"):
        DenoisingAutoencoderPyTorch.load(path)
    with pytest.raises(ValueError, match=r"must end in .safetensors"):
        pre.save(tmp_path / "ae.pt")


def test_seeded_fit_is_reproducible_and_leaves_the_global_rng(digits) -> None:
    x = digits[0][:64]
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        pre = _new(n_layers=2, hidden=4)
        state = torch.get_rng_state()
        pre.fit(x, nb_epochs=1, batch_size=32, seed=3)
        assert torch.equal(torch.get_rng_state(), state)
        weights.append(pre.model.state_dict())
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=1e-6, atol=1e-7)


def test_first_layers_of_a_deep_stack_are_the_shallow_stack_fitted_alone(digits) -> None:
    """Reference: a 2-stack built and fitted on its own with the same seeds."""
    x = digits[0][:64]
    stacks = {}
    for n in (2, 3):
        torch.manual_seed(1)
        pre = _new(n_layers=n, hidden=4, inference_noise=False, clip_values=(0.0, 1.0))
        pre.fit(x, nb_epochs=2, batch_size=32, seed=3)
        stacks[n] = pre
    state = torch.get_rng_state()
    two = stacks[3].first_layers(2)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert two.n_layers == 2 and two.is_fitted and two.inference_noise is False
    assert two.train_losses == stacks[3].train_losses[:2] == stacks[2].train_losses
    for key, value in stacks[2].model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[key], value, rtol=1e-6, atol=1e-7)
    xt = torch.from_numpy(digits[2][:8])
    torch.testing.assert_close(two.forward(xt)[0], stacks[2].forward(xt)[0], rtol=1e-5, atol=1e-6)
    # a copy: training the deep stack further leaves it alone
    with torch.no_grad():
        stacks[3].model.layers[0].out.weight.add_(1.0)
    assert not torch.allclose(two.model.layers[0].out.weight, stacks[3].model.layers[0].out.weight)
    for bad in (0, 4):
        with pytest.raises(ValueError, match="n_layers"):
            stacks[3].first_layers(bad)


def test_other_clip_values_are_scaled(digits) -> None:
    x = digits[0][:32] * 255.0
    pre = _new(hidden=4, clip_values=(0.0, 255.0))
    pre.fit(x, nb_epochs=1, seed=0)
    out = pre.forward(torch.from_numpy(x))[0].detach()
    assert float(out.min()) >= 0.0 and float(out.max()) <= 255.0 and float(out.max()) > 1.0
    with pytest.raises(ValueError, match=r"outside clip_values \(0.0, 1.0\)"):
        _new(hidden=4).fit(x, nb_epochs=1)


def test_unfitted_forward_and_wrong_shapes() -> None:
    pre = _new(hidden=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        pre.forward(torch.rand(1, *SHAPE))
    pre._is_fitted = True
    with pytest.raises(ValueError, match="channels-last data"):
        pre.forward(torch.rand(2, 8, 8, 1))


def test_set_params_revalidates() -> None:
    pre = _new(hidden=4)
    pre.set_params(inference_sigma=0.2)
    assert pre.inference_sigma == 0.2
    with pytest.raises(ValueError, match="cannot change after construction"):
        pre.set_params(n_layers=2)


class BadCase(NamedTuple):
    kwargs: dict
    error: type[Exception]
    match: str


BAD = {
    "n_layers 0": BadCase({"n_layers": 0}, ValueError, "n_layers must be >= 1, got 0"),
    "n_layers float": BadCase({"n_layers": 1.5}, TypeError, "1.5"),
    "hidden": BadCase({"hidden": 0}, ValueError, "hidden must be >= 1, got 0"),
    "noise_sigma": BadCase({"noise_sigma": -0.1}, ValueError, "noise_sigma .* got -0.1"),
    "inference_sigma": BadCase({"inference_sigma": -1}, ValueError, "inference_sigma .* -1"),
    "inference_noise": BadCase({"inference_noise": 1}, TypeError, "inference_noise .* 1"),
    "clip": BadCase({"clip_values": (0.0, 0.0)}, ValueError, r"\(0.0, 0.0\)"),
    "clip none": BadCase({"clip_values": None}, TypeError, "None"),
    "device": BadCase({"device_type": "tpu"}, ValueError, "'tpu'"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_arguments(case: BadCase) -> None:
    kwargs = {"device_type": "cpu", **case.kwargs}
    with pytest.raises(case.error, match=case.match):
        DenoisingAutoencoderPyTorch(SHAPE, **kwargs)


@pytest.mark.parametrize("shape", [(1, 8), (0, 8, 8), (1, 8, 8.0)], ids=str)
def test_bad_input_shape(shape) -> None:
    with pytest.raises(ValueError, match=r"input_shape must be three positive ints"):
        DenoisingAutoencoderPyTorch(shape, device_type="cpu")


FIT_BAD = {
    "above 1": (lambda x: x + 0.5, ValueError, r"values in \[0.5, 1.5\], outside clip_values"),
    "negative": (lambda x: x - 0.25, ValueError, r"values in \[-0.25"),
    "channels last": (lambda x: x.transpose(0, 2, 3, 1), ValueError, "channels-last data"),
    "wrong size": (lambda x: x[:, :, :4, :4], ValueError, r"\(B, \*\(1, 8, 8\)\)"),
    "empty": (lambda x: x[:0], ValueError, "empty"),
    "ints": (lambda x: (x * 16).astype(np.int64), TypeError, "int64"),
    "nan": (lambda x: np.where(x > 0.5, np.nan, x).astype(np.float32), ValueError, "NaN"),
}


@pytest.mark.parametrize("case", FIT_BAD.values(), ids=FIT_BAD.keys())
def test_fit_rejects_bad_data(digits, case) -> None:
    change, error, match = case
    with pytest.raises(error, match=match):
        _new(hidden=4).fit(change(digits[0][:16]), nb_epochs=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nb_epochs": 0}, ValueError, "nb_epochs must be >= 1, got 0"),
        ({"batch_size": -1}, ValueError, "batch_size must be >= 1, got -1"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"epochs": 3}, TypeError, "unknown fit argument"),
    ],
    ids=["epochs", "batch", "lr", "seed", "unknown"],
)
def test_fit_rejects_bad_settings(digits, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        _new(hidden=4).fit(digits[0][:16], **kwargs)


# --------------------------------------------- values that mean nothing, at inference


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).random((n, *SHAPE), dtype=np.float32)


def _with(value: float) -> np.ndarray:
    x = _images()
    x[1, 0, 2, 3] = value
    return x


PREDICT_BAD = {
    "5.0 above clip_values": (lambda: _with(5.0), ValueError, ("[", "5", "clip_values (0, 1)")),
    "a negative value": (lambda: _with(-0.5), ValueError, ("-0.5", "clip_values (0, 1)")),
    "NaN": (lambda: _with(np.nan), ValueError, ("1 NaN or inf value(s) of 256",)),
    "inf": (lambda: _with(np.inf), ValueError, ("1 NaN or inf value(s)",)),
    "int64 images": (
        lambda: (_images() * 255).astype(np.int64),
        TypeError,
        ("torch.int64", "floating-point"),
    ),
}


@pytest.mark.parametrize("case", PREDICT_BAD.values(), ids=PREDICT_BAD.keys())
@pytest.mark.parametrize("entry", ["forward", "ART __call__", "ART classifier predict"])
def test_inference_refuses_values_outside_what_the_autoencoders_learnt(fitted, case, entry) -> None:
    pre, _ = fitted
    make, error, named = case
    x = make()
    before = {k: v.clone() for k, v in pre.model.state_dict().items()}
    with pytest.raises(error) as info:
        if entry == "forward":
            pre.forward(torch.from_numpy(x))
        elif entry == "ART __call__":
            pre(x)
        else:
            model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
            clf = PyTorchClassifier(
                model, nn.CrossEntropyLoss(), SHAPE, 10, clip_values=(0.0, 1.0),
                preprocessing_defences=[pre], device_type="cpu",
            )  # fmt: skip
            clf.predict(x)
    message = str(info.value)
    assert "\n" not in message and all(part in message for part in named), message
    assert all(torch.equal(v, before[k]) for k, v in pre.model.state_dict().items())


def test_inference_accepts_the_bounds_and_other_clip_values(fitted) -> None:
    pre, _ = fitted
    x = torch.from_numpy(_images())
    x[0] = 0.0
    x[1] = 1.0
    out = pre.forward(x)[0]
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    wide = _new(hidden=4, clip_values=(0.0, 255.0))
    wide._is_fitted = True
    assert wide.forward(x * 255)[0].shape == x.shape
    with pytest.raises(ValueError, match=r"outside clip_values \(0, 255\)"):
        wide.forward(x * 300)


# --------------------------------------------- the autoencoder's files, checked as a whole


def _edit_description(path, change, *, rehash: bool) -> None:
    from art_denoise.models.io import DESCRIPTION_HASH, description_digest

    jpath = path.with_suffix(".json")
    description = json.loads(jpath.read_text())
    change(description)
    if rehash:
        description[DESCRIPTION_HASH] = description_digest(description)
    jpath.write_text(json.dumps(description))


AE_FILE_BAD = {
    "hidden changed": (lambda d: d["config"].update(hidden=8), False, ModelFileError, "hash"),
    "losses edited": (lambda d: d["train_losses"][0].pop(), False, ModelFileError, "hash"),
    "config a list": (lambda d: d.update(config=[1]), True, ValueError, "field 'config'"),
    "losses not lists": (
        lambda d: d.update(train_losses=[0.1]),
        True,
        ValueError,
        "field 'train_losses'",
    ),
    "is_fitted a string": (lambda d: d.update(is_fitted="yes"), True, ValueError, "is_fitted"),
}


@pytest.mark.parametrize("case", AE_FILE_BAD.values(), ids=AE_FILE_BAD.keys())
def test_an_edited_or_malformed_autoencoder_description_is_refused(fitted, tmp_path, case):
    pre, _ = fitted
    change, rehash, error, named = case
    path = pre.save(tmp_path / "ae.safetensors")
    _edit_description(path, change, rehash=rehash)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(error) as info:
        DenoisingAutoencoderPyTorch.load(path)
    message = str(info.value)
    assert "\n" not in message and named in message and "ae.json" in message, message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_legacy_autoencoder_pair_loads_with_a_warning(fitted, tmp_path) -> None:
    from art_denoise.defences.preprocessor.denoising_autoencoder_pytorch import (
        LEGACY_AUTOENCODER_SCHEMA,
    )
    from art_denoise.models.io import DESCRIPTION_HASH

    pre, _ = fitted
    path = pre.save(tmp_path / "ae.safetensors")

    def legacy(description: dict) -> None:
        description["schema"] = LEGACY_AUTOENCODER_SCHEMA
        description.pop(DESCRIPTION_HASH)

    _edit_description(path, legacy, rehash=False)
    with pytest.warns(UserWarning, match="older autoencoder description"):
        loaded = DenoisingAutoencoderPyTorch.load(path, inference_noise=False)
    assert loaded.train_losses == pre.train_losses
    for key, value in pre.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_saving_non_finite_autoencoder_weights_writes_nothing(tmp_path) -> None:
    pre = _new(hidden=4)
    with torch.no_grad():
        next(pre.model.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(ValueError, match=r"non-finite weights: tensor '.*' \(1 of"):
        pre.save(tmp_path / "ae.safetensors")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------- save: overwrite=False and the hash
@pytest.mark.parametrize(
    "existing", [("ae.safetensors", "ae.json"), ("ae.safetensors",), ("ae.json",)]
)
def test_save_without_overwrite_refuses_existing_files_and_writes_nothing(
    fitted, tmp_path, existing
) -> None:
    pre, _ = fitted
    for name in existing:
        (tmp_path / name).write_bytes(f"another run's {name}".encode())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="already exists") as info:
        pre.save(tmp_path / "ae.safetensors", overwrite=False)
    assert str(tmp_path / existing[0]) in str(info.value)
    # the other files are byte for byte as they were, and no file was added (no temp left)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_save_without_overwrite_writes_a_new_pair_and_the_default_replaces(
    fitted, tmp_path
) -> None:
    pre, _ = fitted
    path = pre.save(tmp_path / "ae.safetensors", overwrite=False)
    first = path.read_bytes()
    assert DenoisingAutoencoderPyTorch.load(path).train_losses == pre.train_losses
    other = _new(n_layers=1, hidden=16, noise_sigma=0.3)  # other weights, same architecture
    other.save(path)  # overwrite=True, as before this keyword existed
    assert path.read_bytes() != first
    assert DenoisingAutoencoderPyTorch.load(path).noise_sigma == pytest.approx(0.3)


def test_the_recorded_hash_is_of_the_bytes_this_save_wrote(fitted, tmp_path, monkeypatch):
    """Another process replaces the weights between this save's two files (another run
    into the same directory): the description must keep this save's hash, so that the
    mixed pair is refused when loaded instead of loading the other weights with this
    save's settings and losses (same architecture: nothing else would tell them apart)."""
    import hashlib

    from art_denoise.defences.preprocessor import denoising_autoencoder_pytorch as module

    pre, _ = fitted
    torch.manual_seed(1)
    theirs = _new(n_layers=1, hidden=16, noise_sigma=0.3).save(tmp_path / "other.safetensors")
    their_bytes = theirs.read_bytes()
    real = module.write_description
    ours: dict[str, bytes] = {}

    def concurrent(path, description, **kwargs):
        ours["bytes"] = path.read_bytes()
        path.write_bytes(their_bytes)  # the other run's weights land here
        real(path, description, **kwargs)

    monkeypatch.setattr(module, "write_description", concurrent)
    path = pre.save(tmp_path / "ae.safetensors")
    recorded = json.loads(path.with_suffix(".json").read_text())["sha256"]
    assert recorded == hashlib.sha256(ours["bytes"]).hexdigest()
    assert recorded != hashlib.sha256(their_bytes).hexdigest()
    with pytest.raises(ModelFileError, match="does not match the hash in its description"):
        DenoisingAutoencoderPyTorch.load(path)
    # this save's bytes are the fitted weights: put back, the pair loads as saved
    path.write_bytes(ours["bytes"])
    loaded = DenoisingAutoencoderPyTorch.load(path)
    assert loaded.train_losses == pre.train_losses
    for key, value in pre.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value.cpu())
