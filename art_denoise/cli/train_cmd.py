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

Every option is checked before the data is read: ranges, an option given without the one
that gives it a meaning (``--steps`` with ``--method none``, ``--denoise-after`` without
``--denoise``), and the model itself, built once for the dataset's image size (so
``--widths``, ``--denoise-after`` and ``--pcl-layers`` are checked too). ``--resume`` on a
finished run changes nothing it recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from art_denoise.blocks.denoising import FILTERS
from art_denoise.blurnet.lowpass import KINDS
from art_denoise.cli import _train_autoencoder
from art_denoise.cli._checks import (
    DATASET_SHAPES,
    check_data_options,
    check_device,
    check_needs,
    check_out_dir,
    comma_positive_ints,
    fraction,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    seed,
)
from art_denoise.cli._common import add_dataset_arguments, comma_list, load_data
from art_denoise.recipes import (
    LR_SCHEDULES,
    MODEL_FILE,
    RECIPE_METHODS,
    BlurNetSettings,
    ModelRecipe,
    TrainedRun,
    TrainingRecipe,
    build_model,
    check_run_dir,
    clean_accuracy,
    setup_device,
    train_recipe,
)

HELP = (
    "train a model (none, pgd, mix, fast or pcl) and write model.safetensors for evaluate, "
    "or a denoising autoencoder input filter (--method autoencoder)"
)

#: ``--method``: the training methods, and ``"pcl"`` (PCL alone).
METHOD_CHOICES = RECIPE_METHODS
#: ``--method autoencoder``: the denoising autoencoder input filter instead of a classifier.
AUTOENCODER_METHOD = "autoencoder"
#: ``--denoise``: the denoising blocks' filters (``"none"`` is the 1x1-only ablation).
DENOISE_CHOICES = tuple(FILTERS)
#: ``--blur-kind``: the low-pass kernels.
BLUR_KINDS = tuple(KINDS)


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p)
    _add_training_arguments(p)
    _add_defense_arguments(p)
    _add_run_arguments(p)
    _train_autoencoder.add_arguments(p)


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The dataset and the architecture."""
    add_dataset_arguments(p)
    p.add_argument("--model", default=None, help="smallcnn (default) or preact-resnet18")
    p.add_argument(
        "--widths",
        type=comma_positive_ints,
        default=None,
        help="smallcnn: channels of its two conv stages (default 32,64)",
    )
    p.add_argument(
        "--hidden",
        type=positive_int,
        default=None,
        help="smallcnn: hidden fully-connected units (default 128)",
    )


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The method, the run directory, the optimiser and its schedule, the attack, PCL.

    The options of the training attack default to ``None``: given with a method that
    does not use them, they are refused; left out, the recipe's defaults apply.
    """
    p.add_argument("--method", default="pgd", choices=(*METHOD_CHOICES, AUTOENCODER_METHOD))
    p.add_argument("--out", required=True, type=output_dir, help="run directory")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128, help="global batch size")
    p.add_argument(
        "--lr", type=positive_float, default=2e-3, help="Adam learning rate (peak of onecycle)"
    )
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None, help="default onecycle")
    p.add_argument(
        "--eps", type=positive_float, default=None, help="budget of the training attack (0.1)"
    )
    p.add_argument("--norm", choices=("inf", "2"), default=None, help="of the attack (inf)")
    p.add_argument(
        "--steps", type=positive_int, default=None, help="PGD iterations of the training attack (7)"
    )
    p.add_argument("--step-size", type=positive_float, default=None, help="default 2.5 eps / steps")
    p.add_argument(
        "--restarts", type=positive_int, default=None, help="PGD restarts during training (1)"
    )
    p.add_argument("--targeted", action="store_true", help="PGD towards a random label (Xie)")
    p.add_argument(
        "--prob-start-from-clean", type=fraction, default=None, help="PGD: (default 0.2)"
    )
    p.add_argument(
        "--mix-alpha", type=fraction, default=None, help="clean weight of --method mix (0.5)"
    )
    p.add_argument(
        "--mix-attack", choices=("fgsm", "pgd"), default=None, help="of --method mix (fgsm)"
    )
    p.add_argument("--pcl", action="store_true", help="add PCL to --method pgd")
    p.add_argument("--pcl-layers", type=comma_list, default=None, help="default: the stages")
    p.add_argument(
        "--pcl-weights",
        type=non_negative_float,
        nargs=2,
        default=None,
        metavar=("PULL", "PUSH"),
        help="default 1.0 1e-4",
    )


