"""``art-denoise train --method autoencoder``: the denoising autoencoder input filter.

Trains :class:`~art_denoise.defences.preprocessor.DenoisingAutoencoderPyTorch` (the course
report's stacked noisy autoencoders) on the dataset's training images and writes
``autoencoder.safetensors`` (and its ``.json``) in ``--out``; ``art-denoise evaluate
--model CLASSIFIER --autoencoder OUT`` puts it in front of a classifier::

    art-denoise train --dataset fashion-mnist --method autoencoder --autoencoder-layers 4 \\
        --noise-sigma 0.1 --epochs 5 --lr 1e-3 --batch-size 64 --out runs/ae4

``--epochs``, ``--batch-size``, ``--lr``, ``--train-size``, ``--device`` and ``--seed``
apply (epochs per autoencoder); the classifier's options are refused with it.

``--out`` must not hold those files (``train`` has no ``--overwrite``): this is checked
before any work, and again when the trained autoencoder is written. If they appeared in
the meantime (another run into the same ``--out`` finished first), they are left as they
are, this run's autoencoder is written beside them as ``autoencoder-<n>.safetensors``
(and ``.json``), and the command fails (exit 1) with a message naming both: neither
run's work is lost.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

from art_denoise._files import FileWriteError
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
    path = _save_new(autoencoder, out)
    losses = ", ".join(f"{h[-1]:.4g}" for h in autoencoder.train_losses)
    print(
        f"{autoencoder.n_layers} denoising autoencoder(s), noise sigma "
        f"{autoencoder.noise_sigma:g}, on {args.dataset}: last-epoch MSE {losses}"
    )
    print(f"autoencoder: {path}  (art-denoise evaluate --model CLASSIFIER --autoencoder {out})")
    return 0


def _save_new(autoencoder: Any, out: Path) -> Path:
    """Write ``autoencoder`` as ``out/autoencoder.safetensors`` (and ``.json``), replacing
    nothing.

    ``--out`` was checked before training, which can take hours; files of these names
    that appeared since (another run into the same ``--out``) are left as they are, and
    this run's autoencoder is written beside them as ``autoencoder-<n>.safetensors`` (and
    ``.json``), the first ``n`` free, so that neither run's work is lost.

    Returns:
        The weights path.

    Raises:
        FileExistsError: such files appeared; nothing of theirs was changed, and the
            message names them and where this run's autoencoder was written instead.
    """
    try:
        return Path(autoencoder.save(out / AUTOENCODER_FILES[0], overwrite=False))
    except (FileExistsError, FileWriteError):  # refused before writing: nothing written
        taken = [n for n in AUTOENCODER_FILES if (out / n).exists() or (out / n).is_symlink()]
    aside = _save_aside(autoencoder, out)
    found = ", ".join(taken or AUTOENCODER_FILES)
    left = "was left as it was" if len(taken) == 1 else "were left as they were"
    raise FileExistsError(
        f"--out {str(out)!r}: {found} appeared there while this run trained (another run "
        f"into the same --out?) and {left}; this run's autoencoder was written to {aside} "
        f"and {aside.with_suffix('.json')} instead (use it with art-denoise evaluate "
        f"--autoencoder {aside}, or move the pair to another directory as "
        f"{AUTOENCODER_FILES[0]} and {AUTOENCODER_FILES[1]})"
    )


def _save_aside(autoencoder: Any, out: Path) -> Path:
    """Write ``autoencoder`` as ``out/autoencoder-<n>.safetensors`` (and ``.json``), the
    first ``n`` whose two files are both free; the weights path."""
    for n in itertools.count(1):
        aside = out / f"autoencoder-{n}.safetensors"
        try:
            return Path(autoencoder.save(aside, overwrite=False))
        except FileExistsError:
            continue
        except FileWriteError:  # a folder or a link of that name: the next one
            if not out.is_dir():  # else every name would fail the same way
                raise
    raise AssertionError("unreachable")  # pragma: no cover - count() never ends
