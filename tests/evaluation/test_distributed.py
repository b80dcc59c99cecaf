"""Evaluation across processes: two gloo ranks under torchrun give one process's report.

The test file is also the worker: ``python -m torch.distributed.run --nproc_per_node=2
test_distributed.py DIR`` runs :func:`_worker` on each rank, which evaluates the model
saved in DIR and writes each rank's report; the test compares them with a report made in
this process, the timing fields aside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import art_denoise
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation import Report, evaluate
from art_denoise.evaluation.distributed import (
    batch_seed,
    gather_batches,
    rank_and_world,
    shard,
    share_from_main,
)
from art_denoise.evaluation.sweeps import SweepSpec
from art_denoise.models import create_model

N = 24
BS = 8  # 3 batches: rank 0 attacks 1, rank 1 attacks 2
ATTACKS = [
    AttackSpec(attack="fgsm", eps=0.1, batch_size=BS),
    AttackSpec(attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True, batch_size=BS),
    AttackSpec(
        attack="pgd",
        eps=0.1,
        step_size=0.025,
        steps=5,
        random_start=True,
        restarts=2,
        batch_size=BS,
    ),
    AttackSpec(
        attack="pgd",
        eps=0.1,
        step_size=0.025,
        steps=5,
        random_start=True,
        targeted=True,
        batch_size=BS,
    ),
    AttackSpec(attack="deepfool", norm="2", eps=None, steps=10, batch_size=BS),
]
#: the randomised model's own attack: EOT over its input noise
EOT = AttackSpec(
    attack="pgd", eps=0.1, step_size=0.025, steps=5, random_start=True, eot_samples=2, batch_size=BS
)
SWEEPS = [SweepSpec("steps", values=(2, 5)), SweepSpec("eps", values=(0.05, 0.1))]


class NoisyInput(nn.Module):
    """A randomised model: Gaussian noise on the input, then the network."""

    def __init__(self, net: nn.Module, sigma: float = 0.05) -> None:
        super().__init__()
        self.net, self.sigma = net, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x + self.sigma * torch.randn_like(x)).clamp(0.0, 1.0))


def _models(state: dict[str, torch.Tensor]) -> dict[str, nn.Module]:
    nets = []
    for _ in range(2):
        net = create_model("smallcnn", input_shape=(1, 8, 8))
        net.load_state_dict(state)
        nets.append(net.eval())
    return {"cnn": nets[0], "noisy": NoisyInput(nets[1]).eval()}


def _evaluate(
    state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, all_or_nothing: bool
) -> Report:
    """Both models with checks and sweeps; or all-or-nothing, the CNN alone, no extras."""
    models = _models(state)
    return evaluate(
        models if not all_or_nothing else {"cnn": models["cnn"]},
        x,
        y,
        attacks=ATTACKS,
        extra_attacks={"noisy": [EOT]} if not all_or_nothing else None,
        backends=["art"],
        device="cpu",
        seed=3,
        progress=False,
        checks=not all_or_nothing,
        sweeps=SWEEPS if not all_or_nothing else (),
        all_or_nothing=all_or_nothing,
    )


def _cli_args(folder: Path) -> list[str]:
    return [
        "evaluate",
        "--model",
        str(folder / "m.safetensors"),
        "--dataset",
        "digits",
        "--n-samples",
        str(N),
        "--attacks",
        "fgsm,pgd",
        "--backends",
        "art",
        "--steps",
        "3",
        "--batch-size",
        str(BS),
        "--device",
        "cpu",
        "--restarts",
        "2",
        "--quiet",
    ]


def _worker(folder: Path) -> None:
    """One rank: join the group torchrun describes, :func:`evaluate` in it, write the
    reports this rank returned."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    state = torch.load(folder / "state.pt")
    x, y = torch.load(folder / "data.pt")
    for aon in (False, True):
        report = _evaluate(state, x, y, aon)
        (folder / f"rank{rank}-{'aon' if aon else 'full'}.json").write_text(report.to_json())
    dist.destroy_process_group()


def _without_seconds(obj: Any) -> Any:
    """The report's JSON without its timing fields."""
    if isinstance(obj, dict):
        return {k: _without_seconds(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_seconds(v) for v in obj]
    return obj


def _assert_same(a: Any, b: Any, where: str = "report") -> None:
    """Equal structure and strings; floats equal to 1e-12 (the same arithmetic, so in fact
    equal, but not compared with ``==``)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-12), where
    else:
        assert a == b, where


def _env() -> dict[str, str]:
    root = str(Path(art_denoise.__file__).parent.parent)
    paths = [root, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _torchrun(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """Start ``torchrun --standalone --nproc_per_node=2 ARGS`` (two gloo ranks on the CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*cmd, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait(proc: subprocess.Popen[str]) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-5000:]


@pytest.fixture
def saved(
    digits, digits_model, _trained_state, tmp_path
) -> tuple[Path, torch.Tensor, torch.Tensor]:
    from art_denoise.models import save_model

    _, _, x_te, y_te = digits
    x, y = torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])
    torch.save(_trained_state, tmp_path / "state.pt")
    torch.save((x, y), tmp_path / "data.pt")
    save_model(digits_model, tmp_path / "m.safetensors")
    return tmp_path, x, y


