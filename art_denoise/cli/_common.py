"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from art_denoise.attacks.spec import ATTACKS, AttackSpec

if TYPE_CHECKING:
    from torch import nn

    from art_denoise.data import Dataset

__all__ = [
    "CLI_ATTACKS",
    "add_dataset_arguments",
    "check_backends",
    "check_input_shape",
    "comma_floats",
    "comma_ints",
    "comma_list",
    "load_data",
    "make_specs",
]


@dataclass(frozen=True)
class _SpecSettings:
    """The attack options of the command line that :func:`make_specs` pins into specs."""

    norm: str
    steps: int
    step_size: float | None
    random_start: bool
    restarts: int
    batch_size: int
    deepfool_steps: int
    overshoot: float
    autoattack_steps: int
    autoattack_queries: int
    apgd_steps: int = 100


def _fgsm(eps: float | None, s: _SpecSettings) -> AttackSpec:
    return AttackSpec(attack="fgsm", norm=s.norm, eps=eps, batch_size=s.batch_size)


def _pgd(eps: float | None, s: _SpecSettings) -> AttackSpec:
    step = s.step_size if s.step_size is not None or eps is None else eps / 8
    return AttackSpec(
        attack="pgd",
        norm=s.norm,
        eps=eps,
        step_size=step,
        steps=s.steps,
        random_start=s.random_start,
        restarts=s.restarts,
        batch_size=s.batch_size,
    )


def _deepfool(eps: float | None, s: _SpecSettings) -> AttackSpec:
    return AttackSpec(
        attack="deepfool",
        norm=s.norm,
        eps=None,
        steps=s.deepfool_steps,
        overshoot=s.overshoot,
        batch_size=s.batch_size,
    )


def _autoattack(eps: float | None, s: _SpecSettings) -> AttackSpec:
    return AttackSpec(
        attack="autoattack",
        norm=s.norm,
        eps=eps,
        steps=s.autoattack_steps,
        queries=s.autoattack_queries,
        batch_size=s.batch_size,
    )


def _apgd(attack: str) -> Callable[[float | None, _SpecSettings], AttackSpec]:
    """The builder of one APGD attack: ``apgd_steps`` iterations, one run, 9 targets."""

    def build(eps: float | None, s: _SpecSettings) -> AttackSpec:
        return AttackSpec(
            attack=attack, norm=s.norm, eps=eps, steps=s.apgd_steps, batch_size=s.batch_size
        )

    return build


#: How the command line pins each attack it offers; DeepFool runs once, unbounded, in the
#: chosen norm (a backend whose DeepFool is L2 only refuses the Linf one).
_SPEC_BUILDERS: dict[str, Callable[[float | None, _SpecSettings], AttackSpec]] = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "deepfool": _deepfool,
    "autoattack": _autoattack,
    "apgd-ce": _apgd("apgd-ce"),
    "apgd-dlr": _apgd("apgd-dlr"),
    "apgd-t": _apgd("apgd-t"),
}
_UNBOUNDED = ("deepfool",)

