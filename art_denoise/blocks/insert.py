"""Insert denoising blocks after named submodules of an existing model.

A block is stored as the child ``<layer>.denoise`` and run after ``<layer>`` as
:mod:`art_denoise.models.insertion` describes: the model's original ``state_dict`` keys are
unchanged and the blocks add keys ``<layer>.denoise.*``, so an old checkpoint loads with
``strict=False`` (only the blocks' keys missing), and a checkpoint of the model with blocks
loads strictly into the same insertion applied to a fresh model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from art_denoise.blocks.denoising import DenoisingBlock
from art_denoise.models.insertion import (
    attach_after,
    example_input,
    layer_names,
    output_shapes,
    resolve_layer_names,
    taken_layers,
)
from art_denoise.models.transforms import record_transform

__all__ = ["PRESETS", "insert_denoising_blocks", "replay_denoising_blocks", "residual_blocks"]

#: Named placements: ``"stages"`` (the paper's "4 denoise") and ``"all-blocks"``
#: (after every residual block, the paper's "all denoise").
PRESETS = ("stages", "all-blocks")

_TORCHVISION_STAGES = ("layer1", "layer2", "layer3", "layer4")
_CONTAINERS = (nn.ModuleList, nn.ModuleDict)


def _is_residual_block(module: nn.Module) -> bool:
    if isinstance(module, (nn.Sequential, *_CONTAINERS, DenoisingBlock)):
        return False
    return hasattr(module, "downsample") or hasattr(module, "shortcut")


def residual_blocks(model: nn.Module) -> list[str]:
    """Names of the residual blocks of ``model``, in ``named_modules()`` order.

    The rule: a residual block is a module, other than a container, with a ``downsample``
    or a ``shortcut`` attribute (``None`` counts): torchvision's ``BasicBlock`` and
    ``Bottleneck`` have ``downsample``, this package's ``PreActBlock`` has ``shortcut``.
    Only the outermost such modules are listed, not those nested inside another one.

    Example:
        >>> from art_denoise.models import PreActResNet18
        >>> residual_blocks(PreActResNet18())[:3]
        ['layer1.0', 'layer1.1', 'layer2.0']
    """
    names: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f"{outer}.") for outer in names):
            continue
        if _is_residual_block(module):
            names.append(name)
    return names


def _resolve(model: nn.Module, after: str | Sequence[str]) -> list[str]:
    modules = dict(model.named_modules())
    if after == "stages":
        stages = tuple(getattr(model, "stages", _TORCHVISION_STAGES))
        missing = [s for s in stages if s not in modules]
        if missing:
            raise ValueError(
                f"after='stages' needs the stages {list(stages)} (the model's `stages` "
                f"attribute, else torchvision's layer1..layer4); missing {missing}. "
                f"Pass the names instead, from: {', '.join(layer_names(model))}"
            )
        return list(stages)
    if after == "all-blocks":
        names = residual_blocks(model)
        if not names:
            raise ValueError(
                "after='all-blocks' found no residual blocks (modules with a `downsample` "
                "or `shortcut` attribute) in the model; use after='stages' or pass names"
            )
        return names
    return resolve_layer_names(
        model,
        after,
        expected=f"{' or '.join(PRESETS)} or a list of names",
        presets=f" (or a preset: {', '.join(PRESETS)})",
    )


def _check_free(model: nn.Module, names: list[str]) -> None:
    for name in taken_layers(model, names, "denoise", DenoisingBlock)[:1]:
        raise ValueError(
            f"layer {name!r} already has a denoising block after it (or a `denoise` attribute)"
        )


def insert_denoising_blocks(
    model: nn.Module,
    after: str | Sequence[str] = "stages",
    filter: str = "nonlocal",
    *,
    input_shape: Sequence[int] | None = None,
    inplace: bool = False,
    **block_kwargs: Any,
) -> nn.Module:
    """Put a :class:`DenoisingBlock` after each named submodule of ``model``.

    The channels of each block are read from one forward pass of a zero input of shape
    ``(1, *input_shape)`` (``model.input_shape`` unless given), in eval mode and without
    gradients, so BatchNorm statistics are untouched. Fresh blocks are the identity, so
    the model's outputs do not change until the blocks are trained. How the blocks are
    stored (``<layer>.denoise``, original ``state_dict`` keys kept) is described in this
    module's docstring.

    The returned model records the transform (with the resolved names), so
    :func:`art_denoise.models.save_model` / ``load_model`` rebuild it.

    Args:
        model: the network; left unchanged unless ``inplace=True``.
        after: dotted names as in ``model.named_modules()``, or a preset:
            ``"stages"`` — after each stage (the paper's "4 denoise"): the names in
            ``model.stages`` if present, else torchvision's ``layer1`` .. ``layer4``;
            ``"all-blocks"`` — after every residual block, see :func:`residual_blocks`.
        filter: the blocks' filter, a key of :data:`art_denoise.blocks.FILTERS`.
        input_shape: (C, H, W) of one example, when the model has no ``input_shape``.
        inplace: modify ``model`` itself instead of a deep copy.
        **block_kwargs: further :class:`DenoisingBlock` arguments (``residual=False``) and
            filter settings (``embed=True``, ``kernel_size=3``); JSON-able values if the
            model is to be saved.

    Returns:
        The model with the blocks.

    Raises:
        ValueError: an unknown layer name (the message lists the valid ones), a preset
            that does not fit the model, no input shape, a layer whose output is not a
            (B, C, H, W) map, a layer that already has a block, or an unknown filter.
        TypeError: ``after`` is neither a preset nor a list of names, or a bad setting.

    Example:
        >>> from art_denoise.models import SmallCNN
        >>> model = SmallCNN(input_shape=(1, 8, 8)).eval()
        >>> denoised = insert_denoising_blocks(model, "stages", "nonlocal", embed=True).eval()
        >>> x = torch.rand(2, 1, 8, 8)
        >>> torch.equal(denoised(x), model(x))
        True
    """
    names = _resolve(model, after)
    _check_free(model, names)
    # build one block first, so that bad settings fail before any forward pass
    DenoisingBlock(1, filter, **block_kwargs)
    example = example_input(model, input_shape)
    if not inplace:
        model = copy.deepcopy(model)
    shapes = output_shapes(model, names, example)
    modules = dict(model.named_modules())
    blocks = {}
    for name in names:
        block = DenoisingBlock(shapes[name][1], filter, **block_kwargs)
        block = block.to(device=example.device, dtype=example.dtype).eval()
        try:  # fail here, not at the first forward, if the filter does not fit the map
            with torch.no_grad():
                block(example.new_zeros(shapes[name]))
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot put a {filter!r} block after {name!r}: {err}") from None
        blocks[name] = block.train(modules[name].training)
    for name, block in blocks.items():
        attach_after(modules[name], "denoise", block)
    settings: dict[str, Any] = {"after": names, "filter": filter, **block_kwargs}
    if input_shape is not None:
        settings["input_shape"] = [int(v) for v in input_shape]
    record_transform(model, "insert_denoising_blocks", **settings)
    return model


def replay_denoising_blocks(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Rebuild the insertion recorded in a model file (``load_model``'s entry point)."""
    return insert_denoising_blocks(model, inplace=True, **kwargs)
