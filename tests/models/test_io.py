"""A model file pair is checked as a whole: weights, description and its structure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from art_denoise.blocks import insert_denoising_blocks
from art_denoise.blurnet import insert_lowpass
from art_denoise.models import ModelFileError, SmallCNN, load_model, save_model
from art_denoise.models.io import (
    DESCRIPTION_HASH,
    LEGACY_MODEL_SCHEMA,
    MODEL_SCHEMA,
    ModelDescriptionError,
    description_digest,
    write_description,
)

Description = dict[str, Any]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = insert_lowpass(
        SmallCNN(input_shape=(1, 16, 16), widths=(4, 8), hidden=8), kernel_size=3
    )
    return insert_denoising_blocks(model, "stages", "mean", kernel_size=3).eval()


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, nn.Module]:
    model = _model()
    return save_model(model, tmp_path / "m.safetensors", metadata={"note": "x"}), model


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _edit(path: Path, change: Callable[[Description], None], *, rehash: bool) -> None:
    """Change the description beside ``path``; ``rehash`` recomputes its own hash."""
    jpath = path.with_suffix(".json")
    description = json.loads(jpath.read_text())
    change(description)
    if rehash:
        description[DESCRIPTION_HASH] = description_digest(description)
    jpath.write_text(json.dumps(description, indent=2))


def _refused(path: Path, error: type[Exception]) -> str:
    """Load ``path``, expecting ``error``; check no file changed; return the one-line message."""
    before = _files(path.parent)
    with pytest.raises(error) as info:
        load_model(path)
    assert _files(path.parent) == before
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def _set(key: str, value: Any) -> Callable[[Description], None]:
    return lambda d: d.__setitem__(key, value)


# ------------------------------------------------------------- an edited description


class Edit(NamedTuple):
    id: str
    change: Callable[[Description], None]


EDITS = [
    Edit("a transform removed", lambda d: d["transforms"].pop(0)),
    Edit("a kernel size changed", lambda d: d["transforms"][0]["kwargs"].update(kernel_size=5)),
    Edit("a filter changed", lambda d: d["transforms"][1]["kwargs"].update(filter="median")),
    Edit("a config value changed", lambda d: d["config"].update(mean=[0.25])),
    Edit("the metadata changed", lambda d: d["metadata"].update(note="y")),
    Edit("the description hash removed", lambda d: d.pop(DESCRIPTION_HASH)),
]


@pytest.mark.parametrize("case", EDITS, ids=lambda c: c.id)
def test_an_edited_description_is_refused(case: Edit, saved: tuple[Path, nn.Module]) -> None:
    path, _ = saved
    _edit(path, case.change, rehash=False)
    message = _refused(path, ModelFileError)
    assert str(path.with_suffix(".json")) in message and "does not match the hash" in message


def test_reformatting_the_description_is_not_an_edit(saved: tuple[Path, nn.Module]) -> None:
    path, model = saved
    jpath = path.with_suffix(".json")
    jpath.write_text(json.dumps(json.loads(jpath.read_text()), indent=None, sort_keys=True))
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(load_model(path)(x), model(x), rtol=0, atol=0)


def test_weights_of_another_model_are_refused(saved: tuple[Path, nn.Module]) -> None:
    path, _ = saved
    other = save_model(SmallCNN(input_shape=(1, 16, 16)), path.parent / "o.safetensors")
    path.write_bytes(other.read_bytes())
    other.unlink(), other.with_suffix(".json").unlink()
    message = _refused(path, ModelFileError)
    assert str(path) in message and "does not match the hash in its description" in message


def test_the_recorded_hash_is_of_the_bytes_this_save_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process replaces the weights between the two files of a save: the
    description keeps this save's hash (of the bytes it wrote, not of the file on disk
    then), so the mixed pair is refused instead of loading the other weights as this model."""
    import hashlib

    from art_denoise.models import io

    theirs = save_model(_model(seed=0), tmp_path / "theirs.safetensors")
    model = _model(seed=1)  # the same architecture: only the hash tells the weights apart
    real = io.write_description
    ours: dict[str, bytes] = {}

    def concurrent(path: Path, description: Description, **kwargs: Any) -> None:
        ours["bytes"] = path.read_bytes()
        path.write_bytes(theirs.read_bytes())  # the other process's weights land here
        real(path, description, **kwargs)

    monkeypatch.setattr(io, "write_description", concurrent)
    path = save_model(model, tmp_path / "m.safetensors")
    recorded = json.loads(path.with_suffix(".json").read_text())["sha256"]
    assert recorded == hashlib.sha256(ours["bytes"]).hexdigest()
    assert recorded != hashlib.sha256(theirs.read_bytes()).hexdigest()
    message = _refused(path, ModelFileError)
    assert "does not match the hash in its description" in message
    path.write_bytes(ours["bytes"])  # this save's weights back: the pair is whole
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(load_model(path)(x), model(x), rtol=0, atol=0)


