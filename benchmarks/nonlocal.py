"""Time and peak memory of the non-local denoising block: SDPA path vs materialised matrix.

For each device, channel count C and map size H = W, the Gaussian (softmax) non-local
block (``DenoisingBlock(C, "nonlocal")``: filter -> 1x1 conv -> BN -> residual, in
training mode), non-embedded and embedded (theta, phi to C/2), is run with
``implementation="sdpa"`` and ``implementation="reference"`` (builds the B x N x N
affinity matrix); the "default" column says which of the two the default
``implementation="auto"`` takes (it materialises small matrices). Reported:
forward time (no grad), forward+backward time (gradients of the input and all
parameters), their peak memory, and the ratios reference / sdpa (memory: > 1 means SDPA
uses less; time: > 1 means SDPA is faster). On CUDA the block is also compared with the
bare ``scaled_dot_product_attention`` call (contiguous tokens, no padding) plus its 1x1
convs (ratio block / bare, target <= 1.3).

Peak memory: on CPU each case runs in a fresh subprocess; before each measurement the
free heap is returned to the OS (``malloc_trim``) and the peak RSS is reset
(``/proc/self/clear_refs``), then peak = VmHWM - VmRSS at the start (Linux only). On
CUDA: ``torch.cuda.max_memory_allocated`` above the memory allocated at the start.

    OMP_NUM_THREADS=2 python benchmarks/nonlocal.py [--sizes 14 28 56] [--channels 64 256]
        [--batch 32] [--device cpu|cuda|all] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise.blocks import DenoisingBlock
from art_denoise.filters.nonlocal_means import _auto_materialises

TIME_BUDGET_S = 3.0  # timed repeats per measurement: about this long, 1 to 10 runs


# --- measurement, inside one subprocess per case ---------------------------------------
def _status_mib(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _start_peak(device: torch.device) -> float:
    """Reset the peak counter; return the memory in use now (MiB)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mib("VmRSS:")


def _peak_mib(device: torch.device, start: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20 - start
    return _status_mib("VmHWM:") - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Any, device: torch.device) -> float:
    tic = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - tic


