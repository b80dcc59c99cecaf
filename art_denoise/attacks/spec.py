"""`AttackSpec`: one threat model, stated completely, for every backend alike."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from art_denoise._validation import (
    check_choice,
    check_non_negative,
    check_norm,
    check_positive_int,
)

__all__ = [
    "APGD_ATTACKS",
    "ATTACKS",
    "MINIMAL_NORM_ATTACKS",
    "NORMS",
    "PARAMETER_FREE_ATTACKS",
    "AttackSpec",
    "normalize_norm",
]

#: Attacks the backends know, and the norms each is defined for.
ATTACKS: dict[str, tuple[str, ...]] = {
    "fgsm": ("inf", "2"),
    "pgd": ("inf", "2"),
    "deepfool": ("2", "inf"),
    "autoattack": ("inf", "2"),
    "apgd-ce": ("inf", "2"),
    "apgd-dlr": ("inf", "2"),
    "apgd-t": ("inf", "2"),
}
NORMS = ("inf", "2")

#: Auto-PGD (Croce & Hein 2020): cross-entropy, the DLR loss, and targeted DLR over the
#: ``target_classes`` most likely wrong classes. They adapt their own step and start at a
#: random point, so a spec gives them no ``step_size`` and no ``random_start``.
APGD_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t")
#: Attacks without a step size to tune: a robust accuracy is "verified" only if one of
#: them is part of its worst case.
PARAMETER_FREE_ATTACKS = (*APGD_ATTACKS, "autoattack")
#: Minimal-perturbation attacks: they report the norm each image needed, not a robust
#: accuracy at one eps.
MINIMAL_NORM_ATTACKS = ("deepfool",)


def normalize_norm(norm: Any) -> str:
    """Map ``"inf"``, ``"linf"``, ``np.inf``, ``2``, ``"l2"`` to ``"inf"`` or ``"2"``.

    The threat model's name for :func:`art_denoise._validation.check_norm`.
    """
    return check_norm(norm, allowed=NORMS)


@dataclass(frozen=True)
class AttackSpec:
    """A fully pinned attack configuration.

    The three attack libraries have different defaults (REFERENCES.md §3); a spec states
    every setting so that each backend receives the same numbers.

    Args:
        attack: ``"fgsm"``, ``"pgd"``, ``"deepfool"``, ``"autoattack"``, ``"apgd-ce"``,
            ``"apgd-dlr"`` or ``"apgd-t"``. AutoAttack (Croce & Hein, 2020) is an untargeted
            ensemble of parameter-free attacks; each backend runs its library's version (see
            the backend's docstring). The APGD attacks are its white-box members, run one at
            a time (APGD-T targets each of the ``target_classes`` most likely wrong classes
            in turn, and counts as untargeted: it succeeds on any misclassification).
        norm: ``"inf"`` or ``"2"`` (``np.inf``, ``2``, ``"linf"``, ``"l2"`` accepted).
        eps: perturbation budget in the input scale [0, 1] (at most 1 for Linf: larger
            budgets mean nothing on [0, 1] images). For DeepFool, a minimal-
            perturbation attack, ``None`` leaves it unbounded; a number projects its
            output onto the eps-ball (as foolbox does for minimisation attacks).
        step_size: PGD step (absolute). FGSM always steps ``eps``; DeepFool ignores it.
        steps: iterations (PGD, DeepFool, APGD; AutoAttack's gradient attacks, 100 in the
            standard version); 1 for FGSM.
        random_start: start from a uniform point in the eps-ball (PGD, FGSM-RS).
        restarts: independent runs; an example counts as broken if any run breaks it.
            More than 1 needs a random start (PGD, FGSM; APGD and AutoAttack draw their
            own), and DeepFool, which has none, takes 1: more would repeat one run.
        targeted: attack towards target labels (drawn by the harness) instead of away
            from the true label.
        batch_size: images per attack call.
        overshoot: DeepFool overshoot, applied the same way in every backend.
        candidates: DeepFool's number of top classes considered.
        queries: AutoAttack's Square attack query budget (5000 in the standard version).
        target_classes: APGD-T's number of target classes (9 in AutoAttack; fewer when the
            model has fewer wrong classes).
        eot_samples: Expectation over Transformation: the attacked model is the mean of
            this many independent forward passes (:class:`~art_denoise.attacks.eot.EOTModel`);
            1 (the default) attacks single draws. Needed for randomised defenses.

    Example:
        >>> spec = AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20, random_start=True)
        >>> spec.key
        'pgd-linf@0.1'
    """

    attack: str
    norm: str = "inf"
    eps: float | None = 0.1
    step_size: float | None = None
    steps: int = 1
    random_start: bool = False
    restarts: int = 1
    targeted: bool = False
    batch_size: int = 256
    overshoot: float = 0.02
    candidates: int = 10
    eot_samples: int = 1
    queries: int = 5000
    target_classes: int = 9

    def __post_init__(self) -> None:
        self._check_threat_model()
        check_positive_int("steps", self.steps)
        check_positive_int("restarts", self.restarts)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("candidates", self.candidates, minimum=2)
        check_positive_int("eot_samples", self.eot_samples)
        check_positive_int("queries", self.queries)
        check_positive_int("target_classes", self.target_classes)
        object.__setattr__(self, "overshoot", check_non_negative("overshoot", self.overshoot))
        for flag in ("random_start", "targeted"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        object.__setattr__(self, "step_size", self._checked_step_size())
        self._check_restarts()

    def _check_restarts(self) -> None:
        """Restarts of a run that starts at the same point every time repeat that run: the
        report would claim attack effort that never happened."""
        if self.restarts == 1:
            return
        if self.attack == "deepfool":
            raise ValueError(
                f"deepfool is deterministic: restarts={self.restarts} would repeat one run; "
                "use restarts=1"
            )
        if self.attack in ("pgd", "fgsm") and not self.random_start:
            raise ValueError(
                f"restarts={self.restarts} without a random start repeat one {self.attack} "
                "run; set random_start=True or restarts=1"
            )

    def _check_threat_model(self) -> None:
        """The attack, its norm and ``eps`` (normalised in place)."""
        check_choice("attack", self.attack, ATTACKS)
        norm = normalize_norm(self.norm)
        object.__setattr__(self, "norm", norm)
        if norm not in ATTACKS[self.attack]:
            raise ValueError(f"attack {self.attack!r} is not defined for norm {norm!r}")
        if self.eps is None:
            if self.attack != "deepfool":
                raise ValueError(f"attack {self.attack!r} needs an eps, got None")
        else:
            eps = check_non_negative("eps", self.eps)
            if norm == "inf" and eps > 1:
                raise ValueError(
                    f"eps={self.eps!r} is larger than the whole [0, 1] input range for Linf "
                    f"(did you mean {self.eps:g}/255 = {eps / 255:.6g}?)"
                )
            object.__setattr__(self, "eps", eps)

    def _checked_step_size(self) -> float | None:
        """The step: ``eps`` for FGSM, explicit for PGD, none for the parameter-free ones."""
        if self.attack == "fgsm":
            if self.steps != 1:
                raise ValueError(f"fgsm takes a single step, got steps={self.steps}")
            if self.step_size is not None and self.step_size != self.eps:
                raise ValueError(
                    f"fgsm steps exactly eps; got step_size={self.step_size!r} != eps={self.eps!r}"
                )
            return self.eps
        if self.attack == "pgd":
            if self.step_size is None:
                raise ValueError("pgd needs an explicit step_size (the libraries' defaults differ)")
            step = check_non_negative("step_size", self.step_size)
            if step == 0:
                raise ValueError(f"step_size must be > 0, got {self.step_size!r}")
            return step
        if self.targeted:
            raise ValueError(f"{self.attack} is untargeted; got targeted=True")
        if self.random_start:
            raise ValueError(f"{self.attack} draws its own starting points; got random_start=True")
        if self.attack in PARAMETER_FREE_ATTACKS and self.step_size is not None:
            raise ValueError(
                f"{self.attack} is parameter-free (it adapts its step); got step_size="
                f"{self.step_size!r}"
            )
        return None

    @property
    def parameter_free(self) -> bool:
        """Whether this is APGD or AutoAttack (no step size to tune)."""
        return self.attack in PARAMETER_FREE_ATTACKS

    @property
    def minimal_norm(self) -> bool:
        """Whether this attack looks for the smallest perturbation (DeepFool)."""
        return self.attack in MINIMAL_NORM_ATTACKS

    @property
    def name(self) -> str:
        """Short name such as ``"pgd-linf"``, ``"deepfool-l2"`` or ``"pgd-linf+eot16"``."""
        eot = f"+eot{self.eot_samples}" if self.eot_samples > 1 else ""
        return f"{self.attack}-l{self.norm}{eot}"

    @property
    def key(self) -> str:
        """``"<name>@<eps>"``, the key of ``backend_spread`` in the report."""
        eps = "unbounded" if self.eps is None else f"{self.eps:g}"
        return f"{self.name}@{eps}"

    def replace(self, **changes: Any) -> AttackSpec:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return dataclasses.asdict(self)
