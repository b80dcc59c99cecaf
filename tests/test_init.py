"""The top-level names: each importable, each loaded lazily, ``import art_denoise`` cheap."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import art_denoise

#: Packages that ``import art_denoise`` must not import (ART, attack libraries, plug-ins).
HEAVY = ("art", "torchattacks", "foolbox", "art_denoise_torchattacks", "art_denoise_foolbox")

#: The names that need only torch: using them must not import ART either.
TORCH_ONLY = ("DenoisingBlock", "insert_denoising_blocks", "LowPass2d", "insert_lowpass")

#: The defenses and trainers issue 16 asked for at the top level.
DEFENSES = (
    "DenoisingBlock",
    "insert_denoising_blocks",
    "insert_lowpass",
    "DenoisingAutoencoderPyTorch",
    "LowPassFilterPyTorch",
    "AdversarialTrainerPGDPyTorch",
    "AdversarialTrainerFastPyTorch",
    "AdversarialTrainerMixPyTorch",
    "PrototypeConformityTrainerPyTorch",
    "RobustTrainerPyTorch",
)


def _loaded_after(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; which heavy and art_denoise modules it loaded."""
    probe = (
        f"import sys\n{code}\nimport json\n"
        "mods = sorted(sys.modules)\n"
        f"heavy = [m for m in mods if m.split('.')[0] in {HEAVY!r}]\n"
        "own = [m for m in mods if m.startswith('art_denoise.')]\n"
        "print(json.dumps({'heavy': heavy, 'own': own}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_art_denoise_is_cheap() -> None:
    loaded = _loaded_after("import art_denoise")
    assert loaded["heavy"] == []
    assert loaded["own"] == ["art_denoise._moved"]  # nothing else until a name is used


def test_the_torch_layer_names_do_not_import_art() -> None:
    names = ", ".join(TORCH_ONLY)
    loaded = _loaded_after(f"from art_denoise import {names}")
    assert loaded["heavy"] == []
    assert "art_denoise.defences.trainer" not in loaded["own"]


def test_every_defense_is_at_the_top_level() -> None:
    assert set(DEFENSES) <= set(art_denoise.__all__)


@pytest.mark.parametrize("name", sorted(set(art_denoise.__all__) - {"__version__"}))
def test_every_top_level_name_is_the_object_of_its_module(name: str) -> None:
    module = importlib.import_module(art_denoise._EXPORTS[name])
    value = getattr(art_denoise, name)
    assert value is getattr(module, name)
    assert name in dir(art_denoise)
    namespace: dict[str, object] = {}
    exec(f"from art_denoise import {name}", namespace)  # the user's spelling
    assert namespace[name] is value


def test_every_export_is_listed_and_an_unknown_name_is_an_attribute_error() -> None:
    assert set(art_denoise._EXPORTS) == set(art_denoise.__all__) - {"__version__"}
    with pytest.raises(AttributeError, match="has no attribute 'DenoisingBlok'"):
        art_denoise.DenoisingBlok  # noqa: B018
