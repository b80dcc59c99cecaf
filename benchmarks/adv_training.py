"""One PGD-7 adversarial-training epoch: ours vs a hand-written torch loop vs ART's Madry trainer.

Same model (the small CNN, same initial weights), same data (the first ``--n`` Fashion-MNIST
training images), same optimiser (Adam, lr 1e-3), batch 128, and the same attack for all
three: PGD Linf, eps 0.1, step 0.025, 7 iterations, one uniform random start, BatchNorm in
inference mode while attacking, training on adversarial examples only. Printed: seconds per
epoch and the ratios

* ``ours / hand loop`` — the overhead of :func:`art_denoise.training.fit` over the floor
  (target <= 1.10);
* ``ART / ours`` — what the torch-native loop saves over ART's ``AdversarialTrainerMadryPGD``
  (numpy round trips per batch and per attack step).

After a warm-up on two batches, each contender runs ``--repeats`` epochs from the same
start, in turn, and the fastest is kept.
Tests never assert these times; this script prints them::

    python benchmarks/adv_training.py [--n 10000] [--repeats 2] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from art_denoise.data import load_dataset
from art_denoise.models import create_model
from art_denoise.training import PGDTraining, fit

EPS, STEP, STEPS, BATCH, LR = 0.1, 0.025, 7, 128, 1e-3


def _set_bn_eval(model: nn.Module, eval_mode: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(not eval_mode)


def hand_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    """The floor: the shortest correct PGD-7 training epoch in plain torch."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    model.train()
    for i in range(0, len(x), BATCH):
        idx = perm[i : i + BATCH]
        xb, yb = x[idx], y[idx]
        _set_bn_eval(model, True)
        delta = (torch.rand(xb.shape, generator=gen) * 2 - 1) * EPS
        x_adv = (xb + delta).clamp(0, 1)
        for _ in range(STEPS):
            x_adv.requires_grad_(True)
            loss = nn.functional.cross_entropy(model(x_adv), yb)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + STEP * grad.sign()
            x_adv = torch.min(torch.max(x_adv, xb - EPS), xb + EPS).clamp(0, 1)
        _set_bn_eval(model, False)
        loss = nn.functional.cross_entropy(model(x_adv), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    method = PGDTraining(
        eps=EPS,
        step_size=STEP,
        steps=STEPS,
        norm="inf",
        restarts=1,
        random_start=True,
        prob_start_from_clean=0.0,
        bn_eval=True,
        track_clean=False,
    )
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    fit(model, opt, method, x, y, epochs=1, batch_size=BATCH, seed=seed, progress=False)


def art_madry(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    from art.defences.trainer import AdversarialTrainerMadryPGD

    from art_denoise.estimators import to_art_classifier

    np.random.seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    clf = to_art_classifier(model, optimizer=opt, device=str(x.device))
    trainer = AdversarialTrainerMadryPGD(
        clf,
        nb_epochs=1,
        batch_size=BATCH,
        eps=EPS,
        eps_step=STEP,
        max_iter=STEPS,
        num_random_init=1,
    )
    trainer.fit(x.cpu().numpy(), y.cpu().numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="training images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-art", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data = load_dataset("fashion-mnist", n_train=args.n, n_test=1)
    x = torch.as_tensor(data.x_train, device=device)
    y = torch.as_tensor(data.y_train, device=device)
    torch.manual_seed(0)
    start = create_model("smallcnn", input_shape=data.input_shape).state_dict()

    contenders: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor, int], None]] = {
        "hand loop": hand_loop,
        "art_denoise fit": ours,
    }
    if not args.skip_art:
        contenders["ART MadryPGD"] = art_madry
    # warm-up: the first epoch in a process pays one-off costs (allocator, kernels)
    warm = create_model("smallcnn", input_shape=data.input_shape).to(device)
    for run in contenders.values():
        run(warm, x[: 2 * BATCH], y[: 2 * BATCH], 0)
    best: dict[str, float] = {}
    for r in range(args.repeats):
        for name, run in contenders.items():
            model = create_model("smallcnn", input_shape=data.input_shape).to(device)
            model.load_state_dict(start)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            run(model, x, y, r)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            best[name] = min(best.get(name, float("inf")), seconds)
            print(f"repeat {r}: {name:<16} {seconds:7.1f} s", flush=True)

    print(f"\nPGD-7 training epoch, {args.n} Fashion-MNIST images, {device}, batch {BATCH}")
    print("| loop | seconds | vs hand loop |\n| --- | ---: | ---: |")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.1f} | {seconds / best['hand loop']:.2f}x |")
    print(
        f"\nours / hand loop = {best['art_denoise fit'] / best['hand loop']:.2f} (target <= 1.10)"
    )
    if "ART MadryPGD" in best:
        print(f"ART / ours = {best['ART MadryPGD'] / best['art_denoise fit']:.2f}")


if __name__ == "__main__":
    main()
