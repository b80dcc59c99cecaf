"""Torch utilities every layer may use: devices, RNG state, eps-balls, labels, forward passes.

The ground floor of the package: it imports torch and numpy, never another art_denoise
module except :mod:`art_denoise._validation`. Each helper is here once:

- devices: :func:`resolve_device`, :func:`model_device`, :func:`describe_machine`;
- RNG state: :func:`torch_rng_state` / :func:`set_torch_rng_state` (the checkpoint form) and
  :func:`rng_preserved` (torch, CUDA, numpy and ``random`` left as they were);
- eps-balls: :func:`random_ball`, :func:`perturbation_norms`, :func:`project_delta`,
  :func:`project_to_ball`; labels: :func:`random_targets`;
- forward passes: :func:`eval_forward`, :func:`attack_guard`, :func:`predict`,
  :func:`capture_features`; the model's first call on the data: :func:`check_model_input`,
  :func:`check_logits`, :func:`probe_logits` (one-line errors naming both sides);
- gradients: :func:`straight_through_clamp` (BPDA).
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from art_denoise._validation import check_choice

__all__ = [
    "attack_guard",
    "capture_features",
    "check_logits",
    "check_model_input",
    "cpu_model",
    "describe_machine",
    "eval_forward",
    "model_device",
    "perturbation_norms",
    "predict",
    "probe_logits",
    "project_delta",
    "project_to_ball",
    "random_ball",
    "random_targets",
    "resolve_device",
    "rng_preserved",
    "set_torch_rng_state",
    "straight_through_clamp",
    "torch_rng_state",
]


# ------------------------------------------------------------------ devices


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` to a usable torch device.

    ``"auto"`` picks CUDA when present. Asking for CUDA where there is none warns and
    falls back to the CPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = device.split(":", 1)[0]
    check_choice("device", kind, ("cpu", "cuda"))
    if kind == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"device {device!r} asked for but CUDA is not available; using the CPU",
            RuntimeWarning,
            stacklevel=2,
        )
        return torch.device("cpu")
    return torch.device(device)


def describe_machine(device: torch.device | str = "cpu") -> str:
    """One line naming what computed a result: the CPU (model, cores, torch's threads) or
    the GPU, and torch's version; for a study's record of its wall times.

    Example:
        >>> describe_machine("cpu").startswith("CPU")
        True
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        what = f"GPU {torch.cuda.get_device_name(index)}"
    else:
        what = f"CPU {cpu_model()}, {os.cpu_count()} cores, torch on {torch.get_num_threads()}"
        what += " threads"
    return f"{what}; torch {torch.__version__}"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else the architecture."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def model_device(model: nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """The device of ``model``'s first parameter (else first buffer), or ``default``.

    Example:
        >>> model_device(nn.Linear(2, 2))
        device(type='cpu')
    """
    ref: torch.Tensor | None = next(iter(model.parameters()), None)
    if ref is None:
        ref = next(iter(model.buffers()), None)
    return ref.device if ref is not None else torch.device(default)


# ------------------------------------------------------------------ RNG state


def torch_rng_state() -> dict[str, Any]:
    """torch's CPU RNG state and, where CUDA exists, every GPU's (a checkpoint's form)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_torch_rng_state(state: dict[str, Any]) -> None:
    """Restore a state taken by :func:`torch_rng_state` (also one loaded onto a GPU: torch
    takes RNG states only as CPU byte tensors)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Leave torch's, CUDA's, numpy's and ``random``'s global RNG states as they were.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> with rng_preserved():
        ...     _ = torch.rand(3)
        >>> first = torch.rand(1)
        >>> _ = torch.manual_seed(0)
        >>> torch.equal(first, torch.rand(1))
        True
    """
    state = torch_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        yield
    finally:
        set_torch_rng_state(state)
        np.random.set_state(np_state)
        random.setstate(py_state)


# ------------------------------------------------------------------ eps-balls and labels


def random_ball(
    shape: torch.Size | tuple[int, ...],
    eps: float,
    norm: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw points uniformly from the eps-ball (CPU, float32).

    Linf: uniform in the cube. L2: a Gaussian direction with radius ``eps * u**(1/d)``,
    which is uniform in the ball (not uniform in the radius).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> bool(random_ball((4, 1, 3, 3), 0.5, "2", gen).flatten(1).norm(dim=1).le(0.5).all())
        True
    """
    if norm == "inf":
        return (torch.rand(shape, generator=generator) * 2 - 1) * eps
    direction = torch.randn(shape, generator=generator)
    flat = direction.flatten(1)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d = flat.shape[1]
    radius = torch.rand(shape[0], 1, generator=generator) ** (1.0 / max(d, 1)) * eps
    return (flat * radius).view(shape)


def random_targets(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from ``y`` for each example (Xie et al.).

    The shift is drawn on the generator's device (the CPU) and the result is on ``y``'s.

    Example:
        >>> y = torch.tensor([0, 1, 2, 3])
        >>> bool((random_targets(y, 10, torch.Generator().manual_seed(0)) != y).all())
        True
    """
    shift = torch.randint(1, num_classes, tuple(y.shape), generator=generator).to(y.device)
    return (y + shift) % num_classes


def perturbation_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example ``||delta||_norm`` (``norm`` is ``"inf"`` or ``"2"``), in float64."""
    flat = delta.reshape(delta.shape[0], -1).to(torch.float64)
    if norm == "inf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    return flat.norm(p=2, dim=1)


def project_delta(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project each example's ``delta`` onto the ``eps``-ball of ``norm`` (``"inf"``/``"2"``).

    Example:
        >>> project_delta(torch.tensor([[3.0, 4.0]]), 1.0, "2")
        tensor([[0.6000, 0.8000]])
    """
    if norm == "inf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1)
    factor = (eps / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * factor).view_as(delta)


def project_to_ball(x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``x_adv`` onto the ``eps``-ball around ``x`` and the [0, 1] box."""
    return (x + project_delta(x_adv - x, eps, norm)).clamp(0.0, 1.0)


# ------------------------------------------------------------------ forward passes


def eval_forward(model: nn.Module, x: torch.Tensor, handles: Iterable[RemovableHandle] = ()) -> Any:
    """Run ``model(x)`` under ``no_grad`` in eval mode and return its output.

    Afterwards every submodule is back in the train/eval mode it had, and the given hook
    ``handles`` are removed, whatever the forward pass raised.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            return model(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def attack_guard(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with frozen parameters for the duration of an attack.

    On exit every submodule is back in the train/eval mode it had, each parameter gets
    back its ``requires_grad`` flag and its ``.grad`` (``None`` for a model that held no
    gradients), whatever the attack library did in between.
    """
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels (B,) of ``model`` in eval mode; its mode and gradients are restored.

    Example:
        >>> predict(nn.Linear(2, 3), torch.zeros(4, 2)).shape
        torch.Size([4])
    """
    preds = []
    with attack_guard(model), torch.no_grad():
        for start in range(0, len(x), batch_size):
            preds.append(model(x[start : start + batch_size]).argmax(dim=1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64, device=x.device)


#: Logit dtypes an attack can work with (half precision loses the small gradient steps).
LOGIT_DTYPES = (torch.float32, torch.float64)


def check_model_input(model: nn.Module, x: torch.Tensor) -> None:
    """Raise a one-line ``ValueError`` if ``x`` cannot go into ``model`` as it is.

    Checks that every parameter and buffer of ``model`` is on ``x``'s device, and, when the
    model declares an ``input_shape`` (C, H, W), that ``x`` is (B, C, H, W): channels-last
    images are named as such.

    Raises:
        ValueError: naming both devices, or both shapes.

    Example:
        >>> check_model_input(nn.Linear(2, 3), torch.zeros(4, 2))
        >>> net = nn.Conv2d(3, 4, 3)
        >>> net.input_shape = (3, 8, 8)
        >>> check_model_input(net, torch.zeros(2, 8, 8, 3))
        Traceback (most recent call last):
        ...
        ValueError: the model takes images of shape (B, 3, 8, 8) (its input_shape) but got (2, 8, 8, 3): channels-last images; transpose them to (B, C, H, W)
    """  # noqa: E501
    tensors = [*model.parameters(), *model.buffers()]
    elsewhere = sorted({str(t.device) for t in tensors if t.device != x.device})
    if elsewhere:
        raise ValueError(
            f"the model is on {', '.join(elsewhere)} but the images are on {x.device}; "
            "move both to one device (model.to(device) or x.to(device))"
        )
    expected = _input_shape(model)
    if expected is None or tuple(x.shape[1:]) == expected:
        return
    c, h, w = expected
    hint = ""
    if x.ndim == 4 and tuple(x.shape[1:]) == (h, w, c):
        hint = ": channels-last images; transpose them to (B, C, H, W)"
    elif x.ndim == 4 and x.shape[1] != c:
        hint = f": {x.shape[1]} channel(s) where the model takes {c}"
    raise ValueError(
        f"the model takes images of shape (B, {c}, {h}, {w}) (its input_shape) but got "
        f"{tuple(x.shape)}{hint}"
    )


def _input_shape(model: nn.Module) -> tuple[int, int, int] | None:
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        return None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape):
        return None
    return int(shape[0]), int(shape[1]), int(shape[2])


def check_logits(out: Any, x: torch.Tensor) -> torch.Tensor:
    """Return ``out`` if it is finite (B, classes) float32/float64 logits for the images ``x``.

    Raises:
        ValueError: not a (B, classes) tensor, fewer than 2 classes, or NaN/inf values
            (the message counts them).
        TypeError: integer, boolean or half-precision (float16, bfloat16) logits.

    Example:
        >>> check_logits(torch.zeros(2, 3, dtype=torch.float16), torch.zeros(2, 1, 4, 4))
        Traceback (most recent call last):
        ...
        TypeError: the model returns torch.float16 logits; attacks need torch.float32 or torch.float64 logits (cast the model's output with .float())
    """  # noqa: E501
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model must return (B, classes) logits; for input {tuple(x.shape)} it returned {shape}"
        )
    if out.dtype not in LOGIT_DTYPES:
        raise TypeError(
            f"the model returns {out.dtype} logits; attacks need "
            f"{' or '.join(map(str, LOGIT_DTYPES))} logits (cast the model's output with .float())"
        )
    if out.shape[1] < 2:
        raise ValueError(f"model must return at least 2 class logits, got {out.shape[1]}")
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise ValueError(
            f"the model returns {bad} NaN or inf logit(s) of {out.numel()} for "
            f"{out.shape[0]} image(s) (non-finite weights?)"
        )
    return out


def probe_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's first call on the data, checked: :func:`check_model_input`, then
    :func:`eval_forward`, then :func:`check_logits`.

    A ``RuntimeError`` of the forward pass (a shape or dtype that the model's layers
    refuse) becomes a one-line ``ValueError`` naming the images' shape, dtype and device;
    running out of memory stays what it is.

    Raises:
        ValueError / TypeError: as the checks above, naming both sides.

    Example:
        >>> probe_logits(nn.Linear(4, 3), torch.zeros(2, 4)).shape
        torch.Size([2, 3])
    """
    check_model_input(model, x)
    try:
        out = eval_forward(model, x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"the model fails on images of shape {tuple(x.shape)} ({x.dtype}, {x.device}): {first}"
        ) from err
    return check_logits(out, x)


def _named_module(model: nn.Module, layer: Any) -> nn.Module:
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        names = ", ".join(n for n in modules if n)
        raise ValueError(f"unknown layer {layer!r}; valid names are: {names}")
    return modules[layer]


@contextlib.contextmanager
def capture_features(
    model: nn.Module, layer: str, *, detach: bool = False
) -> Iterator[list[torch.Tensor]]:
    """Collect the outputs of ``model``'s submodule ``layer`` while the context is open.

    A forward hook appends the layer's output to the yielded list at every call; the hook
    is removed on exit, whatever happened inside. The tensors keep their autograd graph
    (so a penalty on them trains the model, as BlurNet's TV regulariser does) unless
    ``detach=True``. A layer with a low-pass layer (or a denoising block) inserted by
    hook gives the output the rest of the model sees, i.e. after the inserted layer.

    Args:
        model: the network.
        layer: dotted name from ``model.named_modules()``.
        detach: store detached tensors (for analysis without gradients).

    Yields:
        The list that fills with one tensor per call of the layer.

    Raises:
        ValueError: unknown ``layer`` (the message lists the valid names).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        >>> with capture_features(model, "0") as maps:
        ...     _ = model(torch.rand(2, 1, 8, 8))
        >>> maps[0].shape
        torch.Size([2, 4, 8, 8])
    """
    module = _named_module(model, layer)
    features: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            features.append(output.detach() if detach else output)

    handle = module.register_forward_hook(hook)
    try:
        yield features
    finally:
        handle.remove()


# ------------------------------------------------------------------ gradients (BPDA)
# Backward Pass Differentiable Approximation, Athalye, Carlini & Wagner, "Obfuscated
# Gradients Give a False Sense of Security", ICML 2018, https://arxiv.org/abs/1802.00420:
# a step whose true gradient is zero or useless is replaced by the identity in the
# backward pass. ART never calls ``estimate_forward`` when every preprocessor is a
# ``PreprocessorPyTorch`` (ART issue 1526), so the approximation has to live inside
# ``forward``: that is what this ``torch.autograd.Function`` does.


class _StraightThroughClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return grad, None, None


def straight_through_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x.clamp(low, high)`` whose gradient is the identity, also where it clips.

    A plain ``clamp`` has zero gradient wherever it clips: after adding noise to an image
    in [0, 1] that is every saturated pixel, and an attack's gradient would vanish there
    (obfuscated gradients). This clamp passes the incoming gradient through unchanged, so
    attacks see the gradient of the rest of the pipeline (BPDA with the identity).

    Args:
        x: any tensor.
        low: lower bound.
        high: upper bound, >= ``low``.

    Returns:
        ``x`` clipped to [low, high].

    Raises:
        ValueError: ``low > high``.

    Shape:
        - Input: any
        - Output: same as input

    Example:
        >>> x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
        >>> y = straight_through_clamp(x, 0.0, 1.0)
        >>> y.sum().backward()
        >>> y.detach(), x.grad
        (tensor([0.0000, 0.5000, 1.0000]), tensor([1., 1., 1.]))
    """
    if not low <= high:
        raise ValueError(f"low must be <= high, got low={low!r} and high={high!r}")
    out: torch.Tensor = _StraightThroughClamp.apply(x, float(low), float(high))
    return out
