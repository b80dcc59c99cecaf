"""``art-denoise train --method autoencoder``: the file ``evaluate --autoencoder`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from art_denoise.cli._train_autoencoder import AUTOENCODER_FILES
from art_denoise.cli.main import main
from art_denoise.data import load_dataset

COMMON = ["--dataset", "digits", "--quiet", "--device", "cpu", "--train-size", "64"]
AE = ["--method", "autoencoder", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ae") / "run"
    argv = ["train", *COMMON, *AE, "--autoencoder-layers", "2", "--noise-sigma", "0.2"]
    assert main([*argv, "--seed", "3", "--out", str(out)]) == 0
    return out


def test_writes_the_autoencoder_fitted_as_the_python_api_does(ae_run) -> None:
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch

    assert sorted(p.name for p in ae_run.iterdir()) == [
        "autoencoder.json",
        "autoencoder.safetensors",
    ]
    loaded = DenoisingAutoencoderPyTorch.load(ae_run / "autoencoder.safetensors")
    assert loaded.is_fitted and loaded.n_layers == 2 and loaded.noise_sigma == pytest.approx(0.2)
    # the reference: the same fit through the Python API
    data = load_dataset("digits").subset(n_train=64)
    torch.manual_seed(3)  # the CLI's --seed also seeds the initial weights
    ref = DenoisingAutoencoderPyTorch(
        data.input_shape, n_layers=2, noise_sigma=0.2, device_type="cpu"
    )
    ref.fit(data.x_train, nb_epochs=1, batch_size=16, lr=1e-3, seed=3)
    got, want = loaded.model.state_dict(), ref.model.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-7)
    flat = [v for h in loaded.train_losses for v in h]
    assert flat == pytest.approx([v for h in ref.train_losses for v in h], rel=1e-6)


@pytest.mark.filterwarnings("ignore:model .* is randomised:RuntimeWarning")
def test_evaluate_puts_it_in_front_of_a_classifier(ae_run, tmp_path) -> None:
    clf = tmp_path / "clf"
    argv = ["train", *COMMON, "--method", "none", "--epochs", "1", "--val-size", "0"]
    assert main([*argv, "--out", str(clf)]) == 0
    out = tmp_path / "report"
    argv = ["evaluate", "--model", str(clf), "--autoencoder", str(ae_run), "--dataset", "digits"]
    argv += ["--attacks", "fgsm", "--backends", "native", "--n-samples", "8", "--no-checks"]
    assert main([*argv, "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    (model,) = json.loads((out / "report.json").read_text())["models"]
    assert model["name"] == "clf+autoencoder" and "autoencoder" in model["defense"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--autoencoder-layers", "2"], "--autoencoder-layers 2 needs --method autoencoder"),
        (
            ["--noise-sigma", "0.1", "--method", "none"],
            "--noise-sigma 0.1 needs --method autoencoder",
        ),
        ([*AE, "--denoise", "mean"], "--denoise"),
        ([*AE, "--model", "smallcnn"], "--model"),
        ([*AE, "--val-size", "10"], "--val-size"),
        ([*AE, "--resume"], "--resume"),
        ([*AE, "--eps", "0.1"], "--eps"),
        ([*AE, "--autoencoder-layers", "0"], "--autoencoder-layers"),
        ([*AE, "--noise-sigma", "-1"], "--noise-sigma"),
    ],
)
def test_refuses_options_without_meaning_before_any_work(extra, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", *COMMON, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and len([e for e in err if e.startswith("art-denoise")]) <= 1
    assert not out.exists()


def test_refuses_to_replace_an_autoencoder(ae_run, capsys) -> None:
    before = (ae_run / "autoencoder.safetensors").read_bytes()
    assert main(["train", *COMMON, *AE, "--out", str(ae_run)]) == 2
    err = capsys.readouterr().err
    assert "autoencoder.safetensors" in err
    # train has no --overwrite: the advice is one that can be followed
    assert "--overwrite" not in err
    assert "choose another --out or move those files away" in err
    assert (ae_run / "autoencoder.safetensors").read_bytes() == before


def test_weights_left_alone_by_a_killed_run_are_refused_with_advice_that_works(
    tmp_path, capsys
) -> None:
    """A run killed between its two files leaves the weights alone: the refusal names
    them and says what to do, without the --overwrite that train does not have."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "autoencoder.safetensors").write_bytes(b"weights of a killed run")
    assert main(["train", *COMMON, *AE, "--out", str(out)]) == 2
    (line,) = [e for e in capsys.readouterr().err.splitlines() if e.startswith("art-denoise")]
    assert line == (
        f"art-denoise train: error: --out {str(out)!r} already holds autoencoder.safetensors; "
        "choose another --out or move those files away"
    )
    assert [p.name for p in out.iterdir()] == ["autoencoder.safetensors"]


def test_an_autoencoder_written_during_training_is_kept_and_so_is_this_one(
    ae_run, tmp_path, capsys, monkeypatch
) -> None:
    """Another run into the same --out finishes while this one trains: its files are left
    byte for byte, this run's autoencoder is written beside them under the first free
    name (autoencoder-1 is taken here), and the command fails, naming both."""
    from art_denoise.defences.preprocessor import DenoisingAutoencoderPyTorch

    out = tmp_path / "run"
    out.mkdir()
    (out / "autoencoder-1.safetensors").write_bytes(b"an older run's, kept aside")
    # not this run's bytes (the fixture's pair would be: the same fit), so a replacement shows
    theirs = {name: f"another run's {name}".encode() for name in AUTOENCODER_FILES}
    real_fit = DenoisingAutoencoderPyTorch.fit

    def fit_while_another_run_finishes(self, *args, **kwargs):
        real_fit(self, *args, **kwargs)
        for name, data in theirs.items():  # the other run's pair lands in --out
            (out / name).write_bytes(data)

    monkeypatch.setattr(DenoisingAutoencoderPyTorch, "fit", fit_while_another_run_finishes)
    argv = ["train", *COMMON, *AE, "--autoencoder-layers", "2", "--noise-sigma", "0.2"]
    assert main([*argv, "--seed", "3", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    aside = out / "autoencoder-2.safetensors"
    assert "autoencoder.safetensors, autoencoder.json appeared there" in err
    assert f"written to {aside} and {aside.with_suffix('.json')} instead" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "autoencoder-1.safetensors",
        "autoencoder-2.json",
        "autoencoder-2.safetensors",
        "autoencoder.json",
        "autoencoder.safetensors",
    ]
    for name, data in theirs.items():
        assert (out / name).read_bytes() == data
    assert (out / "autoencoder-1.safetensors").read_bytes() == b"an older run's, kept aside"
    # this run's autoencoder is whole: the same fit as the fixture's (same settings, seed)
    mine = DenoisingAutoencoderPyTorch.load(aside)
    ref = DenoisingAutoencoderPyTorch.load(ae_run / "autoencoder.safetensors")
    assert mine.is_fitted and mine.n_layers == 2 and mine.noise_sigma == pytest.approx(0.2)
    got, want = mine.model.state_dict(), ref.model.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-7)
    flat = [v for h in mine.train_losses for v in h]
    assert flat == pytest.approx([v for h in ref.train_losses for v in h], rel=1e-6)
