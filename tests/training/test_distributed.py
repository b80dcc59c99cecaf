"""Two gloo processes under torchrun train exactly like one process with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_two_cpu_processes_match_one_process(digits, tmp_path):
    x, y, _, _ = digits
    data = tmp_path / "data.npz"
    np.savez(data, x=x[:300], y=y[:300])  # 300 / 64: the last global batch is uneven (44)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    single, double = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run(
        [sys.executable, str(HERE / "_ddp_worker.py"), str(data), str(single)],
        check=True,
        env=env,
        timeout=300,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "--master_addr=127.0.0.1",
            str(HERE / "_ddp_worker.py"),
            str(data),
            str(double),
            str(tmp_path / "ckpt"),
        ],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    a = torch.load(single, weights_only=True)
    b = torch.load(double, weights_only=True)
    for name, value in a["state"].items():
        assert torch.allclose(value, b["state"][name], atol=1e-5), name
    for ha, hb in zip(a["history"], b["history"], strict=True):
        for key in ("loss", "clean_acc", "adv_acc", "val_clean", "val_adv"):
            assert abs(ha[key] - hb[key]) < 1e-5, key
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()  # written by rank 0
