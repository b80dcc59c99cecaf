"""Insert BlurNet low-pass layers after named submodules of an existing model.

Raju & Lipasti, "BlurNet: Defense by Filtering the Feature Maps", 2019,
https://arxiv.org/abs/1908.02256: a depthwise blur right after the first convolution.

The layer is stored as the child ``<layer>.lowpass`` and run after ``<layer>`` as
:mod:`art_denoise.models.insertion` describes. The model's original ``state_dict`` keys are
unchanged; a learnable layer adds ``<layer>.lowpass.weight`` (fixed kernels are
non-persistent buffers and add nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from art_denoise.blurnet.lowpass import LowPass2d
from art_denoise.models.insertion import (
    attach_after,
    example_input,
    first_conv,
    output_shapes,
    resolve_layer_names,
    taken_layers,
)
from art_denoise.models.transforms import record_transform

__all__ = ["first_conv", "insert_lowpass", "replay_lowpass"]


def _resolve(model: nn.Module, after: str | Sequence[str] | None) -> list[str]:
    if after is None:
        names = [first_conv(model)]
    else:
        names = resolve_layer_names(model, after, expected="a layer name or a list of names")
    taken = taken_layers(model, names, "lowpass", LowPass2d)
    if taken:
        placement = "" if after is not None else " (the default placement, the first conv)"
        raise ValueError(
            f"layer(s) {taken}{placement} already have a low-pass layer after them (or a "
            "`lowpass` attribute); insert_lowpass was applied to this model already"
        )
    return names


def _shapes_without_forward(
    model: nn.Module, names: list[str]
) -> dict[str, tuple[int, ...]] | None:
    """(1, C) per name when every named layer is a ``Conv2d`` (no input shape needed)."""
    modules = dict(model.named_modules())
    if not all(isinstance(modules[n], nn.Conv2d) for n in names):
        return None
    return {n: (1, int(modules[n].out_channels)) for n in names}


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
    ``load_model`` rebuild it.

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
        example = example_input(model, input_shape)
        if not inplace:
            model = copy.deepcopy(model)
        shapes = output_shapes(model, names, example)
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
        attach_after(modules[name], "lowpass", layer)
    settings: dict[str, Any] = {"after": names, "kernel_size": int(kernel_size), "kind": kind}
    if kind == "gaussian":
        settings["sigma"] = layers[names[0]].sigma
    if input_shape is not None:
        settings["input_shape"] = [int(v) for v in input_shape]
    record_transform(model, "insert_lowpass", **settings)
    return model


def replay_lowpass(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Rebuild the insertion recorded in a model file (``load_model``'s entry point)."""
    return insert_lowpass(model, inplace=True, **kwargs)
