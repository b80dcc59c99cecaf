"""``art-denoise demo``: train on the built-in digits and evaluate across all backends."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from art_denoise.attacks.backends import available_backends
from art_denoise.attacks.eot import DEFAULT_EOT_SAMPLES
from art_denoise.attacks.spec import AttackSpec
from art_denoise.data import Dataset
from art_denoise.recipes import BlurNetSettings, ModelRecipe, build_model
from art_denoise.training.methods import PGDTraining

if TYPE_CHECKING:
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch

HELP = (
    "train small CNNs (baseline, denoising blocks, PGD-trained, BlurNet, autoencoder input "
    "filter) on digits and evaluate them across backends"
)

#: The demo's threat model: every hyperparameter pinned.
DEMO_ATTACKS = (
    AttackSpec(attack="fgsm", norm="inf", eps=0.1),
    AttackSpec(attack="fgsm", norm="inf", eps=0.2),
    AttackSpec(attack="pgd", norm="inf", eps=0.1, step_size=0.1 / 8, steps=20, random_start=True),
    AttackSpec(attack="pgd", norm="inf", eps=0.2, step_size=0.2 / 8, steps=20, random_start=True),
    AttackSpec(attack="deepfool", norm="2", eps=None, steps=50, overshoot=0.02, candidates=10),
)

#: The demo's models. "denoise": the CNN with Xie et al.'s non-local denoising blocks after
#: each stage (trained clean: the blocks alone are not a defense); "pgd": the plain CNN
#: adversarially trained; "blurnet": a 3x3 box low-pass layer after the first convolution
#: (Raju & Lipasti); "autoencoder": the baseline behind the noisy denoising autoencoder,
#: a randomised input filter, so its PGD numbers are also given under EOT.
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

#: Models also attacked with Expectation over Transformation (PGD specs only).
EOT_MODELS = ("blurnet", "autoencoder")


def demo_training_method() -> PGDTraining:
    """The training attack of the "pgd" model: PGD-7, Linf eps 0.1, step 0.025."""
    return PGDTraining(eps=0.1, step_size=0.025, steps=7, norm="inf", prob_start_from_clean=0.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("art-denoise-report"), help="report directory")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--backends", default=None, help="comma-separated (default: all installed)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument(
        "--eot",
        type=int,
        default=DEFAULT_EOT_SAMPLES,
        metavar="K",
        help=f"EOT draws for the {' and '.join(EOT_MODELS)} models (default {DEFAULT_EOT_SAMPLES})",
    )
    p.add_argument("--seed", type=int, default=0)


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


def _backends(args: argparse.Namespace) -> list[str]:
    """``--backends``, or every installed one (with a note on the plug-ins that are not)."""
    backends = (
        [b.strip() for b in args.backends.split(",")] if args.backends else available_backends()
    )
    missing = [b for b in ("torchattacks", "foolbox") if b not in available_backends()]
    if missing and not args.backends:
        print(
            f"note: backend plugin(s) not installed: {', '.join(missing)} "
            "(see plugins/*/README.md)",
            file=sys.stderr,
        )
    return backends


def _train_models(
    data: Dataset, args: argparse.Namespace, device: torch.device
) -> tuple[dict[str, nn.Module], DenoisingAutoencoderPyTorch]:
    """The demo's models, in :data:`DEFENSES` order, and the autoencoder of the last."""
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch
    from art_denoise.estimators.classification.preprocessed import PreprocessedModel

    models: dict[str, nn.Module] = {}
    for name in ("baseline", "denoise", "pgd", "blurnet"):
        models[name] = _train(name, data, args, device)
    autoencoder = DenoisingAutoencoderPyTorch(
        data.input_shape,
        n_layers=1,
        noise_sigma=0.1,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )
    autoencoder.fit(data.x_train, nb_epochs=args.epochs, seed=args.seed)
    models["autoencoder"] = PreprocessedModel(models["baseline"], [autoencoder]).eval()
    return models, autoencoder


def _accuracies(
    models: dict[str, nn.Module], data: Dataset, seed: int, device: torch.device
) -> dict[str, float]:
    """Clean test accuracy of each model, printed (the autoencoder's noise seeded)."""
    from art_denoise._torch import predict

    x_test = torch.from_numpy(data.x_test).to(device)
    y_test = torch.from_numpy(data.y_test)
    accuracy = {}
    for name, model in models.items():
        torch.manual_seed(seed)  # the autoencoder's noise
        accuracy[name] = float((predict(model, x_test).cpu() == y_test).float().mean())
        print(f"{name} on digits: {accuracy[name]:.1%} test accuracy ({len(x_test)} images)")
    return accuracy


def _save_models(
    out: Path,
    models: dict[str, nn.Module],
    autoencoder: DenoisingAutoencoderPyTorch,
    accuracy: dict[str, float],
    args: argparse.Namespace,
) -> None:
    """Each model file beside the report; the autoencoder is saved as the input filter."""
    from art_denoise.models import save_model

    for name, model in models.items():
        meta = {
            "dataset": "digits",
            "training": "pgd" if name == "pgd" else "standard",
            "defense": DEFENSES[name],
            "epochs": args.epochs,
            "seed": args.seed,
            "test_accuracy": accuracy[name],
        }
        if name == "autoencoder":
            # the classifier is baseline.safetensors; the input filter is saved on its own
            autoencoder.save(out / "autoencoder.safetensors")
        else:
            save_model(model, out / f"{name}.safetensors", metadata=meta)


def run(args: argparse.Namespace) -> int:
    from art_denoise._torch import resolve_device
    from art_denoise.data import load_dataset
    from art_denoise.evaluation import evaluate

    eot_specs = [s.replace(eot_samples=args.eot) for s in DEMO_ATTACKS if s.attack == "pgd"]
    backends = _backends(args)
    device = resolve_device(args.device)
    data = load_dataset("digits")
    models, autoencoder = _train_models(data, args, device)
    accuracy = _accuracies(models, data, args.seed, device)
    report = evaluate(
        models,
        data.x_test,
        data.y_test,
        attacks=DEMO_ATTACKS,
        extra_attacks={name: eot_specs for name in EOT_MODELS},
        reference_model=models["baseline"],  # for the transfer check
        backends=backends,
        defenses=DEFENSES,
        dataset="digits",
        split="test",
        device=device,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = report.save(args.out)
    _save_models(out, models, autoencoder, accuracy, args)
    print()
    print(report.summary_table())
    print(
        f"\nreport: {out / 'report.md'}; models: {out}/{{{','.join(models)}}}.safetensors "
        "(autoencoder.safetensors is the input filter in front of baseline)"
    )
    return 0