def test_cli_under_torchrun_writes_the_single_process_report(saved) -> None:
    """Two gloo ranks of ``art-denoise evaluate``: rank 0 writes the report one process
    writes: per-example outcomes, worst case per threat model, checks and status."""
    from art_denoise.cli.main import main

    folder, _, _ = saved
    args = _cli_args(folder)
    ranks = _torchrun(["-m", "art_denoise.cli.main", *args, "--out", "two"], folder)
    assert main([*args, "--out", str(folder / "one")]) == 0  # while the ranks run
    _wait(ranks)
    one, two = (json.loads((folder / d / "report.json").read_text()) for d in ("one", "two"))
    _assert_same(_without_seconds(one), _without_seconds(two))
    (m_one,), (m_two,) = one["models"], two["models"]
    outcomes = [r["robust_examples"] for r in m_one["results"]]
    assert outcomes == [r["robust_examples"] for r in m_two["results"]]
    assert len(outcomes[0]) == N and len(set(outcomes)) > 1
    assert m_one["threat_models"] and m_one["threat_models"] == m_two["threat_models"]
    assert [c["status"] for c in m_one["checks"]] == [c["status"] for c in m_two["checks"]]
    assert len(m_one["checks"]) > 5 and m_one["status"] == m_two["status"]


@pytest.mark.slow  # two processes starting torch and ART on 2 shared cores: about 30 s
def test_evaluate_in_a_gloo_group_gives_the_single_process_report(saved, _trained_state) -> None:
    """evaluate() inside a group of two ranks: two models (one randomised, attacked with
    EOT), restarts, a targeted attack, DeepFool's norms, checks, sweeps; and all-or-nothing."""
    folder, x, y = saved
    ranks = _torchrun([__file__, str(folder)], folder)
    with warnings.catch_warnings():  # PGD-5 may not converge on the tiny CNN
        warnings.simplefilter("ignore", RuntimeWarning)
        single = {aon: _evaluate(_trained_state, x, y, aon).to_dict() for aon in (False, True)}
    _wait(ranks)
    for aon in (False, True):
        tag = "aon" if aon else "full"
        one = _without_seconds(single[aon])
        two = [
            _without_seconds(json.loads((folder / f"rank{r}-{tag}.json").read_text()))
            for r in (0, 1)
        ]
        assert two[0] == two[1]  # every rank returns rank 0's report
        _assert_same(one, two[0])
        # and the comparison is not empty: per-example outcomes, worst cases and checks
        for m_one, m_two in zip(one["models"], two[0]["models"], strict=True):
            outcomes = [r["robust_examples"] for r in m_one["results"]]
            assert outcomes == [r["robust_examples"] for r in m_two["results"]]
            assert len(outcomes[0]) == N and len(set(outcomes)) > 1
            assert m_one["threat_models"] and m_one["threat_models"] == m_two["threat_models"]
            assert [c["status"] for c in m_one["checks"]] == [c["status"] for c in m_two["checks"]]
            assert bool(m_one["checks"]) != aon and bool(m_one["sweeps"]) != aon
            assert m_one["status"] == m_two["status"]
            deepfool = [r for r in m_one["results"] if r["eps"] is None]
            assert any(v is not None for v in deepfool[0]["perturbation_norms"])
        assert [m["name"] for m in one["models"]] == (["cnn"] if aon else ["cnn", "noisy"])
        assert one["all_or_nothing"] is aon


# ------------------------------------------------------------------ the parts, one process


def test_shards_cover_every_batch_once_in_order() -> None:
    for n in (0, 1, 5, 17):
        for world in (1, 2, 3, 8):
            got = [k for r in range(world) for k in shard(n, r, world)]
            assert got == list(range(n))
            sizes = [len(shard(n, r, world)) for r in range(world)]
            assert max(sizes) - min(sizes) <= 1


def test_one_process_is_the_identity() -> None:
    assert rank_and_world() == (0, 1)
    assert gather_batches(3, lambda k: k * k) == [0, 1, 4]
    obj = {"a": 1}
    assert share_from_main(obj) is obj
    seeds = {batch_seed(0, k) + r for k in range(50) for r in range(10)}
    assert len(seeds) == 500 and batch_seed(5, 0) == 5


def test_each_batch_is_seeded_by_its_global_index(digits_model, digits) -> None:
    """A batch's random start depends on (seed, batch) only: attacking the images from the
    third batch on gives their outcomes in the full run."""
    _, _, x_te, y_te = digits
    x, y = torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])
    spec = AttackSpec(
        attack="pgd", eps=0.1, step_size=0.05, steps=2, random_start=True, batch_size=BS
    )
    from art_denoise.attacks.backends import get_backend

    engine = get_backend("art")
    full = torch.cat(
        [
            engine.run(
                digits_model,
                x[k * BS : (k + 1) * BS],
                y[k * BS : (k + 1) * BS],
                spec,
                seed=batch_seed(1, k),
            )
            for k in range(N // BS)
        ]
    )
    report = evaluate(
        digits_model, x, y, attacks=[spec], backends=["art"], seed=1, progress=False, checks=False
    )
    pred = digits_model(full).argmax(1)
    clean = digits_model(x).argmax(1) == y
    expected = "".join("1" if v else "0" for v in ((pred == y) & clean).tolist())
    assert report.models[0].results[0].robust_examples == expected
    assert np.isclose(
        report.models[0].results[0].max_perturbation,
        float((full - x).abs().amax()),
        rtol=0,
        atol=1e-7,
    )


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
