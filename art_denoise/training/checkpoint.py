"""Training checkpoints: written atomically, loaded with ``weights_only=True``, checked.

A checkpoint holds everything a killed run needs to continue bit for bit (on the CPU,
seeded): model, optimiser, scheduler, PCL centres and their optimiser, the AMP scaler,
epoch / step, the epoch's data order, the training generator's state and torch's
global RNG state, and the history so far. It also records a *signature*: the model's
parameter names and shapes and the training settings. Resuming against a different
model or different settings raises :class:`CheckpointError` and leaves the file alone.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from art_denoise._files import atomic_write_with

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "load_checkpoint",
    "model_signature",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "art-denoise/checkpoint/1"


class CheckpointError(Exception):
    """A checkpoint is corrupt, not ours, or belongs to another model or run."""


def model_signature(model: nn.Module) -> dict[str, list[int]]:
    """Parameter and buffer names with their shapes: what a checkpoint must match."""
    return {name: list(t.shape) for name, t in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write_with(path, lambda tmp: torch.save(payload, tmp))
    return path


def _diff(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            out.append(f"{key}: run has {expected.get(key)!r}, checkpoint has {found.get(key)!r}")
    return out


def _refusal(path: Path, err: pickle.UnpicklingError) -> str:
    """One line of our own for a weights-only refusal (torch's advises ``weights_only=False``)."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"{path} names {found.group(1)}, which is not a tensor or plain data: loading it "
            "could run code, so it is refused (an art-denoise checkpoint never holds one)"
        )
    detail = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    reason = detail.group(1).strip() if detail else "unreadable pickle"
    return f"{path} is corrupt or not a checkpoint: {reason}"


def _first_line(err: BaseException) -> str:
    """The first line of an error's message (torch's are paragraphs), else its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    signature: dict[str, list[int]],
    settings: dict[str, Any],
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read and check a checkpoint; the file is only ever read.

    Args:
        path: the checkpoint file.
        signature: :func:`model_signature` of the model being resumed.
        settings: the run's training settings (method, batch size, data size, ...);
            they must equal the checkpoint's.

    Raises:
        CheckpointError: missing, unreadable or corrupt file, a pickle carrying objects
            other than tensors and plain data (refused unread: it could run code), another
            format, another model's weights, or other training settings. The message is
            one line; it names the file and the difference.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # the weights-only unpickler refused something
        raise CheckpointError(_refusal(path, err)) from None
    except Exception as err:  # zip / pickle errors of every kind
        raise CheckpointError(
            f"{path} is corrupt or not a checkpoint: {_first_line(err)}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an art-denoise checkpoint ({CHECKPOINT_FORMAT})")
    found_sig = state.get("signature", {})
    if found_sig != signature:
        diffs = _diff(signature, found_sig)
        raise CheckpointError(
            f"{path} belongs to another model ({len(diffs)} tensor(s) differ, e.g. "
            f"{'; '.join(diffs[:3])})"
        )
    found_settings = state.get("settings", {})
    if found_settings != settings:
        raise CheckpointError(
            f"{path} was written with other training settings: "
            + "; ".join(_diff(settings, found_settings))
        )
    return state
