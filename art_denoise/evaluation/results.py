"""The evaluation's results as plain data: checks, attack results, threat models, models.

The bottom of :mod:`art_denoise.evaluation`'s report: :mod:`~art_denoise.evaluation.markdown`
and :mod:`~art_denoise.evaluation.plot` draw these, and
:class:`~art_denoise.evaluation.report.Report` adds the schema and the files.

Per-example outcomes are stored as compact strings, one character per image of the
evaluation in its order (:func:`mask_to_str`, :func:`str_to_mask`): ``"1"`` where the image
is still classified correctly after the attack, ``"0"`` where it is broken or was already
misclassified clean (such images never count as robust).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from art_denoise.attacks.spec import MINIMAL_NORM_ATTACKS, PARAMETER_FREE_ATTACKS
from art_denoise.evaluation.sweeps import Sweep

__all__ = [
    "CHECK_STATUSES",
    "CONVERGENCE_THRESHOLD",
    "AttackResult",
    "Check",
    "ModelReport",
    "NormStats",
    "ReportData",
    "ThreatModelResult",
    "base_attack",
    "mask_to_str",
    "norm_label",
    "str_to_mask",
]

#: The outcomes of a :class:`Check`; only ``"fail"`` makes a model "not verified".
CHECK_STATUSES = ("pass", "warn", "fail", "skip")
#: A later attack lowering a threat model's running worst case by more than this (a
#: fraction: 1.5 points) shows that the attacks before it had not converged.
CONVERGENCE_THRESHOLD = 0.015
#: Attacks with a fixed step (a robust accuracy from them alone is "PGD only").
_FIXED_STEP_ATTACKS = ("fgsm", "pgd")


def mask_to_str(mask: Iterable[bool]) -> str:
    """A boolean per-example mask as a ``"0"``/``"1"`` string.

    Example:
        >>> mask_to_str([True, False, True])
        '101'
    """
    return "".join("1" if bool(v) else "0" for v in mask)


def str_to_mask(text: str) -> np.ndarray:
    """The boolean array of a :func:`mask_to_str` string.

    Raises:
        ValueError: a character other than ``"0"`` and ``"1"``.

    Example:
        >>> str_to_mask("101").tolist()
        [True, False, True]
    """
    if set(text) - {"0", "1"}:
        raise ValueError(f"a per-example mask holds only '0' and '1', got {text[:20]!r}...")
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) == ord("1")


def base_attack(name: str) -> str:
    """The attack of a result name: ``"apgd-ce-linf+eot20"`` -> ``"apgd-ce"``."""
    return name.rsplit("-l", 1)[0]


def norm_label(norm: str) -> str:
    """``"inf"`` -> ``"Linf"``, ``"2"`` -> ``"L2"``."""
    return f"L{norm}"


@dataclass(frozen=True)
class Check:
    """The outcome of one sanity check on one evaluated model.

    Args:
        name: short identifier, e.g. ``"nonzero-gradients"``.
        status: ``"pass"``, ``"warn"``, ``"fail"`` or ``"skip"``.
        detail: one line saying why, with the numbers compared.
    """

    name: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"status must be one of {CHECK_STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(name=data["name"], status=data["status"], detail=data["detail"])


@dataclass(frozen=True)
class AttackResult:
    """One (attack, backend) pair on one model.

    ``robust_examples`` is the per-example form of ``robust_accuracy`` (module docstring;
    cumulative within the threat model in an all-or-nothing run). A minimal-norm attack
    run without a budget (DeepFool, ``eps`` ``None``) also records ``adversarial`` (``"1"``
    where its output is misclassified) and ``perturbation_norms``: the norm of each
    perturbation, in the attack's norm, for the images correctly classified clean whose
    output is adversarial, ``None`` for the others. ``None`` fields: not recorded (an
    older report).
    """

    attack: str
    backend: str
    norm: str
    eps: float | None
    step_size: float | None
    steps: int
    random_start: bool
    restarts: int
    targeted: bool
    robust_accuracy: float
    attack_success_rate: float
    l2_dissimilarity: float
    max_perturbation: float
    seconds: float
    eot_samples: int = 1
    #: images the attack ran on (fewer than the evaluation's in an all-or-nothing run)
    n_attacked: int | None = None
    #: part of an all-or-nothing sequence: ``robust_accuracy`` is cumulative
    sequential: bool = False
    robust_examples: str | None = None
    adversarial: str | None = None
    perturbation_norms: tuple[float | None, ...] | None = None

    @property
    def key(self) -> str:
        """``"<attack>@<eps>"``, as in ``backend_spread``."""
        return f"{self.attack}@{'unbounded' if self.eps is None else f'{self.eps:g}'}"

    @property
    def label(self) -> str:
        """``"<attack>/<backend>"``, how a threat model lists the attacks it holds."""
        return f"{self.attack}/{self.backend}"

    @property
    def parameter_free(self) -> bool:
        """APGD or AutoAttack (no step size to tune)."""
        return base_attack(self.attack) in PARAMETER_FREE_ATTACKS

    @property
    def minimal_norm(self) -> bool:
        """An unbounded minimal-norm attack (DeepFool without eps): no robust accuracy of
        its own, only the norm each image needed."""
        return self.eps is None and base_attack(self.attack) in MINIMAL_NORM_ATTACKS

    def norm_stats(self) -> NormStats | None:
        """The norms an unbounded minimal-norm attack needed, or ``None``."""
        if not self.minimal_norm or self.perturbation_norms is None:
            return None
        return NormStats.from_result(self)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.perturbation_norms is not None:
            d["perturbation_norms"] = list(self.perturbation_norms)
        stats = self.norm_stats()
        if stats is not None:
            d["norm_stats"] = stats.to_dict()  # derived: ignored when loading
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackResult:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        if kw.get("perturbation_norms") is not None:
            kw["perturbation_norms"] = tuple(kw["perturbation_norms"])
        return cls(**kw)


@dataclass(frozen=True)
class NormStats:
    """The perturbation norms one minimal-norm attack (one backend) needed on one model.

    Args:
        attack, backend, norm: which attack, through which backend, in which norm.
        norms: the norms of the adversarial outputs of the images correctly classified
            clean, sorted.
        n_not_adversarial: images correctly classified clean whose output is not
            adversarial (the attack failed on them; not a disagreement between backends).
        n_samples: images in the evaluation.
    """

    attack: str
    backend: str
    norm: str
    norms: tuple[float, ...]
    n_not_adversarial: int
    n_samples: int

    @classmethod
    def from_result(cls, r: AttackResult) -> NormStats:
        """From an unbounded minimal-norm :class:`AttackResult` with recorded norms."""
        norms = tuple(sorted(float(v) for v in r.perturbation_norms or () if v is not None))
        robust = str_to_mask(r.robust_examples or "")
        return cls(
            attack=r.attack,
            backend=r.backend,
            norm=r.norm,
            norms=norms,
            n_not_adversarial=int(robust.sum()),
            n_samples=len(r.perturbation_norms or ()),
        )

    @property
    def n_adversarial(self) -> int:
        """Images correctly classified clean whose output is adversarial."""
        return len(self.norms)

    def quartiles(self) -> tuple[float, float, float] | None:
        """(first quartile, median, third quartile) of the norms (numpy's linear
        interpolation), ``None`` when no output was adversarial."""
        if not self.norms:
            return None
        q1, q2, q3 = np.percentile(np.asarray(self.norms), [25, 50, 75])
        return float(q1), float(q2), float(q3)

    def accuracy_at(self, eps: float) -> float:
        """The robust accuracy these norms imply at ``eps``: the share of images correctly
        classified clean and not broken within ``eps`` (an image whose output is not
        adversarial is not broken at any eps)."""
        within = int(np.searchsorted(np.asarray(self.norms), eps, side="right"))
        standing = self.n_not_adversarial + self.n_adversarial - within
        return standing / self.n_samples if self.n_samples else 0.0

    def curve(self, points: int = 21) -> tuple[list[float], list[float]]:
        """(eps, accuracy) at ``points`` evenly spaced budgets from 0 to the largest norm."""
        top = self.norms[-1] if self.norms else 0.0
        eps = [top * i / (points - 1) for i in range(points)]
        return eps, [self.accuracy_at(e) for e in eps]

    def to_dict(self) -> dict[str, Any]:
        q = self.quartiles()
        eps, acc = self.curve()
        return {
            "q1": None if q is None else q[0],
            "median": None if q is None else q[1],
            "q3": None if q is None else q[2],
            "n_adversarial": self.n_adversarial,
            "n_not_adversarial": self.n_not_adversarial,
            "curve": {"eps": eps, "robust_accuracy": acc},
        }


@dataclass(frozen=True)
class ThreatModelResult:
    """The worst case over every attack and backend at one threat model (norm, eps).

    An image counts as robust only if every attack at this (norm, eps), through every
    backend, left it correctly classified (the CAAD all-or-nothing criterion, computed
    within one threat model). An unbounded minimal-norm attack of the same norm (DeepFool)
    also counts: an image it broke with a perturbation of norm <= eps is broken within
    this threat model (a valid adversarial example inside the ball, so the worst case is
    only ever lowered, never raised, by counting it).

    Args:
        norm: ``"inf"`` or ``"2"``; eps: the budget.
        robust_accuracy: the worst case: the share of images left standing by every attack.
        attacks: ``"<attack>/<backend>"`` of every result counted, in run order.
        running_accuracy: the worst case after each of ``attacks`` (its last entry is
            ``robust_accuracy``).
        own_accuracy: each attack's own robust accuracy at this threat model (cumulative
            in an all-or-nothing run).
        parameter_free: an APGD or AutoAttack result is part of the worst case.
        eot: a parameter-free result with Expectation over Transformation
            (``eot_samples`` > 1) is part of it (what a randomised model needs).
        robust_examples: the per-example worst case (module docstring).
    """

    norm: str
    eps: float
    robust_accuracy: float
    attacks: tuple[str, ...]
    running_accuracy: tuple[float, ...]
    own_accuracy: tuple[float, ...]
    parameter_free: bool
    eot: bool
    robust_examples: str

    @property
    def label(self) -> str:
        """``"Linf eps 0.1"``."""
        return f"{norm_label(self.norm)} eps {self.eps:g}"

    @property
    def strongest(self) -> str:
        """The attack with the lowest accuracy of its own (the first of equals)."""
        return self.attacks[int(np.argmin(self.own_accuracy))]

    def unconverged(
        self, threshold: float = CONVERGENCE_THRESHOLD
    ) -> list[tuple[str, float, float]]:
        """(attack, worst case before it, after it) for every attack that lowered the
        running worst case by more than ``threshold`` after an iterative attack had run:
        the attacks before it had not converged.

        An attack is compared as a whole, over all its backends (consecutive rows of one
        attack name): the same attack through another library only redraws its random
        start, which is not a stronger attack. A single-step attack (FGSM) is not
        expected to converge, so the comparison starts after the first other attack.
        """
        out = []
        iterative_before = False
        for name, first, last in self._attack_groups():
            if first and iterative_before:
                before, after = self.running_accuracy[first - 1], self.running_accuracy[last]
                if before - after > threshold + 1e-12:
                    out.append((name, before, after))
            iterative_before |= base_attack(name) != "fgsm"
        return out

    def _attack_groups(self) -> list[tuple[str, int, int]]:
        """(attack name, first row, last row) of each attack run through its backends:
        consecutive rows of one attack name, each through another backend."""
        groups: list[tuple[str, int, int]] = []
        backends: set[str] = set()
        for i, key in enumerate(self.attacks):
            name, _, backend = key.partition("/")
            if groups and groups[-1][0] == name and backend not in backends:
                groups[-1] = (name, groups[-1][1], i)
            else:
                groups.append((name, i, i))
                backends = set()
            backends.add(backend)
        return groups

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("attacks", "running_accuracy", "own_accuracy"):
            d[k] = list(d[k])
        d["strongest"] = self.strongest  # derived: ignored when loading
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreatModelResult:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        for k in ("attacks", "running_accuracy", "own_accuracy"):
            kw[k] = tuple(kw[k])
        return cls(**kw)


@dataclass
class ModelReport:
    """All results for one model.

    ``threat_models`` holds the headline: one worst case per (norm, eps)
    (:class:`ThreatModelResult`); ``results`` the (attack, backend) rows below it.
    ``randomized``: two identical calls of the model differ (it needs EOT).
    ``all_or_nothing_accuracy`` is deprecated: it mixes every budget and the unbounded
    attacks into one number; read ``threat_models`` instead.
    """

    name: str
    defense: str
    clean_accuracy: float
    results: list[AttackResult] = field(default_factory=list)
    all_or_nothing_accuracy: float = float("nan")
    checks: list[Check] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    rp2: dict[str, Any] | None = None
    threat_models: list[ThreatModelResult] = field(default_factory=list)
    randomized: bool = False

    @property
    def status(self) -> str:
        """``"verified"``, ``"not verified (<reasons>)"`` or ``"unchecked"``.

        Verified only if, at every threat model, a parameter-free attack (APGD or
        AutoAttack; with EOT for a randomised model) is part of the worst case, and every
        check ran and none failed. "unchecked": the parameter-free attacks ran but the
        checks did not.
        """
        reasons = [*self._attack_gaps()]
        if self.failed_checks:
            reasons.append(f"checks failed: {', '.join(self.failed_checks)}")
        if reasons:
            return f"not verified ({'; '.join(reasons)})"
        return "verified" if self.checks else "unchecked"

    def _attack_gaps(self) -> list[str]:
        """Why the attacks cannot vouch for the worst cases (empty when they can)."""
        tms = self.threat_models
        if not tms:
            bounded = [r for r in self.results if r.eps is not None]
            if bounded:
                return ["no worst case per threat model (per-example results missing)"]
            return ["no bounded attack"]
        if not any(t.parameter_free for t in tms):
            used = {base_attack(r.attack) for r in self.results if r.eps is not None}
            if used <= set(_FIXED_STEP_ATTACKS):
                return ["PGD only"]
            return ["no parameter-free attack"]
        gaps = [t.label for t in tms if not t.parameter_free]
        out = [f"no parameter-free attack at {', '.join(gaps)}"] if gaps else []
        if self.randomized:
            no_eot = [t.label for t in tms if t.parameter_free and not t.eot]
            if no_eot:
                out.append(f"randomised, no EOT-APGD at {', '.join(no_eot)}")
        return out

    @property
    def verified(self) -> bool | None:
        """``True`` when :attr:`status` is ``"verified"``, ``None`` when ``"unchecked"``,
        ``False`` otherwise."""
        status = self.status
        if status == "unchecked":
            return None
        return status == "verified"

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if c.status == "fail"]

    @property
    def backend_spread(self) -> dict[str, float]:
        """Per bounded attack key: max - min robust accuracy over the backends that ran it.

        Unbounded minimal-norm attacks are left out: their outputs that are not adversarial
        are the attack failing (:attr:`norm_stats`), not backends disagreeing."""
        groups: dict[str, list[float]] = {}
        for r in self.results:
            if r.eps is not None:
                groups.setdefault(r.key, []).append(r.robust_accuracy)
        return {k: max(v) - min(v) for k, v in groups.items()}

    def worst_case(self) -> dict[str, float]:
        """Per attack key: the lowest robust accuracy over the backends."""
        groups: dict[str, float] = {}
        for r in self.results:
            groups[r.key] = min(groups.get(r.key, 1.0), r.robust_accuracy)
        return groups

    @property
    def norm_stats(self) -> list[NormStats]:
        """The norms each unbounded minimal-norm attack needed, per backend, in run order."""
        return [s for r in self.results if (s := r.norm_stats()) is not None]

    def threat_model(self, norm: str, eps: float) -> ThreatModelResult | None:
        """The worst case at (``norm``, ``eps``), or ``None`` when no attack ran there."""
        return next((t for t in self.threat_models if (t.norm, t.eps) == (norm, eps)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "defense": self.defense,
            "clean_accuracy": self.clean_accuracy,
            "randomized": self.randomized,
            "threat_models": [t.to_dict() for t in self.threat_models],
            "status": self.status,
            "verified": self.verified,
            "results": [r.to_dict() for r in self.results],
            "backend_spread": self.backend_spread,
            "all_or_nothing_accuracy": self.all_or_nothing_accuracy,
            "checks": [c.to_dict() for c in self.checks],
            "sweeps": [sw.to_dict() for sw in self.sweeps],
            "rp2": self.rp2,
        }


@dataclass
class ReportData:
    """The fields of a :class:`~art_denoise.evaluation.report.Report` (what the renderers read)."""

    dataset: dict[str, Any]
    models: list[ModelReport]
    environment: dict[str, Any]
    #: (attack, backend) pairs a backend could not express, with the reason
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: the attacks ran all-or-nothing, per threat model (cumulative accuracies)
    all_or_nothing: bool = False
