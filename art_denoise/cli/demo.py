"""``art-denoise demo``: train on the built-in digits and evaluate across all backends."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from art_denoise.attacks.backends import available_backends
from art_denoise.attacks.spec import AttackSpec
from art_denoise.cli._checks import (
    check_device,
    check_out_dir,
    eot_samples,
    output_dir,
    positive_int,
    seed,
)
from art_denoise.cli._common import check_backends, comma_list
from art_denoise.data import Dataset
from art_denoise.evaluation.suite import DefaultSuite, RoutedAttack
from art_denoise.recipes import BlurNetSettings, ModelRecipe, build_model
from art_denoise.training.methods import PGDTraining

HELP = (
    "train small CNNs (baseline, denoising blocks, PGD-trained, BlurNet, autoencoder input "
    "filter) on digits and evaluate them across backends"
)

#: The demo's threat models: Linf eps 0.1 and 0.2 on [0, 1] digits.
DEMO_EPS = (0.1, 0.2)
#: The default attacks at each eps (:mod:`art_denoise.evaluation.suite`): PGD-20 (step eps/8,
#: random start) through every backend, then APGD-CE and APGD-T (100 steps, 9 targets)
#: through ``native``; a randomised model (the autoencoder) also gets APGD-CE and APGD-DLR
#: with EOT over ``--eot`` draws.
DEMO_SUITE = DefaultSuite()
#: The minimal-norm attack: DeepFool L2, 50 steps, overshoot 0.02, through the backends of
#: :data:`DEEPFOOL_BACKENDS` (ART's and torchattacks' DeepFool loop over the images one by
#: one and took most of the demo's time; torchattacks' stalls on the boundary).
DEMO_DEEPFOOL = AttackSpec(
    attack="deepfool", norm="2", eps=None, steps=50, overshoot=0.02, candidates=10
)
DEEPFOOL_BACKENDS = ("native", "foolbox")
# The randomised autoencoder model gets no DeepFool: a minimal-norm attack against one
# noise draw measures that draw (foolbox's loop chased the noise for 157 s of the demo).

#: The demo's models. "denoise": the CNN with Xie et al.'s non-local denoising blocks after
#: each stage (trained clean: the blocks alone are not a defense); "pgd": the plain CNN
#: adversarially trained; "blurnet": a 3x3 box low-pass layer after the first convolution
#: (Raju & Lipasti); "autoencoder": the baseline behind the noisy denoising autoencoder,
#: a randomised input filter (the evaluation detects it and attacks it with EOT-APGD).
DEFENSES = {
    "baseline": "none",
    "denoise": "non-local blocks after stage1, stage2 (Xie 2019)",
    "pgd": "PGD-7 adversarial training, Linf eps 0.1 (Madry 2018)",
    "blurnet": "3x3 box low-pass after the first conv (BlurNet 2019)",
    "autoencoder": "baseline behind a noisy denoising autoencoder (sigma 0.1), randomised",
}

#: How each trained model is built (the "autoencoder" classifier is the "baseline" one).
DEMO_MODELS = {
    "baseline": ModelRecipe(),
    "denoise": ModelRecipe(denoise="nonlocal", denoise_after=("stages",)),
    "pgd": ModelRecipe(),
    "blurnet": ModelRecipe(blurnet=BlurNetSettings(blur=3, kind="box")),
}


def demo_training_method() -> PGDTraining:
    """The training attack of the "pgd" model: PGD-7, Linf eps 0.1, step 0.025."""
    return PGDTraining(eps=0.1, step_size=0.025, steps=7, norm="inf", prob_start_from_clean=0.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=output_dir,
        default=Path("art-denoise-report"),
        help="directory of the report and the models (default art-denoise-report)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a demo's report and models in --out"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--backends", type=comma_list, default=None, help="comma-separated (default: all installed)"
    )
    p.add_argument("--epochs", type=positive_int, default=40)
    p.add_argument(
        "--eot",
        type=eot_samples,
        default=DEMO_SUITE.eot_samples,
        metavar="K",
        help="EOT draws of the APGD attacks on the randomised (autoencoder) model "
        f"(default {DEMO_SUITE.eot_samples}, AutoAttack's)",
    )
    p.add_argument("--seed", type=seed, default=0)


def _train(name: str, data: Dataset, args: argparse.Namespace, device: torch.device) -> nn.Module:
    """Build the demo model ``name`` (seeded) and train it: PGD for "pgd", clean otherwise."""
    from art_denoise.training import fit, train_standard

    model = build_model(
        DEMO_MODELS[name],
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        seed=args.seed,
    )
    if name == "pgd":
        model.to(device)
        fit(
            model,
            torch.optim.Adam(model.parameters(), lr=1e-3),
            demo_training_method(),
            data.x_train,
            data.y_train,
            epochs=args.epochs,
            batch_size=64,
            seed=args.seed,
            device=device,
            progress=not args.quiet,
        )
        return model.eval()
    return train_standard(
        model,
        data.x_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=64,
        lr=1e-3,
        seed=args.seed,
        device=device,
        progress=not args.quiet,
    )


def _pgd_specs() -> list[AttackSpec]:
    """The demo's PGD attacks: what every chosen backend must be able to run."""
    return [r.spec for r in DEMO_SUITE.attacks(DEMO_EPS) if r.backends is None]


