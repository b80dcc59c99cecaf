"""Stacked denoising autoencoders with input noise, as an ART ``PreprocessorPyTorch``.

The defense of the course report in REFERENCES: conv autoencoders trained to remove
Gaussian noise; at inference Gaussian noise is added before each one; one to four
stacked (CIFAR-10 under FGSM: 77.7 / 9.6 without, 65.7 / 53.3 with four layers).
Randomised input purification is the textbook case of obfuscated gradients (Athalye,
Carlini & Wagner, ICML 2018, https://arxiv.org/abs/1802.00420): the forward pass here is
random but differentiable (additive noise, straight-through clipping), so evaluate it
with EOT, averaging gradients over noise draws.
"""

from __future__ import annotations

import json
import os
import reprlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from safetensors import SafetensorError
from safetensors.torch import load_file

from art_denoise._files import _check_targets
from art_denoise._validation import (
    as_float_images,
    check_bool,
    check_choice,
    check_clip_values,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from art_denoise.autoencoder import NoisyAutoencoderStack, add_gaussian_noise
from art_denoise.models.io import (
    ModelDescriptionError,
    ModelFileError,
    nonfinite_tensor,
    read_description,
    write_description,
    write_weights,
)

__all__ = ["AUTOENCODER_SCHEMA", "LEGACY_AUTOENCODER_SCHEMA", "DenoisingAutoencoderPyTorch"]

AUTOENCODER_SCHEMA = "art-denoise/autoencoder/2"
#: The format before the description was hashed (weights only); loaded with a warning.
LEGACY_AUTOENCODER_SCHEMA = "art-denoise/autoencoder/1"

#: Settings that :meth:`DenoisingAutoencoderPyTorch.load` may change; the others
#: define the weights.
_LOAD_OVERRIDES = (
    "apply_fit",
    "apply_predict",
    "device_type",
    "inference_noise",
    "inference_sigma",
    "noise_sigma",
)
_ARCHITECTURE = ("input_shape", "n_layers", "hidden")


class DenoisingAutoencoderPyTorch(PreprocessorPyTorch):
    """Purify inputs with ``n_layers`` stacked conv denoising autoencoders (ART preprocessor).

    ``forward``: ``x -> AE_1(noise(x)) -> ... -> AE_n(noise(.))``, with
    ``noise(z) = clip(z + inference_sigma * N(0, 1), 0, 1)`` when ``inference_noise`` is
    on (the default, as in the source) — drawn from torch's global RNG, so
    ``torch.manual_seed`` makes a call reproducible and EOT can average over draws. The
    clipping has an identity gradient (BPDA, :func:`straight_through_clamp`) and the noise
    is additive, so ART's gradients flow through the whole defense. Inputs in
    ``clip_values`` are mapped to [0, 1] for the autoencoders and back (``sigma`` values
    are on that [0, 1] scale). Each autoencoder is
    :class:`~art_denoise.autoencoder.ConvAutoencoder`.

    Call :meth:`fit` (or :meth:`load` a fitted one) before use.

    Args:
        input_shape: (C, H, W) of one image, channels first.
        n_layers: number of stacked autoencoders, >= 1 (the source used 1 to 4).
        hidden: width of each autoencoder's first layer.
        noise_sigma: standard deviation of the training noise, >= 0.
        inference_noise: add noise before each autoencoder at inference.
        inference_sigma: its standard deviation, >= 0; ``None`` for ``noise_sigma``.
        clip_values: ``(min, max)`` of valid inputs.
        apply_fit: apply when training the classifier.
        apply_predict: apply at prediction (and attack) time.
        device_type: ``"gpu"`` (CUDA when present) or ``"cpu"``.

    Raises:
        ValueError: ``n_layers`` < 1, a negative sigma, a bad ``input_shape`` or
            ``clip_values``.
        TypeError: arguments of the wrong type.

    Shape:
        - Input: (B, C, H, W), as ``input_shape``
        - Output: (B, C, H, W)

    Example:
        >>> pre = DenoisingAutoencoderPyTorch((1, 8, 8), n_layers=2, hidden=4, device_type="cpu")
        >>> pre.fit(np.random.rand(16, 1, 8, 8).astype(np.float32), nb_epochs=1, seed=0)
        >>> pre.forward(torch.rand(3, 1, 8, 8))[0].shape
        torch.Size([3, 1, 8, 8])
    """

    params: ClassVar[list[str]] = [
        "input_shape",
        "n_layers",
        "hidden",
        "noise_sigma",
        "inference_noise",
        "inference_sigma",
        "clip_values",
    ]

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        *,
        n_layers: int = 1,
        hidden: int = 16,
        noise_sigma: float = 0.1,
        inference_noise: bool = True,
        inference_sigma: float | None = None,
        clip_values: tuple[float, float] = (0.0, 1.0),
        apply_fit: bool = False,
        apply_predict: bool = True,
        device_type: str = "gpu",
    ) -> None:
        check_choice("device_type", device_type, ("cpu", "gpu"))
        super().__init__(device_type=device_type, apply_fit=apply_fit, apply_predict=apply_predict)
        self.input_shape = input_shape
        self.n_layers = n_layers
        self.hidden = hidden
        self.noise_sigma = noise_sigma
        self.inference_noise = inference_noise
        self.inference_sigma = inference_sigma
        self.clip_values = clip_values
        self.train_losses: list[list[float]] = []
        self._model: NoisyAutoencoderStack | None = None
        self._check_params()
        self._model = NoisyAutoencoderStack(
            self.input_shape[0], self.n_layers, hidden=self.hidden, sigma=self.noise_sigma
        ).to(self.device)

    @property
    def model(self) -> NoisyAutoencoderStack:
        """The torch module: the stacked autoencoders (no ART inside)."""
        if self._model is None:  # only while __init__ runs
            raise RuntimeError("the autoencoders are not built yet")
        return self._model

    def _sigma(self) -> float:
        return float(self.noise_sigma if self.inference_sigma is None else self.inference_sigma)

    def _bounds(self) -> tuple[float, float]:
        low, high = self.clip_values
        return float(low), float(high)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Purify ``x`` (random when ``inference_noise``); ``y`` passes through.

        Raises:
            RuntimeError: not fitted yet.
            ValueError: ``x`` is not (B, *input_shape), holds NaN or inf, or has values
                outside ``clip_values`` (beyond a rounding tolerance of 1e-6 of the range).
            TypeError: ``x`` is not of a floating dtype (integer images are not scaled).
        """
        if not self.is_fitted:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: call fit(x) or load a saved one first"
            )
        shape = tuple(self.input_shape)
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            hint = " (channels-last data? transpose to NCHW)" if x.shape[-1] == shape[0] else ""
            raise ValueError(f"x must have shape (B, *{shape}), got {tuple(x.shape)}{hint}")
        self._check_values(x)
        model = self.model.eval()
        model.noise = bool(self.inference_noise)
        model.sigma = self._sigma()
        weight = next(model.parameters())
        low, high = self._bounds()
        z = (x.to(device=weight.device, dtype=weight.dtype) - low) / (high - low)
        out = model(z) * (high - low) + low
        return out.to(device=x.device, dtype=x.dtype), y

    def _check_values(self, x: torch.Tensor) -> None:
        """Refuse what the autoencoders would silently map to something: see :meth:`forward`."""
        if not x.is_floating_point():
            raise TypeError(
                f"x must hold floating-point values in clip_values {self.clip_values}, got "
                f"dtype {x.dtype}"
            )
        if x.numel() == 0:
            return
        with torch.no_grad():
            low_high = torch.aminmax(x.detach().float())
            finite = torch.isfinite(x).all()
            finite, lo, hi = torch.stack([finite.float(), *low_high]).tolist()
        if not finite:
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"x holds {bad} NaN or inf value(s) of {x.numel()}")
        low, high = self._bounds()
        slack = 1e-6 * (high - low)
        if lo < low - slack or hi > high + slack:
            raise ValueError(
                f"x has values in [{lo:.6g}, {hi:.6g}], outside clip_values ({low:g}, {high:g})"
            )

    def fit(
        self,
        x: np.ndarray | torch.Tensor,
        y: Any = None,
        *,
        nb_epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Train the autoencoders one after the other to remove Gaussian noise.

        Autoencoder l learns ``clean x -> x`` from ``noise(z_l)`` (``noise_sigma``), with
        ``z_l`` the output of the autoencoders before it as at inference (with their
        inference noise), under the MSE to the clean ``x``; Adam. ``train_losses[l]``
        holds its mean training loss per epoch. Labels are ignored.

        Args:
            x: training images (B, *input_shape) within ``clip_values``.
            y: ignored (ART's signature).
            nb_epochs: epochs per autoencoder.
            batch_size: images per step.
            lr: Adam's learning rate.
            seed: seeds the shuffling and the noise (a private generator; torch's global
                RNG is left alone); ``None`` draws from the global RNG.
            **kwargs: rejected (a misspelt setting must not be ignored).

        Raises:
            ValueError: ``x`` outside ``clip_values``, of the wrong shape (channels-last
                data is named as such), empty, or a bad setting.
            TypeError: ``x`` not a floating array or tensor, unknown keyword arguments.
        """
        if kwargs:
            raise TypeError(f"unknown fit argument(s): {', '.join(sorted(kwargs))}")
        epochs = check_positive_int("nb_epochs", nb_epochs)
        batch = check_positive_int("batch_size", batch_size)
        rate = check_positive("lr", lr)
        if seed is not None:
            check_positive_int("seed", seed, minimum=0)
        data = as_float_images(
            x, name="x", clip_values=self.clip_values, channels=self.input_shape[0]
        )
        if tuple(data.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"x must have shape (B, *{tuple(self.input_shape)}), got {tuple(data.shape)}"
            )
        if data.shape[0] == 0:
            raise ValueError("x is empty: fit needs at least one image")
        model = self.model
        weight = next(model.parameters())
        low, high = self._bounds()
        data = ((data - low) / (high - low)).to(device=weight.device, dtype=weight.dtype)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        before = self._sigma() if self.inference_noise else 0.0
        n = data.shape[0]
        losses: list[list[float]] = []
        model.train()
        for level, autoencoder in enumerate(model.layers):
            optimizer = torch.optim.Adam(autoencoder.parameters(), lr=rate)
            history = []
            for _ in range(epochs):
                order = torch.randperm(n, generator=generator).to(data.device)
                total = 0.0
                for start in range(0, n, batch):
                    clean = data[order[start : start + batch]]
                    with torch.no_grad():
                        z = clean
                        for previous in model.layers[:level]:
                            z = previous(add_gaussian_noise(z, before, generator=generator))
                    noisy = add_gaussian_noise(z, float(self.noise_sigma), generator=generator)
                    loss = F.mse_loss(autoencoder(noisy), clean)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * clean.shape[0]
                history.append(total / n)
            losses.append(history)
        model.eval()
        self.train_losses = losses
        self._is_fitted = True

    def _check_params(self) -> None:
        shape = self.input_shape
        if (
            not isinstance(shape, (tuple, list))
            or len(shape) != 3
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape)
        ):
            raise ValueError(f"input_shape must be three positive ints (C, H, W), got {shape!r}")
        self.input_shape = tuple(int(v) for v in shape)  # type: ignore[assignment]
        self.n_layers = check_positive_int("n_layers", self.n_layers)
        self.hidden = check_positive_int("hidden", self.hidden)
        self.noise_sigma = check_non_negative("noise_sigma", self.noise_sigma)
        check_bool("inference_noise", self.inference_noise)
        if self.inference_sigma is not None:
            self.inference_sigma = check_non_negative("inference_sigma", self.inference_sigma)
        clip = check_clip_values(self.clip_values, allow_none=False)
        self.clip_values = clip  # type: ignore[assignment]
        if self._model is not None:
            built = {
                "input_shape": (self._model.layers[0].channels,),
                "n_layers": len(self._model.layers),
                "hidden": self._model.layers[0].hidden,
            }
            now = {
                "input_shape": self.input_shape[:1],
                "n_layers": self.n_layers,
                "hidden": self.hidden,
            }
            changed = [k for k in built if built[k] != now[k]]
            if changed:
                raise ValueError(f"{changed} cannot change after construction; build a new one")

    def _config(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "n_layers": self.n_layers,
            "hidden": self.hidden,
            "noise_sigma": self.noise_sigma,
            "inference_noise": self.inference_noise,
            "inference_sigma": self.inference_sigma,
            "clip_values": list(self.clip_values),
            "apply_fit": self.apply_fit,
            "apply_predict": self.apply_predict,
        }

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write the weights (``.safetensors``) and a JSON description beside them.

        Both files are written atomically; the JSON, written last, holds the settings,
        whether it was fitted, the training losses, the weights' SHA-256 and its own
        (:mod:`art_denoise.models.io` describes the format). No pickle. The weights' hash
        is that of the bytes this call wrote, not of the file on disk when the JSON is
        written: if another process replaces the weights in between, or this one is killed
        between the two files, :meth:`load` refuses the pair (``ModelFileError``) instead
        of loading one save's weights with another's settings.

        Args:
            path: the weights file; the description is ``path`` with ``.json``.
            overwrite: replace files already there (the default). With ``False``, if
                either file exists, nothing is written and ``FileExistsError`` names it
                (checked just before writing: a file that appears during the few
                milliseconds of the write itself is not caught).

        Returns:
            The weights path.

        Raises:
            ValueError: ``path`` does not end in ``.safetensors``, or a weight is NaN or
                inf (named); nothing is written then.
            FileExistsError: ``overwrite`` is False and a file exists; nothing is written.
            FileWriteError: ``overwrite`` is False and something other than a file (a
                directory, a symlink) is where a file goes; nothing is written.
        """
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        description = {
            "schema": AUTOENCODER_SCHEMA,
            "class": type(self).__name__,
            "config": self._config(),
            "is_fitted": self.is_fitted,
            "train_losses": self.train_losses,
        }
        json.dumps(description, allow_nan=False)  # fail before writing anything if not JSON
        bad = nonfinite_tensor(tensors)
        if bad is not None:
            raise ValueError(f"cannot save an autoencoder with non-finite weights: tensor {bad}")
        if not overwrite:
            names = [path.name, path.with_suffix(".json").name]
            _check_targets(path.parent, names, (), overwrite=False)
        digest = write_weights(path, tensors, schema=AUTOENCODER_SCHEMA)
        write_description(path, description, sha256=digest)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> DenoisingAutoencoderPyTorch:
        """Rebuild a saved preprocessor (weights only, no pickle).

        Args:
            path: the ``.safetensors`` file written by :meth:`save`.
            **overrides: new values for ``inference_noise``, ``inference_sigma``,
                ``noise_sigma``, ``apply_fit``, ``apply_predict`` or ``device_type``.

        Raises:
            ModelFileError: a file missing or corrupt, or weights that do not match.
            TypeError: an override that is not allowed (the architecture is fixed).
        """
        bad = sorted(set(overrides) - set(_LOAD_OVERRIDES))
        if bad:
            raise TypeError(f"cannot override {bad} at load; allowed: {', '.join(_LOAD_OVERRIDES)}")
        path = Path(path)
        description = read_description(
            path, schema=AUTOENCODER_SCHEMA, what="autoencoder", legacy=(LEGACY_AUTOENCODER_SCHEMA,)
        )
        saved = _checked_fields(path, description)
        config = {**saved["config"], **overrides}
        try:
            shape = config.pop("input_shape")
            pre = cls(tuple(shape), **config)
            state = load_file(str(path), device="cpu")
            broken = nonfinite_tensor(state)
            if broken is not None:
                raise ModelFileError(f"{str(path)!r} holds non-finite weights: tensor {broken}")
            pre.model.load_state_dict(state, strict=True)
        except (KeyError, SafetensorError, RuntimeError, TypeError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelFileError(f"cannot load {str(path)!r}: {first}") from None
        pre.train_losses = saved["train_losses"]
        pre._is_fitted = saved["is_fitted"]
        return pre

    def first_layers(self, n_layers: int) -> DenoisingAutoencoderPyTorch:
        """A copy holding the first ``n_layers`` autoencoders of this stack (and their
        training losses), with the same settings otherwise.

        :meth:`fit` trains autoencoder ``l`` on the outputs of those before it only, so the
        first ``k`` of a stack fitted with a seed are the ``k``-stack that the same
        construction (same global seed) and the same :meth:`fit` would give: one fitted
        deep stack serves every shallower one.

        Args:
            n_layers: how many, ``1 <= n_layers <= self.n_layers``.

        Raises:
            ValueError: ``n_layers`` out of that range.

        Example:
            >>> pre = DenoisingAutoencoderPyTorch((1, 8, 8), n_layers=3, device_type="cpu")
            >>> pre.first_layers(2).n_layers, len(pre.first_layers(1).model.layers)
            (2, 1)
        """
        k = check_positive_int("n_layers", n_layers)
        if k > self.n_layers:
            raise ValueError(f"n_layers must be at most {self.n_layers} (this stack's), got {k}")
        fixed = ("input_shape", "n_layers")
        settings = {p: getattr(self, p) for p in self.params if p not in fixed}
        with torch.random.fork_rng(devices=[]):  # the new stack's initial weights, replaced
            copy = type(self)(
                self.input_shape,
                n_layers=k,
                **settings,
                apply_fit=self.apply_fit,
                apply_predict=self.apply_predict,
                device_type="gpu" if self.device.type == "cuda" else "cpu",
            )
        for mine, theirs in zip(self.model.layers[:k], copy.model.layers, strict=True):
            theirs.load_state_dict(mine.state_dict())
        copy.train_losses = [list(h) for h in self.train_losses[:k]]
        copy._is_fitted = self.is_fitted
        return copy

    def __repr__(self) -> str:
        inner = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.params)
        return f"{type(self).__name__}({inner}, fitted={self.is_fitted})"


def _is_loss_history(value: Any) -> bool:
    """A list (per autoencoder) of lists (per epoch) of numbers."""
    if not isinstance(value, list):
        return False
    return all(isinstance(h, list) and all(isinstance(v, (int, float)) for v in h) for h in value)


def _checked_fields(path: Path, description: dict[str, Any]) -> dict[str, Any]:
    """The description's ``config``, ``train_losses`` and ``is_fitted``, their types checked.

    Raises:
        ModelDescriptionError: a field of the wrong structure (named).
    """
    config = description.get("config", {})
    losses = description.get("train_losses", [])
    fitted = description.get("is_fitted", False)
    problems = {
        "config": None if isinstance(config, dict) else "a JSON object",
        "train_losses": None if _is_loss_history(losses) else "a list of lists of numbers",
        "is_fitted": None if isinstance(fitted, bool) else "true or false",
    }
    for key, expected in problems.items():
        if expected is not None:
            value = reprlib.repr(description.get(key))
            raise ModelDescriptionError(
                f"{str(path.with_suffix('.json'))!r}: field {key!r} must be {expected}, got {value}"
            )
    return {
        "config": config,
        "train_losses": [[float(v) for v in h] for h in losses],
        "is_fitted": fitted,
    }
