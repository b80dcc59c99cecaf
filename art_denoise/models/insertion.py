"""Insert a layer after a named submodule of an existing model, written once.

Denoising blocks (:func:`art_denoise.blocks.insert_denoising_blocks`) and BlurNet's low-pass
layers (:func:`art_denoise.blurnet.insert_lowpass`) are both placed this way:

- after a ``nn.Sequential`` ``s``, the new layer is added as its last child ``s.<child>``,
  so the Sequential runs it after its other children;
- after any other module ``m``, the layer is registered as the child ``m.<child>`` (which
  ``m.forward`` never calls) and a forward hook on ``m`` (:class:`ApplyChild`) replaces
  ``m``'s output by ``m.<child>(output)``.

Either way the model's original ``state_dict`` keys are unchanged and the new layer adds
keys ``<layer>.<child>.*``. The hook names the child instead of holding it, so
``copy.deepcopy`` and pickling keep it working (TorchScript does not run hooks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from art_denoise._torch import eval_forward

__all__ = [
    "ApplyChild",
    "attach_after",
    "example_input",
    "first_conv",
    "layer_names",
    "output_shapes",
    "resolve_layer_names",
    "taken_layers",
]

_CONTAINERS = (nn.ModuleList, nn.ModuleDict)


def layer_names(model: nn.Module) -> list[str]:
    """The names a layer can be inserted after: every submodule except containers.

    Example:
        >>> layer_names(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
        ['0', '1']
    """
    return [n for n, m in model.named_modules() if n and not isinstance(m, _CONTAINERS)]


def resolve_layer_names(
    model: nn.Module, after: str | Sequence[str], *, expected: str, presets: str = ""
) -> list[str]:
    """Check a name or list of names of ``model``'s layers and return them as a list.

    Args:
        model: the network.
        after: a dotted name from ``model.named_modules()`` or a list of them.
        expected: what ``after`` may be, for the ``TypeError`` ("a layer name or a list of
            names").
        presets: appended to the unknown-name message (e.g. the presets a caller offers).

    Raises:
        TypeError: ``after`` is not a string or a sequence of strings.
        ValueError: an unknown name (the message lists the valid ones), an empty list, or
            a name given twice.
    """
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, Sequence) or not all(isinstance(n, str) for n in after):
        raise TypeError(f"after must be {expected}, got {after!r}")
    names = list(after)
    valid = layer_names(model)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(
            f"unknown layer name(s) {unknown}; valid names are: {', '.join(valid)}{presets}"
        )
    if not names:
        raise ValueError("after is empty: name at least one layer")
    if len(set(names)) != len(names):
        raise ValueError(f"after names a layer twice: {names}")
    return names


def taken_layers(
    model: nn.Module,
    names: Sequence[str],
    child: str,
    kind: type[nn.Module] | tuple[type[nn.Module], ...] = (),
) -> list[str]:
    """Those of ``names`` whose output already runs through an inserted ``child`` layer.

    A layer is taken when its module has an attribute ``child`` (a layer inserted after
    it, or one of the model's own of that name), when it is itself a layer of type
    ``kind`` (inserting after an inserted layer would stack two), when it is the child of
    a ``nn.Sequential`` right before that Sequential's inserted ``child``, or when it is a
    ``nn.Sequential`` whose last child is taken: each of these puts a second layer where
    one already is, which :func:`attach_after` would run twice and a saved model could not
    replay.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        >>> attach_after(net, "post", nn.Identity())
        >>> taken_layers(net, ["0", "1", "post"], "post", nn.Identity)
        ['1', 'post']
    """
    modules = dict(model.named_modules())
    return [n for n in names if _taken(modules, n, child, kind)]


def _taken(
    modules: dict[str, nn.Module],
    name: str,
    child: str,
    kind: type[nn.Module] | tuple[type[nn.Module], ...],
) -> bool:
    module = modules[name]
    if hasattr(module, child) or (kind and isinstance(module, kind)):
        return True
    parent_name, _, last = name.rpartition(".")
    parent = modules.get(parent_name)
    if isinstance(parent, nn.Sequential) and isinstance(getattr(parent, child, None), nn.Module):
        order = list(parent._modules)
        if len(order) >= 2 and order[-1] == child and order[-2] == last:
            return True
    if isinstance(module, nn.Sequential) and len(module._modules):
        return _taken(modules, f"{name}.{list(module._modules)[-1]}", child, kind)
    return False


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
        f"{', '.join(layer_names(model))}"
    )


def example_input(model: nn.Module, input_shape: Sequence[int] | None) -> torch.Tensor:
    """A zero batch of one example, on the model's device and floating dtype.

    Raises:
        ValueError: no ``input_shape`` given and the model has none, or a bad shape.
    """
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            "cannot infer the channels: the model has no `input_shape`; pass input_shape=(C, H, W)"
        )
    shape = tuple(shape)
    if not shape or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"input_shape must be positive ints without the batch, got {shape!r}")
    ref: torch.Tensor | None = next(iter(model.parameters()), None)
    if ref is None:
        ref = next(iter(model.buffers()), None)
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    device = ref.device if ref is not None else torch.device("cpu")
    return torch.zeros((1, *shape), dtype=dtype, device=device)


def output_shapes(
    model: nn.Module, names: list[str], x: torch.Tensor
) -> dict[str, tuple[int, ...]]:
    """Run one forward pass in eval mode and read the shape of each named output.

    Raises:
        ValueError: a named layer is not called, or does not output a (B, C, H, W) map.
    """
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if name not in shapes:
                shapes[name] = tuple(output.shape) if isinstance(output, torch.Tensor) else ()

        return hook

    eval_forward(model, x, [modules[n].register_forward_hook(recorder(n)) for n in names])
    out: dict[str, tuple[int, ...]] = {}
    for name in names:
        if name not in shapes:
            raise ValueError(f"layer {name!r} is not called in the model's forward pass")
        if len(shapes[name]) != 4:
            raise ValueError(
                f"layer {name!r} outputs shape {shapes[name]}, not a feature map (B, C, H, W)"
            )
        out[name] = shapes[name]
    return out


class ApplyChild:
    """Forward hook that replaces a module's output by ``module.<child>(output)``."""

    def __init__(self, child: str) -> None:
        self.child = child

    def __call__(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        layer: nn.Module = getattr(module, self.child)
        return layer(output)

    def __repr__(self) -> str:
        return f"ApplyChild({self.child!r})"


def attach_after(module: nn.Module, child: str, layer: nn.Module) -> None:
    """Make ``layer`` run on ``module``'s output, stored as ``module.<child>``.

    Example:
        >>> conv = nn.Conv2d(1, 1, 1, bias=False)
        >>> attach_after(conv, "post", nn.Flatten())
        >>> conv(torch.ones(2, 1, 3, 3)).shape
        torch.Size([2, 9])
    """
    module.add_module(child, layer)
    if not isinstance(module, nn.Sequential):  # a Sequential runs its new last child itself
        module.register_forward_hook(ApplyChild(child))
