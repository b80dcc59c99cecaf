"""``art-denoise evaluate``: attack a saved model on a dataset through several backends.

Every option is checked (:func:`validate`) before the model or the data is loaded; the
report is written whole or not at all, and an existing report in ``--out`` is replaced
only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from art_denoise.attacks.eot import DEFAULT_EOT_SAMPLES
from art_denoise.attacks.rp2 import RP2Config
from art_denoise.cli._checks import (
    check_data_options,
    check_device,
    check_linf_eps,
    check_needs,
    check_out_dir,
    check_unique,
    comma_positive_floats,
    eot_samples,
    non_negative_float,
    output_dir,
    positive_float,
    positive_int,
    seed,
    unit_fraction,
)
from art_denoise.cli._common import (
    CLI_ATTACKS,
    add_dataset_arguments,
    check_backends,
    check_input_shape,
    comma_list,
    load_data,
    make_specs,
)
from art_denoise.cli._model_files import AUTOENCODER_FILE, MODEL_FILE, resolve
from art_denoise.evaluation.rp2_evaluation import RP2Evaluation
from art_denoise.evaluation.sweeps import (
    DEFAULT_RESTARTS,
    DEFAULT_STEPS,
    SWEEP_KINDS,
    SweepSpec,
)

if TYPE_CHECKING:
    from art_denoise.attacks.spec import AttackSpec
    from art_denoise.evaluation.suite import DefaultSuite

HELP = "evaluate a saved model under attacks from several backends"

#: ``--out`` by default: not the demo's ``art-denoise-report``, whose report it would replace.
DEFAULT_OUT = "art-denoise-evaluation"
#: The attack settings when their option is not given.
DEFAULTS = {
    "eps": [0.1],
    "steps": 20,
    "restarts": 1,
    "aa_steps": 100,
    "aa_queries": 5000,
    "apgd_steps": 100,
    "deepfool_steps": 50,
    "overshoot": 0.02,
    "max_restarts": 10,
    "rp2_iter": 100,
    "rp2_area": 0.25,
    "rp2_stickers": 1,
    "rp2_images": 100,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="the model: a run directory (train --out), a .safetensors file or its .json",
    )
    p.add_argument(
        "--autoencoder",
        type=Path,
        default=None,
        help="a denoising autoencoder (directory, .safetensors or .json) put in front of "
        "--model as its input filter (randomised: add --eot)",
    )
    add_dataset_arguments(p)
    add_attack_arguments(p)
    p.add_argument(
        "--n-samples", type=positive_int, default=None, help="first N test images (default all)"
    )
    p.add_argument(
        "--out",
        type=output_dir,
        default=Path(DEFAULT_OUT),
        help=f"report directory ({DEFAULT_OUT})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    p.add_argument(
        "--no-checks",
        dest="checks",
        action="store_false",
        help="skip the sanity checks (gradients, randomness, eps=1, noise, ...) of the report",
    )
    _add_extra_arguments(p)


def _add_extra_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sweeps, all-or-nothing and RP2")
    g.add_argument(
        "--sweep",
        type=comma_list,
        default=[],
        help="steps, eps and/or restarts (comma-separated): robust accuracy against PGD steps "
        f"({', '.join(str(v) for v in DEFAULT_STEPS)}), eps or random restarts "
        f"({', '.join(str(v) for v in DEFAULT_RESTARTS)}), plotted in sweeps.png",
    )
    g.add_argument("--max-steps", type=positive_int, default=None, help="cut the step sweep here")
    g.add_argument(
        "--sweep-eps", type=comma_positive_floats, default=None, help="budgets of the eps sweep"
    )
    g.add_argument(
        "--max-restarts", type=positive_int, default=None, help="cut the restart sweep (10)"
    )
    g.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="run the attacks as one sequence, each only on the images still standing "
        "(CAAD criterion); accuracies in the report are then cumulative",
    )
    g.add_argument(
        "--rp2", action="store_true", help="also run targeted RP2 stickers against every class"
    )
    g.add_argument("--rp2-iter", type=positive_int, default=None, help="RP2 Adam steps (100)")
    g.add_argument(
        "--rp2-area", type=unit_fraction, default=None, help="share of the image covered (0.25)"
    )
    g.add_argument(
        "--rp2-stickers", type=positive_int, default=None, help="rectangles in the mask (1)"
    )
    g.add_argument(
        "--rp2-images", type=positive_int, default=None, help="RP2 victims per model (100)"
    )


def add_attack_arguments(p: argparse.ArgumentParser) -> None:
    """The threat model and the backends (an option's default is in its help)."""
    p.add_argument(
        "--attacks",
        type=comma_list,
        default=None,
        help="e.g. pgd,apgd-ce,deepfool (default: at each eps, PGD through every backend, then "
        "APGD-CE and APGD-T through native, with EOT-APGD for a randomised model)",
    )
    p.add_argument(
        "--backends",
        type=comma_list,
        default=None,
        help="e.g. art,torchattacks,foolbox (default: every installed backend)",
    )
    p.add_argument(
        "--eps", type=comma_positive_floats, default=None, help="budget(s), e.g. 0.1,0.2 (0.1)"
    )
    p.add_argument("--norm", choices=("inf", "2"), default="inf")
    p.add_argument("--steps", type=positive_int, default=None, help="PGD iterations (20)")
    p.add_argument(
        "--step-size", type=positive_float, default=None, help="PGD step (default eps/8)"
    )
    p.add_argument("--restarts", type=positive_int, default=None, help="PGD random restarts (1)")
    p.add_argument("--no-random-start", action="store_true", help="start PGD at the clean image")
    p.add_argument(
        "--autoattack",
        action="store_true",
        help="add AutoAttack at every eps, after the other attacks (by default the standard "
        "version through torchattacks; with --attacks, through every backend that has it)",
    )
    p.add_argument("--apgd-steps", type=positive_int, default=None, help="APGD iterations (100)")
    p.add_argument(
        "--aa-steps", type=positive_int, default=None, help="AutoAttack's APGD/FAB iterations (100)"
    )
    p.add_argument(
        "--aa-queries", type=positive_int, default=None, help="AutoAttack's Square queries (5000)"
    )
    p.add_argument(
        "--deepfool-steps", type=positive_int, default=None, help="DeepFool iterations (50)"
    )
    p.add_argument(
        "--overshoot", type=non_negative_float, default=None, help="DeepFool overshoot (0.02)"
    )
    p.add_argument(
        "--eot",
        type=eot_samples,
        nargs="?",
        const=DEFAULT_EOT_SAMPLES,
        default=None,
        metavar="K",
        help="Expectation over Transformation, averaging K >= 2 draws of a randomised model: "
        "with --attacks, every attack is also run with EOT (default K="
        f"{DEFAULT_EOT_SAMPLES}); by default, the draws of the EOT-APGD a randomised model "
        "gets anyway (20)",
    )
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _given(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, name)
    return DEFAULTS[name] if value is None else value


def _attacks(args: argparse.Namespace) -> list[str] | None:
    """``--attacks`` (each known, none twice), and ``autoattack`` with ``--autoattack``;
    ``None`` without ``--attacks`` (the default suite)."""
    if args.attacks is None:
        return None
    attacks = list(args.attacks)
    for name in attacks:
        if name not in CLI_ATTACKS:
            raise ValueError(
                f"unknown attack {name!r} in --attacks; expected one of {', '.join(CLI_ATTACKS)}"
            )
    check_unique("--attacks", attacks)
    if args.autoattack:
        if "autoattack" in attacks:
            raise ValueError("--autoattack adds autoattack, which --attacks already names")
        attacks.append("autoattack")
    return attacks


def _check_attack_needs(args: argparse.Namespace, attacks: list[str] | None) -> None:
    """Options of attacks that will not run are refused (the default suite runs PGD and
    APGD at every eps)."""
    suite = attacks is None
    names = attacks or []
    pgd = suite or "pgd" in names
    apgd = suite or any(a.startswith("apgd") for a in names)
    check_needs(
        args,
        {
            "eps": (
                suite or any(a != "deepfool" for a in names),
                "an attack with a budget among --attacks (deepfool is unbounded)",
            ),
            "steps": (pgd, "pgd among --attacks"),
            "step_size": (pgd, "pgd among --attacks"),
            "restarts": (pgd, "pgd among --attacks"),
            "no_random_start": (pgd, "pgd among --attacks"),
            "apgd_steps": (apgd, "an apgd attack among --attacks"),
            "deepfool_steps": ("deepfool" in names, "deepfool among --attacks"),
            "overshoot": ("deepfool" in names, "deepfool among --attacks"),
            "aa_steps": (bool(args.autoattack), "--autoattack"),
            "aa_queries": (bool(args.autoattack), "--autoattack"),
        },
    )


def _eps(args: argparse.Namespace) -> list[float]:
    eps = _given(args, "eps")
    check_unique("--eps", eps)
    check_linf_eps("--eps", eps, args.norm)
    return list(eps)


def suite_from_args(args: argparse.Namespace) -> DefaultSuite:
    """The default attacks' settings from the PGD, APGD, EOT and AutoAttack options."""
    from art_denoise.evaluation.suite import DefaultSuite

    return DefaultSuite(
        pgd_steps=_given(args, "steps"),
        pgd_step_size=args.step_size,
        pgd_random_start=not args.no_random_start,
        pgd_restarts=_given(args, "restarts"),
        apgd_steps=_given(args, "apgd_steps"),
        eot_samples=args.eot if args.eot is not None else 20,
        autoattack=bool(args.autoattack),
        autoattack_steps=_given(args, "aa_steps"),
        autoattack_queries=_given(args, "aa_queries"),
        batch_size=args.batch_size,
    )


def specs_from_args(args: argparse.Namespace) -> list[AttackSpec]:
    """The attacks as pinned specs, every option checked under its flag's name.

    Without ``--attacks``: the default suite's attacks for a model that is not randomised
    (what the backends are checked against; the evaluation adds EOT-APGD for a randomised
    one).
    """
    attacks = _attacks(args)
    _check_attack_needs(args, attacks)
    eps = _eps(args)
    if attacks is None:
        return [r.spec for r in suite_from_args(args).attacks(eps, norm=args.norm)]
    specs = make_specs(
        attacks,
        eps,
        norm=args.norm,
        steps=_given(args, "steps"),
        step_size=args.step_size,
        random_start=not args.no_random_start,
        restarts=_given(args, "restarts"),
        batch_size=args.batch_size,
        deepfool_steps=_given(args, "deepfool_steps"),
        overshoot=_given(args, "overshoot"),
        autoattack_steps=_given(args, "aa_steps"),
        autoattack_queries=_given(args, "aa_queries"),
        apgd_steps=_given(args, "apgd_steps"),
    )
    if args.eot is not None:
        # both ways: single draws, then EOT, so the report shows what EOT changes
        specs += [s.replace(eot_samples=args.eot) for s in specs]
    return specs


def sweeps_from_args(args: argparse.Namespace) -> list[SweepSpec]:
    """The ``--sweep`` kinds as :class:`SweepSpec` s, with their cuts."""
    # a cut or a value list for a sweep that is not asked for would be silently ignored
    check_needs(
        args,
        {
            "sweep_eps": ("eps" in args.sweep, "--sweep eps"),
            "max_steps": ("steps" in args.sweep, "--sweep steps"),
            "max_restarts": ("restarts" in args.sweep, "--sweep restarts"),
        },
    )
    check_unique("--sweep", args.sweep)
    for kind in args.sweep:
        if kind not in SWEEP_KINDS:
            raise ValueError(f"unknown sweep {kind!r}; expected one of {', '.join(SWEEP_KINDS)}")
    if args.max_steps is not None and args.max_steps < min(DEFAULT_STEPS):
        raise ValueError(
            f"--max-steps {args.max_steps} leaves no steps value to sweep (the smallest is "
            f"{min(DEFAULT_STEPS)})"
        )
    if args.sweep_eps is not None:
        check_unique("--sweep-eps", args.sweep_eps)
        check_linf_eps("--sweep-eps", args.sweep_eps, args.norm)
    if args.sweep and args.attacks is not None and "pgd" not in args.attacks:
        raise ValueError("--sweep needs pgd among --attacks (the sweeps vary PGD)")
    sweeps = {
        "steps": lambda: SweepSpec("steps", max_value=args.max_steps),
        "restarts": lambda: SweepSpec("restarts", max_value=_given(args, "max_restarts")),
        "eps": lambda: SweepSpec("eps", values=tuple(args.sweep_eps) if args.sweep_eps else None),
    }
    return [sweeps[kind]() for kind in args.sweep]


def rp2_from_args(args: argparse.Namespace) -> RP2Evaluation | None:
    """``--rp2`` and its settings as an :class:`RP2Evaluation` (``None`` without ``--rp2``)."""
    check_needs(
        args,
        {
            name: (args.rp2, "--rp2")
            for name in ("rp2_iter", "rp2_area", "rp2_stickers", "rp2_images")
        },
    )
    if not args.rp2:
        return None
    config = RP2Config(max_iter=_given(args, "rp2_iter"), random_seed=args.seed)
    return RP2Evaluation(
        config=config,
        area_fraction=_given(args, "rp2_area"),
        n_stickers=_given(args, "rp2_stickers"),
        n_images=_given(args, "rp2_images"),
        seed=args.seed,
    )


@dataclass(frozen=True)
class _Job:
    """What :func:`validate` made of the options; nothing loaded yet."""

    specs: list[AttackSpec]
    #: the default suite (``None`` with ``--attacks``: then ``specs`` run as given)
    suite: DefaultSuite | None
    eps: list[float]
    sweeps: list[SweepSpec]
    rp2: RP2Evaluation | None
    backends: list[str]
    device: Any
    model: Path
    autoencoder: Path | None
    out: Path


def validate(args: argparse.Namespace) -> _Job:
    """Check every option of ``evaluate``; load nothing, write nothing.

    Raises:
        ValueError: a usage error, naming the flag and its value.
        FileNotFoundError: ``--model`` / ``--autoencoder`` names nothing loadable.
    """
    specs = specs_from_args(args)
    suite = suite_from_args(args) if args.attacks is None else None
    sweeps = sweeps_from_args(args)
    rp2 = rp2_from_args(args)
    # the default suite routes APGD to native and AutoAttack to torchattacks itself
    backends = check_backends(
        args.backends,
        [s for s in specs if suite is None or s.attack == "pgd"],
        skip_unsupported=True,
    )
    check_data_options(args)
    device = check_device(args.device)
    model = resolve(args.model, MODEL_FILE)
    autoencoder = resolve(args.autoencoder, AUTOENCODER_FILE) if args.autoencoder else None
    out = check_out_dir(args.out, writes=_report_files(), overwrite=args.overwrite)
    return _Job(specs, suite, _eps(args), sweeps, rp2, backends, device, model, autoencoder, out)


def _report_files() -> tuple[str, ...]:
    from art_denoise.evaluation.report import REPORT_FILES

    return REPORT_FILES


def _model_name(args: argparse.Namespace) -> str:
    """The model's name in the report: the run directory's, or the file's stem."""
    name = args.model.name if args.model.is_dir() else args.model.stem
    return f"{name}+autoencoder" if args.autoencoder else name


def run(args: argparse.Namespace) -> int:
    from art_denoise.cli._model_files import load_autoencoder, load_classifier
    from art_denoise.evaluation import evaluate
    from art_denoise.evaluation.distributed import init_from_env, is_main_process

    job = validate(args)  # usage errors first, before any loading
    device = init_from_env(args.device)  # under torchrun: this rank's device, group joined
    model = load_classifier(args.model, device)
    data = load_data(
        args.dataset, args.data_path, image_size=args.image_size, n_test=args.n_samples
    )
    check_input_shape(model, data, model_path=job.model, dataset=args.dataset)
    defenses = None
    if args.autoencoder is not None:
        from art_denoise.estimators.classification.preprocessed import PreprocessedModel

        autoencoder = load_autoencoder(args.autoencoder, device)
        check_input_shape(autoencoder, data, model_path=args.autoencoder, dataset=args.dataset)
        model = PreprocessedModel(model, [autoencoder]).eval()
        defenses = {_model_name(args): f"denoising autoencoder {args.autoencoder} in front"}
    name = _model_name(args)
    report = evaluate(
        {name: model},
        data.x_test,
        data.y_test,
        attacks=job.specs if job.suite is None else None,
        eps=job.eps if job.suite is not None else None,
        norm=args.norm,
        suite=job.suite,
        backends=job.backends,
        defenses=defenses,
        dataset=data.name,
        split="test",
        device=device,
        seed=args.seed,
        progress=not args.quiet,
        checks=args.checks,
        sweeps=job.sweeps,
        all_or_nothing=args.all_or_nothing,
        skip_unsupported=True,
        rp2=job.rp2,
    )
    if is_main_process():  # every rank holds the report; rank 0 writes it
        out = report.save(job.out, overwrite=args.overwrite)
        print(report.summary_table())
        print(f"\nreport written to {out}/report.md")
    return 0
