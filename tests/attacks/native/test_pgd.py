"""Native FGSM / PGD against a per-image loop, foolbox's and torchattacks' own code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from art_denoise.attacks.native import fgsm, pgd, random_start_point
from art_denoise.attacks.native._tiles import CPU_TILE


def _cnn(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    )
    return model.to(dtype).eval()


def _data(n: int = 12, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 6, 6, generator=g, dtype=dtype)
    y = torch.randint(0, 5, (n,), generator=g)
    return x, y


def _reference_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    *,
    norm: str,
    eps: float,
    step: float,
    steps: int,
    targeted: bool,
) -> torch.Tensor:
    """One image at a time: ascend (descend) CE, project onto the ball, then clip."""
    out = []
    for i in range(len(x)):
        x0, xi = x[i : i + 1], start[i : i + 1].clone()
        for _ in range(steps):
            xi.requires_grad_(True)
            loss = F.cross_entropy(model(xi), y[i : i + 1])
            (g,) = torch.autograd.grad(-loss if targeted else loss, xi)
            xi = xi.detach()
            if norm == "inf":
                xi = x0 + (xi + step * g.sign() - x0).clamp(-eps, eps)
            else:
                d = xi + step * g / g.norm().clamp_min(1e-12) - x0
                xi = x0 + d * min(1.0, eps / max(float(d.norm()), 1e-12))
            xi = xi.clamp(0.0, 1.0)
        out.append(xi)
    return torch.cat(out)


CASES = [
    pytest.param("inf", 0.1, 0.02, False, id="linf"),
    pytest.param("inf", 0.2, 0.05, True, id="linf-targeted"),
    pytest.param("2", 0.8, 0.2, False, id="l2"),
    pytest.param("2", 1.5, 0.3, True, id="l2-targeted"),
]


@pytest.mark.parametrize(("norm", "eps", "step", "targeted"), CASES)
@pytest.mark.parametrize("random", [False, True], ids=["from-x", "random-start"])
def test_pgd_matches_per_image_loop(norm, eps, step, targeted, random) -> None:
    model = _cnn(torch.float64)
    x, y = _data(dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    start = random_start_point(x, eps, norm, generator=g) if random else x
    got = pgd(
        model,
        x,
        y,
        norm=norm,
        eps=eps,
        step_size=step,
        steps=7,
        targeted=targeted,
        random_start=random,
        generator=torch.Generator().manual_seed(3),
    )
    ref = _reference_pgd(
        model, x, y, start, norm=norm, eps=eps, step=step, steps=7, targeted=targeted
    )
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=0.0)


@pytest.mark.parametrize(("norm", "eps", "step", "targeted"), CASES)
def test_tiles_equal_one_batch_and_the_per_image_loop(norm, eps, step, targeted) -> None:
    """The random start is drawn for the whole batch, then tiles of 5, 5, 2 are stepped."""
    model = _cnn(torch.float64)
    x, y = _data(dtype=torch.float64)
    start = random_start_point(x, eps, norm, generator=torch.Generator().manual_seed(3))
    kwargs = {"norm": norm, "eps": eps, "step_size": step, "steps": 7, "targeted": targeted}
    runs = {
        tile: pgd(
            model,
            x,
            y,
            random_start=True,
            generator=torch.Generator().manual_seed(3),
            tile=tile,
            **kwargs,
        )
        for tile in (5, len(x))
    }
    ref = _reference_pgd(
        model, x, y, start, norm=norm, eps=eps, step=step, steps=7, targeted=targeted
    )
    torch.testing.assert_close(runs[5], runs[len(x)], atol=1e-10, rtol=0.0)
    torch.testing.assert_close(runs[5], ref, atol=1e-10, rtol=0.0)


def test_default_tile_on_the_cpu_splits_a_large_batch_and_keeps_empty_ones() -> None:
    model = _cnn(torch.float64)
    x, y = _data(CPU_TILE + 7, dtype=torch.float64)
    kwargs = {"norm": "inf", "eps": 0.1, "step_size": 0.02, "steps": 4}
    default = pgd(model, x, y, **kwargs)
    whole = pgd(model, x, y, tile=len(x), **kwargs)
    assert default.shape == x.shape
    torch.testing.assert_close(default, whole, atol=1e-10, rtol=0.0)
    assert pgd(model, x[:0], y[:0], **kwargs).shape == (0, 1, 6, 6)


def test_fgsm_is_one_step_of_eps() -> None:
    model = _cnn()
    x, y = _data()
    for norm, eps in (("inf", 0.1), ("2", 1.0)):
        got = fgsm(model, x, y, norm=norm, eps=eps)
        torch.testing.assert_close(
            got, pgd(model, x, y, norm=norm, eps=eps, step_size=eps, steps=1), atol=0, rtol=0
        )
    linf = fgsm(model, x, y, norm="inf", eps=0.1) - x
    inside = (x > 0.1) & (x < 0.9)  # no clipping there: every pixel moves by exactly eps
    torch.testing.assert_close(linf[inside].abs(), torch.full_like(linf[inside], 0.1))
    assert torch.equal(fgsm(model, x, y, norm="inf", eps=0.0), x)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_random_start_is_foolbox_draw(norm: str) -> None:
    ep = pytest.importorskip("eagerpy")
    fb = pytest.importorskip("foolbox")
    x, _ = _data(64)
    attack = fb.attacks.LinfPGD() if norm == "inf" else fb.attacks.L2PGD()
    torch.manual_seed(7)
    theirs = ep.clip(attack.get_random_start(ep.astensor(x), 0.3), 0.0, 1.0).raw
    torch.manual_seed(7)
    mine = random_start_point(x, 0.3, norm)
    torch.testing.assert_close(mine, theirs, atol=1e-7, rtol=0.0)


def test_l2_start_is_uniform_in_the_ball() -> None:
    """For a uniform point of the d-ball, (r / eps)^d is uniform on [0, 1] (KS test)."""
    x = torch.full((4000, 1, 2, 2), 0.5)  # d = 4; eps 0.4 keeps the ball inside [0, 1]
    start = random_start_point(x, 0.4, "2", generator=torch.Generator().manual_seed(0))
    u = ((start - x).flatten(1).norm(dim=1) / 0.4) ** 4
    assert float(u.max()) <= 1 + 1e-5
    u, _ = u.sort()
    grid = torch.arange(1, len(u) + 1) / len(u)
    ks = float(torch.maximum(grid - u, u - (grid - 1 / len(u))).max())
    assert ks < 1.36 / len(u) ** 0.5  # 5% critical value
    # and the direction is isotropic: each coordinate has mean ~0
    assert float((start - x).flatten(1).mean(dim=0).abs().max()) < 0.01


def test_linf_start_is_uniform_in_the_cube() -> None:
    x = torch.full((2000, 1, 2, 2), 0.5)
    delta = random_start_point(x, 0.2, "inf", generator=torch.Generator().manual_seed(0)) - x
    assert float(delta.abs().max()) <= 0.2
    assert abs(float(delta.mean())) < 0.005
    assert abs(float(delta.var()) - 0.2**2 / 3) < 0.001  # U(-a, a) has variance a^2 / 3


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("random", [False, True], ids=["from-x", "random-start"])
def test_pgd_equals_foolbox_at_the_same_seed(norm: str, random: bool) -> None:
    fb = pytest.importorskip("foolbox")
    model = _cnn()
    x, y = _data(32)
    eps, step = (0.1, 0.02) if norm == "inf" else (1.0, 0.2)
    cls = fb.attacks.LinfPGD if norm == "inf" else fb.attacks.L2PGD
    attack = cls(abs_stepsize=step, steps=10, random_start=random)
    torch.manual_seed(5)
    _, theirs, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    for p in model.parameters():
        p.grad = None  # foolbox leaves them behind
    torch.manual_seed(5)
    mine = pgd(model, x, y, norm=norm, eps=eps, step_size=step, steps=10, random_start=random)
    torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0.0)


def test_pgd_equals_torchattacks_at_the_same_seed() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model = _cnn()
    x, y = _data(32)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    mine = pgd(model, x, y, norm="inf", eps=0.1, step_size=0.02, steps=10)
    torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0.0)


def test_pgd_raises_the_loss_and_targeted_lowers_it() -> None:
    model = _cnn()
    x, y = _data(32)
    ce = F.cross_entropy(model(x), y, reduction="none")
    adv = pgd(model, x, y, norm="inf", eps=0.1, step_size=0.02, steps=10)
    assert bool((F.cross_entropy(model(adv), y, reduction="none") > ce).all())
    target = (y + 1) % 5
    ce_t = F.cross_entropy(model(x), target, reduction="none")
    adv_t = pgd(model, x, target, norm="2", eps=1.0, step_size=0.2, steps=10, targeted=True)
    assert bool((F.cross_entropy(model(adv_t), target, reduction="none") < ce_t).all())


def test_only_input_gradients_and_model_untouched() -> None:
    model = _cnn().train()
    x, y = _data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pgd(model, x, y, norm="2", eps=1.0, step_size=0.2, steps=3, random_start=True)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"norm": "l1"}, ValueError, "norm"),
        ({"eps": -0.1}, ValueError, "eps"),
        ({"step_size": 0.0}, ValueError, "step_size"),
        ({"steps": 0}, ValueError, "steps"),
        ({"tile": 0}, ValueError, "tile"),
        ({"tile": 2.0}, TypeError, "tile"),
    ],
)
def test_pgd_rejects_bad_settings(kwargs, error, match) -> None:
    settings = {"norm": "inf", "eps": 0.1, "step_size": 0.01, "steps": 2, **kwargs}
    x, y = _data(2)
    with pytest.raises(error, match=match):
        pgd(_cnn(), x, y, **settings)


def test_pgd_rejects_bad_inputs() -> None:
    x, y = _data(4)
    settings = {"norm": "inf", "eps": 0.1, "step_size": 0.01, "steps": 1}
    with pytest.raises(TypeError, match="model"):
        pgd(lambda t: t, x, y, **settings)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating"):
        pgd(_cnn(), x.long(), y, **settings)
    with pytest.raises(ValueError, match="3 labels but x has 4"):
        pgd(_cnn(), x, y[:3], **settings)


@pytest.mark.cuda
def test_pgd_on_cuda_matches_cpu() -> None:
    model = _cnn()
    x, y = _data(64)
    g = torch.Generator().manual_seed(0)  # a CPU generator: the same start on both devices
    settings = {"norm": "2", "eps": 1.0, "step_size": 0.2, "steps": 10, "random_start": True}
    cpu = pgd(model, x, y, generator=g.manual_seed(0), **settings)
    gpu = pgd(model.cuda(), x.cuda(), y.cuda(), generator=g.manual_seed(0), **settings)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0.0)
    linf = pgd(model, x.cuda(), y.cuda(), norm="inf", eps=0.1, step_size=0.02, steps=10)
    assert float((linf - x.cuda()).abs().max()) <= 0.1 + 1e-6
