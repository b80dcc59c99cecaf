"""Attack one row of the autoencoder table harder than the table does.

The attack is PGD on the EOT-averaged logits. It runs many steps with a decaying step and
keeps the final iterate (no early stop on a lucky draw). It runs with the cross-entropy
and then with a margin loss. Every output is judged on ``--draws`` fresh noise draws,
which gives the mean accuracy over the draws and the share correct on all of them.
Classifier and autoencoders come from a finished ``reproduce autoencoder`` run.

    python docs/results/autoencoder/harder_check.py --run runs/autoencoder-full \
        [--row ae4] [--n 100] [--steps 100] [--eot 20] [--out harder_check.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from art_denoise._files import atomic_write_text
from art_denoise._torch import attack_guard
from art_denoise.attacks.eot import EOTModel
from art_denoise.data import load_dataset
from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch
from art_denoise.estimators.classification.preprocessed import PreprocessedModel
from art_denoise.models.io import load_model


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Best other logit minus the true one (positive: misclassified)."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).max(dim=1).values
    return other - true


@torch.no_grad()
def _judge(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int) -> dict[str, float]:
    """Mean accuracy over ``draws`` seeded noise draws, and the share right on all."""
    right = torch.ones(len(x), dtype=torch.bool)
    total = 0.0
    for d in range(draws):
        torch.manual_seed(1000 + d)
        ok = model(x).argmax(dim=1) == y
        total += float(ok.float().mean())
        right &= ok
    return {"mean_over_draws": total / draws, "right_on_all_draws": float(right.float().mean())}


def _pgd_eot(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str,
    eps: float,
    steps: int,
    eot: int,
    step: float,
) -> torch.Tensor:
    """Linf PGD on the EOT mean of the logits: ``step`` for half the steps, then a quarter
    of it, then a tenth; random start; the final iterate."""
    averaged = EOTModel(model, eot)
    g = torch.Generator().manual_seed(1)
    xa = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
    with attack_guard(model):
        for t in range(steps):
            size = step if t < steps // 2 else step / 4 if t < 3 * steps // 4 else step / 10
            xa = xa.detach().requires_grad_(True)
            logits = averaged(xa)
            if loss == "ce":
                value = nn.functional.cross_entropy(logits, y, reduction="sum")
            else:
                value = _margin(logits, y).clamp(max=50.0).sum()
            (grad,) = torch.autograd.grad(value, xa)
            xa = xa.detach() + size * grad.sign()
            xa = torch.min(torch.max(xa, x - eps), x + eps).clamp(0, 1)
    return xa.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a reproduce autoencoder run")
    parser.add_argument("--row", default="ae4", help="the row (ae1..ae4; default ae4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=100, help="first test images")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eot", type=int, default=20)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="JSON of the results")
    args = parser.parse_args()
    rows = args.run / "rows"
    data = load_dataset("fashion-mnist", n_test=args.n)
    x = torch.from_numpy(data.x_test[: args.n])
    y = torch.from_numpy(data.y_test[: args.n]).long()
    classifier = load_model(rows / f"none-seed{args.seed}" / "model.safetensors").eval()
    purifier = DenoisingAutoencoderPyTorch.load(
        rows / f"{args.row}-seed{args.seed}" / "autoencoder.safetensors", device_type="cpu"
    )
    purifier.set_params(inference_noise=True)
    model = PreprocessedModel(classifier, [purifier]).eval()
    results: dict[str, object] = {
        "row": args.row,
        "n": args.n,
        "eps": args.eps,
        "clean": _judge(model, x, y, args.draws),
    }
    print("clean", results["clean"], flush=True)
    for loss in ("ce", "margin"):
        tic = time.perf_counter()
        xa = _pgd_eot(
            model, x, y, loss=loss, eps=args.eps, steps=args.steps, eot=args.eot, step=args.eps / 10
        )
        name = f"pgd{args.steps}-{loss}-eot{args.eot}"
        results[name] = {**_judge(model, xa, y, args.draws), "seconds": time.perf_counter() - tic}
        print(name, results[name], flush=True)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
