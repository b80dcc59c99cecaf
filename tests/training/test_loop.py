"""The training loop: resume equals an uninterrupted run, checkpoints are never lost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_denoise.models import create_model
from art_denoise.training import (
    CheckpointError,
    PGDTraining,
    StandardTraining,
    ValidationAttack,
    fit,
)
from art_denoise.training import loop as loop_module
from art_denoise.training.loop import CHECKPOINT_NAME, make_autocast


class _Kill(Exception):
    pass


def _model():
    torch.manual_seed(0)
    return create_model("smallcnn", input_shape=(1, 8, 8), widths=(8, 16), hidden=32)


def _run(x, y, tmp, *, resume=False, kill_at=None, epochs=2, every=3, ema=None):
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)

    def on_step(step):
        if kill_at is not None and step == kill_at:
            raise _Kill

    method = PGDTraining(eps=0.1, steps=2, prob_start_from_clean=0.3)
    result = fit(
        model,
        opt,
        method,
        x,
        y,
        epochs=epochs,
        batch_size=64,
        scheduler=sched,
        checkpoint_dir=tmp,
        checkpoint_every=every,
        resume=resume,
        ema_decay=ema,
        progress=False,
        on_step=on_step,
    )
    return model, result


@pytest.mark.parametrize("ema", [None, 0.9], ids=["last-weights", "weight-average"])
def test_resume_after_kill_equals_uninterrupted_run(small_digits, tmp_path, ema):
    x, y, _, _ = small_digits
    full, full_result = _run(x, y, tmp_path / "full", ema=ema)
    with pytest.raises(_Kill):  # killed mid-epoch 2 (7 steps per epoch), after the step-9 save
        _run(x, y, tmp_path / "killed", kill_at=11, ema=ema)
    resumed, result = _run(x, y, tmp_path / "killed", resume=True, ema=ema)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result.steps == full_result.steps == 14
    assert [h["loss"] for h in result.history] == [h["loss"] for h in full_result.history]
    if ema is not None:  # a run without averaging cannot resume it (other settings)
        with pytest.raises(CheckpointError, match="ema_decay"):
            _run(x, y, tmp_path / "killed", resume=True)


@pytest.mark.cuda
def test_a_run_killed_on_a_gpu_resumes_there(small_digits, tmp_path):
    # the checkpoint is loaded onto the GPU, RNG states included, which torch takes only
    # on the CPU: the resume crashed before the fix
    x, y, _, _ = small_digits

    def run(tmp, **kwargs):
        model = _model().cuda()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        kill_at = kwargs.pop("kill_at", None)

        def on_step(step):
            if kill_at is not None and step == kill_at:
                raise _Kill

        result = fit(
            model,
            opt,
            PGDTraining(eps=0.1, steps=2, prob_start_from_clean=0.3),
            x,
            y,
            epochs=2,
            batch_size=64,
            checkpoint_dir=tmp,
            checkpoint_every=3,
            progress=False,
            on_step=on_step,
            device="cuda",
            **kwargs,
        )
        return model, result

    _, full_result = run(tmp_path / "full")
    with pytest.raises(_Kill):
        run(tmp_path / "killed", kill_at=11)
    resumed, result = run(tmp_path / "killed", resume=True)
    assert result.steps == full_result.steps == 14
    # cuDNN's kernels need not be deterministic: the same run, not the same bits
    assert len(result.history) == len(full_result.history) == 2
    assert result.history[-1]["loss"] == pytest.approx(full_result.history[-1]["loss"], abs=0.05)
    assert all(bool(torch.isfinite(p).all()) for p in resumed.parameters())


def test_existing_checkpoint_is_never_overwritten_by_a_new_run(small_digits, tmp_path):
    x, y, _, _ = small_digits
    _run(x, y, tmp_path, epochs=1)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        _run(x, y, tmp_path, epochs=1)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_corrupt_checkpoint_is_reported_and_left_untouched(small_digits, tmp_path):
    x, y, _, _ = small_digits
    _run(x, y, tmp_path, epochs=1)
    path = tmp_path / CHECKPOINT_NAME
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    path.write_bytes(bytes(data[: len(data) // 2]))
    corrupt = path.read_bytes()
    with pytest.raises(CheckpointError, match="corrupt"):
        _run(x, y, tmp_path, resume=True)
    assert path.read_bytes() == corrupt


def test_checkpoint_of_another_model_is_refused(small_digits, tmp_path):
    x, y, _, _ = small_digits
    _run(x, y, tmp_path, epochs=1)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    other = create_model("smallcnn", input_shape=(1, 8, 8))  # default widths: other shapes
    opt = torch.optim.Adam(other.parameters())
    method = PGDTraining(eps=0.1, steps=2, prob_start_from_clean=0.3)
    with pytest.raises(CheckpointError, match="another model"):
        fit(
            other,
            opt,
            method,
            x,
            y,
            epochs=2,
            batch_size=64,
            checkpoint_dir=tmp_path,
            resume=True,
            progress=False,
        )
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_checkpoint_with_other_settings_is_refused(small_digits, tmp_path):
    x, y, _, _ = small_digits
    _run(x, y, tmp_path, epochs=1)
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(CheckpointError, match="eps"):
        fit(
            model,
            opt,
            PGDTraining(eps=0.2, steps=2, prob_start_from_clean=0.3),
            x,
            y,
            epochs=2,
            batch_size=64,
            checkpoint_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_resume_without_checkpoint_is_an_error(small_digits, tmp_path):
    x, y, _, _ = small_digits
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _run(x, y, tmp_path, resume=True)


def _fit_early_stopping(model, opt, x, y, validation, **kwargs):
    """4 epochs of standard training, validated each epoch, stopping at a 20-point drop."""
    return fit(
        model,
        opt,
        StandardTraining(),
        x,
        y,
        epochs=4,
        batch_size=64,
        validation=validation,
        validation_attack=ValidationAttack(eps=0.1),
        early_stop_drop=0.2,
        progress=False,
        **kwargs,
    )


def test_early_stopping_restores_the_best_epoch(small_digits, tmp_path, monkeypatch):
    x, y, xv, yv = small_digits
    scores = iter([(0.9, 0.5), (0.9, 0.6), (0.9, 0.3), (0.9, 0.2)])
    monkeypatch.setattr(ValidationAttack, "run", lambda self, *a, **k: next(scores))
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    saved = {}

    def remember(step):
        if step == 14:  # end of epoch 2 (7 steps per epoch)
            saved.update({k: v.clone() for k, v in model.state_dict().items()})

    result = _fit_early_stopping(model, opt, x, y, (xv, yv), on_step=remember)
    assert result.stopped_early and result.best_epoch == 2
    assert len(result.history) == 3
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[name]), name


def test_a_run_that_stopped_early_stays_stopped_when_resumed(small_digits, tmp_path, monkeypatch):
    x, y, xv, yv = small_digits
    scores = iter([(0.9, 0.5), (0.9, 0.6), (0.9, 0.3), (0.9, 0.2)])
    monkeypatch.setattr(ValidationAttack, "run", lambda self, *a, **k: next(scores))

    def run(resume: bool):
        model = _model()
        opt = torch.optim.Adam(model.parameters())
        result = _fit_early_stopping(
            model, opt, x, y, (xv, yv), checkpoint_dir=tmp_path, resume=resume
        )
        return model, result

    first, stopped = run(resume=False)
    assert stopped.stopped_early and len(stopped.history) == 3
    again, resumed = run(resume=True)  # before: epoch 4 was trained and validated
    assert resumed.stopped_early and resumed.best_epoch == 2
    assert resumed.steps == stopped.steps
    assert resumed.history == stopped.history
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert next(scores) == (0.9, 0.2)  # the resumed run validated nothing


def test_validation_attack_lowers_accuracy_of_a_trained_model(digits_model, digits):
    _, _, x, y = digits
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    clean, robust = ValidationAttack(eps=0.1, steps=10).run(
        digits_model, xt, yt, loop_module.DistContext(), (0.0, 1.0)
    )
    assert clean > 0.9
    assert 0.2 < robust < clean - 0.2


def test_pgd_training_makes_the_model_more_robust(small_digits, digits):
    x_tr, y_tr, _, _ = digits
    _, _, xv, yv = small_digits
    scores = {}
    for method in (StandardTraining(), PGDTraining(eps=0.1, steps=3)):
        torch.manual_seed(0)
        model = create_model("smallcnn", input_shape=(1, 8, 8))
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        fit(model, opt, method, x_tr, y_tr, epochs=8, batch_size=64, progress=False, seed=0)
        scores[method.name] = ValidationAttack(eps=0.1, steps=10).run(
            model, torch.from_numpy(xv), torch.from_numpy(yv), loop_module.DistContext(), (0, 1)
        )
    assert scores["none"][0] > 0.9 and scores["pgd"][0] > 0.85
    assert scores["pgd"][1] > scores["none"][1] + 0.1, scores


def test_bf16_autocast_trains_on_cpu_and_fp16_needs_cuda(small_digits):
    x, y, _, _ = small_digits
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    result = fit(
        model,
        opt,
        PGDTraining(eps=0.1, steps=2),
        x,
        y,
        epochs=1,
        batch_size=64,
        amp="bf16",
        progress=False,
    )
    assert np.isfinite(result.history[0]["loss"])
    with pytest.raises(ValueError, match="fp16"):
        make_autocast("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="amp"):
        make_autocast("fp8", torch.device("cpu"))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"x": "images"}, TypeError, "x must be"),
        ({"x_scale": 2.0}, ValueError, "clip_values"),
        ({"y_onehot": True}, None, None),
        ({"early_stop_drop": 0.1}, ValueError, "validation"),
        ({"scheduler_interval": "batch"}, ValueError, "scheduler_interval"),
        ({"method": "pgd"}, TypeError, "TrainingMethod"),
    ],
    ids=["epochs", "batch", "x-type", "x-range", "one-hot-ok", "early-stop", "interval", "method"],
)
def test_bad_arguments(small_digits, kwargs, error, match):
    x, y, _, _ = small_digits
    x, y = x[:64], y[:64]
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    kw = dict(kwargs)
    if kw.pop("x_scale", None):
        x = x * 2.0 + 0.5
    if kw.pop("y_onehot", None):
        y = np.eye(10, dtype=np.float32)[y]
    x = kw.pop("x", x)
    method = kw.pop("method", StandardTraining())
    kw.setdefault("epochs", 1)
    if error is None:
        fit(model, opt, method, x, y, progress=False, **kw)
        return
    with pytest.raises(error, match=match):
        fit(model, opt, method, x, y, progress=False, **kw)


# ------------------------------------------------- an optimiser that would train nothing


def _other_model_optimizer(model):
    return torch.optim.SGD(_model().parameters(), lr=0.1)


def _copy_optimizer(model):  # the same shapes, other tensors: the classic slip
    import copy

    return torch.optim.SGD(copy.deepcopy(model).parameters(), lr=0.1)


def _pcl_of_another_model(model):
    from art_denoise.training import PrototypeConformityLoss

    pcl = PrototypeConformityLoss(model, "head.1", num_classes=10, input_shape=(1, 8, 8))
    other = PrototypeConformityLoss(_model(), "head.1", num_classes=10, input_shape=(1, 8, 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return optimizer, {"pcl": pcl, "pcl_optimizer": torch.optim.SGD(other.parameters(), lr=0.1)}


TRAINS_NOTHING = {
    "another model's parameters": (_other_model_optimizer, "optimizer", "model.parameters()"),
    "a deep copy's parameters": (_copy_optimizer, "optimizer", "model.parameters()"),
    "another PCL's centres": (_pcl_of_another_model, "pcl_optimizer", "pcl.parameters()"),
}


@pytest.mark.parametrize("case", TRAINS_NOTHING.values(), ids=TRAINS_NOTHING.keys())
def test_an_optimizer_over_other_parameters_is_refused_before_training(
    case, small_digits, tmp_path
):
    build, argument, hint = case
    x, y, _, _ = small_digits
    model = _model()
    built = build(model)
    optimizer, extra = built if isinstance(built, tuple) else (built, {})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        fit(
            model, optimizer, StandardTraining(), x, y, epochs=1, batch_size=64,
            checkpoint_dir=tmp_path, progress=False, **extra,
        )  # fmt: skip
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{argument} holds")
    assert "would train nothing" in message and hint in message
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert list(tmp_path.iterdir()) == []  # no checkpoint written


def test_an_optimizer_over_part_of_the_model_fine_tunes_that_part(small_digits) -> None:
    x, y, _, _ = small_digits
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = torch.optim.SGD(model.head.parameters(), lr=0.1)
    fit(model, head, StandardTraining(), x, y, epochs=1, batch_size=64, progress=False)
    after = model.state_dict()
    assert not torch.equal(after["head.1.weight"], before["head.1.weight"])
    assert torch.equal(after["stage1.0.weight"], before["stage1.0.weight"])


# ------------------------------------------------- a refused checkpoint speaks for itself


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


CODE_CARRYING = {
    "a function": (lambda marker: {"format": "x", "model": _RunsCode(marker)}, "io.open"),
    "a module object": (lambda marker: {"model": torch.nn.Linear(2, 2)}, "Linear"),
}


@pytest.mark.parametrize("case", CODE_CARRYING.values(), ids=CODE_CARRYING.keys())
def test_a_code_carrying_checkpoint_is_refused_in_one_line_of_our_own(case, small_digits, tmp_path):
    build, named = case
    x, y, _, _ = small_digits
    marker = tmp_path.parent / f"{tmp_path.name}-marker"
    path = tmp_path / CHECKPOINT_NAME
    torch.save(build(marker), path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as info:
        _run(x, y, tmp_path, resume=True)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and named in message
    assert "weights_only" not in message and "could run code" in message
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
    assert not marker.exists()