def _deepfool(backends: list[str]) -> RoutedAttack:
    """DeepFool through the chosen backends of :data:`DEEPFOOL_BACKENDS` (native always)."""
    chosen = tuple(b for b in DEEPFOOL_BACKENDS if b in backends or b == "native")
    return RoutedAttack(DEMO_DEEPFOOL, chosen)


def demo_files() -> tuple[str, ...]:
    """Every file the demo writes in ``--out``: the report's, and each model's pair."""
    from art_denoise.evaluation.report import REPORT_FILES

    models = [*DEMO_MODELS, "autoencoder"]
    return (*REPORT_FILES, *(f"{m}{ext}" for m in models for ext in (".safetensors", ".json")))


@dataclass(frozen=True)
class _Job:
    """What :func:`validate` made of the options; nothing trained yet."""

    backends: list[str]
    device: torch.device
    out: Path


def validate(args: argparse.Namespace) -> _Job:
    """Check every option of ``demo`` (the backends against the demo's attacks, ``--out``)."""
    backends = check_backends(args.backends, _pgd_specs(), skip_unsupported=False)
    missing = [b for b in ("torchattacks", "foolbox") if b not in available_backends()]
    if missing and not args.backends:
        print(
            f"note: backend plugin(s) not installed: {', '.join(missing)} "
            "(see plugins/*/README.md)",
            file=sys.stderr,
        )
    device = check_device(args.device)
    out = check_out_dir(args.out, writes=demo_files(), overwrite=args.overwrite)
    return _Job(backends, device, out)


def _accuracy(name: str, model: nn.Module, data: Dataset, seed: int, device: torch.device) -> float:
    """Clean test accuracy of ``model``, printed; the global random state is left as it was
    (the autoencoder's noise is drawn from ``seed``)."""
    from art_denoise._torch import predict

    x_test = torch.from_numpy(data.x_test).to(device)
    y_test = torch.from_numpy(data.y_test)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the autoencoder's noise
        accuracy = float((predict(model, x_test).cpu() == y_test).float().mean())
    print(f"{name} on digits: {accuracy:.1%} test accuracy ({len(x_test)} images)")
    return accuracy


def _metadata(name: str, accuracy: float, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dataset": "digits",
        "training": "pgd" if name == "pgd" else "standard",
        "defense": DEFENSES[name],
        "epochs": args.epochs,
        "seed": args.seed,
        "test_accuracy": accuracy,
    }


def _train_and_save(
    data: Dataset, args: argparse.Namespace, device: torch.device, out: Path
) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """The demo's models, in :data:`DEFENSES` order, each saved in ``out`` once trained,
    and their clean accuracies. The autoencoder is saved as the input filter on its own
    (the classifier behind it is ``baseline.safetensors``)."""
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch
    from art_denoise.estimators.classification.preprocessed import PreprocessedModel
    from art_denoise.models import save_model

    models: dict[str, nn.Module] = {}
    accuracy: dict[str, float] = {}
    for name in DEMO_MODELS:
        models[name] = _train(name, data, args, device)
        accuracy[name] = _accuracy(name, models[name], data, args.seed, device)
        meta = _metadata(name, accuracy[name], args)
        save_model(models[name], out / f"{name}.safetensors", metadata=meta)
    autoencoder = DenoisingAutoencoderPyTorch(
        data.input_shape,
        n_layers=1,
        noise_sigma=0.1,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )
    autoencoder.fit(data.x_train, nb_epochs=args.epochs, seed=args.seed)
    autoencoder.save(out / "autoencoder.safetensors")
    models["autoencoder"] = PreprocessedModel(models["baseline"], [autoencoder]).eval()
    accuracy["autoencoder"] = _accuracy(
        "autoencoder", models["autoencoder"], data, args.seed, device
    )
    return models, accuracy


def run(args: argparse.Namespace) -> int:
    from art_denoise.data import load_dataset
    from art_denoise.evaluation import evaluate

    job = validate(args)  # usage errors first, before any training
    data = load_dataset("digits")
    models, _ = _train_and_save(data, args, job.device, job.out)
    report = evaluate(
        models,
        data.x_test,
        data.y_test,
        eps=DEMO_EPS,
        norm="inf",
        suite=dataclasses.replace(DEMO_SUITE, eot_samples=args.eot),
        extra_attacks={name: [_deepfool(job.backends)] for name in models if name in DEMO_MODELS},
        reference_model=models["baseline"],  # for the transfer check
        backends=job.backends,
        defenses=DEFENSES,
        dataset="digits",
        split="test",
        device=job.device,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = report.save(job.out, overwrite=args.overwrite)
    print()
    print(report.summary_table())
    print(
        f"\nreport: {out / 'report.md'}; models: {out}/{{{','.join(models)}}}.safetensors "
        "(autoencoder.safetensors is the input filter in front of baseline)"
    )
    return 0
