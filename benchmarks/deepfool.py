"""Native batched DeepFool against ART's, foolbox's and torchattacks' DeepFool, one run.

Each backend runs the same pinned spec (50 steps, overshoot 0.02, every class a candidate)
on the same images through the harness (``AttackBackend.run``), in one batch of ``--n``
(``--batch-size`` gives each backend smaller batches; native DeepFool works in tiles of 128
on the CPU either way).
Prints, per norm (L2: all four; Linf: native and foolbox, the others have none), the
seconds, each library's time over the native time (target: native at least 5x faster than
the fastest library), the share of the correctly classified images whose output is
misclassified, and the median perturbation norm of those images.

    python benchmarks/deepfool.py [--n 1000] [--device cpu|cuda] [--epochs 1] [--threads 1]
                                  [--backends native,foolbox,art,torchattacks]
                                  [--batch-size N]

Uses the model of ``benchmarks/attack_overhead.py``: a small CNN trained for ``--epochs``
on 10,000 Fashion-MNIST images (``/usr/share/datasets/fashion-mnist`` or
``$ART_DENOISE_DATA``), or on the digits when it is absent. torchattacks' DeepFool loops
over the images one by one: on 2 CPU cores it takes minutes for 1,000 images.
"""

from __future__ import annotations

import argparse
import time

import torch

from art_denoise._torch import resolve_device
from art_denoise.attacks.backends import (
    UnsupportedAttackError,
    available_backends,
    get_backend,
)
from art_denoise.attacks.backends.base import perturbation_norms
from art_denoise.attacks.spec import AttackSpec
from art_denoise.data import load_dataset
from art_denoise.models import create_model
from art_denoise.training import train_standard


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _model(args: argparse.Namespace, device: torch.device):
    try:
        data = load_dataset("fashion-mnist", n_train=10_000, n_test=args.n)
    except FileNotFoundError:
        data = load_dataset("digits", n_test=args.n)
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=data.input_shape, num_classes=data.num_classes)
    train_standard(
        model,
        data.x_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=128,
        device=device,
        progress=False,
    )
    return data, model.to(device).eval()


def _run(backend: str, model, x, y, spec: AttackSpec, device: torch.device):
    """(seconds, x_adv), or None when the backend has no such DeepFool."""
    engine = get_backend(backend)
    try:
        engine.check(spec)
        engine.run(model, x[:8], y[:8], spec.replace(steps=2))  # warm-up: imports, first calls
    except UnsupportedAttackError:
        return None
    _sync(device)
    tic = time.perf_counter()
    x_adv = engine.run(model, x, y, spec)
    _sync(device)
    return time.perf_counter() - tic, x_adv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test images attacked")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images each backend is given at once (default: all --n in one batch; native "
        "DeepFool still works in tiles of 128 on the CPU)",
    )
    parser.add_argument(
        "--backends", default=None, help="comma-separated (default: every installed one)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data, model = _model(args, device)
    x = torch.from_numpy(data.x_test).to(device)
    y = torch.from_numpy(data.y_test).to(device)
    backends = args.backends.split(",") if args.backends else available_backends()
    # native first (the others' ratios need it), torchattacks (one image at a time) last
    backends.sort(key=lambda b: (b != "native", b == "torchattacks"))
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    print(
        f"data {data.name}: {len(x)} images ({int(correct.sum())} correctly classified), "
        f"device {device}, torch {torch.__version__}"
    )
    for norm in ("2", "inf"):
        spec = AttackSpec(
            attack="deepfool",
            norm=norm,
            eps=None,
            steps=args.steps,
            overshoot=0.02,
            candidates=data.num_classes,
            batch_size=args.batch_size or len(x),
        )
        print(
            f"\nDeepFool L{norm}, {args.steps} steps, overshoot 0.02, {len(x)} images in "
            f"batches of {spec.batch_size}"
        )
        print(
            f"{'backend':<14}{'seconds':>9}{'x native':>10}{'adversarial':>13}"
            f"{'median L' + norm:>12}"
        )
        results = {}
        for b in backends:
            out = _run(b, model, x, y, spec, device)
            if out is None:
                continue
            sec, x_adv = out
            with torch.no_grad():
                fooled = (model(x_adv).argmax(dim=1) != y)[correct]
            size = perturbation_norms(x_adv - x, norm)[correct].median()
            results[b] = sec
            ratio = sec / results.get("native", float("nan"))
            print(f"{b:<14}{sec:9.2f}{ratio:10.1f}{float(fooled.float().mean()):13.1%}{size:12.4f}")
        libraries = {b: s for b, s in results.items() if b != "native"}
        if "native" in results and libraries:
            fastest = min(libraries, key=libraries.__getitem__)
            print(
                f"native vs the fastest library ({fastest}): "
                f"{libraries[fastest] / results['native']:.1f}x faster (target >= 5)"
            )


if __name__ == "__main__":
    main()
