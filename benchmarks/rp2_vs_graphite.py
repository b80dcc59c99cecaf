"""RP2 (this package) against ART's GRAPHITE white-box attack, targeted, on the digits CNN.

Both attacks get the same images (the first ``--n`` test digits the model classifies
correctly), the same 4x4 mask (a quarter of the 8x8 image: the centre, or a corner with
``--mask corner``) and every target class; an image is attacked towards each class but
its own. Printed per attack: BlurNet's targeted success rate ``F(x_adv) == target``
(average and worst over target classes), the L2 dissimilarity
``||x - x_adv||_2 / ||x_adv||_2``, the mean number of pixels changed, the success rate
when the adversarial images go through 20 random transforms of RP2's distribution that
neither attack saw (RP2 optimised for that family, GRAPHITE for its own), and the time.

GRAPHITE runs twice: with its perspective (out-of-plane) rotations of +-10 degrees, and
with rotation 0. In ART 1.20.1 any nonzero GRAPHITE rotation also shifts the image up by
one whole pixel (``get_offset_and_crop_size`` floors a slightly negative float:
``(height * ratio - (max_y - min_y)) // 2 == -1``); at 8x8 that is 12.5% of the image, so
GRAPHITE with rotations optimises for shifted images only.

Every hyperparameter of both attacks is pinned below. GRAPHITE needs ``opencv-python``
(or ``-headless``) and ``kornia``, which this package does not depend on::

    pip install opencv-python-headless kornia
    python benchmarks/rp2_vs_graphite.py [--n 20] [--mask centre|corner] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from art_denoise.attacks._transforms import TransformRanges, apply_transforms, sample_transforms
from art_denoise.attacks.evasion.rp2_pytorch import RobustPhysicalPerturbationPyTorch
from art_denoise.attacks.rp2 import per_target_success
from art_denoise.estimators import to_art_classifier
from art_denoise.models import create_model
from art_denoise.training import train_standard

#: RP2's settings (the ART wrapper's defaults, written out).
RP2_PARAMS: dict[str, Any] = {
    "max_iter": 50,
    "learning_rate": 0.1,
    "lambda_reg": 0.002,
    "norm": 2,
    "nb_transforms": 8,
    "rotation_range": (-10.0, 10.0),
    "scale_range": (0.9, 1.1),
    "translation_range": (-0.05, 0.05),
    "brightness_range": (-0.1, 0.1),
    "contrast_range": (0.9, 1.1),
    "batch_size": 128,
    "targeted": True,
    "random_seed": 0,
}

#: GRAPHITE's settings: 8 fixed transforms, 50 first steps of 0.05 (sign steps), then
#: rounds of 20 steps that each drop the 2x2 block of the mask with the least impact while
#: 80% of the transforms still give the target.
GRAPHITE_PARAMS: dict[str, Any] = {
    "net_size": (8, 8),
    "min_tr": 0.8,
    "num_xforms": 8,
    "step_size": 0.05,
    "steps": 20,
    "first_steps": 50,
    "patch_removal_size": 2,
    "patch_removal_interval": 2,
    "num_patches_to_remove": 1,
    "rand_start_epsilon_range": (-8 / 255, 8 / 255),
    "rotation_range": (-10.0, 10.0),
    "dist_range": (0.0, 0.0),
    "gamma_range": (1.0, 1.2),
    "crop_percent_range": (-0.1, 0.1),
    "off_x_range": (-0.05, 0.05),
    "off_y_range": (-0.05, 0.05),
    "blur_kernels": (0,),
    "batch_size": 64,
}

#: The held-out transforms: RP2's distribution, drawn with a seed neither attack used.
HELD_OUT = TransformRanges(
    rotation=(-10, 10),
    scale=(0.9, 1.1),
    translation=(-0.05, 0.05),
    brightness=(-0.1, 0.1),
    contrast=(0.9, 1.1),
)


def _mask(kind: str) -> np.ndarray:
    mask = np.zeros((8, 8), dtype=np.float32)
    if kind == "centre":
        mask[2:6, 2:6] = 1.0
    else:
        mask[4:, :4] = 1.0
    return mask


def _held_out_success(model: torch.nn.Module, x_adv: np.ndarray, target: int) -> float:
    g = torch.Generator().manual_seed(12345)
    xt = torch.from_numpy(x_adv)
    rates = []
    with torch.no_grad():
        for _ in range(20):
            params = sample_transforms(len(xt), HELD_OUT, g)
            pred = model(apply_transforms(xt, params)).argmax(1)
            rates.append(float((pred == target).float().mean()))
    return float(np.mean(rates))


def run(
    name: str,
    attack_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    clf: Any,
    x: np.ndarray,
    y: np.ndarray,
) -> dict[str, Any]:
    """Attack every target class and collect the metrics of one attack."""
    seconds = 0.0
    changed: list[float] = []
    held_out: list[float] = []

    def timed(xs: np.ndarray, ts: np.ndarray) -> np.ndarray:
        nonlocal seconds
        tic = time.perf_counter()
        adv = attack_fn(xs, ts)
        seconds += time.perf_counter() - tic
        changed.extend((adv != xs).reshape(len(xs), -1).sum(axis=1).tolist())
        held_out.append(_held_out_success(clf.model, adv, int(ts[0])))
        return adv

    out = per_target_success(clf, x, y, timed)
    out.update(
        name=name,
        seconds=seconds,
        pixels_changed=float(np.mean(changed)),
        held_out=float(np.mean(held_out)),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="victim images")
    parser.add_argument("--mask", choices=("centre", "corner"), default="centre")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-graphite", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    d = load_digits()
    x_all = (d.images / 16.0).astype(np.float32)[:, None]
    y_all = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x_all, y_all, test_size=0.2, stratify=y_all, random_state=0
    )
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    train_standard(model, x_tr, y_tr, epochs=25, seed=0, progress=False)
    clf = to_art_classifier(model, device="cpu")
    pred = clf.predict(x_te).argmax(1)
    ok = pred == y_te
    x, y = x_te[ok][: args.n], y_te[ok][: args.n]
    mask = _mask(args.mask)
    print(
        f"digits CNN: clean test accuracy {ok.mean():.3f}; {len(x)} victims, "
        f"{args.mask} 4x4 mask, targets 0-9, torch threads {args.threads}"
    )

    rp2 = RobustPhysicalPerturbationPyTorch(clf, **RP2_PARAMS)
    results = [run("RP2 (art_denoise)", lambda xs, ts: rp2.generate(xs, ts, mask=mask), clf, x, y)]

    missing = [m for m in ("cv2", "kornia") if importlib.util.find_spec(m) is None]
    if args.skip_graphite:
        pass
    elif missing:
        print(f"GRAPHITE skipped: it imports {', '.join(missing)}, which is not installed")
    else:
        from art.attacks.evasion import GRAPHITEWhiteboxPyTorch

        for label, rotation in (("rotation +-10", (-10.0, 10.0)), ("rotation 0", (0.0, 0.0))):
            params = {**GRAPHITE_PARAMS, "rotation_range": rotation}
            graphite = GRAPHITEWhiteboxPyTorch(clf, **params)

            def attack(xs: np.ndarray, ts: np.ndarray, g: Any = graphite) -> np.ndarray:
                np.random.seed(0)  # GRAPHITE draws its transforms from numpy's global state
                torch.manual_seed(0)  # and its random start from torch's
                adv: np.ndarray = g.generate(xs, ts, mask=mask[None])
                return adv

            results.append(run(f"GRAPHITE ({label})", attack, clf, x, y))

    header = (
        f"{'attack':<26}{'avg success':>12}{'worst':>8}{'(target)':>9}{'L2 dissim':>11}"
        f"{'px changed':>11}{'held-out tf':>12}{'time s':>9}"
    )
    print(header)
    for r in results:
        print(
            f"{r['name']:<26}{r['average']:>12.3f}{r['worst']:>8.3f}{r['worst_target']:>9d}"
            f"{r['l2_dissimilarity']:>11.3f}{r['pixels_changed']:>11.1f}{r['held_out']:>12.3f}"
            f"{r['seconds']:>9.1f}"
        )
    for r in results:
        per = ", ".join(f"{t}: {v:.2f}" for t, v in sorted(r["per_target"].items()))
        print(f"{r['name']} per target: {per}")


if __name__ == "__main__":
    main()
