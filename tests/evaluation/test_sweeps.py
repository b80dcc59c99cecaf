"""Step, restart and eps sweeps: one pass equals separate runs, and the curves behave."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from art_denoise.attacks.backends import get_backend
from art_denoise.attacks.checkpointed_pgd import pgd_checkpoint_states
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation import Report, evaluate
from art_denoise.evaluation.checks import check_sweep
from art_denoise.evaluation.metrics import predict
from art_denoise.evaluation.sweeps import (
    DEFAULT_STEPS,
    Sweep,
    SweepSpec,
    eps_sweep,
    restart_sweep,
    step_sweep,
)

N = 120
PGD = AttackSpec(
    attack="pgd", eps=0.1, step_size=0.0125, steps=10, random_start=True, batch_size=50
)


@pytest.fixture
def data(digits) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, x_te, y_te = digits
    return torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])


def _correct(model, x_adv, y) -> torch.Tensor:
    return predict(model, x_adv) == y


@pytest.mark.parametrize("random_start", [True, False], ids=["random-start", "clean-start"])
def test_checkpoints_equal_separate_torchattacks_runs(digits_model, data, random_start) -> None:
    pytest.importorskip("torchattacks")
    x, y = data
    spec = PGD.replace(random_start=random_start)
    steps = [1, 3, 10, 25]
    states = pgd_checkpoint_states(digits_model, x, y, spec, steps, seed=3)
    backend = get_backend("torchattacks")
    for i, s in enumerate(steps):
        sep = backend.run(digits_model, x, y, spec.replace(steps=s), seed=3)
        assert torch.equal(states[i, 0], _correct(digits_model, sep, y)), s
    # the states really move: 1 step leaves more images standing than 25
    assert int(states[0, 0].sum()) > int(states[-1, 0].sum())


@pytest.mark.parametrize(
    ("backend", "spec", "steps"),
    [
        ("art", PGD.replace(random_start=False), (5, 20)),
        (
            "torchattacks",
            AttackSpec(attack="pgd", norm="2", eps=1.0, step_size=0.2, steps=10, batch_size=64),
            (4, 12),
        ),
    ],
    ids=["art-linf-clean-start", "torchattacks-l2"],
)
def test_checkpoints_equal_separate_runs(digits_model, data, backend, spec, steps) -> None:
    if backend != "art":
        pytest.importorskip(backend)
    x, y = data
    states = pgd_checkpoint_states(digits_model, x, y, spec, list(steps), seed=0)
    engine = get_backend(backend)
    for i, s in enumerate(steps):
        sep = engine.run(digits_model, x, y, spec.replace(steps=s), seed=0)
        assert torch.equal(states[i, 0], _correct(digits_model, sep, y)), s


def test_step_sweep_is_non_increasing_for_a_plain_model(digits_model, data) -> None:
    x, y = data
    sweep = step_sweep(digits_model, x, y, PGD, [1, 2, 5, 10, 20, 50])
    acc = sweep.robust_accuracy
    clean = float((predict(digits_model, x) == y).float().mean())
    # measured (digits CNN, 120 images): 0.992 0.975 0.9 0.733 0.658 0.633
    assert all(b <= a for a, b in itertools.pairwise(acc)), acc
    assert acc[0] <= clean and acc[-1] < acc[0] - 0.2, acc
    assert sweep.values == (1, 2, 5, 10, 20, 50) and sweep.backend == "art-denoise"
    assert check_sweep(sweep, N).status in ("pass", "warn")


def test_restart_sweep_equals_separate_single_restart_runs(digits_model, data) -> None:
    pytest.importorskip("torchattacks")
    x, y = data
    spec = PGD.replace(steps=5)
    sweep = restart_sweep(digits_model, x, y, spec, [1, 2, 4], seed=10)
    backend = get_backend("torchattacks")
    clean = _correct(digits_model, x, y)
    standing = clean.clone()
    expected = []
    for r in range(4):  # restart r is a separate run seeded 10 + r
        standing &= _correct(digits_model, backend.run(digits_model, x, y, spec, seed=10 + r), y)
        expected.append(float(standing.float().mean()))
    assert sweep.robust_accuracy == pytest.approx([expected[0], expected[1], expected[3]])
    assert sweep.robust_accuracy[-1] < sweep.robust_accuracy[0]


def test_eps_sweep_equals_separate_backend_runs(digits_model, data) -> None:
    x, y = data
    art = get_backend("art")
    sweep = eps_sweep(digits_model, x, y, PGD, [0.05, 0.1, 0.2], art)
    clean = _correct(digits_model, x, y)
    for eps, acc in zip(sweep.values, sweep.robust_accuracy, strict=True):
        spec = PGD.replace(eps=eps, step_size=PGD.step_size * eps / PGD.eps)
        adv = art.run(digits_model, x, y, spec, seed=0)
        assert acc == pytest.approx(float((_correct(digits_model, adv, y) & clean).float().mean()))
    assert sweep.robust_accuracy[0] > sweep.robust_accuracy[-1]


def test_evaluate_with_sweeps_writes_json_plot_and_checks(digits_model, data, tmp_path) -> None:
    x, y = data
    report = evaluate(
        digits_model,
        x[:60],
        y[:60],
        attacks=[PGD],
        backends=["art"],
        sweeps=[
            SweepSpec("steps", max_value=20),
            SweepSpec("restarts", values=(1, 3)),
            SweepSpec("eps", values=(0.05, 0.1)),
        ],
        progress=False,
        device="cpu",
    )
    (m,) = report.models
    kinds = [sw.kind for sw in m.sweeps]
    assert kinds == ["steps", "restarts", "eps"]
    assert m.sweeps[0].values == (10, 20)  # DEFAULT_STEPS cut by max_value
    names = {c.name: c.status for c in m.checks}
    assert {"sweep-steps", "sweep-restarts", "sweep-eps"} <= set(names)
    report.save(tmp_path)
    assert (tmp_path / "sweeps.png").stat().st_size > 1000
    data_json = json.loads((tmp_path / "report.json").read_text())
    assert [s["kind"] for s in data_json["models"][0]["sweeps"]] == kinds
    md = (tmp_path / "report.md").read_text()
    assert "Steps sweep" in md and "sweeps.png" in md
    again = Report.load(tmp_path)
    assert again.models[0].sweeps == m.sweeps


def test_sweep_needs_a_pgd_attack(digits_model, data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="sweeps need an untargeted PGD"):
        evaluate(
            digits_model,
            x[:8],
            y[:8],
            attacks=[AttackSpec(attack="fgsm", eps=0.1)],
            sweeps=[SweepSpec("steps")],
            progress=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "iterations"}, "sweep kind"),
        ({"kind": "steps", "values": ()}, "must not be empty"),
        ({"kind": "steps", "values": (10, -1)}, "must be > 0"),
        ({"kind": "steps", "values": (2.5,)}, "integers"),
        ({"kind": "eps", "max_value": 0}, "max_value"),
        ({"kind": "steps", "attack": AttackSpec(attack="fgsm", eps=0.1)}, "untargeted PGD"),
    ],
)
def test_bad_sweep_specs(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SweepSpec(**kwargs)


def test_max_value_below_every_value() -> None:
    with pytest.raises(ValueError, match="leaves no steps value"):
        SweepSpec("steps", max_value=5).resolve(PGD)
    assert SweepSpec("steps").resolve(PGD) == DEFAULT_STEPS
    assert SweepSpec("eps").resolve(PGD) == pytest.approx((0.025, 0.05, 0.075, 0.1, 0.15, 0.2))


def _sweep(kind: str, values, acc, base_steps: int = 10) -> Sweep:
    return Sweep(
        kind=kind,
        attack="pgd-linf",
        backend="art-denoise",
        values=tuple(values),
        robust_accuracy=tuple(acc),
        base=PGD.replace(steps=base_steps).to_dict(),
        seconds=0.0,
        n_samples=1000,
    )


def test_check_sweep_statuses() -> None:
    ok = check_sweep(_sweep("steps", [10, 20, 50], [0.5, 0.49, 0.49]), 1000)
    assert ok.status == "pass" and "10: 50.0%" in ok.detail
    rising = check_sweep(_sweep("steps", [10, 20, 50], [0.5, 0.4, 0.6]), 1000)
    assert rising.status == "fail" and "rose" in rising.detail
    falling = check_sweep(_sweep("steps", [10, 100, 1000], [0.5, 0.4, 0.3]), 1000)
    assert (
        falling.status == "warn" and "still falling after the evaluated 10 steps" in falling.detail
    )
    eps_up = check_sweep(_sweep("eps", [0.05, 0.1, 0.2], [0.6, 0.3, 0.5]), 1000)
    assert eps_up.status == "fail"
    # within noise (two binomial stds + one image of 1000) is not a rise
    noise = 2 * math.sqrt(0.3 * 0.7 / 1000) + 1 / 1000
    assert check_sweep(_sweep("restarts", [1, 2], [0.3, 0.3 + noise * 0.9]), 1000).status == "pass"


def test_checkpoint_input_errors(digits_model, data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="strictly increasing"):
        pgd_checkpoint_states(digits_model, x, y, PGD, [10, 5])
    with pytest.raises(ValueError, match="runs PGD"):
        pgd_checkpoint_states(digits_model, x, y, AttackSpec(attack="fgsm", eps=0.1), [1])
    with pytest.raises(ValueError, match="untargeted"):
        pgd_checkpoint_states(digits_model, x, y, PGD.replace(targeted=True), [1])
    with pytest.raises(ValueError, match="restarts"):
        pgd_checkpoint_states(digits_model, x, y, PGD, [1], restarts=0)
    with pytest.raises(ValueError, match="NaN"):
        pgd_checkpoint_states(digits_model, x * float("nan"), y, PGD, [1])


def test_l2_random_start_is_seeded_per_restart(digits_model, data) -> None:
    x, y = data
    spec = AttackSpec(
        attack="pgd", norm="2", eps=1.5, step_size=0.3, steps=3, random_start=True, batch_size=64
    )
    a = pgd_checkpoint_states(digits_model, x, y, spec, [1, 3], restarts=2, seed=4)
    b = pgd_checkpoint_states(digits_model, x, y, spec, [1, 3], restarts=2, seed=4)
    assert torch.equal(a, b)
    # the two restarts draw different starts, so some image differs between them
    assert not torch.equal(a[:, 0], a[:, 1])


def test_the_default_linf_eps_sweep_stops_at_the_whole_box() -> None:
    from art_denoise.evaluation.sweeps import SweepSpec

    def spec(eps: float, norm: str = "inf") -> AttackSpec:
        return AttackSpec(attack="pgd", norm=norm, eps=eps, step_size=eps / 8, steps=5)

    # 0.6 x (0.25 .. 2): 2 times would leave [0, 1] (a spec refuses eps > 1); 1.0 instead
    assert SweepSpec("eps").resolve(spec(0.6)) == pytest.approx((0.15, 0.3, 0.45, 0.6, 0.9, 1.0))
    assert SweepSpec("eps").resolve(spec(0.1)) == pytest.approx(
        (0.025, 0.05, 0.075, 0.1, 0.15, 0.2)
    )
    assert SweepSpec("eps").resolve(spec(0.8, "2")) == pytest.approx((0.2, 0.4, 0.6, 0.8, 1.2, 1.6))
    for eps in SweepSpec("eps").resolve(spec(0.6)):  # each one a valid attack
        assert spec(eps).eps == pytest.approx(eps)
