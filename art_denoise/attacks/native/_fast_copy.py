"""A faster copy of the model for attacks that only read its gradients with respect to the
input (DeepFool): eval-mode batch norms folded into the convolution before them, and on
the CPU the channels-last memory format.

In eval mode ``BatchNorm(conv(x))`` is one convolution with rescaled weights and a bias
(``w' = w * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``).
The folded copy computes the same function up to float rounding, without the batch
norm's forward and backward passes: about a fifth of a backward pass of the small CNN on
the CPU. Channels-last convolutions take about another sixth off on the CPU. The user's
model is never changed; an attack that uses the copy judges its outputs on the user's
model.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fast_copy", "fold_batchnorm"]

_PAIRS = (
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv3d, nn.BatchNorm3d),
)


def fast_copy(model: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """A copy of ``model`` that computes the same logits faster, or ``None``.

    The copy has its batch norms folded where :func:`fold_batchnorm` can, and on the CPU,
    for (B, C, H, W) inputs, channels-last weights. ``None`` when neither applies, for a
    model in training mode, or when the copy's logits on ``x`` differ from the model's by
    more than float rounding (1e-4 relative to the largest logit) or in any prediction
    (a randomised model, say).

    Args:
        model: the attacked model, in its mode.
        x: a batch to compare the copy's logits with the model's on (no gradients taken).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()).eval()
        >>> faster = fast_copy(model, torch.rand(2, 1, 4, 4))
        >>> faster is not model, faster.training
        (True, False)
    """
    if any(m.training for m in model.modules()):
        return None
    channels_last = x.device.type == "cpu" and x.ndim == 4
    faster: nn.Module | None = _fold(model)  # checked once below, after the memory format
    if faster is None and not channels_last:
        return None
    try:
        faster = copy.deepcopy(model) if faster is None else faster
        if channels_last:
            # Module.to takes memory_format (torch's stubs omit it)
            faster = faster.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return faster if _same_function(model, faster, x) else None
    except Exception:
        return None


def fold_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """A copy of ``model`` with each eval-mode conv -> batch-norm pair folded into one
    convolution; ``None`` when there is nothing to fold or folding does not apply.

    The pairs found are those in the model's own ``forward`` and in its ``nn.Sequential``
    containers, at any depth (any other module runs as it is). Folding does not apply to a
    model in training mode (its batch norms use the batch's statistics), to one whose
    ``forward`` ``torch.fx`` cannot trace, or when the copy's logits on ``x``
    differ from the model's by more than float rounding (1e-4 relative to the largest
    logit) or in any prediction.

    Args:
        model: the attacked model, in its mode.
        x: a batch to compare the copy's logits with the model's on (no gradients taken).

    Example:
        >>> conv = nn.Conv2d(1, 2, 3, bias=False)
        >>> model = nn.Sequential(conv, nn.BatchNorm2d(2), nn.Flatten()).eval()
        >>> folded = fold_batchnorm(model, torch.rand(2, 1, 4, 4))
        >>> sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        0
    """
    folded = _fold(model)
    return folded if folded is not None and _same_function(model, folded, x) else None


def _fold(model: nn.Module) -> fx.GraphModule | None:
    """:func:`fold_batchnorm` without the check of the copy's logits."""
    if any(m.training for m in model.modules()):
        return None
    if not any(isinstance(m, _BatchNorm) for m in model.modules()):
        return None
    root = copy.deepcopy(model)
    try:
        traced = fx.GraphModule(root, _Tracer().trace(root))
    except Exception:
        return None
    modules = dict(traced.named_modules())
    folded = 0
    for node in list(traced.graph.nodes):
        pair = _foldable(node, modules)
        if pair is None:
            continue
        conv_node, conv, bn = pair
        _replace(traced, modules, conv_node.target, fuse_conv_bn_eval(conv, bn))
        node.replace_all_uses_with(conv_node)
        traced.graph.erase_node(node)
        folded += 1
    if folded == 0:
        return None
    traced.graph.lint()
    traced.recompile()
    traced.delete_all_unused_submodules()
    traced.eval()
    return traced


class _Tracer(fx.Tracer):
    """Traces the model's own ``forward`` and its ``nn.Sequential`` containers; every other
    module is a leaf, called as it is (its ``forward`` may check shapes or branch)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return not isinstance(m, nn.Sequential)


def _foldable(
    node: fx.Node, modules: dict[str, nn.Module]
) -> tuple[fx.Node, _ConvNd, _BatchNorm] | None:
    """(conv node, conv, batch norm) when ``node`` is a batch norm fed only by a conv."""
    if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
        return None
    source = node.args[0]
    if source.op != "call_module" or len(source.users) > 1:
        return None
    conv, bn = modules.get(str(source.target)), modules.get(str(node.target))
    if not isinstance(conv, _ConvNd) or not isinstance(bn, _BatchNorm):
        return None
    for conv_type, bn_type in _PAIRS:
        if (
            type(conv) is conv_type
            and type(bn) is bn_type
            and bn.track_running_stats
            and bn.running_mean is not None
            and bn.running_var is not None
        ):
            return source, conv, bn
    return None


def _replace(
    traced: fx.GraphModule, modules: dict[str, nn.Module], target: object, new: nn.Module
) -> None:
    *parent, name = str(target).rsplit(".", 1)
    owner = modules[parent[0]] if parent else traced
    setattr(owner, name, new)
    modules[str(target)] = new


def _same_function(model: nn.Module, folded: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        want, got = model(x), folded(x)
    if want.shape != got.shape or not torch.isfinite(got).all():
        return False
    scale = float(want.abs().max()) if want.numel() else 0.0
    close = float((want - got).abs().max()) <= 1e-4 * max(scale, 1.0)
    return close and bool((want.argmax(dim=1) == got.argmax(dim=1)).all())
