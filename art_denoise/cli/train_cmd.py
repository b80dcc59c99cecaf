"""``art-denoise train``: train a model (standard or robust) and write the file ``evaluate`` reads.

Single process::

    art-denoise train --dataset fashion-mnist --method pgd --eps 0.1 --epochs 10 --out runs/pgd

Several processes (gloo on CPU, NCCL on GPU), same results as one process with the same
global ``--batch-size``::

    torchrun --nproc_per_node=4 -m art_denoise.cli.main train ... --out runs/pgd

BlurNet (Raju & Lipasti 2019, https://arxiv.org/abs/1908.02256): ``--blur 5`` puts a 5x5
low-pass layer after the first convolution, ``--tv 1e-4`` penalises the total variation
of that layer's maps, ``--linf-reg 0.1`` pulls a ``--blur-kind learnable`` kernel towards
a box::

    art-denoise train --dataset mnist --method none --blur 5 --tv 1e-4 --out runs/blur
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from art_denoise.blocks.denoising import FILTERS
from art_denoise.blurnet.lowpass import KINDS
from art_denoise.cli._common import comma_ints, comma_list
from art_denoise.recipes import (
    LR_SCHEDULES,
    RECIPE_METHODS,
    BlurNetSettings,
    ModelRecipe,
    TrainedRun,
    TrainingRecipe,
    check_run_dir,
    clean_accuracy,
    setup_device,
    train_recipe,
)

HELP = "train a model (none, pgd, mix, fast or pcl) and write model.safetensors for evaluate"

#: ``--method``: the training methods, and ``"pcl"`` (PCL alone).
METHOD_CHOICES = RECIPE_METHODS
#: ``--denoise``: the denoising blocks' filters (``"none"`` is the 1x1-only ablation).
DENOISE_CHOICES = tuple(FILTERS)
#: ``--blur-kind``: the low-pass kernels.
BLUR_KINDS = tuple(KINDS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p)
    _add_training_arguments(p)
    _add_defense_arguments(p)
    _add_run_arguments(p)


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The dataset and the architecture."""
    p.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist or cifar10")
    p.add_argument("--data-path", type=Path, default=None, help="directory holding the dataset")
    p.add_argument("--model", default="smallcnn", help="smallcnn or preact-resnet18")
    p.add_argument(
        "--widths",
        type=comma_ints,
        default=None,
        help="smallcnn: channels of its two conv stages (default 32,64)",
    )
    p.add_argument(
        "--hidden",
        type=int,
        default=None,
        help="smallcnn: hidden fully-connected units (default 128)",
    )


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The method, the run directory, the optimiser and its schedule, the attack, PCL."""
    p.add_argument("--method", default="pgd", choices=METHOD_CHOICES)
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (peak of onecycle)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="onecycle")
    p.add_argument("--eps", type=float, default=0.1, help="attack budget of the training attack")
    p.add_argument("--norm", choices=("inf", "2"), default="inf")
    p.add_argument("--steps", type=int, default=7, help="PGD iterations of the training attack")
    p.add_argument("--step-size", type=float, default=None, help="default 2.5 eps / steps")
    p.add_argument("--restarts", type=int, default=1, help="PGD restarts during training")
    p.add_argument("--targeted", action="store_true", help="PGD towards a random label (Xie)")
    p.add_argument("--prob-start-from-clean", type=float, default=0.2)
    p.add_argument("--mix-alpha", type=float, default=0.5, help="clean weight of --method mix")
    p.add_argument("--mix-attack", choices=("fgsm", "pgd"), default="fgsm")
    p.add_argument("--pcl", action="store_true", help="add PCL to --method pgd")
    p.add_argument("--pcl-layers", type=comma_list, default=None, help="default: the stages")
    p.add_argument(
        "--pcl-weights", type=float, nargs=2, default=(1.0, 1e-4), metavar=("PULL", "PUSH")
    )


def _add_defense_arguments(p: argparse.ArgumentParser) -> None:
    """Denoising blocks and BlurNet."""
    p.add_argument("--denoise", choices=DENOISE_CHOICES, default=None, help="add denoising blocks")
    p.add_argument("--denoise-after", type=comma_list, default=["stages"], help="names or preset")
    p.add_argument(
        "--blur",
        type=int,
        default=None,
        metavar="K",
        help="BlurNet: a KxK low-pass layer after the first conv (K odd; the paper: 3, 5, 7)",
    )
    p.add_argument(
        "--blur-kind", choices=BLUR_KINDS, default=None, help="kernel of --blur (default box)"
    )
    p.add_argument(
        "--tv",
        type=float,
        default=None,
        metavar="W",
        help="BlurNet: weight of the total variation of the first layer's maps (e.g. 1e-4)",
    )
    p.add_argument(
        "--linf-reg",
        type=float,
        default=None,
        metavar="A",
        help="BlurNet: weight of the L-inf penalty on a --blur-kind learnable kernel",
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The data split, averaging, early stopping, checkpoints, precision, device, seed."""
    p.add_argument("--val-size", type=int, default=1000, help="held-out training images")
    p.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="keep an exponential moving average of the weights (e.g. 0.999) and save it",
    )
    p.add_argument("--overfit-drop", type=float, default=0.2, help="fast: early-stop threshold")
    p.add_argument("--train-size", type=int, default=None, help="first N training images")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)


