"""The PGD step sweep in one pass against separate runs per step count.

One pass runs PGD once to the largest count and checks every example at each
checkpoint (``art_denoise.attacks.checkpointed_pgd``); the separate runs attack from
scratch for each count through the torchattacks backend (the library whose PGD the
one-pass loop reproduces step for step). Prints the time of each, their ratio (the sum
of the counts over the largest one is the ideal: 1.88 for 10..1000) and whether the
robust accuracies are identical.

    python benchmarks/sweep.py [--n 500] [--max-steps 1000] [--device cpu|cuda] [--threads 2]

Uses a small CNN trained for one epoch on Fashion-MNIST
(``/usr/share/datasets/fashion-mnist`` or ``$ART_DENOISE_DATA``), or on the digits when it
is absent.
"""

from __future__ import annotations

import argparse
import time

import torch

from art_denoise._torch import predict, resolve_device
from art_denoise.attacks.backends import available_backends, get_backend
from art_denoise.attacks.spec import AttackSpec
from art_denoise.data import load_dataset
from art_denoise.evaluation.sweeps import DEFAULT_STEPS, step_sweep
from art_denoise.models import create_model
from art_denoise.training import train_standard


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="test images attacked")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if "torchattacks" not in available_backends():
        raise SystemExit(
            "needs the torchattacks plugin: pip install -e plugins/art-denoise-torchattacks"
        )
    device = resolve_device(args.device)
    try:
        data = load_dataset("fashion-mnist", n_train=10000, n_test=args.n)
    except (OSError, ValueError):
        data = load_dataset("digits")
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=data.input_shape)
    train_standard(model, data.x_train, data.y_train, epochs=1, seed=0, progress=False)
    model.to(device).eval()
    x = torch.as_tensor(data.x_test[: args.n]).to(device)
    y = torch.as_tensor(data.y_test[: args.n]).to(device)
    steps = [s for s in DEFAULT_STEPS if s <= args.max_steps]
    spec = AttackSpec(
        attack="pgd",
        eps=args.eps,
        step_size=args.eps / 8,
        steps=steps[-1],
        random_start=True,
        batch_size=len(x),
    )

    _sync(device)
    tic = time.perf_counter()
    sweep = step_sweep(model, x, y, spec, steps, seed=0)
    _sync(device)
    one_pass = time.perf_counter() - tic

    backend = get_backend("torchattacks")
    clean = predict(model, x) == y
    separate_acc = []
    _sync(device)
    tic = time.perf_counter()
    for s in steps:
        adv = backend.run(model, x, y, spec.replace(steps=s), seed=0)
        separate_acc.append(float(((predict(model, adv) == y) & clean).float().mean()))
    _sync(device)
    separate = time.perf_counter() - tic

    print(f"data: {data.name}, {len(x)} images, device {device}, threads {torch.get_num_threads()}")
    print(f"steps:           {steps}")
    print(f"one pass:        {[round(a, 4) for a in sweep.robust_accuracy]}")
    print(f"separate runs:   {[round(a, 4) for a in separate_acc]}")
    print(f"identical:       {list(sweep.robust_accuracy) == separate_acc}")
    print(
        f"time: one pass {one_pass:.1f} s, separate {separate:.1f} s, "
        f"ratio separate/one-pass {separate / one_pass:.2f} "
        f"(ideal {sum(steps) / steps[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
