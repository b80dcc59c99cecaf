"""The attacks an evaluation runs when the user names none, and which backends run each.

Agreeing libraries show only that they implement PGD alike; a robustness number is
trusted when a parameter-free attack, with no step size to tune, is part of its worst case.
:func:`default_attacks` gives, at each eps:

1. the pinned PGD (20 steps of eps/8 from a random start, the command line's) through
   every backend of the evaluation;
2. APGD-CE and APGD-T (100 steps, 1 restart, 9 target classes): the white-box part of
   AutoAttack (Croce & Hein 2020), through the ``native`` backend;
3. for a randomised model, instead of 2: APGD-CE and APGD-DLR with EOT over 20 draws
   (AutoAttack's "rand" version), through ``native`` (the plain APGD attacks follow one
   noise draw's gradient and add nothing the EOT ones do not);
4. with ``autoattack=True``, the standard AutoAttack through ``torchattacks``.

| Paper link: https://arxiv.org/abs/2003.01690 (Croce & Hein, ICML 2020)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from art_denoise._validation import check_bool, check_positive, check_positive_int
from art_denoise.attacks.spec import AttackSpec, normalize_norm

__all__ = ["DefaultSuite", "RoutedAttack", "default_attacks"]


@dataclass(frozen=True)
class RoutedAttack:
    """An attack and the backends that run it.

    Args:
        spec: the attack.
        backends: backend names, in order; ``None`` runs it through every backend of the
            evaluation (its ``backends`` argument).

    Example:
        >>> RoutedAttack(AttackSpec(attack="apgd-ce", eps=0.1, steps=100), ("native",)).backends
        ('native',)
    """

    spec: AttackSpec
    backends: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, AttackSpec):
            raise TypeError(f"spec must be an AttackSpec, got {type(self.spec).__name__}")
        if self.backends is None:
            return
        if isinstance(self.backends, str):
            raise TypeError(
                f"backends must be a sequence of names, got the string {self.backends!r}"
            )
        names = tuple(self.backends)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"backends must be non-empty names, got {self.backends!r}")
        object.__setattr__(self, "backends", names)


@dataclass(frozen=True)
class DefaultSuite:
    """The settings of the default attacks (module docstring).

    Args:
        pgd_steps: PGD iterations.
        pgd_step_size: PGD step; ``None`` steps eps/8.
        pgd_random_start: PGD starts at a random point of the ball.
        pgd_restarts: PGD random restarts.
        apgd_steps: APGD iterations.
        apgd_restarts: APGD restarts.
        target_classes: APGD-T's target classes (AutoAttack's 9).
        eot_samples: EOT draws of the randomised model's APGD (AutoAttack "rand": 20).
        autoattack: also run the standard AutoAttack.
        autoattack_steps, autoattack_queries: its APGD/FAB iterations and Square queries.
        batch_size: images per attack call.
        parameter_free_backend: runs the APGD attacks.
        autoattack_backend: runs the standard AutoAttack.
    """

    pgd_steps: int = 20
    pgd_step_size: float | None = None
    pgd_random_start: bool = True
    pgd_restarts: int = 1
    apgd_steps: int = 100
    apgd_restarts: int = 1
    target_classes: int = 9
    eot_samples: int = 20
    autoattack: bool = False
    autoattack_steps: int = 100
    autoattack_queries: int = 5000
    batch_size: int = 256
    parameter_free_backend: str = "native"
    autoattack_backend: str = "torchattacks"

    def __post_init__(self) -> None:
        for name in (
            "pgd_steps",
            "pgd_restarts",
            "apgd_steps",
            "apgd_restarts",
            "target_classes",
            "autoattack_steps",
            "autoattack_queries",
            "batch_size",
        ):
            check_positive_int(name, getattr(self, name))
        check_positive_int("eot_samples", self.eot_samples, minimum=2)
        if self.pgd_step_size is not None:
            check_positive("pgd_step_size", self.pgd_step_size)
        check_bool("pgd_random_start", self.pgd_random_start)
        check_bool("autoattack", self.autoattack)
        for name in ("parameter_free_backend", "autoattack_backend"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must be a backend name, got {getattr(self, name)!r}")

    def attacks(
        self, eps: float | Sequence[float], *, norm: str = "inf", randomized: bool = False
    ) -> list[RoutedAttack]:
        """The attacks at each of ``eps``, in run order (all the attacks of one eps, then
        the next eps).

        Raises:
            ValueError / TypeError: no eps, an eps that is not a positive number, a bad norm.
        """
        norm = normalize_norm(norm)
        check_bool("randomized", randomized)
        out: list[RoutedAttack] = []
        for e in _eps_list(eps):
            out += self._at(e, norm, randomized)
        return out

    def _at(self, eps: float, norm: str, randomized: bool) -> list[RoutedAttack]:
        native = (self.parameter_free_backend,)
        common: dict[str, Any] = {"norm": norm, "eps": eps, "batch_size": self.batch_size}
        apgd: dict[str, Any] = {**common, "steps": self.apgd_steps, "restarts": self.apgd_restarts}
        pgd = RoutedAttack(
            AttackSpec(
                attack="pgd",
                step_size=self.pgd_step_size if self.pgd_step_size is not None else eps / 8,
                steps=self.pgd_steps,
                random_start=self.pgd_random_start,
                restarts=self.pgd_restarts,
                **common,
            )
        )
        if randomized:  # AutoAttack's "rand" version: its plain APGD would add nothing
            out = [pgd] + [
                RoutedAttack(AttackSpec(attack=a, eot_samples=self.eot_samples, **apgd), native)
                for a in ("apgd-ce", "apgd-dlr")
            ]
        else:
            out = [
                pgd,
                RoutedAttack(AttackSpec(attack="apgd-ce", **apgd), native),
                RoutedAttack(
                    AttackSpec(attack="apgd-t", target_classes=self.target_classes, **apgd),
                    native,
                ),
            ]
        if self.autoattack:
            spec = AttackSpec(
                attack="autoattack",
                steps=self.autoattack_steps,
                queries=self.autoattack_queries,
                **common,
            )
            out.append(RoutedAttack(spec, (self.autoattack_backend,)))
        return out


def _eps_list(eps: float | Sequence[float]) -> list[float]:
    """``eps`` as a non-empty list of positive budgets, duplicates dropped."""
    values = [eps] if isinstance(eps, (int, float)) or not isinstance(eps, Sequence) else eps
    if isinstance(eps, str) or not list(values):
        raise ValueError(f"eps must be a positive number or a non-empty list of them, got {eps!r}")
    return list(dict.fromkeys(check_positive("eps", e) for e in values))


def default_attacks(
    eps: float | Sequence[float],
    *,
    norm: str = "inf",
    randomized: bool = False,
    **settings: Any,
) -> list[RoutedAttack]:
    """The default attacks at each of ``eps`` (module docstring), with their backends.

    Args:
        eps: a budget or a list of budgets, in the input scale [0, 1].
        norm: ``"inf"`` or ``"2"``.
        randomized: the model is randomised: add APGD-CE and APGD-DLR with EOT.
        **settings: fields of :class:`DefaultSuite` (``pgd_steps``, ``apgd_steps``,
            ``eot_samples``, ``autoattack``, ``batch_size``, ...).

    Returns:
        The attacks, in run order; PGD's ``backends`` is ``None`` (every backend).

    Example:
        >>> for a in default_attacks(0.1):
        ...     print(a.spec.key, a.backends)
        pgd-linf@0.1 None
        apgd-ce-linf@0.1 ('native',)
        apgd-t-linf@0.1 ('native',)
    """
    return DefaultSuite(**settings).attacks(eps, norm=norm, randomized=randomized)
