"""Native batched DeepFool against its closed form on linear models and a per-image loop.

The comparison with foolbox on the trained digits CNN (every correct image broken, the
median norm foolbox's) is in ``tests/attacks/backends/test_native_backend.py``, beside the
shared model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_denoise.attacks.native import deepfool, deepfool_result
from art_denoise.attacks.native.deepfool import CPU_TILE


def _linear(weight: list[list[float]], bias: list[float]) -> nn.Module:
    """Logits ``W x + b`` of a flattened (B, 1, 2, 2) image, float64."""
    layer = nn.Linear(4, len(weight)).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float64))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return nn.Sequential(nn.Flatten(), layer).eval()


def _cnn(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 7),
    )
    return model.to(dtype).eval()


def _data(n: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _reference_deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    steps: int,
    overshoot: float,
    candidates: int,
) -> torch.Tensor:
    """DeepFool one image at a time, one forward and backward pass per candidate class,
    written from the paper's algorithm with foolbox's overshoot and 1e-4 lengthening."""
    out = []
    for i in range(len(x)):
        x0, label = x[i : i + 1], int(y[i])
        with torch.no_grad():
            clean = model(x0)[0]
        clean[label] = -float("inf")
        others = clean.argsort(descending=True)[: min(candidates, len(clean)) - 1].tolist()
        xi, r_total = x0.clone(), torch.zeros_like(x0)
        for _ in range(steps):
            if int(model(xi).argmax()) != label:
                break
            best = None
            for k in others:
                xg = xi.clone().requires_grad_(True)
                z = model(xg)[0]
                f = z[k] - z[label]
                (w,) = torch.autograd.grad(f, xg)
                dual = w.norm() if norm == "2" else w.abs().sum()
                d = abs(float(f.detach())) / (float(dual) + 1e-8)
                if best is None or d < best[0]:
                    best = (d, w)
            assert best is not None
            d, w = best
            step = (d + 1e-4) * (w / (w.norm() + 1e-8) if norm == "2" else w.sign())
            r_total = r_total + step
            xi = (x0 + (1 + overshoot) * r_total).clamp(0.0, 1.0)
        out.append(xi)
    return torch.cat(out)


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_one_step_to_a_linear_boundary(norm: str) -> None:
    """Two classes, ``f = z_1 - z_0 = w.x + b``: one step of ``|f| / ||w||_q + 1e-4``."""
    model = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 0.5, 1.5]], [0.0, -0.2])
    x = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5, 1.5], dtype=torch.float64).view(1, 1, 2, 2)
    f = float((w * x).sum()) - 0.2  # 0.3 - 0.2 > 0: class 1
    assert int(model(x).argmax()) == 1
    result = deepfool_result(model, x, torch.tensor([1]), norm=norm, overshoot=0.1)
    if norm == "2":
        r = (abs(f) / (w.norm() + 1e-8) + 1e-4) * w / (w.norm() + 1e-8)
    else:
        r = (abs(f) / (w.abs().sum() + 1e-8) + 1e-4) * w.sign()
    # the step goes towards class 0 (along -w), overshot by 10%
    torch.testing.assert_close(result.x_adv, x - 1.1 * r, atol=1e-12, rtol=0.0)
    assert result.steps.tolist() == [1] and result.adversarial.tolist() == [True]


def test_picks_the_closest_boundary_among_the_candidates() -> None:
    """At x = 0.5: z = (0, -0.3, -0.5). Class 1 is the more likely wrong class, with its
    boundary 0.3 away (||w_1|| = 1); class 2's is 0.5 / 3 away (||w_2|| = 3)."""
    model = _linear(
        [[0.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -3.0, 0.0, 0.0]], [0.0, 0.2, 1.0]
    )
    x = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    y = torch.tensor([0])
    out = deepfool(model, x, y, overshoot=0.0)
    expected = torch.tensor([0.0, -(0.5 / 3 + 1e-4), 0.0, 0.0], dtype=torch.float64)
    # atol: the 1e-8 guards of the two denominators
    torch.testing.assert_close((out - x).flatten(), expected, atol=1e-8, rtol=0.0)
    assert int(model(out).argmax()) == 2
    # candidates=2: the true class and the most likely other one (class 1) only
    top2 = deepfool(model, x, y, overshoot=0.0, candidates=2)
    expected = torch.tensor([-(0.3 + 1e-4), 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close((top2 - x).flatten(), expected, atol=1e-8, rtol=0.0)
    assert int(model(top2).argmax()) == 1


@pytest.mark.parametrize("norm", ["2", "inf"])
@pytest.mark.parametrize("candidates", [3, 10])
def test_matches_per_image_loop(norm: str, candidates: int) -> None:
    model = _cnn(torch.float64)
    x = _data(dtype=torch.float64)
    y = model(x).argmax(dim=1)
    y[:2] = (y[:2] + 1) % 7  # two images misclassified from the start
    kwargs = {"norm": norm, "steps": 20, "overshoot": 0.02, "candidates": candidates}
    got = deepfool(model, x, y, **kwargs)
    ref = _reference_deepfool(model, x, y, **kwargs)
    torch.testing.assert_close(got, ref, atol=1e-9, rtol=0.0)


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_batched_backward_equals_loop(norm: str) -> None:
    model = _cnn()
    x = _data(32)
    y = model(x).argmax(dim=1)
    loop = deepfool_result(model, x, y, norm=norm, batched_backward=False)
    vmapped = deepfool_result(model, x, y, norm=norm, batched_backward=True)
    torch.testing.assert_close(vmapped.x_adv, loop.x_adv, atol=1e-6, rtol=0.0)
    assert torch.equal(vmapped.steps, loop.steps)
    assert bool(loop.adversarial.all())


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_tiles_equal_one_batch_and_the_per_image_loop(norm: str) -> None:
    model = _cnn(torch.float64)
    x = _data(10, dtype=torch.float64)
    y = model(x).argmax(dim=1)
    y[4] = (y[4] + 1) % 7  # misclassified from the start, in the second tile
    tiled = deepfool_result(model, x, y, norm=norm, steps=20, tile=3)  # tiles of 3, 3, 3, 1
    whole = deepfool_result(model, x, y, norm=norm, steps=20, tile=len(x))
    ref = _reference_deepfool(model, x, y, norm=norm, steps=20, overshoot=0.02, candidates=10)
    torch.testing.assert_close(tiled.x_adv, whole.x_adv, atol=1e-9, rtol=0.0)
    torch.testing.assert_close(tiled.x_adv, ref, atol=1e-9, rtol=0.0)
    assert torch.equal(tiled.steps, whole.steps) and int(tiled.steps[4]) == 0
    assert torch.equal(tiled.adversarial, model(tiled.x_adv).argmax(dim=1) != y)
    assert bool(tiled.adversarial.all())


def test_an_output_only_the_copy_misclassifies_is_attacked_on_with_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The copy's boundary lies 0.05 short of the model's: after the copy's one step the
    model still says class 1, so the attack goes on with the model until it flips."""
    model = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 0.5, 1.5]], [0.0, -0.2])
    copy = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 0.5, 1.5]], [0.0, -0.25])
    monkeypatch.setattr("art_denoise.attacks.native._fast_copy.fast_copy", lambda m, x: copy)
    x = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    result = deepfool_result(model, x, torch.tensor([1]), norm="2", overshoot=0.0)
    assert int(copy(result.x_adv).argmax()) == 0
    assert result.adversarial.tolist() == [True] and int(model(result.x_adv).argmax()) == 0
    assert result.steps.tolist() == [2]  # one on the copy, one more on the model


def test_default_tile_on_the_cpu_splits_a_large_batch() -> None:
    model = _cnn(torch.float64)
    x = _data(CPU_TILE + 5, dtype=torch.float64)
    y = model(x).argmax(dim=1)
    default = deepfool_result(model, x, y, norm="inf", steps=20)
    whole = deepfool_result(model, x, y, norm="inf", steps=20, tile=len(x))
    torch.testing.assert_close(default.x_adv, whole.x_adv, atol=1e-9, rtol=0.0)
    assert default.x_adv.shape == x.shape and torch.equal(default.steps, whole.steps)


def test_image_misclassified_at_start_is_returned_unchanged() -> None:
    model = _cnn()
    x = _data(8)
    y = model(x).argmax(dim=1)
    y[[1, 5]] = (y[[1, 5]] + 3) % 7
    result = deepfool_result(model, x, y)
    assert torch.equal(result.x_adv[[1, 5]], x[[1, 5]])  # exact: never touched
    assert result.steps[[1, 5]].tolist() == [0, 0]
    assert bool(result.adversarial.all())
    assert bool((result.steps[[0, 2, 3, 4, 6, 7]] >= 1).all())
    none_correct = deepfool_result(model, x, (y + 1) % 7)
    assert torch.equal(none_correct.x_adv, x) and int(none_correct.steps.sum()) == 0


def test_frozen_once_flipped() -> None:
    """An image adversarial after a few steps is not moved by the steps that follow."""
    model = _cnn()
    x = _data(32)
    y = model(x).argmax(dim=1)
    short = deepfool_result(model, x, y, steps=2)
    full = deepfool_result(model, x, y, steps=50)
    assert 0 < int(short.adversarial.sum()) < len(x)  # some flipped within 2 steps, not all
    done = short.adversarial
    assert torch.equal(full.x_adv[done], short.x_adv[done])
    assert torch.equal(full.steps[done], short.steps[done])
    assert bool((model(full.x_adv).argmax(dim=1) != y).all())


def test_not_adversarial_after_steps_is_counted_and_returned_as_is() -> None:
    """``z_1 - z_0 = sum(x) + 10`` > 0 on all of [0, 1]^4: no point in the box flips."""
    model = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], [0.0, 10.0])
    x = torch.full((2, 1, 2, 2), 0.5, dtype=torch.float64)
    result = deepfool_result(model, x, torch.tensor([1, 1]), steps=5)
    assert result.adversarial.tolist() == [False, False]
    assert result.steps.tolist() == [5, 5]
    # pushed along -w as far as the box allows, to the corner 0
    torch.testing.assert_close(result.x_adv, torch.zeros_like(x), atol=0.0, rtol=0.0)


def test_overshoot_scales_the_total_perturbation() -> None:
    """Two steps on a nonlinear boundary: x_2 = x0 + (1 + o)(r_1 + r_2), not per step."""
    model = _cnn(torch.float64)
    x = _data(8, torch.float64)
    y = model(x).argmax(dim=1)
    for o in (0.0, 0.5):
        ref = _reference_deepfool(model, x, y, norm="2", steps=2, overshoot=o, candidates=10)
        torch.testing.assert_close(deepfool(model, x, y, steps=2, overshoot=o), ref)


def test_model_untouched_and_no_parameter_gradients() -> None:
    model = _cnn().train()
    x = _data(8)
    y = model(x).argmax(dim=1)
    deepfool(model, x, y, steps=3)
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_empty_batch() -> None:
    result = deepfool_result(_cnn(), torch.zeros(0, 1, 6, 6), torch.zeros(0, dtype=torch.long))
    assert result.x_adv.shape == (0, 1, 6, 6) and result.adversarial.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norm": "1"}, "norm"),
        ({"steps": 0}, "steps"),
        ({"overshoot": -0.1}, "overshoot"),
        ({"candidates": 1}, "candidates"),
        ({"tile": 0}, "tile"),
    ],
)
def test_rejects_bad_settings(kwargs, match) -> None:
    x = _data(2)
    with pytest.raises(ValueError, match=match):
        deepfool(_cnn(), x, torch.tensor([0, 1]), **kwargs)


def test_rejects_labels_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"labels must be in \[0, 7\)"):
        deepfool(_cnn(), _data(2), torch.tensor([0, 7]))


@pytest.mark.cuda
@pytest.mark.parametrize("norm", ["2", "inf"])
def test_cuda_matches_cpu(norm: str) -> None:
    model = _cnn()
    x = _data(64)
    y = model(x).argmax(dim=1)
    cpu = deepfool_result(model, x, y, norm=norm)
    gpu = deepfool_result(model.cuda(), x.cuda(), y.cuda(), norm=norm)  # vmapped backward
    assert gpu.x_adv.device.type == "cuda" and bool(gpu.adversarial.all())
    torch.testing.assert_close(gpu.x_adv.cpu(), cpu.x_adv, atol=1e-4, rtol=0.0)