def test_write_description_records_the_hash_it_is_given(saved: tuple[Path, nn.Module]) -> None:
    path, _ = saved
    description = json.loads(path.with_suffix(".json").read_text())
    description.pop(DESCRIPTION_HASH), description.pop("sha256")
    write_description(path, description, sha256="0" * 64)
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == "0" * 64
    assert "does not match the hash" in _refused(path, ModelFileError)
    write_description(path, description)  # without it: the file on disk, as before
    load_model(path)


# ------------------------------------------------------------- the description's structure


class Malformed(NamedTuple):
    id: str
    change: Callable[[Description], None]
    field: str


MALFORMED = [
    Malformed(
        "transforms not a list", _set("transforms", {"name": "insert_lowpass"}), "transforms"
    ),
    Malformed(
        "a transform not an object", _set("transforms", ["insert_lowpass"]), "transforms'[0]"
    ),
    Malformed("a transform without a name", _set("transforms", [{"kwargs": {}}]), "transforms'[0]"),
    Malformed(
        "kwargs not an object", _set("transforms", [{"name": "x", "kwargs": [1]}]), "transforms'[0]"
    ),
    Malformed("config not an object", _set("config", [1, 8, 8]), "config"),
    Malformed("arch not a string", _set("arch", ["smallcnn"]), "arch"),
    Malformed("metadata not an object", _set("metadata", "note"), "metadata"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=lambda c: c.id)
def test_a_malformed_description_names_its_field(
    case: Malformed, saved: tuple[Path, nn.Module]
) -> None:
    path, _ = saved
    _edit(path, case.change, rehash=True)  # the hash matches: only the structure is wrong
    message = _refused(path, ModelDescriptionError)
    assert f"field '{case.field}" in message and str(path.with_suffix(".json")) in message
    assert issubclass(ModelDescriptionError, ValueError)


# ------------------------------------------------------------- non-finite weights


def test_saving_non_finite_weights_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    model = _model()
    with torch.no_grad():
        model.stage2[0].weight[0, 0, 0, 0] = float("nan")
        model.stage2[0].weight[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError) as info:
        save_model(model, tmp_path / "m.safetensors")
    message = str(info.value)
    assert "'stage2.0.weight' (2 of 288 values NaN or inf)" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_loading_non_finite_weights_is_refused_by_name(saved: tuple[Path, nn.Module]) -> None:
    path, model = saved
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    state["head.3.bias"][2] = float("nan")
    save_file(state, str(path))
    description = json.loads(path.with_suffix(".json").read_text())
    description.pop(DESCRIPTION_HASH), description.pop("sha256")
    write_description(path, description)  # a consistent pair, holding NaN
    message = _refused(path, ModelFileError)
    assert str(path) in message and "'head.3.bias' (1 of 10 values NaN or inf)" in message


# ------------------------------------------------------------- the previous format


def _as_legacy(description: Description) -> None:
    description["schema"] = LEGACY_MODEL_SCHEMA
    description.pop(DESCRIPTION_HASH)


def test_a_legacy_pair_loads_with_a_warning(saved: tuple[Path, nn.Module]) -> None:
    path, model = saved
    _edit(path, _as_legacy, rehash=False)
    with pytest.warns(UserWarning, match=r"older model description \(art-denoise/model/1\)"):
        loaded = load_model(path)
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    resaved = save_model(loaded, path.parent / "again.safetensors")
    assert json.loads(resaved.with_suffix(".json").read_text())["schema"] == MODEL_SCHEMA


def test_a_legacy_pair_with_other_weights_is_refused(saved: tuple[Path, nn.Module]) -> None:
    path, _ = saved
    _edit(path, _as_legacy, rehash=False)
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    message = _refused(path, ModelFileError)
    assert "does not match the hash in its description" in message
