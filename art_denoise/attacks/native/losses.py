"""Per-example attack losses on logits: cross-entropy, DLR and targeted DLR.

The Difference of Logits Ratio (Croce & Hein 2020) divides a logit margin by the spread of
the top logits, so it does not change when the logits are shifted or rescaled: a defense
that inflates its logits (and so saturates the softmax of the cross-entropy) does not
hide its gradient from it. Every loss here is *maximised* by an untargeted attacker.

| Paper link: https://arxiv.org/abs/2003.01690 (Croce & Hein, ICML 2020)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ce_loss", "dlr_loss", "targeted_dlr_loss"]


def _check_logits(logits: torch.Tensor, y: torch.Tensor, *, min_classes: int, loss: str) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must have shape (B, classes), got {shape}")
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (logits.shape[0],):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {shape}")
    if logits.shape[1] < min_classes:
        raise ValueError(
            f"the {loss} loss needs at least {min_classes} classes, "
            f"got logits with {logits.shape[1]} classes"
        )


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    top = logits.topk(3, dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return -(z_y - other) / (top[:, 0] - top[:, 2] + 1e-12)


def _targeted_dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    top = logits.topk(4, dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy ``-log softmax(z)_y``.

    Args:
        logits: (B, K) logits ``z``.
        y: (B,) true labels.

    Returns:
        (B,) losses.

    Raises:
        ValueError: wrong shapes.

    Example:
        >>> ce_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
        tensor([0.6931])
    """
    _check_logits(logits, y, min_classes=1, loss="cross-entropy")
    return _ce(logits, y)


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example DLR loss ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``.

    ``z_pi1 >= z_pi2 >= ...`` are the logits sorted in decreasing order. The loss is
    positive exactly when the example is misclassified, and invariant to ``a * z + b``
    for ``a > 0``.

    Args:
        logits: (B, K) logits ``z``, K >= 3.
        y: (B,) true labels.

    Returns:
        (B,) losses.

    Raises:
        ValueError: wrong shapes, or fewer than 3 classes.

    Example:
        >>> dlr_loss(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([0]))
        tensor([-0.6667])
    """
    _check_logits(logits, y, min_classes=3, loss="DLR")
    return _dlr(logits, y)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example targeted DLR ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``.

    Maximising it pushes the target logit ``z_t`` above the true one ``z_y``.

    Args:
        logits: (B, K) logits ``z``, K >= 4.
        y: (B,) true labels.
        target: (B,) target labels.

    Returns:
        (B,) losses.

    Raises:
        ValueError: wrong shapes, or fewer than 4 classes.

    Example:
        >>> logits = torch.tensor([[4.0, 2.0, 1.0, 0.0]])
        >>> targeted_dlr_loss(logits, torch.tensor([0]), torch.tensor([1]))
        tensor([-0.5714])
    """
    _check_logits(logits, y, min_classes=4, loss="targeted DLR")
    if not isinstance(target, torch.Tensor) or target.shape != y.shape:
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"target must have shape {tuple(y.shape)}, got {shape}")
    return _targeted_dlr(logits, y, target)
