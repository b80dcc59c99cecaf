"""The ART trainers: ART's interface, the same loop, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.data_generators import NumpyDataGenerator
from art.estimators.classification import PyTorchClassifier

from art_denoise.defences.trainer import (
    AdversarialTrainerFastPyTorch,
    AdversarialTrainerMixPyTorch,
    AdversarialTrainerPGDPyTorch,
    PrototypeConformityTrainerPyTorch,
)
from art_denoise.estimators import to_art_classifier
from art_denoise.models import create_model
from art_denoise.training import PGDTraining, fit


def _clf(seed=0, optimizer=True):
    torch.manual_seed(seed)
    model = create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3) if optimizer else None
    return to_art_classifier(model, optimizer=opt, device="cpu")


@pytest.mark.parametrize("ema_decay", [None, 0.9], ids=["last-weights", "ema"])
def test_pgd_trainer_equals_the_torch_loop_and_accepts_one_hot(digits, ema_decay):
    x, y, _, _ = digits
    x, y = x[:256], y[:256]
    clf = _clf()
    AdversarialTrainerPGDPyTorch(
        clf,
        eps=0.1,
        eps_step=0.05,
        max_iter=3,
        nb_epochs=2,
        batch_size=64,
        verbose=False,
        seed=1,
        ema_decay=ema_decay,
    ).fit(x, np.eye(10, dtype=np.float32)[y])
    torch.manual_seed(0)
    ref = create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)
    fit(
        ref,
        torch.optim.Adam(ref.parameters(), lr=2e-3),
        PGDTraining(eps=0.1, step_size=0.05, steps=3),
        x,
        y,
        epochs=2,
        batch_size=64,
        seed=1,
        ema_decay=ema_decay,
        progress=False,
    )
    for name, value in ref.state_dict().items():
        assert torch.allclose(clf.model.state_dict()[name], value, atol=1e-6), name
    assert all(p.grad is None for p in clf.model.parameters())


@pytest.mark.parametrize(
    ("trainer", "kwargs"),
    [
        (AdversarialTrainerPGDPyTorch, {"eps": 0.1, "eps_step": 0.05, "max_iter": 3}),
        (AdversarialTrainerMixPyTorch, {"eps": 0.1}),
        (AdversarialTrainerFastPyTorch, {"eps": 0.1, "validation_size": 200, "lr_max": 5e-3}),
        # PCL's pull/push terms on top of PGD slow the clean fit: more epochs
        (
            PrototypeConformityTrainerPyTorch,
            {"layers": ["stage2"], "eps": 0.1, "max_iter": 2, "nb_epochs": 16},
        ),
    ],
    ids=["pgd", "mix", "fast", "pcl-pgd"],
)
def test_each_trainer_learns_digits(digits, trainer, kwargs):
    x, y, xt, yt = digits
    clf = _clf()
    t = trainer(clf, **{"nb_epochs": 6, "batch_size": 64, "verbose": False, **kwargs})
    result = t.fit(x, y)
    acc = float((clf.predict(xt).argmax(1) == yt).mean())
    assert acc > 0.8, acc
    assert len(result.history) >= 1 and t.get_classifier() is clf
    if trainer is AdversarialTrainerFastPyTorch:
        assert all(h["lr"] >= 0 for h in result.history)
        assert "val_adv" in result.history[-1]


def test_fit_generator_uses_art_data_generators(digits):
    x, y, _, _ = digits
    clf = _clf()
    gen = NumpyDataGenerator(
        x[:256], np.eye(10, dtype=np.float32)[y[:256]], batch_size=64, shuffle=True
    )
    result = AdversarialTrainerPGDPyTorch(
        clf, eps=0.1, eps_step=0.05, max_iter=2, verbose=False
    ).fit_generator(gen, nb_epochs=2)
    assert result.steps == 8 and len(result.history) == 2


def test_checkpoint_and_resume_through_the_trainer(digits, tmp_path):
    x, y, _, _ = digits
    x, y = x[:192], y[:192]
    kw = {
        "eps": 0.1,
        "eps_step": 0.05,
        "max_iter": 2,
        "nb_epochs": 2,
        "batch_size": 64,
        "verbose": False,
        "checkpoint_dir": tmp_path,
    }
    full = _clf()
    AdversarialTrainerPGDPyTorch(full, **{**kw, "checkpoint_dir": tmp_path / "a"}).fit(x, y)
    part = _clf()
    AdversarialTrainerPGDPyTorch(part, **{**kw, "nb_epochs": 1}).fit(x, y)
    again = _clf()
    # ART's own fit(x, y, nb_epochs=..., batch_size=...) arguments replace the constructor's
    trainer = AdversarialTrainerPGDPyTorch(again, **{**kw, "nb_epochs": 5, "batch_size": 8})
    trainer.fit(x, y, nb_epochs=2, batch_size=64, resume=True)
    # exact: a resumed run replays the same seeded computation
    for name, value in full.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], value), name


def test_preprocessing_defences_are_trained_through(digits):
    from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

    class Halve(PreprocessorPyTorch):
        def __init__(self):
            super().__init__(device_type="cpu", apply_fit=True, apply_predict=True)
            self.calls = 0

        def forward(self, x, y=None):
            self.calls += 1
            return x * 0.5, y

    x, y, _, _ = digits
    model = create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)
    halve = Halve()
    clf = to_art_classifier(
        model,
        optimizer=torch.optim.Adam(model.parameters()),
        preprocessing_defences=[halve],
        device="cpu",
    )
    AdversarialTrainerMixPyTorch(clf, eps=0.1, nb_epochs=1, batch_size=64, verbose=False).fit(
        x[:128], y[:128]
    )
    assert halve.calls >= 2 * 2  # attack + clean + adversarial forwards per batch


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: AdversarialTrainerPGDPyTorch(_clf(optimizer=False), eps=0.1, eps_step=0.01),
            ValueError,
            "optimizer",
        ),
        (lambda: AdversarialTrainerPGDPyTorch(_clf(), eps=-0.1, eps_step=0.01), ValueError, "eps"),
        (
            lambda: AdversarialTrainerPGDPyTorch(_clf(), eps=0.1, eps_step=0.01, norm=1),
            ValueError,
            "norm",
        ),
        (
            lambda: AdversarialTrainerPGDPyTorch(object(), eps=0.1, eps_step=0.01),
            TypeError,
            "PyTorchClassifier",
        ),
        (lambda: AdversarialTrainerFastPyTorch(_clf(), eps=0.1, lr_max=0.0), ValueError, "lr_max"),
        (lambda: PrototypeConformityTrainerPyTorch(_clf(), layers=["nope"]), ValueError, "nope"),
    ],
    ids=["no-optimizer", "eps", "norm", "not-art", "lr-max", "layer"],
)
def test_bad_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_data_outside_clip_values_is_refused(digits):
    x, y, _, _ = digits
    t = AdversarialTrainerPGDPyTorch(_clf(), eps=0.1, eps_step=0.05, verbose=False)
    with pytest.raises(ValueError, match="clip_values"):
        t.fit(x[:64] * 255.0, y[:64])
    assert isinstance(t.get_classifier(), PyTorchClassifier)


def _pgd(clf, **kwargs):
    return AdversarialTrainerPGDPyTorch(
        clf, eps=0.1, eps_step=0.05, max_iter=2, verbose=False, **kwargs
    )


def _fast(clf, **kwargs):
    return AdversarialTrainerFastPyTorch(clf, eps=0.1, verbose=False, **kwargs)


# (trainer, how fit is called, the keyword, the trainer's setting named in the message)
CLASHES = {
    "epochs beside nb_epochs": (
        _pgd,
        lambda t, x, y: t.fit(x, y, nb_epochs=1, epochs=3),
        "epochs=3",
        "nb_epochs=1",
    ),
    "epochs beside the constructor's": (
        _pgd,
        lambda t, x, y: t.fit(x, y, epochs=3),
        "epochs=3",
        "nb_epochs=10",
    ),
    "validation beside validation_data": (
        _pgd,
        lambda t, x, y: t.fit(x, y, validation_data=(x, y), validation=(x, y)),
        "validation=",
        "validation_data=",
    ),
    "progress beside verbose": (
        _pgd,
        lambda t, x, y: t.fit(x, y, progress=True),
        "progress=True",
        "verbose=False",
    ),
    "seed beside the trainer's": (_pgd, lambda t, x, y: t.fit(x, y, seed=5), "seed=5", "seed=0"),
    "early_stop_drop beside overfit_drop": (
        _fast,
        lambda t, x, y: t.fit(x, y, early_stop_drop=0.5),
        "early_stop_drop=0.5",
        "trainer",
    ),
    "batch_size beside the generator's": (
        _pgd,
        lambda t, x, y: t.fit_generator(NumpyDataGenerator(x, y, batch_size=32), batch_size=8),
        "batch_size=8",
        "generator's batch_size",
    ),
}


@pytest.mark.parametrize("case", CLASHES.values(), ids=CLASHES.keys())
def test_a_keyword_the_trainer_sets_itself_is_refused_before_training(digits, tmp_path, case):
    make, call, given, setting = case
    x, y = digits[0][:64], digits[1][:64]
    clf = _clf()
    trainer = make(clf, checkpoint_dir=tmp_path)
    before = {k: v.clone() for k, v in clf.model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        call(trainer, x, y)
    message = str(info.value)
    assert "\n" not in message and given in message and setting in message, message
    assert "fit got" in message
    assert all(torch.equal(v, before[k]) for k, v in clf.model.state_dict().items())
    assert list(tmp_path.iterdir()) == [] and trainer.last_result is None
