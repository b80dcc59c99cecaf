"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from art_denoise.attacks.spec import AttackSpec

__all__ = ["CLI_ATTACKS", "comma_floats", "comma_ints", "comma_list", "make_specs"]

#: Attack names the CLI accepts (``pgd`` means PGD in the chosen norm).
CLI_ATTACKS = ("fgsm", "pgd", "deepfool", "autoattack")


def comma_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _comma_numbers(text: str, kind: type, what: str) -> list:
    try:
        return [kind(t) for t in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None


def comma_floats(text: str) -> list[float]:
    return _comma_numbers(text, float, "numbers")


def comma_ints(text: str) -> list[int]:
    return _comma_numbers(text, int, "integers")


def make_specs(
    attacks: Sequence[str],
    eps_values: Sequence[float],
    *,
    norm: str,
    steps: int,
    step_size: float | None,
    random_start: bool,
    restarts: int,
    batch_size: int,
    deepfool_steps: int,
    overshoot: float,
    autoattack_steps: int = 100,
    autoattack_queries: int = 5000,
) -> list[AttackSpec]:
    """Turn CLI choices into fully pinned specs.

    PGD steps ``step_size`` (default eps/8) for ``steps`` iterations; FGSM steps eps;
    DeepFool (L2) runs unbounded with the given overshoot; AutoAttack runs its gradient
    attacks for ``autoattack_steps`` iterations and Square for ``autoattack_queries``.
    """
    specs: list[AttackSpec] = []
    for name in attacks:
        if name not in CLI_ATTACKS:
            raise ValueError(f"unknown attack {name!r}; expected one of {', '.join(CLI_ATTACKS)}")
        if name == "deepfool":
            specs.append(
                AttackSpec(
                    attack="deepfool",
                    norm="2",
                    eps=None,
                    steps=deepfool_steps,
                    overshoot=overshoot,
                    batch_size=batch_size,
                )
            )
            continue
        for eps in eps_values:
            if name == "fgsm":
                specs.append(AttackSpec(attack="fgsm", norm=norm, eps=eps, batch_size=batch_size))
            elif name == "autoattack":
                specs.append(
                    AttackSpec(
                        attack="autoattack",
                        norm=norm,
                        eps=eps,
                        steps=autoattack_steps,
                        queries=autoattack_queries,
                        batch_size=batch_size,
                    )
                )
            else:
                step = step_size if step_size is not None else eps / 8
                specs.append(
                    AttackSpec(
                        attack="pgd",
                        norm=norm,
                        eps=eps,
                        step_size=step,
                        steps=steps,
                        random_start=random_start,
                        restarts=restarts,
                        batch_size=batch_size,
                    )
                )
    return specs
