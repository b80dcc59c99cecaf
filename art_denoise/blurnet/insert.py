"""Insert BlurNet low-pass layers after named submodules of an existing model.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256: a depthwise blur right after the first convolution.

Storage follows :mod:`art_denoise.blocks.insert`, with the child name ``lowpass``:

- after a ``nn.Sequential`` ``s``, the layer is added as its last child ``s.lowpass``;
- after any other module ``m``, the layer is registered as the child ``m.lowpass`` (which
  ``m.forward`` never calls) and a forward hook on ``m`` replaces ``m``'s output by
  ``m.lowpass(output)``.

The model's original ``state_dict`` keys are unchanged; a learnable layer adds
``<layer>.lowpass.weight`` (fixed kernels are non-persistent buffers and add nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from art_denoise.blocks.insert import _example_input, _output_shapes, _valid_names
from art_denoise.blurnet.lowpass import LowPass2d
from art_denoise.models.io import MODEL_TRANSFORMS, record_transform

__all__ = ["first_conv", "insert_lowpass"]


def first_conv(model: nn.Module) -> str:
    """Name of the first ``nn.Conv2d`` of ``model`` in ``named_modules()`` order.

    Raises:
        ValueError: the model has no ``nn.Conv2d``.

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> first_conv(SmallCNN(input_shape=(1, 8, 8)))
        'stage1.0'
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(
        f"{type(model).__name__} has no nn.Conv2d; name the layer, from: "
        f"{', '.join(_valid_names(model))}"
    )


def _resolve(model: nn.Module, after: str | Sequence[str] | None) -> list[str]:
    if after is None:
        return [first_conv(model)]
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, Sequence) or not all(isinstance(n, str) for n in after):
        raise TypeError(f"after must be a layer name or a list of names, got {after!r}")
    names = list(after)
    if not names:
        raise ValueError("after is empty: name at least one layer")
    valid = _valid_names(model)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown}; valid names are: {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise ValueError(f"after names a layer twice: {names}")
    modules = dict(model.named_modules())
    taken = [n for n in names if hasattr(modules[n], "lowpass")]
    if taken:
        raise ValueError(f"layer(s) {taken} already have a low-pass layer (a `lowpass` attribute)")
    return names


def _shapes_without_forward(
    model: nn.Module, names: list[str]
) -> dict[str, tuple[int, ...]] | None:
    """(1, C) per name when every named layer is a ``Conv2d`` (no input shape needed)."""
    modules = dict(model.named_modules())
    if not all(isinstance(modules[n], nn.Conv2d) for n in names):
        return None
    return {n: (1, int(modules[n].out_channels)) for n in names}


def _attach(module: nn.Module, layer: LowPass2d) -> None:
    module.add_module("lowpass", layer)
    if not isinstance(module, nn.Sequential):  # a Sequential runs its new last child itself
        module.register_forward_hook(layer._after)


def insert_lowpass(
    model: nn.Module,
    after: str | Sequence[str] | None = None,
    *,
    kernel_size: int = 5,
    kind: str = "box",
    sigma: float | None = None,
    input_shape: Sequence[int] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Put a :class:`LowPass2d` right after each named submodule of ``model`` (BlurNet).

    The channels of each layer are read from one forward pass of a zero input of shape
    ``(1, *input_shape)`` (``model.input_shape`` unless given), in eval mode without
    gradients (BatchNorm statistics untouched); that pass also checks that
    ``kernel_size`` fits the feature map. A model without an input shape works when every
    named layer is an ``nn.Conv2d``: its ``out_channels`` is used and the map size is
    checked at the first forward pass instead. How the layers are stored is described in
    this module's docstring.

    The returned model records the transform, so :func:`art_denoise.models.save_model` /
    ``load_model`` rebuild it (``load_model`` needs :mod:`art_denoise.blurnet` imported).

    Args:
        model: the network; left unchanged unless ``inplace=True``.
        after: a dotted name (or a list of them) from ``model.named_modules()``;
            ``None`` for the first ``nn.Conv2d`` (the paper's placement).
        kernel_size: k, odd; the paper used 3, 5 and 7.
        kind: ``"box"``, ``"gaussian"`` or ``"learnable"`` (see :class:`LowPass2d`).
        sigma: the Gaussian's standard deviation, for ``kind="gaussian"`` only.
        input_shape: (C, H, W) of one example, when the model has no ``input_shape``.
        inplace: modify ``model`` itself instead of a deep copy.

    Returns:
        The model with the low-pass layers.

    Raises:
        ValueError: an unknown layer name (the message lists the valid ones), a layer that
            already has a low-pass layer or whose output is not a (B, C, H, W) map, a
            kernel larger than that map, no input shape, or a bad setting.
        TypeError: ``after`` is not a name or list of names, or a setting of a wrong type.

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> model = insert_lowpass(SmallCNN(input_shape=(1, 8, 8)), kernel_size=3)
        >>> model.stage1[0].lowpass
        LowPass2d(32, kernel_size=3, kind='box')
    """
    names = _resolve(model, after)
    LowPass2d(1, kernel_size, kind, sigma=sigma)  # bad settings fail before any forward pass
    shapes = None
    if input_shape is None and getattr(model, "input_shape", None) is None:
        shapes = _shapes_without_forward(model, names)
    if shapes is None:
        example = _example_input(model, input_shape)
        if not inplace:
            model = copy.deepcopy(model)
        shapes = _output_shapes(model, names, example)
    elif not inplace:
        model = copy.deepcopy(model)
    ref: torch.Tensor | None = next(iter(model.parameters()), None)
    modules = dict(model.named_modules())
    layers: dict[str, LowPass2d] = {}
    for name in names:
        shape = shapes[name]
        if len(shape) == 4 and kernel_size > min(shape[2], shape[3]):
            raise ValueError(
                f"kernel_size {kernel_size} is larger than the {shape[2]}x{shape[3]} output "
                f"of layer {name!r}"
            )
        layer = LowPass2d(shape[1], kernel_size, kind, sigma=sigma)
        if ref is not None and ref.is_floating_point():
            layer = layer.to(device=ref.device, dtype=ref.dtype)
        layers[name] = layer.train(modules[name].training)
    for name, layer in layers.items():
        _attach(modules[name], layer)
    settings: dict[str, Any] = {"after": names, "kernel_size": int(kernel_size), "kind": kind}
    if kind == "gaussian":
        settings["sigma"] = layers[names[0]].sigma
    if input_shape is not None:
        settings["input_shape"] = [int(v) for v in input_shape]
    record_transform(model, "insert_lowpass", **settings)
    return model


def _replay(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Rebuild the insertion recorded in a model file (``load_model``)."""
    return insert_lowpass(model, inplace=True, **kwargs)


MODEL_TRANSFORMS["insert_lowpass"] = _replay