def _measure(fns: dict[str, Any], device: torch.device) -> dict[str, dict[str, Any]]:
    """Per implementation: a warm-up run, a run for peak memory, then timed runs.

    The timed runs alternate between the implementations (A B A B ...), so that a
    change in the machine's load hits all of them alike; the time is the median.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        fn()  # warm-up at full size: one-time buffers are not charged to the run
        start = _start_peak(device)
        first = _timed(fn, device)
        out[name] = {"peak_mib": _peak_mib(device, start), "times": [first]}
    slowest = max(r["times"][0] for r in out.values())
    reps = max(1, min(10, int(TIME_BUDGET_S / max(slowest, 1e-4))))
    for _ in range(reps):
        for name, fn in fns.items():
            out[name]["times"].append(_timed(fn, device))
    for r in out.values():
        r["time_s"] = statistics.median(r.pop("times"))
        r["reps"] = reps + 1
    return out


class _Bare(nn.Module):
    """The bare computation: theta/phi convs, one SDPA call, the 1x1 conv (no BN/residual)."""

    def __init__(self, block: DenoisingBlock) -> None:
        super().__init__()
        self.theta = getattr(block.filter, "theta", None)
        self.phi = getattr(block.filter, "phi", None)
        self.conv = block.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = x if self.theta is None else self.theta(x)
        k = x if self.phi is None else self.phi(x)

        def tokens(t: torch.Tensor) -> torch.Tensor:
            return t.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()

        out = F.scaled_dot_product_attention(tokens(q), tokens(k), tokens(x))
        return self.conv(out.squeeze(1).transpose(1, 2).reshape(b, c, h, w))


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """One case (device, channels, size, batch, embed): every implementation, both modes."""
    torch.manual_seed(0)
    device = torch.device(spec["device"])
    c, s, b = spec["channels"], spec["size"], spec["batch"]
    block = DenoisingBlock(c, "nonlocal", embed=spec["embed"], implementation="sdpa")
    block = block.to(device)
    nn.init.normal_(block.bn.weight)  # gradients flow through the filter, as after training
    reference = DenoisingBlock(c, "nonlocal", embed=spec["embed"], implementation="reference")
    reference = reference.to(device)
    reference.load_state_dict(block.state_dict())
    modules: dict[str, nn.Module] = {"sdpa": block, "reference": reference}
    if device.type == "cuda":
        modules["bare"] = _Bare(block)
    x = torch.randn(b, c, s, s, device=device, requires_grad=True)

    def fwd_of(module: nn.Module) -> Any:
        def fn() -> None:
            with torch.no_grad():
                module(x)

        return fn

    def fwd_bwd_of(module: nn.Module) -> Any:
        def fn() -> None:
            module(x).sum().backward()
            x.grad = None
            module.zero_grad(set_to_none=True)

        return fn

    warm = torch.randn(2, c, 4, 4, device=device)
    for module in modules.values():
        module(warm).sum().backward()
    fwd = _measure({k: fwd_of(m) for k, m in modules.items()}, device)
    fwd_bwd = _measure({k: fwd_bwd_of(m) for k, m in modules.items()}, device)
    return {
        **spec,
        "runs": {k: {**spec, "fwd": fwd[k], "fwd_bwd": fwd_bwd[k]} for k in modules},
    }


# --- the driver -------------------------------------------------------------------------
def _run_in_subprocess(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "?"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_row(cols: list[str], widths: list[int]) -> str:
    return "  ".join(col.rjust(w) for col, w in zip(cols, widths, strict=True))


HEADER = [
    "dev",
    "C",
    "HxW",
    "embed",
    "default",
    "fwd sdpa",
    "fwd ref",
    "t ratio",
    "fwd+bwd sdpa",
    "fwd+bwd ref",
    "t ratio",
    "MiB sdpa",
    "MiB ref",
    "mem ratio",
    "MiB fb sdpa",
    "MiB fb ref",
    "mem ratio",
]
WIDTHS = [4, 4, 7, 5, 7, 9, 9, 7, 12, 11, 7, 9, 9, 9, 11, 10, 9]


def _default_path(c: int, size: int, embed: bool) -> str:
    """The path ``implementation="auto"`` (the default) takes for this case."""
    d = max(1, c // 2) if embed else c
    return "ref" if _auto_materialises(size * size, c, d) else "sdpa"


def _row(sdpa: dict[str, Any], ref: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
    def ms(r: dict[str, Any], k: str) -> str:
        return f"{r[k]['time_s'] * 1e3:.1f}ms"

    def mib(r: dict[str, Any], k: str) -> str:
        return f"{r[k]['peak_mib']:.0f}"

    ratios: dict[str, float] = {}
    for k in ("fwd", "fwd_bwd"):
        ratios[f"time_{k}"] = ref[k]["time_s"] / sdpa[k]["time_s"]
        ratios[f"mem_{k}"] = ref[k]["peak_mib"] / max(sdpa[k]["peak_mib"], 1.0)
    cols = [
        sdpa["device"],
        str(sdpa["channels"]),
        f"{sdpa['size']}x{sdpa['size']}",
        "yes" if sdpa["embed"] else "no",
        _default_path(sdpa["channels"], sdpa["size"], sdpa["embed"]),
        ms(sdpa, "fwd"),
        ms(ref, "fwd"),
        f"{ratios['time_fwd']:.2f}",
        ms(sdpa, "fwd_bwd"),
        ms(ref, "fwd_bwd"),
        f"{ratios['time_fwd_bwd']:.2f}",
        mib(sdpa, "fwd"),
        mib(ref, "fwd"),
        f"{ratios['mem_fwd']:.2f}",
        mib(sdpa, "fwd_bwd"),
        mib(ref, "fwd_bwd"),
        f"{ratios['mem_fwd_bwd']:.2f}",
    ]
    return cols, ratios


def _judge(
    spec: dict[str, Any], runs: dict[str, Any], largest: int
) -> tuple[str, dict[str, float], list[str], list[str]]:
    """One case's printed line, its ratios, and the targets it misses (failures, notes)."""
    c, s, embed = spec["channels"], spec["size"], spec["embed"]
    cols, ratios = _row(runs["sdpa"], runs["reference"])
    line = _fmt_row(cols, WIDTHS)
    label = " ".join(cols[:4])
    failures: list[str] = []
    notes: list[str] = []
    if "bare" in runs:
        for k in ("fwd", "fwd_bwd"):
            r = runs["sdpa"][k]["time_s"] / runs["bare"][k]["time_s"]
            ratios[f"block_over_bare_{k}"] = r
            line += f"  block/bare {k} {r:.2f}"
            if r > 1.3:
                failures.append(f"{label}: block/bare {k} {r:.2f} > 1.3")
    for k in ("fwd", "fwd_bwd"):
        if ratios[f"time_{k}"] < 1.0:
            msg = f"{label}: sdpa slower than ref ({k}): {ratios[f'time_{k}']:.2f}"
            if _default_path(c, s, embed) == "ref":
                notes.append(msg + " (the default materialises here)")
            else:
                failures.append(msg)
    if s == largest and ratios["mem_fwd_bwd"] < 4.0:
        failures.append(f"{label}: memory ratio {ratios['mem_fwd_bwd']:.2f} < 4")
    return line, ratios, failures, notes


