"""``art-denoise evaluate``: attack a saved model on a dataset through several backends."""

from __future__ import annotations

import argparse
from pathlib import Path

from art_denoise.attacks.backends import available_backends
from art_denoise.attacks.eot import DEFAULT_EOT_SAMPLES
from art_denoise.cli._common import comma_floats, comma_list, make_specs

HELP = "evaluate a saved model under attacks from several backends"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist or cifar10")
    p.add_argument("--data-path", type=Path, default=None, help="directory holding the dataset")
    add_attack_arguments(p)
    p.add_argument("--n-samples", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--out", type=Path, default=Path("art-denoise-report"), help="report directory")
    p.add_argument(
        "--no-checks",
        dest="checks",
        action="store_false",
        help="skip the sanity checks (gradients, randomness, eps=1, noise, ...) of the report",
    )


def add_attack_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``evaluate`` and ``demo``: the threat model and the backends."""
    p.add_argument("--attacks", type=comma_list, default=["pgd"], help="e.g. pgd,fgsm,deepfool")
    p.add_argument(
        "--backends",
        type=comma_list,
        default=None,
        help="e.g. art,torchattacks,foolbox (default: every installed backend)",
    )
    p.add_argument("--eps", type=comma_floats, default=[0.1], help="budget(s), e.g. 0.1,0.2")
    p.add_argument("--norm", choices=("inf", "2"), default="inf")
    p.add_argument("--steps", type=int, default=20, help="PGD iterations")
    p.add_argument("--step-size", type=float, default=None, help="PGD step (default eps/8)")
    p.add_argument("--restarts", type=int, default=1, help="PGD random restarts")
    p.add_argument(
        "--no-random-start",
        dest="random_start",
        action="store_false",
        help="start PGD at the clean image",
    )
    p.add_argument("--deepfool-steps", type=int, default=50)
    p.add_argument("--overshoot", type=float, default=0.02, help="DeepFool overshoot")
    p.add_argument(
        "--eot",
        type=int,
        nargs="?",
        const=DEFAULT_EOT_SAMPLES,
        default=None,
        metavar="K",
        help="also run every attack with Expectation over Transformation, averaging K draws "
        f"of a randomised model (default K={DEFAULT_EOT_SAMPLES})",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def specs_from_args(args: argparse.Namespace) -> list:
    specs = make_specs(
        args.attacks,
        args.eps,
        norm=args.norm,
        steps=args.steps,
        step_size=args.step_size,
        random_start=args.random_start,
        restarts=args.restarts,
        batch_size=args.batch_size,
        deepfool_steps=args.deepfool_steps,
        overshoot=args.overshoot,
    )
    if args.eot is not None:
        # both ways: single draws, then EOT, so the report shows what EOT changes
        specs += [s.replace(eot_samples=args.eot) for s in specs]
    return specs


def run(args: argparse.Namespace) -> int:
    from art_denoise.data import load_dataset
    from art_denoise.estimators import resolve_device
    from art_denoise.evaluation import evaluate
    from art_denoise.models import load_model

    specs = specs_from_args(args)  # usage errors first, before any loading
    backends = args.backends or available_backends()
    device = resolve_device(args.device)
    model = load_model(args.model, device=device)
    data = load_dataset(args.dataset, path=args.data_path, n_test=args.n_samples)
    shape = tuple(getattr(model, "input_shape", data.input_shape))
    if shape != tuple(data.input_shape):
        raise ValueError(
            f"model {str(args.model)!r} expects inputs {shape}, dataset {args.dataset!r} has "
            f"{tuple(data.input_shape)}"
        )
    report = evaluate(
        {args.model.stem: model},
        data.x_test,
        data.y_test,
        attacks=specs,
        backends=backends,
        dataset=data.name,
        split="test",
        device=device,
        seed=args.seed,
        progress=not args.quiet,
        checks=args.checks,
    )
    out = report.save(args.out)
    print(report.summary_table())
    print(f"\nreport written to {out}/report.md")
    return 0
