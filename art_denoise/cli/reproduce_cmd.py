"""``art-denoise reproduce``: rebuild a source work's result table and attack every row.

::

    art-denoise reproduce xie --preset quick --out runs/xie-quick
    art-denoise reproduce blurnet --preset full --dataset folder --data-path signs/ --out runs/b
    art-denoise reproduce autoencoder --preset full --seeds 3 --device cuda --out runs/ae

One run directory per table row (``--out/rows/<row>-seed<k>``); a killed run continues
where it stopped when the same command is given again, and finished rows are not
retrained. The results (``results.md``, ``results.json``, figures) are written at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from art_denoise.cli._checks import (
    check_data_path,
    check_dataset,
    check_device,
    image_size,
    output_dir,
    positive_int,
)
from art_denoise.reproduce import PRESETS, TABLES

HELP = "rebuild a source work's result table (xie, blurnet, autoencoder) and attack every row"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", choices=tuple(TABLES), help="the table: " + ", ".join(TABLES))
    p.add_argument(
        "--preset", choices=PRESETS, default="quick", help="quick (digits, minutes) or full"
    )
    p.add_argument("--dataset", default=None, help="the dataset (default: the preset's)")
    p.add_argument("--data-path", type=Path, default=None, help="directory holding the dataset")
    p.add_argument(
        "--image-size",
        type=image_size,
        default=None,
        metavar="H,W",
        help="folder: resize every image to H,W (N for NxN)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=None,
        help="seeds of the averaged rows (default: the preset's)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--out", type=output_dir, required=True, help="the run directory (resumed if it exists)"
    )


def run(args: argparse.Namespace) -> int:
    from art_denoise.reproduce import reproduce

    if args.dataset is not None:
        check_dataset(args.dataset)
    check_data_path(args.data_path)
    if args.dataset == "folder" and args.data_path is None:
        raise ValueError("--dataset folder needs --data-path DIR (one sub-folder per class)")
    if args.image_size is not None and args.dataset != "folder":
        raise ValueError("--image-size resizes a --dataset folder's images; add --dataset folder")
    device = check_device(args.device)
    results = reproduce(
        args.table,
        out=args.out,
        preset=args.preset,
        dataset=args.dataset,
        data_path=args.data_path,
        seeds=args.seeds,
        device=str(device),
        progress=not args.quiet,
        dataset_options={"image_size": args.image_size} if args.image_size else None,
    )
    print(f"\n{results['title']}: {Path(args.out) / 'results.md'}")
    return 0
