"""``art-denoise train --method autoencoder``: the denoising autoencoder input filter.

Trains :class:`~art_denoise.defences.preprocessor.DenoisingAutoencoderPyTorch` (the course
report's stacked noisy autoencoders) on the dataset's training images and writes
``autoencoder.safetensors`` (and its ``.json``) in ``--out``; ``art-denoise evaluate
--model CLASSIFIER --autoencoder OUT`` puts it in front of a classifier::

    art-denoise train --dataset fashion-mnist --method autoencoder --autoencoder-layers 4 \\
        --noise-sigma 0.1 --epochs 5 --lr 1e-3 --batch-size 64 --out runs/ae4

``--epochs``, ``--batch-size``, ``--lr``, ``--train-size``, ``--device`` and ``--seed``
apply (epochs per autoencoder); the classifier's options are refused with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from art_denoise.cli._checks import check_needs, non_negative_float, positive_int

__all__ = ["AUTOENCODER_FILES", "add_arguments", "check_options", "run"]

#: What ``train --method autoencoder`` writes in ``--out``.
AUTOENCODER_FILES = ("autoencoder.safetensors", "autoencoder.json")

#: Options of the classifier, refused with ``--method autoencoder`` (dest -> given).
_CLASSIFIER_OPTIONS = (
    "model",
    "widths",
    "hidden",
    "lr_schedule",
    "val_size",
    "checkpoint_every",
    "ema",
    "amp",
    "resume",
    "pcl",
    "denoise",
    "blur",
    "blur_kind",
    "tv",
    "linf_reg",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--autoencoder-layers",
        type=positive_int,
        default=None,
        help="--method autoencoder: stacked autoencoders (default 1; the report: 1 to 4)",
    )
    p.add_argument(
        "--noise-sigma",
        type=non_negative_float,
        default=None,
        help="--method autoencoder: std of the Gaussian noise on [0, 1] (default 0.1)",
    )


def check_options(args: argparse.Namespace) -> None:
    """Refuse the autoencoder's options without ``--method autoencoder`` and the
    classifier's with it."""
    ae = args.method == "autoencoder"
    needs = {name: (ae, "--method autoencoder") for name in ("autoencoder_layers", "noise_sigma")}
    needs.update(
        {name: (not ae, "a classifier (not --method autoencoder)") for name in _CLASSIFIER_OPTIONS}
    )
    check_needs(args, needs)


def run(args: argparse.Namespace, out: Path) -> int:
    """Train the autoencoders and write them in ``out`` (the options already checked)."""
    import torch

    from art_denoise._torch import resolve_device
    from art_denoise.cli._common import load_data
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch

    device = resolve_device(args.device)
    data = load_data(
        args.dataset, args.data_path, image_size=args.image_size, n_train=args.train_size
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)  # the initial weights
        autoencoder = DenoisingAutoencoderPyTorch(
            data.input_shape,
            n_layers=args.autoencoder_layers or 1,
            noise_sigma=0.1 if args.noise_sigma is None else args.noise_sigma,
            device_type="gpu" if device.type == "cuda" else "cpu",
        )
    autoencoder.fit(
        data.x_train,
        nb_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    out.mkdir(parents=True, exist_ok=True)
    path = autoencoder.save(out / AUTOENCODER_FILES[0])
    losses = ", ".join(f"{h[-1]:.4g}" for h in autoencoder.train_losses)
    print(
        f"{autoencoder.n_layers} denoising autoencoder(s), noise sigma "
        f"{autoencoder.noise_sigma:g}, on {args.dataset}: last-epoch MSE {losses}"
    )
    print(f"autoencoder: {path}  (art-denoise evaluate --model CLASSIFIER --autoencoder {out})")
    return 0
