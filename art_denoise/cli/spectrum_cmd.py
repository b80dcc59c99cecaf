"""``art-denoise spectrum``: where an attack puts its energy, in the input and in layer 1.

BlurNet's analysis (Raju & Lipasti 2019, https://arxiv.org/abs/1908.02256): attack the
first test images, then draw the log-shifted 2-D spectra of the clean and adversarial
inputs and first-layer maps (``spectra.png``) and measure their high-frequency energy
ratios (``spectrum.json``)::

    art-denoise spectrum --model runs/blur/model.safetensors --dataset mnist \\
        --attack pgd --eps 0.1 --out runs/blur/spectrum

Only ``spectra.png`` and ``spectrum.json`` are written (atomically) in ``--out``; other
files there are left alone, so one folder can hold a run and its spectra.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from art_denoise.cli._common import check_input_shape, make_specs

if TYPE_CHECKING:
    from torch import nn

    from art_denoise.attacks.spec import AttackSpec

HELP = "spectra of clean vs adversarial inputs and first-layer maps (BlurNet's analysis)"

ATTACKS = ("pgd", "fgsm")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
    p.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist or cifar10")
    p.add_argument("--data-path", type=Path, default=None, help="directory holding the dataset")
    p.add_argument("--attack", choices=ATTACKS, default="pgd")
    p.add_argument("--eps", type=float, default=0.1, help="attack budget")
    p.add_argument("--norm", choices=("inf", "2"), default="inf")
    p.add_argument("--steps", type=int, default=20, help="PGD iterations")
    p.add_argument("--step-size", type=float, default=None, help="PGD step (default eps/8)")
    p.add_argument("--n-samples", type=int, default=64, help="first N test images")
    p.add_argument(
        "--layer",
        default=None,
        help="layer whose maps are analysed (default: the first conv, whose output is the "
        "one after its low-pass layer if the model has one)",
    )
    p.add_argument("--radius", type=float, default=0.25, help="high-frequency cut-off (cycles/px)")
    p.add_argument("--out", required=True, type=Path, help="folder for spectra.png, spectrum.json")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="seeds PGD's random start")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _spec(args: argparse.Namespace) -> AttackSpec:
    """``--attack`` and its settings as one spec."""
    (spec,) = make_specs(
        [args.attack],
        [args.eps],
        norm=args.norm,
        steps=args.steps,
        step_size=args.step_size,
        random_start=True,
        restarts=1,
        batch_size=args.batch_size,
        deepfool_steps=50,
        overshoot=0.02,
    )
    return spec


def _layer(model: nn.Module, name: str | None) -> str:
    """``--layer``, checked against the model's modules (default: the first conv)."""
    from art_denoise.blurnet import first_conv

    layer = name if name is not None else first_conv(model)
    if layer not in dict(model.named_modules()):
        names = ", ".join(n for n, _ in model.named_modules() if n)
        raise ValueError(f"unknown --layer {layer!r}; valid names are: {names}")
    return layer


def _metadata(
    args: argparse.Namespace,
    spec: AttackSpec,
    backend: str,
    lowpass: object,
    dataset: str,
    accuracies: tuple[float, float],
) -> dict[str, Any]:
    """What ``spectrum.json`` records about the run."""
    from art_denoise.blurnet import LowPass2d

    return {
        "model": str(args.model),
        "dataset": dataset,
        "split": "test",
        "attack": {**dataclasses.asdict(spec), "backend": backend, "seed": args.seed},
        "lowpass": lowpass.extra_repr() if isinstance(lowpass, LowPass2d) else None,
        "clean_accuracy": accuracies[0],
        "adv_accuracy": accuracies[1],
    }


def _print_summary(
    args: argparse.Namespace,
    spec: AttackSpec,
    n_images: int,
    metadata: dict[str, Any],
    report: dict[str, Any],
) -> None:
    clean_acc, adv_acc = metadata["clean_accuracy"], metadata["adv_accuracy"]
    print(
        f"{spec.key} on {n_images} {metadata['dataset']} test image(s): accuracy "
        f"{clean_acc:.1%} -> {adv_acc:.1%}; high-frequency energy (> {args.radius:g} "
        f"cycles/px)\n"
        f"  input:        clean {report['input_clean']:.4f}  adversarial "
        f"{report['input_adv']:.4f}\n"
        f"  {report['layer']} maps: clean {report['layer_clean']:.4f}  adversarial "
        f"{report['layer_adv']:.4f}"
    )
    print(f"written: {args.out / 'spectra.png'}, {args.out / 'spectrum.json'}")


def run(args: argparse.Namespace) -> int:
    import torch

    from art_denoise._torch import predict, resolve_device
    from art_denoise._validation import check_non_negative, check_positive_int
    from art_denoise.attacks.backends import get_backend
    from art_denoise.data import load_dataset
    from art_denoise.models import load_model
    from art_denoise.spectral import spectrum_report

    # Usage errors first, before any loading.
    check_positive_int("--n-samples", args.n_samples)
    check_non_negative("--radius", args.radius)
    spec = _spec(args)
    backend = get_backend("art")
    backend.check(spec)
    device = resolve_device(args.device)
    model = load_model(args.model, device=device)
    layer = _layer(model, args.layer)
    data = load_dataset(args.dataset, path=args.data_path, n_test=args.n_samples)
    check_input_shape(model, data, model_path=args.model, dataset=args.dataset)
    x = torch.from_numpy(data.x_test).to(device)
    y = torch.from_numpy(data.y_test).to(device)
    x_adv = backend.run(model, x, y, spec, seed=args.seed)
    clean_acc = float((predict(model, x) == y).float().mean())
    adv_acc = float((predict(model, x_adv) == y).float().mean())
    lowpass = getattr(dict(model.named_modules())[layer], "lowpass", None)
    metadata = _metadata(args, spec, backend.name, lowpass, data.name, (clean_acc, adv_acc))
    report = spectrum_report(model, x, x_adv, layer, args.out, args.radius, metadata=metadata)
    _print_summary(args, spec, len(x), metadata, report)
    return 0
