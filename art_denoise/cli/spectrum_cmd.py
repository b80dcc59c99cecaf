"""``art-denoise spectrum``: where an attack puts its energy, in the input and in layer 1.

BlurNet's analysis (Raju & Lipasti 2019, https://arxiv.org/abs/1908.02256): attack the
first test images, then draw the log-shifted 2-D spectra of the clean and adversarial
inputs and first-layer maps (``spectra.png``) and measure their high-frequency energy
ratios (``spectrum.json``)::

    art-denoise spectrum --model runs/blur/model.safetensors --dataset mnist \\
        --attack pgd --eps 0.1 --out runs/blur/spectrum

Only ``spectra.png`` and ``spectrum.json`` are written (atomically) in ``--out``; other
files there are left alone, so one folder can hold a run and its spectra. Spectra already
there are replaced only with ``--overwrite``. Every option (the layer and the radius
included) is checked before the data is loaded and the attack runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from art_denoise.cli._checks import (
    check_data_options,
    check_device,
    check_linf_eps,
    check_needs,
    check_out_dir,
    non_negative_float,
    output_dir,
    positive_float,
    positive_int,
    seed,
)
from art_denoise.cli._common import (
    add_dataset_arguments,
    check_backends,
    check_input_shape,
    load_data,
    make_specs,
)
from art_denoise.cli._model_files import MODEL_FILE, resolve

if TYPE_CHECKING:
    from torch import nn

    from art_denoise.attacks.spec import AttackSpec

HELP = "spectra of clean vs adversarial inputs and first-layer maps (BlurNet's analysis)"

ATTACKS = ("pgd", "fgsm")


#: The files ``spectrum`` writes in ``--out``.
SPECTRUM_FILES = ("spectra.png", "spectrum.json")
#: The highest frequency of any image, sqrt(0.5) cycles/px (the corner of an even size).
_NYQUIST_CORNER = 0.5**0.5
#: PGD iterations when ``--steps`` is not given.
DEFAULT_STEPS = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="the model: a run directory (train --out), a .safetensors file or its .json",
    )
    add_dataset_arguments(p)
    p.add_argument("--attack", choices=ATTACKS, default="pgd")
    p.add_argument("--eps", type=positive_float, default=0.1, help="attack budget")
    p.add_argument("--norm", choices=("inf", "2"), default="inf")
    p.add_argument(
        "--steps", type=positive_int, default=None, help=f"PGD iterations ({DEFAULT_STEPS})"
    )
    p.add_argument(
        "--step-size", type=positive_float, default=None, help="PGD step (default eps/8)"
    )
    p.add_argument("--n-samples", type=positive_int, default=64, help="first N test images")
    p.add_argument(
        "--layer",
        default=None,
        help="layer whose maps are analysed (default: the first conv, whose output is the "
        "one after its low-pass layer if the model has one)",
    )
    p.add_argument(
        "--radius",
        type=non_negative_float,
        default=0.25,
        help="high-frequency cut-off in cycles/px, below the images' highest frequency "
        "(0.707 for even sizes)",
    )
    p.add_argument(
        "--out", required=True, type=output_dir, help="folder for spectra.png, spectrum.json"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace spectra.png, spectrum.json in --out"
    )
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--seed", type=seed, default=0, help="seeds PGD's random start")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _spec(args: argparse.Namespace) -> AttackSpec:
    """``--attack`` and its settings as one spec."""
    pgd = args.attack == "pgd"
    check_needs(args, {"steps": (pgd, "--attack pgd"), "step_size": (pgd, "--attack pgd")})
    check_linf_eps("--eps", [args.eps], args.norm)
    (spec,) = make_specs(
        [args.attack],
        [args.eps],
        norm=args.norm,
        steps=args.steps if args.steps is not None else DEFAULT_STEPS,
        step_size=args.step_size,
        random_start=True,
        restarts=1,
        batch_size=args.batch_size,
        deepfool_steps=50,
        overshoot=0.02,
    )
    return spec


def _check_radius(radius: float, model: nn.Module) -> None:
    """``--radius`` below the highest frequency of the model's input images."""
    from art_denoise.spectral import highest_frequency

    shape = getattr(model, "input_shape", None)
    if shape is None:
        return
    h, w = int(shape[-2]), int(shape[-1])
    top = highest_frequency(h, w)
    if radius >= top:
        raise ValueError(
            f"--radius {radius:g} leaves no frequency above it: the highest of the model's "
            f"{h}x{w} images is {top:.4g} cycles/px"
        )


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


@dataclass(frozen=True)
class _Job:
    """What :func:`validate` made of the options; nothing loaded yet."""

    spec: AttackSpec
    device: Any
    model: Path
    out: Path


def validate(args: argparse.Namespace) -> _Job:
    """Check every option of ``spectrum`` that needs no file read; load nothing.

    ``--layer`` and ``--radius`` against the model come next, in :func:`run`, once the
    model is loaded and before the data and the attack.
    """
    spec = _spec(args)
    if args.radius >= _NYQUIST_CORNER:  # above every image's highest frequency
        raise ValueError(
            f"--radius {args.radius:g} leaves no frequency above it: no image has one above "
            f"{_NYQUIST_CORNER:.4g} cycles/px"
        )
    check_backends(["art"], [spec], skip_unsupported=False)
    check_data_options(args)
    device = check_device(args.device)
    model = resolve(args.model, MODEL_FILE)
    out = check_out_dir(args.out, writes=SPECTRUM_FILES, overwrite=args.overwrite)
    return _Job(spec, device, model, out)


def run(args: argparse.Namespace) -> int:
    import torch

    from art_denoise._torch import predict
    from art_denoise.attacks.backends import get_backend
    from art_denoise.cli._model_files import load_classifier
    from art_denoise.spectral import spectrum_report

    job = validate(args)  # usage errors first, before any loading
    model = load_classifier(args.model, job.device)
    layer = _layer(model, args.layer)
    _check_radius(args.radius, model)
    data = load_data(
        args.dataset, args.data_path, image_size=args.image_size, n_test=args.n_samples
    )
    check_input_shape(model, data, model_path=job.model, dataset=args.dataset)
    spec, device = job.spec, job.device
    backend = get_backend("art")
    x = torch.from_numpy(data.x_test).to(device)
    y = torch.from_numpy(data.y_test).to(device)
    x_adv = backend.run(model, x, y, spec, seed=args.seed)
    clean_acc = float((predict(model, x) == y).float().mean())
    adv_acc = float((predict(model, x_adv) == y).float().mean())
    lowpass = getattr(dict(model.named_modules())[layer], "lowpass", None)
    metadata = _metadata(args, spec, backend.name, lowpass, data.name, (clean_acc, adv_acc))
    report = spectrum_report(model, x, x_adv, layer, job.out, args.radius, metadata=metadata)
    _print_summary(args, spec, len(x), metadata, report)
    return 0
