"""AutoAttack in the ART and torchattacks backends, and its check against PGD."""

from __future__ import annotations

import pytest
import torch

from art_denoise.attacks.backends import UnsupportedAttackError, available_backends, get_backend
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation import evaluate
from art_denoise.evaluation.metrics import predict
from tests.evaluation.test_checks import Quantised

N = 60
#: Small budgets keep this under a minute; the CLI defaults are the standard 100 / 5000.
AA = AttackSpec(attack="autoattack", eps=0.1, steps=20, queries=300, batch_size=64)
PGD = AttackSpec(attack="pgd", eps=0.1, step_size=0.0125, steps=20, random_start=True)


@pytest.fixture
def data(digits) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, x_te, y_te = digits
    return torch.from_numpy(x_te[:N]), torch.from_numpy(y_te[:N])


def test_spec() -> None:
    assert AA.key == "autoattack-linf@0.1" and AA.step_size is None
    assert AttackSpec(attack="autoattack", norm="2", eps=1.0).name == "autoattack-l2"
    with pytest.raises(ValueError, match="untargeted"):
        AA.replace(targeted=True)
    with pytest.raises(ValueError, match="its own starting points"):
        AA.replace(random_start=True)
    with pytest.raises(ValueError, match="parameter-free"):
        AA.replace(step_size=0.01)
    with pytest.raises(ValueError, match="needs an eps"):
        AA.replace(eps=None)
    with pytest.raises(ValueError, match="queries"):
        AA.replace(queries=0)


@pytest.mark.parametrize("backend", ["art", "torchattacks"])
def test_autoattack_is_at_least_as_strong_as_pgd(digits_model, data, backend) -> None:
    if backend not in available_backends():
        pytest.skip(f"{backend} plugin not installed")
    x, y = data
    engine = get_backend(backend)
    clean = predict(digits_model, x) == y
    before = {k: v.clone() for k, v in digits_model.state_dict().items()}
    adv = engine.run(digits_model, x, y, AA, seed=0)
    aa_acc = float(((predict(digits_model, adv) == y) & clean).float().mean())
    pgd_adv = get_backend("art").run(digits_model, x, y, PGD, seed=0)
    pgd_acc = float(((predict(digits_model, pgd_adv) == y) & clean).float().mean())
    # measured (60 digits images): PGD-20 0.717, AutoAttack 0.65 (art) / 0.633 (torchattacks)
    assert aa_acc <= pgd_acc + 1 / N, (aa_acc, pgd_acc)
    assert aa_acc < float(clean.float().mean()) - 0.2
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6
    assert all(torch.equal(v, before[k]) for k, v in digits_model.state_dict().items())
    assert all(p.grad is None for p in digits_model.parameters())


def test_torchattacks_autoattack_pins_steps_queries_and_classes(digits_model, data) -> None:
    pytest.importorskip("torchattacks")
    import torchattacks
    from art_denoise_torchattacks import backend as ta_backend

    seen: dict[str, object] = {}
    real = torchattacks.AutoAttack

    def spy(*args, **kwargs):
        seen.update(kwargs)
        atk = real(*args, **kwargs)
        seen["subs"] = atk._autoattack.attacks
        return atk

    x, y = data
    mp = pytest.MonkeyPatch()
    mp.setattr(ta_backend.torchattacks, "AutoAttack", spy)
    try:
        get_backend("torchattacks").run(digits_model, x[:8], y[:8], AA, seed=0)
    finally:
        mp.undo()
    assert seen["n_classes"] == 10 and seen["version"] == "standard"
    subs = seen["subs"]
    assert [type(s).__name__ for s in subs] == ["APGD", "APGDT", "FAB", "Square"]
    assert [getattr(s, "steps", None) for s in subs[:3]] == [20, 20, 20]
    assert subs[3].n_queries == 300


def test_foolbox_refuses_and_evaluate_skips_or_raises(digits_model, data) -> None:
    if "foolbox" not in available_backends():
        pytest.skip("foolbox plugin not installed")
    with pytest.raises(UnsupportedAttackError, match="no AutoAttack"):
        get_backend("foolbox").check(AA)
    x, y = data
    kwargs = {"attacks": [AA], "progress": False, "checks": False, "device": "cpu"}
    with pytest.raises(UnsupportedAttackError, match="no AutoAttack"):
        evaluate(digits_model, x[:8], y[:8], backends=["art", "foolbox"], **kwargs)
    report = evaluate(
        digits_model, x[:8], y[:8], backends=["art", "foolbox"], skip_unsupported=True, **kwargs
    )
    assert [(r.attack, r.backend) for r in report.models[0].results] == [("autoattack-linf", "art")]
    assert report.skipped[0]["backend"] == "foolbox" and "Not run" in report.to_markdown()
    with pytest.raises(UnsupportedAttackError):  # no backend at all can run it
        evaluate(digits_model, x[:8], y[:8], backends=["foolbox"], skip_unsupported=True, **kwargs)


def test_autoattack_exposes_gradient_masking(_trained_state, data) -> None:
    """PGD is blind on a zero-gradient model; AutoAttack's Square is not, and the
    pgd-vs-autoattack check fails."""
    from art_denoise.models import create_model

    model = create_model("smallcnn", input_shape=(1, 8, 8))
    model.load_state_dict(_trained_state)
    masked = Quantised(model.eval())
    x, y = data
    report = evaluate(
        masked,
        x,
        y,
        attacks=[PGD, AA.replace(queries=1000)],
        backends=["art"],
        progress=False,
        device="cpu",
    )
    (m,) = report.models
    acc = {r.attack: r.robust_accuracy for r in m.results}
    # measured: PGD-20 1.0 (no gradient to follow) vs AutoAttack 0.90 (Square's queries)
    assert acc["autoattack-linf"] < acc["pgd-linf"] - 0.05, acc
    check = next(c for c in m.checks if c.name == "pgd-vs-autoattack")
    assert check.status == "fail" and m.verified is False
    assert "not verified" in report.summary_table()
