"""RP2 as an ART EvasionAttack: same results as the torch function, ART's conventions."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from art.defences.preprocessor import SpatialSmoothing
from art.estimators.classification import PyTorchClassifier, SklearnClassifier
from art.exceptions import EstimatorError
from sklearn.linear_model import LogisticRegression
from torch import nn

from art_denoise.attacks._transforms import TransformRanges
from art_denoise.attacks.evasion.rp2_pytorch import RobustPhysicalPerturbationPyTorch
from art_denoise.attacks.rp2 import RP2Config, per_target_success, rp2_attack, rp2_metrics
from art_denoise.estimators import to_art_classifier
from art_denoise.models import create_model

CENTRE = np.zeros((8, 8), dtype=np.float32)
CENTRE[2:6, 2:6] = 1.0

#: Identity transforms: what the torch reference below is run with.
NO_TRANSFORMS: dict[str, Any] = {
    "rotation_range": (0, 0),
    "scale_range": (1, 1),
    "translation_range": (0, 0),
    "brightness_range": (0, 0),
    "contrast_range": (1, 1),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on the 2 shared cores, 2 threads ran these attacks 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(state: dict[str, torch.Tensor]) -> nn.Module:
    m = create_model("smallcnn", input_shape=(1, 8, 8))
    m.load_state_dict(state)
    return m.eval()


@pytest.fixture
def clf(_trained_state) -> PyTorchClassifier:
    return to_art_classifier(_model(_trained_state), device="cpu")


@pytest.fixture(scope="module")
def victims(digits, _trained_state) -> tuple[np.ndarray, np.ndarray]:
    """40 test digits the model classifies correctly, as numpy arrays."""
    _, _, x_te, y_te = digits
    with torch.no_grad():
        pred = _model(_trained_state)(torch.from_numpy(x_te[:50])).argmax(1).numpy()
    ok = pred == y_te[:50]
    return x_te[:50][ok][:40], y_te[:50][ok][:40]


def test_targeted_generate_on_digits(clf, victims):
    x, y = victims
    attack = RobustPhysicalPerturbationPyTorch(
        clf, max_iter=30, nb_transforms=2, targeted=True, random_seed=1
    )
    out = per_target_success(
        clf, x, y, lambda xs, ts: attack.generate(xs, ts, mask=CENTRE), targets=[2, 7]
    )
    # Measured with the default transformation ranges: 0.97 (target 2) and 0.82 (target 7),
    # 34 images each; L2 dissimilarity 0.77 and 0.60.
    assert min(out["per_target"].values()) >= 0.75, out
    assert out["average"] >= 0.85, out
    assert out["worst"] == max(out["per_target"].values()) and out["worst_target"] == 2
    adv = attack.generate(x, np.full(len(x), 2), mask=CENTRE)
    assert adv.dtype == np.float32 and adv.shape == x.shape
    outside = CENTRE == 0
    assert np.array_equal(adv[:, :, outside], x[:, :, outside])
    assert adv.min() >= 0.0 and adv.max() <= 1.0


def test_matches_the_torch_function(_trained_state, clf, victims):
    x, y = victims[0][:12], np.full(12, 4)
    attack = RobustPhysicalPerturbationPyTorch(
        clf, max_iter=10, nb_transforms=3, targeted=True, lambda_reg=0.01, norm=1, random_seed=3
    )
    ref_cfg = RP2Config(
        max_iter=10,
        lambda_reg=0.01,
        norm=1,
        nb_transforms=3,
        random_seed=3,
        transforms=TransformRanges(
            rotation=(-10, 10),
            scale=(0.9, 1.1),
            translation=(-0.05, 0.05),
            brightness=(-0.1, 0.1),
            contrast=(0.9, 1.1),
        ),
    )
    ref = rp2_attack(_model(_trained_state), x, y, CENTRE, config=ref_cfg)
    # ART's default preprocessing (mean 0, std 1) is applied, and is exact.
    assert np.array_equal(attack.generate(x, y, mask=CENTRE), ref.numpy())


class Standardise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.25


def test_estimator_preprocessing_is_in_the_attacked_graph(victims):
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    clf = PyTorchClassifier(
        model=inner,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        preprocessing=(0.5, 0.25),
    )
    x, y = victims[0][:6], np.full(6, 1)
    attack = RobustPhysicalPerturbationPyTorch(clf, max_iter=8, targeted=True, **NO_TRANSFORMS)
    ref_cfg = RP2Config(max_iter=8, nb_transforms=8)
    ref = rp2_attack(nn.Sequential(Standardise(), inner), x, y, CENTRE, config=ref_cfg)
    np.testing.assert_allclose(attack.generate(x, y, mask=CENTRE), ref.numpy(), atol=1e-6)


def test_generated_sticker_mask(clf, victims):
    from art_denoise.attacks.rp2 import sticker_mask

    x = victims[0][:5]
    attack = RobustPhysicalPerturbationPyTorch(
        clf, max_iter=5, n_stickers=3, area_fraction=0.3, random_seed=4
    )
    adv = attack.generate(x)
    mask = sticker_mask((8, 8), n_stickers=3, area_fraction=0.3, seed=4)
    assert 15 <= mask.sum() <= 24
    assert np.array_equal(adv[:, :, mask == 0], x[:, :, mask == 0])
    assert not np.array_equal(adv[:, :, mask == 1], x[:, :, mask == 1])


def test_untargeted_without_labels_attacks_the_predictions(clf, victims):
    x = victims[0][:6]
    attack = RobustPhysicalPerturbationPyTorch(clf, max_iter=10, nb_transforms=1)
    pred = clf.predict(x).argmax(1)
    adv = attack.generate(x, mask=CENTRE)
    assert np.array_equal(adv, attack.generate(x, pred, mask=CENTRE))
    assert rp2_metrics(clf, x, adv, pred)["success_rate"] == 1.0


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_model_mode_and_grads_restored(clf, victims, mode):
    model = clf.model
    model.train(mode == "train")
    first = next(model.parameters())
    first.grad = torch.full_like(first, 2.0)
    attack = RobustPhysicalPerturbationPyTorch(clf, max_iter=3, targeted=True)
    attack.generate(victims[0][:4], np.full(4, 0), mask=CENTRE)
    assert all(m.training == (mode == "train") for m in model.modules())
    assert torch.equal(first.grad, torch.full_like(first, 2.0))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert all(p.requires_grad for p in model.parameters())


def test_same_seed_same_output(clf, victims):
    x, y = victims[0][:5], np.full(5, 6)
    a = RobustPhysicalPerturbationPyTorch(clf, max_iter=4, targeted=True, random_seed=9)
    b = RobustPhysicalPerturbationPyTorch(clf, max_iter=4, targeted=True, random_seed=9)
    assert np.array_equal(a.generate(x, y, mask=CENTRE), b.generate(x, y, mask=CENTRE))


def test_metrics_accept_an_art_classifier(clf, victims):
    x, y = victims[0][:10], victims[1][:10]
    adv = RobustPhysicalPerturbationPyTorch(clf, max_iter=5, nb_transforms=1).generate(
        x, y, mask=CENTRE
    )
    assert rp2_metrics(clf, x, adv, y) == rp2_metrics(clf.model, x, adv, y)


def test_art_conventions(clf):
    attack = RobustPhysicalPerturbationPyTorch(clf, norm=np.inf, nps_colors=np.array([[0.0], [1]]))
    assert attack.targeted is False
    assert "lambda_reg=0.002" in repr(attack)
    assert set(NO_TRANSFORMS) <= set(attack.attack_params)
    attack.set_params(max_iter=7, targeted=True)
    assert attack.max_iter == 7 and attack.targeted is True
    with pytest.raises(ValueError, match="eps"):
        attack.set_params(eps=0.3)
    with pytest.raises(EstimatorError):
        RobustPhysicalPerturbationPyTorch(SklearnClassifier(LogisticRegression()))


class ParamCase(NamedTuple):
    id: str
    kwargs: dict[str, Any]
    error: type[Exception]
    match: str


PARAM_CASES = [
    ParamCase("lambda", {"lambda_reg": -1.0}, ValueError, r"lambda_reg must be .*>= 0, got -1\.0"),
    ParamCase("lr", {"learning_rate": 0.0}, ValueError, r"learning_rate must be > 0, got 0\.0"),
    ParamCase("max-iter", {"max_iter": 0}, ValueError, "max_iter must be >= 1, got 0"),
    ParamCase("norm", {"norm": 3}, ValueError, "unknown norm 3"),
    ParamCase("rotation", {"rotation_range": (5, -5)}, ValueError, r"rotation_range.*\(5, -5\)"),
    ParamCase("scale", {"scale_range": (1.2, 1.1)}, ValueError, r"scale_range.*\(1\.2, 1\.1\)"),
    ParamCase("translation", {"translation_range": (0.2, 0.1)}, ValueError, "translation_range"),
    ParamCase("brightness", {"brightness_range": (1, 0)}, ValueError, "brightness_range"),
    ParamCase("contrast", {"contrast_range": (2, 1)}, ValueError, "contrast_range"),
    ParamCase("stickers", {"n_stickers": 0}, ValueError, "n_stickers must be >= 1, got 0"),
    ParamCase("area", {"area_fraction": 2.0}, ValueError, r"area_fraction .* got 2\.0"),
    ParamCase("nps", {"nps_colors": np.zeros((2, 1, 1))}, ValueError, r"\(K, C\)"),
    ParamCase("targeted", {"targeted": 1}, TypeError, "targeted must be a bool, got 1"),
    ParamCase("verbose", {"verbose": "no"}, TypeError, "verbose must be a bool"),
]


@pytest.mark.parametrize("case", PARAM_CASES, ids=[c.id for c in PARAM_CASES])
def test_bad_params(clf, case):
    with pytest.raises(case.error, match=case.match):
        RobustPhysicalPerturbationPyTorch(clf, **case.kwargs)


def test_set_params_is_checked(clf):
    attack = RobustPhysicalPerturbationPyTorch(clf)
    with pytest.raises(ValueError, match=r"lambda_reg.*-0\.5"):
        attack.set_params(lambda_reg=-0.5)


def test_unsupported_estimators(_trained_state):
    model = _model(_trained_state)
    no_clip = PyTorchClassifier(model, nn.CrossEntropyLoss(), (1, 8, 8), 10)
    with pytest.raises(ValueError, match="needs an estimator with clip_values"):
        RobustPhysicalPerturbationPyTorch(no_clip)
    numpy_defence = PyTorchClassifier(
        model,
        nn.CrossEntropyLoss(),
        (1, 8, 8),
        10,
        clip_values=(0.0, 1.0),
        preprocessing_defences=[SpatialSmoothing(window_size=3)],
    )
    with pytest.raises(ValueError, match=r"PreprocessorPyTorch; got \[SpatialSmoothing"):
        RobustPhysicalPerturbationPyTorch(numpy_defence)
    channels_last = PyTorchClassifier(
        model, nn.CrossEntropyLoss(), (8, 8, 1), 10, clip_values=(0.0, 1.0), channels_first=False
    )
    with pytest.raises(ValueError, match="channels-first"):
        RobustPhysicalPerturbationPyTorch(channels_last)


def test_bad_generate_inputs(clf, victims):
    x, y = victims[0][:3], np.array([1, 2, 3])
    attack = RobustPhysicalPerturbationPyTorch(clf, max_iter=1, targeted=True)
    with pytest.raises(ValueError, match=r"mask of shape \(7, 7\)"):
        attack.generate(x, y, mask=np.ones((7, 7)))
    with pytest.raises(ValueError, match=r"only 0 and 1.*0\.3"):
        attack.generate(x, y, mask=np.full((8, 8), 0.3))
    with pytest.raises(
        ValueError, match=r"x has values in \[-0\.5, 0\.5\], outside clip_values \(0\.0, 1\.0\)"
    ):
        attack.generate(x - 0.5, y, mask=CENTRE)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\), got values in \[1, 12\]"):
        attack.generate(x, np.array([1, 2, 12]), mask=CENTRE)
    with pytest.raises(ValueError, match="y has 2 labels but x has 3 images"):
        attack.generate(x, y[:2], mask=CENTRE)
    with pytest.raises(ValueError, match="one-hot"):
        attack.generate(x, np.full((3, 10), 0.5), mask=CENTRE)
    with pytest.raises(ValueError, match="targeted attack needs target labels"):
        attack.generate(x, mask=CENTRE)
    with pytest.raises(TypeError, match="x must be a numpy array, got Tensor"):
        attack.generate(torch.from_numpy(x), y)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['pts'\]"):
        attack.generate(x, y, mask=CENTRE, pts=None)
    with pytest.raises(ValueError, match=r"shape \(N, \*\(1, 8, 8\)\).*\(3, 8, 8\)"):
        attack.generate(x[:, 0], y)
    with pytest.raises(TypeError, match="floating-point"):
        attack.generate((x * 16).astype(np.int64), y, mask=CENTRE)


def test_float64_and_one_hot_accepted(clf, victims):
    x, y = victims[0][:3], np.array([1, 2, 3])
    attack = RobustPhysicalPerturbationPyTorch(clf, max_iter=2, targeted=True)
    a = attack.generate(x.astype(np.float64), np.eye(10)[y], mask=CENTRE)
    b = attack.generate(x, y, mask=CENTRE)
    assert a.dtype == np.float32
    assert np.array_equal(a, b)
