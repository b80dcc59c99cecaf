"""Old module paths (before the layout of issue 13) import the modules at their new place."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from art_denoise._moved import MOVED, SPLIT


def _import_fresh(name: str) -> object:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()), ids=sorted(MOVED))
def test_old_path_is_the_new_module_and_warns(old: str, new: str) -> None:
    with warnings.catch_warnings(record=True) as caught:  # a split parent warns too
        warnings.simplefilter("always")
        module = _import_fresh(old)
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any(m.startswith(f"{old} moved to {new};") for m in messages), messages
    assert module is importlib.import_module(new)


def test_split_package_hands_on_both_halves() -> None:
    from art_denoise.autoencoder import ConvAutoencoder
    from art_denoise.defences.preprocessor import LowPassFilterPyTorch, straight_through_clamp

    with pytest.warns(DeprecationWarning, match="art_denoise.preprocessors moved to"):
        old = _import_fresh("art_denoise.preprocessors")
    assert old.LowPassFilterPyTorch is LowPassFilterPyTorch  # type: ignore[attr-defined]
    assert old.ConvAutoencoder is ConvAutoencoder  # type: ignore[attr-defined]
    assert old.straight_through_clamp is straight_through_clamp  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = old.nothing  # type: ignore[attr-defined]
    assert set(SPLIT) == {"art_denoise.preprocessors"}


def test_from_import_of_a_moved_submodule() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sys.modules.pop("art_denoise.trainers.adversarial_trainer_pgd_pytorch", None)
        from art_denoise.trainers.adversarial_trainer_pgd_pytorch import (
            AdversarialTrainerPGDPyTorch,
        )
    from art_denoise.defences.trainer import AdversarialTrainerPGDPyTorch as New

    assert AdversarialTrainerPGDPyTorch is New


def test_unmoved_names_are_not_answered() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("art_denoise.no_such_module")