#: Attack names the CLI accepts (``pgd`` means PGD in the chosen norm): the attacks of
#: :data:`art_denoise.attacks.spec.ATTACKS`, in its order, that the command line knows how
#: to pin (today all of them; an attack added to the registry is offered here once it has
#: a builder above).
CLI_ATTACKS = tuple(name for name in ATTACKS if name in _SPEC_BUILDERS)


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


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-path`` and ``--image-size`` (checked by
    :func:`art_denoise.cli._checks.check_data_options`)."""
    from art_denoise.cli._checks import image_size

    p.add_argument(
        "--dataset",
        required=True,
        help="digits, mnist, fashion-mnist, cifar10, or folder (your images, with --data-path)",
    )
    p.add_argument(
        "--data-path",
        type=Path,
        default=None,
        help="directory holding the dataset; for folder, one sub-folder of images per class",
    )
    p.add_argument(
        "--image-size",
        type=image_size,
        default=None,
        metavar="H,W",
        help="folder: resize every image to H,W (N for NxN); default: all of one size",
    )


def check_input_shape(model: nn.Module, data: Dataset, *, model_path: Path, dataset: str) -> None:
    """A ``ValueError`` if the model's ``input_shape`` is not the dataset's image shape."""
    shape = tuple(getattr(model, "input_shape", data.input_shape))
    if shape != tuple(data.input_shape):
        raise ValueError(
            f"model {str(model_path)!r} expects inputs {shape}, dataset {dataset!r} has "
            f"{tuple(data.input_shape)}"
        )


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
    apgd_steps: int = 100,
) -> list[AttackSpec]:
    """Turn CLI choices into fully pinned specs.

    PGD steps ``step_size`` (default eps/8) for ``steps`` iterations; FGSM steps eps;
    DeepFool runs unbounded in ``norm`` with the given overshoot; AutoAttack runs its gradient
    attacks for ``autoattack_steps`` iterations and Square for ``autoattack_queries``; the
    APGD attacks run ``apgd_steps`` iterations (APGD-T over 9 target classes).
    """
    settings = _SpecSettings(
        norm=norm,
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        restarts=restarts,
        batch_size=batch_size,
        deepfool_steps=deepfool_steps,
        overshoot=overshoot,
        autoattack_steps=autoattack_steps,
        autoattack_queries=autoattack_queries,
        apgd_steps=apgd_steps,
    )
    specs: list[AttackSpec] = []
    for name in attacks:
        if name not in CLI_ATTACKS:
            raise ValueError(f"unknown attack {name!r}; expected one of {', '.join(CLI_ATTACKS)}")
        budgets: Sequence[float | None] = [None] if name in _UNBOUNDED else eps_values
        specs.extend(_SPEC_BUILDERS[name](eps, settings) for eps in budgets)
    return specs


def check_backends(
    names: Sequence[str] | None,
    specs: Sequence[AttackSpec],
    *,
    skip_unsupported: bool,
    flag: str = "--backends",
) -> list[str]:
    """``--backends`` (default: every installed one) checked against the attacks to run.

    Each name must be installed and given once. An attack that a backend cannot run is
    skipped (and listed in the report) with ``skip_unsupported``, otherwise refused; an
    attack that none of them runs is always refused. Nothing is attacked.

    Returns:
        The backend names, in the order given.

    Raises:
        ValueError: a duplicate or unknown backend, or an attack the backends cannot run.
    """
    from art_denoise.attacks.backends import (
        UnsupportedAttackError,
        available_backends,
        get_backend,
    )
    from art_denoise.cli._checks import check_unique

    chosen = list(names) if names else available_backends()
    check_unique(flag, chosen)
    engines = []
    for name in chosen:
        try:
            engines.append(get_backend(name))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{flag}: {err}") from None
    for spec in specs:
        refusals = []
        for engine in engines:
            try:
                engine.check(spec)
            except UnsupportedAttackError as err:
                refusals.append(str(err))
        if refusals and (len(refusals) == len(engines) or not skip_unsupported):
            which = "none of" if len(refusals) == len(engines) else "not every one of"
            raise ValueError(f"{which} {flag} {','.join(chosen)} can run {spec.key}: {refusals[0]}")
    return chosen


def load_data(
    name: str,
    path: Path | None,
    *,
    image_size: tuple[int, int] | None = None,
    n_test: int | None = None,
    n_train: int | None = None,
    n_test_flag: str = "--n-samples",
    n_train_flag: str = "--train-size",
) -> Dataset:
    """The dataset, its splits cut to the first ``n_test`` / ``n_train`` images.

    ``image_size`` (``--image-size``) is passed to the loader when given (only
    ``folder`` takes it; :func:`~art_denoise.cli._checks.check_data_options` saw to that).

    Raises:
        FileNotFoundError: the files are nowhere (one line, with the command line's advice).
        ValueError: a count larger than its split, naming the flag.
    """
    from art_denoise.cli._checks import dataset_not_found
    from art_denoise.data import DatasetNotFoundError, load_dataset

    try:
        options: dict[str, Any] = {} if image_size is None else {"image_size": image_size}
        data = load_dataset(name, path=path, **options)
    except DatasetNotFoundError as err:
        raise FileNotFoundError(dataset_not_found(err, name, path)) from None
    for flag, n, have, split in (
        (n_test_flag, n_test, len(data.x_test), "test"),
        (n_train_flag, n_train, len(data.x_train), "training"),
    ):
        if n is not None and n > have:
            raise ValueError(f"{flag} {n} is more than the {have} {split} images of {name}")
    return data.subset(n_train=n_train, n_test=n_test)
