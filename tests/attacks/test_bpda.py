"""BPDA: the forward pass is the purified model's, the backward pass the classifier's at
the purified image (computed apart as the reference)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_denoise.attacks.bpda import BPDAModel
from art_denoise.autoencoder import NoisyAutoencoderStack


def _stack(noise: bool) -> NoisyAutoencoderStack:
    torch.manual_seed(0)
    return NoisyAutoencoderStack(1, n_layers=2, hidden=4, sigma=0.1, noise=noise).eval()


def _classifier() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Tanh(), nn.Linear(8, 3)).eval()


def test_forward_is_the_defense_and_backward_the_classifier_at_the_purified_image() -> None:
    clf, purify = _classifier(), _stack(noise=False)
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    bpda = BPDAModel(clf, purify)
    torch.testing.assert_close(bpda(x), clf(purify(x)), rtol=1e-5, atol=1e-6)
    xg = x.clone().requires_grad_(True)
    bpda(xg)[:, 1].sum().backward()
    # reference: the classifier's gradient at the purified image, computed apart
    purified = purify(x).detach().requires_grad_(True)
    clf(purified)[:, 1].sum().backward()
    torch.testing.assert_close(xg.grad, purified.grad, rtol=1e-5, atol=1e-7)
    # and not the true gradient through the autoencoders
    xt = x.clone().requires_grad_(True)
    clf(purify(xt))[:, 1].sum().backward()
    assert not torch.allclose(xt.grad, xg.grad, atol=1e-6)


def test_the_noise_stays_in_the_forward_pass_and_eot_sees_it() -> None:
    bpda = BPDAModel(_classifier(), _stack(noise=True))
    x = torch.rand(2, 1, 6, 6)
    assert not torch.allclose(bpda(x), bpda(x))
    # the same draw gives the same output: the randomness is the purifier's alone
    torch.manual_seed(5)
    first = bpda(x)
    torch.manual_seed(5)
    torch.testing.assert_close(bpda(x), first, rtol=0, atol=0)


def test_a_module_purifier_is_registered_so_eval_reaches_it() -> None:
    purify = _stack(noise=False).train()
    bpda = BPDAModel(_classifier(), purify).eval()
    assert not purify.training
    assert any(name.startswith("purify.") for name, _ in bpda.named_parameters())


def test_a_plain_function_purifier_works() -> None:
    clf = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    bpda = BPDAModel(clf, lambda x: x.round())
    x = torch.tensor([[[[0.2, 0.7], [0.4, 0.9]]]], requires_grad=True)
    bpda(x)[:, 0].sum().backward()
    # round() has a zero gradient; BPDA passes the classifier's gradient straight through
    torch.testing.assert_close(x.grad.flatten(), clf[1].weight[0].detach())


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="classifier"):
        BPDAModel(object(), _stack(noise=False))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="purify"):
        BPDAModel(_classifier(), 3)  # type: ignore[arg-type]
    bpda = BPDAModel(_classifier(), lambda x: x[:, :, :3])
    with pytest.raises(ValueError, match="shape"):
        bpda(torch.rand(1, 1, 6, 6))
