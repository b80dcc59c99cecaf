"""``art_denoise.recipes``: the model assembly of ``art-denoise train``, as a library."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from safetensors.torch import load_file

from art_denoise import recipes
from art_denoise.attacks.spec import AttackSpec
from art_denoise.blocks import DenoisingBlock
from art_denoise.blurnet import LowPass2d
from art_denoise.cli import _common, demo, train_cmd
from art_denoise.cli.main import main
from art_denoise.data import load_dataset
from art_denoise.models import load_model, save_model
from art_denoise.recipes import (
    BlurNetSettings,
    ModelRecipe,
    TrainingRecipe,
    build_model,
    split_validation,
    train_recipe,
)

#: A tiny ``train`` run, and the same run as recipes.
TINY = [
    "--dataset",
    "digits",
    "--batch-size",
    "64",
    "--train-size",
    "300",
    "--val-size",
    "100",
    "--steps",
    "2",
    "--epochs",
    "1",
    "--lr-schedule",
    "constant",
    "--quiet",
    "--device",
    "cpu",
]
DEFENDED = [
    "--method",
    "pgd",
    "--eps",
    "0.1",
    "--widths",
    "8,16",
    "--hidden",
    "24",
    "--denoise",
    "nonlocal",
    "--denoise-after",
    "stage1,stage2",
    "--blur",
    "3",
    "--blur-kind",
    "learnable",
    "--linf-reg",
    "0.1",
    "--tv",
    "1e-4",
]
DEFENDED_RECIPE = ModelRecipe(
    widths=(8, 16),
    hidden=24,
    denoise="nonlocal",
    denoise_after=("stage1", "stage2"),
    blurnet=BlurNetSettings(blur=3, kind="learnable", tv=1e-4, linf_reg=0.1),
)
DEFENDED_TRAINING = TrainingRecipe(
    method="pgd",
    eps=0.1,
    steps=2,
    epochs=1,
    batch_size=64,
    lr_schedule="constant",
    train_size=300,
    val_size=100,
)


def _structure(model: torch.nn.Module) -> list[tuple[str, str, Any]]:
    """Every module's name and type, and every tensor's name and shape."""
    modules = [(n, type(m).__name__, None) for n, m in model.named_modules()]
    tensors = [(n, "tensor", tuple(t.shape)) for n, t in model.state_dict().items()]
    return modules + tensors


def test_the_module_examples_run() -> None:
    result = doctest.testmod(recipes, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_build_model_puts_the_lowpass_layer_and_the_blocks_in() -> None:
    model = build_model(DEFENDED_RECIPE, input_shape=(1, 8, 8), num_classes=10, seed=0)
    conv = model.stage1[0]
    assert isinstance(conv.lowpass, LowPass2d) and conv.lowpass.kind == "learnable"
    blocks = [n for n, m in model.named_modules() if isinstance(m, DenoisingBlock)]
    assert blocks == ["stage1.denoise", "stage2.denoise"]
    assert {m.filter_name for m in model.modules() if isinstance(m, DenoisingBlock)} == {"nonlocal"}
    assert (conv.out_channels, model.stage2[0].out_channels) == (8, 16)


def test_build_model_is_seeded() -> None:
    a = build_model(DEFENDED_RECIPE, input_shape=(1, 8, 8), num_classes=10, seed=3)
    b = build_model(DEFENDED_RECIPE, input_shape=(1, 8, 8), num_classes=10, seed=3)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_a_built_model_round_trips_through_its_file(tmp_path: Path) -> None:
    model = build_model(DEFENDED_RECIPE, input_shape=(1, 8, 8), num_classes=10, seed=0).eval()
    path = save_model(model, tmp_path / "m.safetensors", metadata={"recipe": "defended"})
    loaded = load_model(path).eval()
    assert _structure(loaded) == _structure(model)
    for (name, x), y in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recipes") / "cli"
    assert main(["train", *TINY, *DEFENDED, "--out", str(out)]) == 0
    return out


def test_the_recipe_builds_and_trains_what_the_cli_does(cli_run: Path, tmp_path: Path) -> None:
    data = load_dataset("digits")
    run = train_recipe(DEFENDED_RECIPE, DEFENDED_TRAINING, data, progress=False)
    assert _structure(run.model) == _structure(load_model(cli_run / "model.safetensors"))
    acc = recipes.clean_accuracy(run.model, data.x_test, data.y_test, torch.device("cpu"))
    path = run.save(tmp_path, test_accuracy=acc)
    # same seed, same steps: the same weights and the same description
    cli_weights = load_file(str(cli_run / "model.safetensors"))
    ours = load_file(str(path))
    assert ours.keys() == cli_weights.keys()
    for name, value in cli_weights.items():
        assert torch.equal(ours[name], value), name
    cli_json = json.loads((cli_run / "model.json").read_text())
    our_json = json.loads(path.with_suffix(".json").read_text())
    assert our_json == cli_json
    assert our_json["metadata"]["blurnet"] == {
        "blur": 3,
        "kind": "learnable",
        "tv": 1e-4,
        "linf_reg": 0.1,
    }
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    cli_history = json.loads((cli_run / "history.json").read_text())["history"]
    assert [h["loss"] for h in history] == [h["loss"] for h in cli_history]


def test_the_demo_models_are_recipes() -> None:
    assert set(demo.DEMO_MODELS) == set(demo.DEFENSES) - {"autoencoder"}
    denoise = build_model(demo.DEMO_MODELS["denoise"], input_shape=(1, 8, 8), num_classes=10)
    assert [n for n, m in denoise.named_modules() if isinstance(m, DenoisingBlock)] == [
        "stage1.denoise",
        "stage2.denoise",
    ]
    blur = build_model(demo.DEMO_MODELS["blurnet"], input_shape=(1, 8, 8), num_classes=10)
    lowpass = blur.stage1[0].lowpass
    assert (lowpass.kernel_size, lowpass.kind) == (3, "box")


def test_split_validation_holds_out_a_seeded_sorted_subset() -> None:
    data = load_dataset("digits")
    x, _, val = split_validation(data.x_train, data.y_train, val_size=100, seed=2)
    assert val is not None and len(val[0]) == 100 and len(x) == len(data.x_train) - 100
    x2, _, val2 = split_validation(data.x_train, data.y_train, val_size=100, seed=2)
    assert val2 is not None and (val2[0] == val[0]).all() and (x2 == x).all()
    assert split_validation(data.x_train, data.y_train, val_size=0, seed=2)[2] is None


def test_check_run_dir_refuses_an_existing_run(tmp_path: Path) -> None:
    assert recipes.check_run_dir(tmp_path, resume=False) == tmp_path
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds a run"):
        recipes.check_run_dir(tmp_path, resume=False)
    assert recipes.check_run_dir(tmp_path, resume=True) == tmp_path


class BadCase(NamedTuple):
    build: Any
    error: type[Exception]
    message: str


BAD = {
    "even blur": BadCase(lambda: BlurNetSettings(blur=4), ValueError, "got 4"),
    "kind without blur": BadCase(lambda: BlurNetSettings(kind="box"), ValueError, "needs --blur"),
    "unknown kind": BadCase(lambda: BlurNetSettings(blur=3, kind="sinc"), ValueError, "'sinc'"),
    "negative tv": BadCase(lambda: BlurNetSettings(tv=-1.0), ValueError, "-1.0"),
    "linf of a box": BadCase(
        lambda: BlurNetSettings(blur=3, linf_reg=0.1), ValueError, "--linf-reg 0.1"
    ),
    "float blur": BadCase(lambda: BlurNetSettings(blur=3.0), TypeError, "3.0"),
    "widths of a resnet": BadCase(
        lambda: ModelRecipe(model="preact-resnet18", hidden=64), ValueError, "'preact-resnet18'"
    ),
    "unknown filter": BadCase(lambda: ModelRecipe(denoise="wavelet"), ValueError, "'wavelet'"),
    "unknown method": BadCase(lambda: TrainingRecipe(method="trades"), ValueError, "'trades'"),
    "negative eps": BadCase(lambda: TrainingRecipe(eps=-0.1), ValueError, "-0.1"),
    "pcl twice": BadCase(
        lambda: TrainingRecipe(method="pcl", pcl=True), ValueError, "--method pcl"
    ),
    "ema of 1": BadCase(lambda: TrainingRecipe(ema=1.0), ValueError, "got 1.0"),
    "unknown schedule": BadCase(
        lambda: TrainingRecipe(lr_schedule="cosine"), ValueError, "'cosine'"
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_recipes_are_refused_naming_the_value(case: BadCase) -> None:
    with pytest.raises(case.error, match=case.message):
        case.build()


def test_recipes_are_frozen_and_normalised() -> None:
    recipe = ModelRecipe(widths=[8, 16], denoise="median", denoise_after="stage1")
    assert recipe.widths == (8, 16) and recipe.denoise_after == ("stage1",)
    assert recipe.denoise_target() == "stage1" and recipe.model_config() == {"widths": [8, 16]}
    with pytest.raises(AttributeError):
        recipe.model = "preact-resnet18"  # type: ignore[misc]
    assert BlurNetSettings(blur=3).kind == "box" and BlurNetSettings(tv=0.1).kind is None
    assert TrainingRecipe(method="pcl").method_settings() == ("none", {})
    assert TrainingRecipe(method="pcl").uses_pcl and not TrainingRecipe().uses_pcl


def test_the_cli_choices_come_from_the_registries_in_their_old_order() -> None:
    assert train_cmd.METHOD_CHOICES == ("none", "pgd", "mix", "fast", "pcl")
    assert train_cmd.DENOISE_CHOICES == ("nonlocal", "bilateral", "mean", "median", "none")
    assert train_cmd.BLUR_KINDS == ("box", "gaussian", "learnable")
    assert _common.CLI_ATTACKS == (
        "fgsm",
        "pgd",
        "deepfool",
        "autoattack",
        "apgd-ce",
        "apgd-dlr",
        "apgd-t",
    )


def test_make_specs_pins_every_attack_as_before() -> None:
    specs = _common.make_specs(
        ["fgsm", "deepfool", "pgd", "autoattack"],
        [0.1, 0.2],
        norm="inf",
        steps=20,
        step_size=None,
        random_start=True,
        restarts=2,
        batch_size=32,
        deepfool_steps=50,
        overshoot=0.02,
        autoattack_steps=10,
        autoattack_queries=100,
    )
    pgd = {"steps": 20, "random_start": True, "restarts": 2, "batch_size": 32}
    aa = {"steps": 10, "queries": 100, "batch_size": 32}
    assert specs == [
        AttackSpec(attack="fgsm", norm="inf", eps=0.1, batch_size=32),
        AttackSpec(attack="fgsm", norm="inf", eps=0.2, batch_size=32),
        AttackSpec(  # DeepFool in the norm asked for (issue 17), not always L2
            attack="deepfool", norm="inf", eps=None, steps=50, overshoot=0.02, batch_size=32
        ),
        AttackSpec(attack="pgd", norm="inf", eps=0.1, step_size=0.1 / 8, **pgd),
        AttackSpec(attack="pgd", norm="inf", eps=0.2, step_size=0.2 / 8, **pgd),
        AttackSpec(attack="autoattack", norm="inf", eps=0.1, **aa),
        AttackSpec(attack="autoattack", norm="inf", eps=0.2, **aa),
    ]
    with pytest.raises(ValueError, match="expected one of fgsm, pgd, deepfool, autoattack"):
        _common.make_specs(
            ["cw"],
            [0.1],
            norm="inf",
            steps=1,
            step_size=None,
            random_start=False,
            restarts=1,
            batch_size=1,
            deepfool_steps=1,
            overshoot=0.0,
        )
