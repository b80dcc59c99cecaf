"""Backward Pass Differentiable Approximation (Athalye et al. 2018) for input purifiers.

A purifier in front of a classifier (a denoising autoencoder, a filter, a quantiser) can
shatter or flatten the gradient an attacker follows, so gradient attacks through it
overstate robustness. BPDA keeps the purifier's forward pass and replaces its backward
pass by the identity: the attacker follows the classifier's gradient at the purified
image. :class:`BPDAModel` is that model; every attack library attacks it like any other,
and EOT (:class:`~art_denoise.attacks.eot.EOTModel`) averages its gradients over the
purifier's random draws, since the randomness stays in the forward pass.

| Paper link: https://arxiv.org/abs/1802.00420 (Athalye, Carlini & Wagner, ICML 2018)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["BPDAModel"]


class BPDAModel(nn.Module):
    """``classifier(purify(x))`` whose backward pass takes ``purify`` as the identity.

    The forward value is the defended model's, ``classifier(x + (purify(x) - x).detach())``,
    and the gradient with respect to ``x`` is the classifier's gradient at the purified
    image.

    Args:
        classifier: maps (B, ...) inputs to (B, classes) logits.
        purify: maps (B, ...) inputs to purified inputs of the same shape (an
            ``nn.Module`` is registered as a submodule, so ``eval()`` reaches it).

    Raises:
        TypeError: ``classifier`` is not an ``nn.Module`` or ``purify`` is not callable.
        ValueError: ``purify`` changes the shape of its input (at the forward pass).

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> bpda = BPDAModel(net, nn.AvgPool2d(3, stride=1, padding=1))
        >>> x = torch.rand(2, 1, 4, 4, requires_grad=True)
        >>> bpda(x).sum().backward()
        >>> torch.allclose(x.grad[0].flatten(), net[1].weight.sum(0))
        True
    """

    def __init__(
        self, classifier: nn.Module, purify: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be a torch.nn.Module, got {type(classifier)}")
        if not callable(purify):
            raise TypeError(f"purify must be callable (x -> purified x), got {type(purify)}")
        self.classifier = classifier
        self.purify = purify

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        purified = self.purify(x)
        if purified.shape != x.shape:
            raise ValueError(
                f"purify must keep the input's shape {tuple(x.shape)}, returned "
                f"{tuple(purified.shape)}"
            )
        return self.classifier(x + (purified - x).detach())
