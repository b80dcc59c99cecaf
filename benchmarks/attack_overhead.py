"""PGD-20 time per backend as a ratio to the floor, and the harness's own overhead.

The floor is measured in the same run: 20 x one forward+backward pass (gradient with
respect to the input) of the same batch. The harness overhead is the wall time of
``evaluate(checks=False)`` divided by the time spent inside the libraries' attack calls
(target <= 1.05); the checks' cost is printed beside it as evaluate with / without them.
Also: DeepFool (L2, overshoot 0.02, 50 steps) on the first 200 images per backend, with
robust accuracy and the top-2 logit margin of the points each backend returns.

The native backend runs beside the libraries: its PGD-20 time over torchattacks' (best of
``--repeats`` interleaved runs each; target <= 1.0), and APGD-CE with 100 iterations over
the floor of 100 forward+backward passes (target <= 1.1; APGD drops the images it has
broken, so it may come in under the floor).

    python benchmarks/attack_overhead.py [--n 1000] [--device cpu|cuda] [--epochs 1] [--threads 1]

Uses Fashion-MNIST (``/usr/share/datasets/fashion-mnist`` or ``$ART_DENOISE_DATA``) and
falls back to the digits when it is absent.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from art_denoise._torch import resolve_device
from art_denoise.attacks.backends import available_backends, get_backend
from art_denoise.attacks.spec import AttackSpec
from art_denoise.data import load_dataset
from art_denoise.evaluation import evaluate
from art_denoise.models import create_model
from art_denoise.training import train_standard


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def floor_seconds(model, x, y, steps: int, device: torch.device, batch_size: int) -> float:
    """``steps`` x one forward+backward w.r.t. the input, batch by batch (the floor)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _sync(device)
    tic = time.perf_counter()
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        for _ in range(steps):
            xa = xb.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yb), xa)
            xb = (xb + 1e-3 * g.sign()).clamp(0, 1)
    _sync(device)
    for p in model.parameters():
        p.requires_grad_(True)
    return time.perf_counter() - tic


def _timed(engine, model, x, y, spec: AttackSpec, device: torch.device) -> tuple[float, float]:
    """(seconds, robust accuracy) of one harness run."""
    _sync(device)
    tic = time.perf_counter()
    x_adv = engine.run(model, x, y, spec)
    _sync(device)
    sec = time.perf_counter() - tic
    with torch.no_grad():
        return sec, float((model(x_adv).argmax(1) == y).float().mean())


def _native_vs_libraries(model, x, y, spec: AttackSpec, device: torch.device, args) -> None:
    """Native PGD over torchattacks' PGD; native APGD-CE-100 over its floor."""
    native = get_backend("native")
    print(f"\nnative backend (best of {args.repeats} runs each, interleaved)")
    if "torchattacks" in available_backends():
        ta = get_backend("torchattacks")
        t_native, t_ta = [], []
        for _ in range(args.repeats):
            t_native.append(_timed(native, model, x, y, spec, device)[0])
            t_ta.append(_timed(ta, model, x, y, spec, device)[0])
        print(
            f"PGD-20: native {min(t_native):.2f} s, torchattacks {min(t_ta):.2f} s, "
            f"ratio {min(t_native) / min(t_ta):.2f} (target <= 1.0)"
        )
    apgd = AttackSpec(attack="apgd-ce", eps=spec.eps, steps=100, batch_size=spec.batch_size)
    floor = min(
        floor_seconds(model, x, y, apgd.steps, device, args.batch_size) for _ in range(args.repeats)
    )
    runs = [_timed(native, model, x, y, apgd, device) for _ in range(args.repeats)]
    sec = min(r[0] for r in runs)
    print(
        f"APGD-CE-100: {sec:.2f} s, robust acc {runs[0][1]:.1%}; floor (100 x fwd+bwd) "
        f"{floor:.2f} s; ratio {sec / floor:.2f} (target <= 1.1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--deepfool-n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the native comparisons")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
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
    x = torch.from_numpy(data.x_test).to(device)
    y = torch.from_numpy(data.y_test).to(device)
    backends = available_backends()
    spec = AttackSpec(
        attack="pgd",
        norm="inf",
        eps=0.1,
        step_size=0.0125,
        steps=20,
        random_start=True,
        batch_size=args.batch_size,
    )
    print(f"data {data.name}: {len(x)} images, device {device}, torch {torch.__version__}")

    for b in backends:  # warm-up (imports, first-call costs)
        get_backend(b).run(model, x[:8], y[:8], spec.replace(steps=1))
    floor = floor_seconds(model, x, y, spec.steps, device, args.batch_size)
    print(f"\nPGD-20 Linf eps=0.1, batch {args.batch_size}; floor (20 x fwd+bwd) {floor:.2f} s")
    print(f"{'backend':<14}{'seconds':>9}{'x floor':>9}{'robust acc':>12}")
    for b in backends:
        engine = get_backend(b)
        _sync(device)
        tic = time.perf_counter()
        x_adv = engine.run(model, x, y, spec)
        _sync(device)
        sec = time.perf_counter() - tic
        with torch.no_grad():
            acc = float((model(x_adv).argmax(1) == y).float().mean())
        print(f"{b:<14}{sec:9.2f}{sec / floor:9.2f}{acc:12.1%}")

    if "native" in backends:
        _native_vs_libraries(model, x, y, spec, device, args)

    # The harness: evaluate() over all backends vs the time inside the libraries' calls,
    # without the checks (their extra attacks are not harness overhead), then the checks'
    # cost as a ratio of their own.
    engines = [get_backend(b) for b in backends]
    total = {}
    for checks in (False, True):
        for e in engines:
            e.library_seconds = 0.0
        _sync(device)
        tic = time.perf_counter()
        evaluate(
            model,
            x,
            y,
            attacks=[spec],
            backends=engines,
            device=device,
            progress=False,
            checks=checks,
        )
        _sync(device)
        total[checks] = time.perf_counter() - tic
        if not checks:
            inside = sum(e.library_seconds for e in engines)
    print(
        f"\nharness: evaluate {total[False]:.2f} s, inside the libraries {inside:.2f} s, "
        f"overhead {total[False] / inside:.3f} (target <= 1.05); with the checks "
        f"{total[True]:.2f} s ({total[True] / total[False]:.2f}x the attacks alone)"
    )

    n = min(args.deepfool_n, len(x))
    df = AttackSpec(
        attack="deepfool",
        norm="2",
        eps=None,
        steps=50,
        overshoot=0.02,
        candidates=data.num_classes,
        batch_size=n,
    )
    print(f"\nDeepFool L2, overshoot 0.02, 50 steps, {n} images")
    print(f"{'backend':<14}{'seconds':>9}{'robust acc':>12}{'median L2':>11}{'margin<1e-4':>13}")
    for b in backends:
        tic = time.perf_counter()
        x_adv = get_backend(b).run(model, x[:n], y[:n], df)
        sec = time.perf_counter() - tic
        with torch.no_grad():
            clean_ok = model(x[:n]).argmax(1) == y[:n]
            logits = model(x_adv)
        top2 = logits.topk(2, dim=1).values
        tiny = float(((top2[:, 0] - top2[:, 1]) < 1e-4).float().mean())
        acc = float(((logits.argmax(1) == y[:n]) & clean_ok).float().mean())
        l2 = float((x_adv - x[:n]).flatten(1).norm(dim=1).median())
        print(f"{b:<14}{sec:9.2f}{acc:12.1%}{l2:11.3f}{tiny:13.1%}")


if __name__ == "__main__":
    main()
