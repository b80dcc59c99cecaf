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
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from art_denoise.cli._common import comma_ints, comma_list

HELP = "train a model (none, pgd, mix, fast or pcl) and write model.safetensors for evaluate"

METHOD_CHOICES = ("none", "pgd", "mix", "fast", "pcl")
DENOISE_CHOICES = ("nonlocal", "bilateral", "mean", "median", "none")
BLUR_KINDS = ("box", "gaussian", "learnable")


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--method", default="pgd", choices=METHOD_CHOICES)
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (peak of onecycle)")
    p.add_argument("--lr-schedule", choices=("onecycle", "constant"), default="onecycle")
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


def _method_settings(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    common = {"eps": args.eps, "norm": args.norm}
    if args.method == "none" or (args.method == "pcl" and not args.pcl):
        return "none", {}
    if args.method in ("pgd", "pcl"):
        return "pgd", {
            **common,
            "steps": args.steps,
            "step_size": args.step_size,
            "restarts": args.restarts,
            "targeted": args.targeted,
            "prob_start_from_clean": args.prob_start_from_clean,
        }
    if args.method == "mix":
        return "mix", {
            **common,
            "alpha": args.mix_alpha,
            "attack": args.mix_attack,
            "steps": args.steps,
            "step_size": args.step_size,
        }
    return "fast", {**common, "step_size": args.step_size}


def _model_config(args: argparse.Namespace) -> dict[str, Any]:
    """``--widths`` / ``--hidden`` as constructor arguments (SmallCNN checks the values)."""
    config = {k: v for k, v in (("widths", args.widths), ("hidden", args.hidden)) if v is not None}
    if config and args.model != "smallcnn":
        raise ValueError(f"--widths and --hidden size a smallcnn, not --model {args.model!r}")
    return config


def _blurnet_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """The checked BlurNet options, or ``None`` when none is given."""
    from art_denoise._validation import check_non_negative

    if args.blur is None and args.blur_kind is None and args.tv is None and args.linf_reg is None:
        return None
    if args.blur is not None and (args.blur < 3 or args.blur % 2 == 0):
        raise ValueError(f"--blur must be an odd kernel size >= 3 (3, 5 or 7), got {args.blur}")
    if args.blur_kind is not None and args.blur is None:
        raise ValueError(f"--blur-kind {args.blur_kind} needs --blur K")
    kind = args.blur_kind or "box"
    tv = check_non_negative("--tv", args.tv) if args.tv is not None else None
    linf = check_non_negative("--linf-reg", args.linf_reg) if args.linf_reg is not None else None
    if linf is not None and (args.blur is None or kind != "learnable"):
        raise ValueError(
            f"--linf-reg {args.linf_reg} penalises a learnable low-pass kernel: "
            "add --blur K --blur-kind learnable"
        )
    return {
        "blur": args.blur,
        "kind": kind if args.blur is not None else None,
        "tv": tv,
        "linf_reg": linf,
    }


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from art_denoise._torch import predict, resolve_device
    from art_denoise.blocks import insert_denoising_blocks
    from art_denoise.blurnet import (
        first_conv,
        insert_lowpass,
        linf_depthwise_penalty,
        total_variation_penalty,
    )
    from art_denoise.data import load_dataset
    from art_denoise.models import create_model, save_model
    from art_denoise.training import PrototypeConformityLoss, create_method, fit
    from art_denoise.training.averaging import check_decay
    from art_denoise.training.distributed import init_distributed
    from art_denoise.training.loop import CHECKPOINT_NAME, FeatureRegularizer

    # Usage errors first, before any data is read or file written.
    name, settings = _method_settings(args)
    method = create_method(name, **settings)
    if args.pcl and args.method != "pgd":
        raise ValueError("--pcl combines PCL with --method pgd; use --method pcl for PCL alone")
    if args.ema is not None:
        check_decay("--ema", args.ema)
    blurnet = _blurnet_settings(args)
    model_config = _model_config(args)
    out: Path = args.out
    model_path = out / "model.safetensors"
    if not args.resume and ((out / CHECKPOINT_NAME).exists() or model_path.exists()):
        raise ValueError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    device = resolve_device(args.device)
    ctx = init_distributed(device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)

    data = load_dataset(args.dataset, path=args.data_path)
    x, y = data.x_train, data.y_train
    if args.train_size is not None:
        x, y = x[: args.train_size], y[: args.train_size]
    val = None
    if args.val_size > 0:
        if args.val_size >= len(x):
            raise ValueError(f"--val-size {args.val_size} leaves no training images of {len(x)}")
        order = np.random.default_rng(args.seed).permutation(len(x))
        held, kept = np.sort(order[: args.val_size]), np.sort(order[args.val_size :])
        val = (x[held], y[held])
        x, y = x[kept], y[kept]

    torch.manual_seed(args.seed)
    model = create_model(
        args.model, input_shape=data.input_shape, num_classes=data.num_classes, **model_config
    )
    if blurnet is not None and blurnet["blur"] is not None:
        model = insert_lowpass(model, kernel_size=blurnet["blur"], kind=blurnet["kind"])
    after: Any = args.denoise_after[0] if len(args.denoise_after) == 1 else args.denoise_after
    if args.denoise is not None:
        model = insert_denoising_blocks(model, after=after, filter=args.denoise)
    model.to(device)
    pcl = pcl_opt = None
    if args.method == "pcl" or args.pcl:
        layers = args.pcl_layers or list(getattr(model, "stages", ()))
        pcl = PrototypeConformityLoss(
            model,
            layers,
            data.num_classes,
            pull_weight=args.pcl_weights[0],
            push_weight=args.pcl_weights[1],
        )
        pcl_opt = torch.optim.SGD(pcl.parameters(), lr=0.5)
    regularizers: list[Callable[[], torch.Tensor]] = []
    feature_regularizers: dict[str, FeatureRegularizer] = {}
    if blurnet is not None and blurnet["linf_reg"]:
        alpha = blurnet["linf_reg"]
        regularizers.append(lambda: linf_depthwise_penalty(model, alpha))
    if blurnet is not None and blurnet["tv"]:
        # The first conv's output as the rest of the model sees it: after the low-pass
        # layer, whose hook runs before the recording one. Mix training records two
        # forwards per step; concatenating them penalises their mean map.
        weight = blurnet["tv"]
        feature_regularizers[first_conv(model)] = lambda maps: total_variation_penalty(
            torch.cat(maps).float(), weight
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = None
    if args.lr_schedule == "onecycle":
        steps = -(-len(x) // args.batch_size) * args.epochs
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=args.lr,
            total_steps=steps + 1,
            pct_start=0.4,
            anneal_strategy="linear",
            cycle_momentum=False,
        )
    started = time.perf_counter()
    result = fit(
        model,
        optimizer,
        method,
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_classes=data.num_classes,
        scheduler=scheduler,
        pcl=pcl,
        pcl_optimizer=pcl_opt,
        regularizers=regularizers,
        feature_regularizers=feature_regularizers,
        seed=args.seed,
        device=device,
        checkpoint_dir=out,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        amp=args.amp,
        validation=val,
        early_stop_drop=args.overfit_drop if name == "fast" and val is not None else None,
        ema_decay=args.ema,
        progress=not args.quiet,
        dist_ctx=ctx,
        extra_settings={
            "model": args.model,
            "dataset": data.name,
            "lr": args.lr,
            "lr_schedule": args.lr_schedule,
            "epochs": args.epochs if args.lr_schedule == "onecycle" else None,
            "denoise": [args.denoise, args.denoise_after],
            # Only when set, so that runs without BlurNet resume from older checkpoints.
            **({"blurnet": blurnet} if blurnet is not None else {}),
            "train_size": len(x),
            "val_size": args.val_size,
        },
    )
    seconds = time.perf_counter() - started
    if not ctx.is_main:
        return 0
    acc = float(
        (
            predict(model, torch.from_numpy(data.x_test).to(device)).cpu()
            == torch.from_numpy(data.y_test)
        )
        .float()
        .mean()
    )
    save_model(
        model,
        model_path,
        metadata={
            "dataset": data.name,
            "training": method.config(),
            "pcl": pcl.config() if pcl is not None else None,
            "blurnet": blurnet,
            "epochs": len(result.history),
            "seed": args.seed,
            "test_accuracy": acc,
            "best_epoch": result.best_epoch,
            "ema_decay": args.ema,
            "stopped_early": result.stopped_early,
        },
    )
    from art_denoise._files import atomic_write_text

    atomic_write_text(
        out / "history.json",
        json.dumps({"history": result.history, "train_seconds": seconds}, indent=2) + "\n",
    )
    print(
        f"{args.model} on {data.name}, method {args.method}: clean test accuracy {acc:.1%} "
        f"({len(data.x_test)} images); {len(result.history)} epoch(s), {seconds:.0f} s"
        + (f"; stopped early, best epoch {result.best_epoch}" if result.stopped_early else ""),
        file=sys.stdout,
    )
    print(
        f"model: {model_path}  (art-denoise evaluate --model {model_path} --dataset {args.dataset})"
    )
    return 0