def _add_defense_arguments(p: argparse.ArgumentParser) -> None:
    """Denoising blocks and BlurNet."""
    p.add_argument("--denoise", choices=DENOISE_CHOICES, default=None, help="add denoising blocks")
    p.add_argument(
        "--denoise-after",
        type=comma_list,
        default=None,
        help="names or preset (default stages); needs --denoise",
    )
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
    p.add_argument(
        "--val-size",
        type=non_negative_int,
        default=None,
        help="held-out training images (default 1000)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="keep an exponential moving average of the weights (e.g. 0.999) and save it",
    )
    p.add_argument(
        "--overfit-drop",
        type=fraction,
        default=None,
        help="fast: early-stop threshold on the validation robust accuracy (0.2)",
    )
    p.add_argument("--train-size", type=positive_int, default=None, help="first N training images")
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="steps between checkpoints (default 200)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=seed, default=0)


def _check_method_needs(args: argparse.Namespace) -> None:
    """Refuse the options that the chosen method would ignore."""
    m = args.method
    mix_pgd = m == "mix" and args.mix_attack == "pgd"
    attack = "--method pgd, mix or fast (--method none and pcl train on clean images)"
    check_needs(
        args,
        {
            "eps": (m in ("pgd", "mix", "fast"), attack),
            "norm": (m in ("pgd", "mix", "fast"), attack),
            "steps": (m == "pgd" or mix_pgd, "--method pgd, or --method mix --mix-attack pgd"),
            "step_size": (
                m in ("pgd", "fast") or mix_pgd,
                "--method pgd or fast, or --method mix --mix-attack pgd",
            ),
            "restarts": (m == "pgd", "--method pgd"),
            "targeted": (m == "pgd", "--method pgd"),
            "prob_start_from_clean": (m == "pgd", "--method pgd"),
            "mix_alpha": (m == "mix", "--method mix"),
            "mix_attack": (m == "mix", "--method mix"),
            "overfit_drop": (m == "fast", "--method fast"),
            "pcl_layers": (m == "pcl" or args.pcl, "--method pcl or --pcl"),
            "pcl_weights": (m == "pcl" or args.pcl, "--method pcl or --pcl"),
            "denoise_after": (args.denoise is not None, "--denoise FILTER"),
        },
    )
    if args.overfit_drop is not None and args.val_size == 0:
        raise ValueError(
            f"--overfit-drop {args.overfit_drop} needs held-out images to watch (--val-size > 0)"
        )
    if args.eps is not None and (args.norm or "inf") == "inf" and args.eps > 1:
        raise ValueError(
            f"--eps {args.eps:g} is larger than the whole [0, 1] input range for --norm inf "
            f"(did you mean {args.eps:g}/255 = {args.eps / 255:.6g}?)"
        )


#: The options that fill a :class:`TrainingRecipe` field of the same name.
_RECIPE_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainingRecipe))


def _training_recipe(args: argparse.Namespace) -> TrainingRecipe:
    """The training options (checked: the attack, ``--pcl``, ``--ema``); an option left
    out takes the recipe's default."""
    given = {name: getattr(args, name) for name in _RECIPE_OPTIONS}
    return TrainingRecipe(**{k: v for k, v in given.items() if v is not None})


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
        model=args.model or "smallcnn",
        widths=args.widths,
        hidden=args.hidden,
        denoise=args.denoise,
        denoise_after=args.denoise_after if args.denoise_after is not None else ("stages",),
        blurnet=blurnet,
    )