def _training_recipe(args: argparse.Namespace) -> TrainingRecipe:
    """The training options (checked: the attack, ``--pcl``, ``--ema``)."""
    return TrainingRecipe(
        method=args.method,
        eps=args.eps,
        norm=args.norm,
        steps=args.steps,
        step_size=args.step_size,
        restarts=args.restarts,
        targeted=args.targeted,
        prob_start_from_clean=args.prob_start_from_clean,
        mix_alpha=args.mix_alpha,
        mix_attack=args.mix_attack,
        pcl=args.pcl,
        pcl_layers=args.pcl_layers,
        pcl_weights=args.pcl_weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        ema=args.ema,
        val_size=args.val_size,
        train_size=args.train_size,
        overfit_drop=args.overfit_drop,
        checkpoint_every=args.checkpoint_every,
        amp=args.amp,
        seed=args.seed,
    )


def _blurnet_settings(args: argparse.Namespace) -> BlurNetSettings | None:
    """The checked BlurNet options, or ``None`` when none is given."""
    options = (args.blur, args.blur_kind, args.tv, args.linf_reg)
    if all(v is None for v in options):
        return None
    return BlurNetSettings(blur=args.blur, kind=args.blur_kind, tv=args.tv, linf_reg=args.linf_reg)


def _model_recipe(args: argparse.Namespace) -> ModelRecipe:
    """The model options (checked: BlurNet's, then ``--widths`` / ``--hidden``)."""
    blurnet = _blurnet_settings(args)
    return ModelRecipe(
        model=args.model,
        widths=args.widths,
        hidden=args.hidden,
        denoise=args.denoise,
        denoise_after=args.denoise_after,
        blurnet=blurnet,
    )


def _print_summary(args: argparse.Namespace, run: TrainedRun, acc: float, n_test: int) -> None:
    result = run.result
    print(
        f"{args.model} on {run.dataset}, method {args.method}: clean test accuracy {acc:.1%} "
        f"({n_test} images); {len(result.history)} epoch(s), {run.seconds:.0f} s"
        + (f"; stopped early, best epoch {result.best_epoch}" if result.stopped_early else ""),
        file=sys.stdout,
    )


def run(args: argparse.Namespace) -> int:
    from art_denoise.data import load_dataset

    # Usage errors first, before any data is read or file written.
    training = _training_recipe(args)
    recipe = _model_recipe(args)
    out = check_run_dir(args.out, resume=args.resume)
    device, ctx = setup_device(args.device)
    data = load_dataset(args.dataset, path=args.data_path)
    trained = train_recipe(
        recipe,
        training,
        data,
        device=device,
        checkpoint_dir=out,
        resume=args.resume,
        progress=not args.quiet,
        dist_ctx=ctx,
    )
    if not ctx.is_main:
        return 0
    acc = clean_accuracy(trained.model, data.x_test, data.y_test, device)
    model_path = trained.save(out, test_accuracy=acc)
    _print_summary(args, trained, acc, len(data.x_test))
    print(
        f"model: {model_path}  (art-denoise evaluate --model {model_path} --dataset {args.dataset})"
    )
    return 0
