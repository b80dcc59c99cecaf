"""``art-denoise evaluate``: attack a saved model on a dataset through several backends."""

from __future__ import annotations

import argparse
from pathlib import Path

from art_denoise.attacks.backends import available_backends
from art_denoise.attacks.eot import DEFAULT_EOT_SAMPLES
from art_denoise.attacks.rp2 import RP2Config
from art_denoise.cli._common import check_input_shape, comma_floats, comma_list, make_specs
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.sweeps import (
    DEFAULT_RESTARTS,
    DEFAULT_STEPS,
    SWEEP_KINDS,
    SweepSpec,
)

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
    g = p.add_argument_group("sweeps, all-or-nothing and RP2")
    g.add_argument(
        "--sweep",
        type=comma_list,
        default=[],
        help="steps, eps and/or restarts (comma-separated): robust accuracy against PGD steps "
        f"({', '.join(str(v) for v in DEFAULT_STEPS)}), eps or random restarts "
        f"({', '.join(str(v) for v in DEFAULT_RESTARTS)}), plotted in sweeps.png",
    )
    g.add_argument("--max-steps", type=int, default=None, help="cut the step sweep here")
    g.add_argument("--sweep-eps", type=comma_floats, default=None, help="budgets of the eps sweep")
    g.add_argument(
        "--max-restarts", type=int, default=10, help="cut the restart sweep here (default 10)"
    )
    g.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="run the attacks as one sequence, each only on the images still standing "
        "(CAAD criterion); accuracies in the report are then cumulative",
    )
    g.add_argument(
        "--rp2", action="store_true", help="also run targeted RP2 stickers against every class"
    )
    g.add_argument("--rp2-iter", type=int, default=100, help="RP2 Adam steps")
    g.add_argument("--rp2-area", type=float, default=0.25, help="share of the image covered")
    g.add_argument("--rp2-stickers", type=int, default=1, help="rectangles in the RP2 mask")
    g.add_argument("--rp2-images", type=int, default=100, help="RP2 victims per model")


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
    p.add_argument(
        "--autoattack",
        action="store_true",
        help="add AutoAttack at every eps (torchattacks: the standard version; ART: "
        "APGD-CE, APGD-DLR, Square), after the other attacks",
    )
    p.add_argument("--aa-steps", type=int, default=100, help="AutoAttack's APGD/FAB iterations")
    p.add_argument("--aa-queries", type=int, default=5000, help="AutoAttack's Square queries")
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
    attacks = list(args.attacks)
    if getattr(args, "autoattack", False) and "autoattack" not in attacks:
        attacks.append("autoattack")
    specs = make_specs(
        attacks,
        args.eps,
        norm=args.norm,
        steps=args.steps,
        step_size=args.step_size,
        random_start=args.random_start,
        restarts=args.restarts,
        batch_size=args.batch_size,
        deepfool_steps=args.deepfool_steps,
        overshoot=args.overshoot,
        autoattack_steps=getattr(args, "aa_steps", 100),
        autoattack_queries=getattr(args, "aa_queries", 5000),
    )
    if args.eot is not None:
        # both ways: single draws, then EOT, so the report shows what EOT changes
        specs += [s.replace(eot_samples=args.eot) for s in specs]
    return specs


def sweeps_from_args(args: argparse.Namespace) -> list[SweepSpec]:
    """The ``--sweep`` kinds as :class:`SweepSpec` s, with their cuts."""
    out = []
    # a cut or a value list for a sweep that is not asked for would be silently ignored
    if args.sweep_eps and "eps" not in args.sweep:
        raise ValueError("--sweep-eps needs --sweep eps")
    if args.max_steps is not None and "steps" not in args.sweep:
        raise ValueError("--max-steps needs --sweep steps")
    for kind in dict.fromkeys(args.sweep):
        if kind not in SWEEP_KINDS:
            raise ValueError(f"unknown sweep {kind!r}; expected one of {', '.join(SWEEP_KINDS)}")
        if kind == "steps":
            out.append(SweepSpec("steps", max_value=args.max_steps))
        elif kind == "restarts":
            out.append(SweepSpec("restarts", max_value=args.max_restarts))
        else:
            values = tuple(args.sweep_eps) if args.sweep_eps else None
            out.append(SweepSpec("eps", values=values))
    if out and "pgd" not in args.attacks:
        raise ValueError("--sweep needs pgd among --attacks (the sweeps vary PGD)")
    return out


def rp2_from_args(args: argparse.Namespace) -> RP2Evaluation | None:
    """``--rp2`` and its settings as an :class:`RP2Evaluation` (``None`` without ``--rp2``)."""
    if not args.rp2:
        return None
    config = RP2Config(max_iter=args.rp2_iter, random_seed=args.seed)
    return RP2Evaluation(
        config=config,
        area_fraction=args.rp2_area,
        n_stickers=args.rp2_stickers,
        n_images=args.rp2_images,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from art_denoise.data import load_dataset
    from art_denoise.evaluation import evaluate
    from art_denoise.evaluation.distributed import init_from_env, is_main_process
    from art_denoise.models import load_model

    specs = specs_from_args(args)  # usage errors first, before any loading
    sweeps = sweeps_from_args(args)
    rp2 = rp2_from_args(args)
    backends = args.backends or available_backends()
    device = init_from_env(args.device)  # under torchrun: this rank's device, group joined
    model = load_model(args.model, device=device)
    data = load_dataset(args.dataset, path=args.data_path, n_test=args.n_samples)
    check_input_shape(model, data, model_path=args.model, dataset=args.dataset)
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
        sweeps=sweeps,
        all_or_nothing=args.all_or_nothing,
        skip_unsupported=True,
        rp2=rp2,
    )
    if is_main_process():  # every rank holds the report; rank 0 writes it
        out = report.save(args.out)
        print(report.summary_table())
        print(f"\nreport written to {out}/report.md")
    return 0