def _check_model(
    recipe: ModelRecipe,
    training: TrainingRecipe,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
) -> None:
    """Build the model once for the dataset's image size: its settings, the layer names
    of ``--denoise-after`` and ``--pcl-layers``, the low-pass kernel. Before the data is
    read where :data:`DATASET_SHAPES` knows the size, else (``folder``) once it is read."""
    model = build_model(recipe, input_shape=input_shape, num_classes=num_classes)
    names = {name for name, _ in model.named_modules() if name}
    for layer in training.pcl_layers or ():
        if layer not in names:
            raise ValueError(
                f"unknown layer {layer!r} in --pcl-layers; valid names are: "
                f"{', '.join(sorted(names))}"
            )


def _check_amp(amp: str | None, device: Any) -> None:
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs --device cuda; use --amp bf16 on the CPU")


def _print_summary(args: argparse.Namespace, run: TrainedRun, acc: float, n_test: int) -> None:
    result = run.result
    print(
        f"{args.model or 'smallcnn'} on {run.dataset}, method {args.method}: "
        f"clean test accuracy {acc:.1%} "
        f"({n_test} images); {len(result.history)} epoch(s), {run.seconds:.0f} s"
        + (f"; stopped early, best epoch {result.best_epoch}" if result.stopped_early else ""),
        file=sys.stdout,
    )


def _finished_unchanged(trained: TrainedRun, out: Path) -> bool:
    """Whether ``out`` already holds this run, saved: a finished run resumed, nothing new."""
    import json

    try:
        recorded = json.loads((out / "history.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    history = json.loads(json.dumps(trained.result.history))
    return (out / MODEL_FILE).is_file() and recorded.get("history") == history


def validate_autoencoder(args: argparse.Namespace) -> Path:
    """Check every option of ``train --method autoencoder``; read no data, write nothing."""
    _train_autoencoder.check_options(args)
    _check_method_needs(args)
    check_data_options(args)
    check_device(args.device)
    # train has no --overwrite: the message must not advise one
    return check_out_dir(args.out, writes=_train_autoencoder.AUTOENCODER_FILES, overwrite_flag=None)


def validate(args: argparse.Namespace) -> tuple[TrainingRecipe, ModelRecipe, Path]:
    """Check every option of ``train``; read no data, write nothing."""
    _train_autoencoder.check_options(args)
    _check_method_needs(args)
    training = _training_recipe(args)
    recipe = _model_recipe(args)
    check_data_options(args)
    if args.dataset in DATASET_SHAPES:
        _check_model(recipe, training, DATASET_SHAPES[args.dataset])
    check_device(args.device)
    out = check_out_dir(args.out)
    return training, recipe, check_run_dir(out, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    # Usage errors first, before any data is read or file written.
    if args.method == AUTOENCODER_METHOD:
        return _train_autoencoder.run(args, validate_autoencoder(args))
    training, recipe, out = validate(args)
    device, ctx = setup_device(args.device)
    _check_amp(args.amp, device)
    data = load_data(
        args.dataset, args.data_path, image_size=args.image_size, n_train=args.train_size
    )
    if args.dataset not in DATASET_SHAPES:  # folder: the image size is known only now
        _check_model(recipe, training, data.input_shape, data.num_classes)
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
    if args.resume and _finished_unchanged(trained, out):
        print(f"the run in {out} had already finished; nothing changed (model: {out / MODEL_FILE})")
        return 0
    acc = clean_accuracy(trained.model, data.x_test, data.y_test, device)
    model_path = trained.save(out, test_accuracy=acc)
    _print_summary(args, trained, acc, len(data.x_test))
    print(f"model: {model_path}  (art-denoise evaluate --model {out} --dataset {args.dataset})")
    return 0