def _devices(asked: str) -> list[str]:
    """The devices to measure (CUDA only where present), with a word on what is missing."""
    devices = ["cpu", "cuda"] if asked == "all" else [asked]
    if "cuda" in devices and not torch.cuda.is_available():
        print("no CUDA GPU: CPU only")
        devices.remove("cuda")
    if "cpu" in devices and not os.access("/proc/self/clear_refs", os.W_OK):
        print("warning: no /proc/self/clear_refs: CPU peak memory will not be reset")
    return devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[14, 28, 56])
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--json", help="also write all measurements to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    if args.quick:
        args.sizes, args.channels, args.batch = [6, 8], [8, 16], 2
    devices = _devices(args.device)
    print(
        f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} threads, batch {args.batch}, load average "
        f"{os.getloadavg()[0]:.1f}. sdpa = implementation='sdpa' (forced), ref = the "
        "materialised matrix, default = the path implementation='auto' takes; ratios = "
        "ref / sdpa (time > 1: sdpa faster; memory > 1: sdpa smaller); fb = fwd+bwd"
    )
    print(_fmt_row(HEADER, WIDTHS), flush=True)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    notes: list[str] = []
    largest = max(args.sizes)
    for device in devices:
        for c in args.channels:
            for s in args.sizes:
                for embed in (False, True):
                    spec = {"device": device, "channels": c, "size": s, "batch": args.batch}
                    spec["embed"] = embed
                    case = _run_in_subprocess(spec)
                    if "error" in case:
                        print(f"{spec}: {case['error']}", flush=True)
                        failures.append(f"{spec} failed")
                        continue
                    runs = case["runs"]
                    line, ratios, failed, noted = _judge(spec, runs, largest)
                    print(line, flush=True)
                    failures += failed
                    notes += noted
                    results.append({"runs": runs, "ratios": ratios})
    print(
        f"targets (fwd+bwd memory ratio >= 4 at {largest}x{largest}, the default path not "
        "slower than ref at any size, CUDA block <= 1.3x bare): "
        + ("met" if not failures else "NOT met")
    )
    for failure in failures:
        print("  " + failure)
    for note in notes:
        print("  note: " + note)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
