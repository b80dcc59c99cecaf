"""Attack backends: the built-in ``art`` and ``native`` backends and plugins found through
entry points.

A plugin package registers a subclass of :class:`AttackBackend` under the entry-point
group ``art_denoise.backends``::

    [project.entry-points."art_denoise.backends"]
    torchattacks = "art_denoise_torchattacks:TorchattacksBackend"
"""

from __future__ import annotations

from importlib import metadata

from art_denoise.attacks.backends.base import (
    AttackBackend,
    BatchAttack,
    BudgetExceededError,
    UnsupportedAttackError,
    attack_guard,
)

__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "AttackBackend",
    "BatchAttack",
    "BudgetExceededError",
    "UnsupportedAttackError",
    "attack_guard",
    "available_backends",
    "get_backend",
]

ENTRY_POINT_GROUP = "art_denoise.backends"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


#: The backends shipped with the package (never looked up through entry points).
BUILT_IN = ("art", "native")


def available_backends() -> list[str]:
    """Names of the backends that can be used here: the built-in ones, then every plugin."""
    return [*BUILT_IN, *sorted(name for name in _entry_points() if name not in BUILT_IN)]


def get_backend(name: str) -> AttackBackend:
    """Return a new instance of the backend called ``name``.

    Raises:
        ValueError: no backend of that name is installed; the message lists those that are.
    """
    if name == "art":
        from art_denoise.attacks.backends.art_backend import ARTBackend

        return ARTBackend()
    if name == "native":
        from art_denoise.attacks.backends.native_backend import NativeBackend

        return NativeBackend()
    eps = _entry_points()
    if not isinstance(name, str) or name not in eps:
        hint = ""
        if name in ("torchattacks", "foolbox"):
            hint = f" (install the plugin: pip install plugins/art-denoise-{name})"
        raise ValueError(
            f"unknown backend {name!r}; available: {', '.join(available_backends())}{hint}"
        )
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, AttackBackend)):
        raise TypeError(f"entry point {name!r} does not name an AttackBackend subclass: {cls!r}")
    return cls()
