"""Fixtures for the backend tests: the digits CNN, its test split, references, a result cache.

The tests here run with one torch thread. On these shared 2-core machines the default
thread count made the suite about 6x slower under load, and the trained weights depend
on it (1 and 2 threads differ by up to 0.04 after 30 epochs), so the CNN is trained here,
with one thread, rather than taken from ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from art_denoise.attacks import AttackSpec
from art_denoise.attacks.backends import (
    BUILT_IN,
    AttackBackend,
    available_backends,
    get_backend,
)
from art_denoise.models import create_model
from art_denoise.training import train_standard

#: The seed every cached attack runs with.
SEED = 0

ReferenceAttack = Callable[..., torch.Tensor]


def _load_backend(name: str) -> AttackBackend:
    """A new backend called ``name``, or a skip when its plugin is not installed."""
    if name not in BUILT_IN:
        pytest.importorskip(name)
        if name not in available_backends():
            pytest.skip(
                f"the {name} plugin is not installed "
                f"(pip install --no-deps -e plugins/art-denoise-{name})"
            )
    return get_backend(name)


@pytest.fixture(scope="session")
def load_backend() -> Callable[[str], AttackBackend]:
    """``load_backend(name)``: a new backend, or a skip when its plugin is not installed."""
    return _load_backend


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with _threads(1):
        yield


@pytest.fixture(scope="session")
def _cnn_state(digits) -> dict[str, torch.Tensor]:
    x_tr, y_tr, _, _ = digits
    with _threads(1):
        torch.manual_seed(SEED)
        model = create_model("smallcnn", input_shape=(1, 8, 8))
        train_standard(model, x_tr, y_tr, epochs=30, seed=SEED, progress=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _cnn(state: dict[str, torch.Tensor]) -> nn.Module:
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="session")
def shared_model(_cnn_state) -> nn.Module:
    """The digits CNN (seed 0, 30 epochs of Adam), read-only: for cached attacks."""
    return _cnn(_cnn_state)


@pytest.fixture
def fresh_model(_cnn_state) -> nn.Module:
    """A new eval-mode copy of the digits CNN that a test may change."""
    return _cnn(_cnn_state)


@pytest.fixture(scope="session")
def test_split(digits) -> tuple[torch.Tensor, torch.Tensor]:
    """The 360 digits test images (1, 8, 8) in [0, 1] and their labels, as tensors."""
    _, _, x_te, y_te = digits
    return torch.from_numpy(x_te), torch.from_numpy(y_te)


@pytest.fixture(scope="session")
def targets(test_split) -> torch.Tensor:
    """Seeded target labels, each different from the true label."""
    _, y = test_split
    g = torch.Generator().manual_seed(SEED)
    return (y + torch.randint(1, 10, y.shape, generator=g)) % 10


@pytest.fixture(scope="session")
def predict(shared_model) -> Callable[[torch.Tensor], torch.Tensor]:
    """Predicted labels of the shared model."""

    def _predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return shared_model(x).argmax(dim=1)

    return _predict


@pytest.fixture(scope="session")
def run_attack(
    shared_model, test_split, targets
) -> Callable[[str, AttackSpec, int | None], torch.Tensor]:
    """``run_attack(backend, spec, n=None)``: x_adv for the first ``n`` test images, cached.

    Targeted specs attack towards :func:`targets`; every run uses seed :data:`SEED`.
    """
    cache: dict[tuple[str, AttackSpec, int | None], torch.Tensor] = {}
    x, y = test_split

    def _run(name: str, spec: AttackSpec, n: int | None = None) -> torch.Tensor:
        key = (name, spec, n)
        if key not in cache:
            labels = targets if spec.targeted else y
            cache[key] = _load_backend(name).run(shared_model, x[:n], labels[:n], spec, seed=SEED)
        return cache[key]

    return _run


def _reference_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    step: float,
    steps: int,
    targeted: bool = False,
    x_start: torch.Tensor | None = None,
    clip_first: bool = False,
    batch_size: int = 256,
) -> torch.Tensor:
    """Hand-written FGSM / PGD: ``steps`` normalised steps on CE, each projected and clipped.

    ``x_start`` (already in the ball and in [0, 1]) replaces ``x`` as the starting point.
    FGSM is ``steps=1, step=eps``. torchattacks and foolbox project onto the eps-ball and
    then clip to [0, 1]; ART clips and then projects (``clip_first=True``). The two agree
    for Linf (both are coordinate-wise) and differ for L2. The batches are those of the
    harness: for a confidently classified image the CE gradient is mostly float32 rounding,
    which depends on the batch the image is in.
    """
    start = x if x_start is None else x_start
    return torch.cat(
        [
            _reference_batch(
                model,
                x[i : i + batch_size],
                y[i : i + batch_size],
                start[i : i + batch_size],
                norm=norm,
                eps=eps,
                step=step,
                steps=steps,
                targeted=targeted,
                clip_first=clip_first,
            )
            for i in range(0, len(x), batch_size)
        ]
    )


def _reference_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    *,
    norm: str,
    eps: float,
    step: float,
    steps: int,
    targeted: bool,
    clip_first: bool,
) -> torch.Tensor:
    x_adv = x_adv.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(-loss if targeted else loss, x_adv)
        x_adv = x_adv.detach()
        if norm == "inf":
            delta = (x_adv + step * grad.sign() - x).clamp(-eps, eps)
        else:
            g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = x_adv + step * grad / g_norm - x
            if clip_first:
                delta = (x + delta).clamp(0.0, 1.0) - x
            d_norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = delta * (eps / d_norm).clamp(max=1.0)
        x_adv = (x + delta).clamp(0.0, 1.0)
    return x_adv


@pytest.fixture(scope="session")
def reference_attack() -> ReferenceAttack:
    """The hand-written FGSM / PGD of :func:`_reference_attack`."""
    return _reference_attack


@pytest.fixture(scope="session")
def check_reference(run_attack, shared_model, test_split, targets, predict):
    """``check_reference(backend, spec, atol, ...)``: the backend's x_adv vs the reference.

    With a number ``atol`` every pixel must agree within it. With ``atol=None`` (PGD L2,
    where float noise in the normalised steps grows over 20 iterations) 99% of the
    predictions must agree and 90% of the images must match within 1e-4.
    """

    def _check(
        backend: str,
        spec: AttackSpec,
        atol: float | None,
        *,
        clip_first: bool = False,
        x_start: torch.Tensor | None = None,
    ) -> None:
        x, y = test_split
        labels = targets if spec.targeted else y
        adv = run_attack(backend, spec)
        assert spec.eps is not None and spec.step_size is not None
        ref = _reference_attack(
            shared_model,
            x,
            labels,
            norm=spec.norm,
            eps=spec.eps,
            step=spec.step_size,
            steps=spec.steps,
            targeted=spec.targeted,
            x_start=x_start,
            clip_first=clip_first,
            batch_size=spec.batch_size,
        )
        if atol is not None:
            torch.testing.assert_close(adv, ref, atol=atol, rtol=0.0)
            return
        same_pred = (predict(adv) == predict(ref)).float().mean().item()
        close = ((adv - ref).abs().flatten(1).amax(dim=1) <= 1e-4).float().mean().item()
        assert same_pred >= 0.99, f"{backend} {spec.key}: predictions agree on {same_pred:.1%}"
        assert close >= 0.9, f"{backend} {spec.key}: {close:.1%} of the images within 1e-4"

    return _check
