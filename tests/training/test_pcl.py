"""Prototype conformity loss against the formula, and through the loop."""

from __future__ import annotations

import pytest
import torch

from art_denoise.models import create_model
from art_denoise.training import PrototypeConformityLoss, StandardTraining, fit


def test_loss_matches_the_formula_by_hand():
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    pcl = PrototypeConformityLoss(
        model, ["stage2", "head.1"], 10, pull_weight=1.0, push_weight=0.01
    )
    x = torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 4, 4])
    logits = model(x)
    assert logits.shape == (6, 10)  # forward still returns logits
    got = pcl.loss(y)
    feats = {"stage2": model.stage2(model.stage1(model.normalize(x))).mean(dim=(2, 3))}
    feats["head.1"] = model.head[1](model.head[0](model.stage2(model.stage1(model.normalize(x)))))
    ref = torch.zeros(6)
    for name, f in feats.items():
        c = pcl.centres[name.replace(".", "__")]
        for i in range(6):
            d = [float(((f[i] - c[k]) ** 2).sum().detach()) for k in range(10)]
            pull = d[int(y[i])]
            push = sum(d[k] for k in range(10) if k != int(y[i])) / 9
            sep = (
                sum(
                    float(((c[a] - c[b]) ** 2).sum().detach()) for a in range(10) for b in range(10)
                )
                / 90
            )
            ref[i] += pull - 0.01 * (push + sep)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_pcl_training_pulls_features_to_their_centres(digits):
    x, y, _, _ = digits
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    pcl = PrototypeConformityLoss(model, ["stage2"], 10)
    xt, yt = torch.from_numpy(x[:300]), torch.from_numpy(y[:300])
    model.eval()
    with torch.no_grad():
        model(xt)
        before = float(pcl.loss(yt).mean())
    fit(
        model,
        torch.optim.Adam(model.parameters(), 1e-3),
        StandardTraining(),
        x,
        y,
        epochs=3,
        batch_size=64,
        pcl=pcl,
        pcl_optimizer=torch.optim.SGD(pcl.parameters(), lr=0.5),
        progress=False,
    )
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
        after = float(pcl.loss(yt).mean())
    assert after < 0.2 * before
    assert acc > 0.8


def test_bad_layers_and_weights():
    model = create_model("smallcnn", input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="stage9"):
        PrototypeConformityLoss(model, ["stage9"], 10)
    with pytest.raises(ValueError, match="push_weight"):
        PrototypeConformityLoss(model, ["stage2"], 10, push_weight=-1.0)
    with pytest.raises(ValueError, match="num_classes"):
        PrototypeConformityLoss(model, ["stage2"], 1)
    pcl = PrototypeConformityLoss(model, ["stage2"], 10)
    with pytest.raises(RuntimeError, match="no forward"):
        pcl.loss(torch.tensor([0]))
