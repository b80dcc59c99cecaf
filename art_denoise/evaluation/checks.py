"""Sanity checks on an evaluation, after Carlini et al. (2019), "On Evaluating Adversarial
Robustness" (REFERENCES.md §4).

Every check returns a :class:`~art_denoise.evaluation.report.Check` with the status
``"pass"``, ``"warn"``, ``"fail"`` or ``"skip"`` and a one-line reason. A model with a
failed check is shown as "not verified": its numbers are upper bounds of unknown quality.

The checks, in report order:

* ``logits``: the model returns logits, not probabilities (cross-entropy on softmax
  outputs vanishes and weakens every gradient attack);
* ``deterministic``: two identical calls give identical outputs, or else some attack used
  Expectation over Transformation;
* ``nonzero-gradients``: the loss gradient at the clean points is non-zero and finite
  (a zero gradient is masking, e.g. a quantising input step);
* ``iterative-vs-single-step``: PGD accuracy <= FGSM accuracy at the same budget;
* ``more-steps`` / ``more-restarts``: twice the PGD steps, or more random restarts, never
  raise accuracy beyond noise;
* ``linf-eps-1``: Linf PGD at eps = 1.0 (a ball holding every image) reaches chance;
* ``white-box-vs-noise``: white-box accuracy <= accuracy under random noise of the same
  norm and size;
* ``white-box-vs-transfer``: white-box accuracy <= accuracy under attacks transferred from
  an undefended reference model (<= noise, or a warning);
* ``pgd-vs-autoattack``: PGD within 5 points of AutoAttack (skipped until it exists);
* ``backend-spread``: backends agree within 2 points on each bounded attack (a warning
  only: the report already shows the worst case over backends; an unbounded DeepFool's
  failures are reported with its norms, not as a spread);
* ``attacks-converged``: within each threat model, in run order, no attack lowers the
  running worst case by more than 1.5 points after an iterative attack ran (a warning:
  the earlier attacks had not converged, and the worst case may not have either);
* ``sweep-steps`` / ``sweep-restarts`` / ``sweep-eps`` (only when the sweep ran): accuracy
  never rises with more steps, more restarts or a larger eps beyond noise (``fail``); a
  step or restart sweep still falling past the evaluated attack's count is a ``warn``
  (the attack in the summary has not converged).

"Beyond noise" is two binomial standard deviations of the compared accuracy plus one image
(:func:`tolerance`). The checks that attack run through ``native`` (else the first
backend) with every hyperparameter pinned and seeded, on the first :data:`CHECK_SAMPLES`
images; the others reuse the evaluation's results or need one forward pass.

| Paper link: https://arxiv.org/abs/1902.06705
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from art_denoise._torch import predict, rng_preserved
from art_denoise.attacks.backends.base import (
    AttackBackend,
    UnsupportedAttackError,
    attack_guard,
    perturbation_norms,
)
from art_denoise.attacks.spec import AttackSpec
from art_denoise.evaluation.report import AttackResult, Check, ModelReport
from art_denoise.evaluation.results import CONVERGENCE_THRESHOLD, ThreatModelResult
from art_denoise.evaluation.sweeps import Sweep

__all__ = [
    "CHECK_SAMPLES",
    "LARGE_EPS_ATTACK",
    "MAX_AUTOATTACK_GAP",
    "MAX_BACKEND_SPREAD",
    "Check",
    "check_autoattack",
    "check_backend_spread",
    "check_convergence",
    "check_deterministic",
    "check_gradients",
    "check_large_eps",
    "check_logits",
    "check_not_above",
    "check_single_step",
    "check_sweep",
    "check_transfer",
    "check_white_box_vs_noise",
    "random_noise",
    "run_checks",
    "tolerance",
]

#: Images the checks that attack use (the first ones of the evaluation set).
CHECK_SAMPLES = 100
#: The attack of the ``linf-eps-1`` check: its ball holds every image in [0, 1].
LARGE_EPS_ATTACK = AttackSpec(attack="pgd", norm="inf", eps=1.0, step_size=0.25, steps=10)
#: Largest accepted gap between PGD and AutoAttack accuracy.
MAX_AUTOATTACK_GAP = 0.05
#: Largest cross-backend spread before a warning.
MAX_BACKEND_SPREAD = 0.02
#: Fractions of examples with a zero gradient that give a warning / a failure.
ZERO_GRADIENT_WARN, ZERO_GRADIENT_FAIL = 0.1, 0.5

Budget = tuple[str, float]  # (norm, eps)


def tolerance(p: float, n: int) -> float:
    """Noise allowed on an accuracy ``p`` measured on ``n`` images: two binomial standard
    deviations plus one image."""
    n = max(n, 1)
    return 2.0 * math.sqrt(max(p * (1.0 - p), 0.0) / n) + 1.0 / n


def _pct(p: float) -> str:
    return f"{p:.1%}"


def _budget(b: Budget) -> str:
    return f"L{b[0]} eps {b[1]:g}"


# ------------------------------------------------------------------ pure checks


def check_logits(outputs: torch.Tensor) -> Check:
    """``fail`` when ``outputs`` (B, classes) are probabilities; ``warn`` when they all lie
    in [0, 1] (squashed scores)."""
    out = outputs.detach().to(torch.float64)
    if not bool(torch.isfinite(out).all()):
        return Check("logits", "fail", "the model returns NaN or inf")
    sums = out.sum(dim=1)
    if bool((out >= 0).all()) and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-4)):
        return Check(
            "logits",
            "fail",
            "outputs are probabilities (non-negative, rows sum to 1), not logits: "
            "cross-entropy on them vanishes and gradient attacks are weakened",
        )
    if bool((out >= 0).all()) and bool((out <= 1).all()):
        return Check("logits", "warn", "every output lies in [0, 1]: squashed scores, not logits?")
    return Check("logits", "pass", f"outputs are logits (range {out.min():.3g} to {out.max():.3g})")


def check_deterministic(first: torch.Tensor, second: torch.Tensor, eot_samples: int) -> Check:
    """Compare two outputs of identical calls; a randomised model passes only when some
    attack used EOT (``eot_samples`` > 1, the largest number of draws used)."""
    diff = float((first.detach() - second.detach()).abs().max()) if first.numel() else 0.0
    if diff == 0.0:
        return Check("deterministic", "pass", "two identical calls give identical outputs")
    if eot_samples > 1:
        return Check(
            "deterministic",
            "pass",
            f"randomised (outputs of identical calls differ by up to {diff:.3g}), "
            f"attacked with EOT ({eot_samples} draws)",
        )
    return Check(
        "deterministic",
        "fail",
        f"randomised: outputs of identical calls differ by up to {diff:.3g}, and no attack "
        "used EOT (AttackSpec(eot_samples=16))",
    )


def check_gradients(grads: torch.Tensor) -> Check:
    """``grads`` (B, ...): input gradients of the loss at the clean points. ``fail`` when more
    than half the examples have an all-zero or non-finite gradient, ``warn`` above 10%."""
    n = len(grads)
    if n == 0:
        return Check("nonzero-gradients", "skip", "no images")
    flat = grads.detach().reshape(n, -1)
    bad = ~torch.isfinite(flat).all(dim=1) | (flat == 0).all(dim=1)
    frac = float(bad.float().mean())
    detail = (
        f"{int(bad.sum())}/{n} examples have an all-zero or non-finite loss gradient at the "
        "clean point"
    )
    if frac > ZERO_GRADIENT_FAIL:
        return Check("nonzero-gradients", "fail", f"{detail}: masked gradients")
    if frac > ZERO_GRADIENT_WARN:
        return Check("nonzero-gradients", "warn", detail)
    return Check("nonzero-gradients", "pass", detail)


def _comparable(r: AttackResult) -> tuple[str, str, float | None, bool, int]:
    return (r.backend, r.norm, r.eps, r.targeted, r.eot_samples)


def check_single_step(results: Sequence[AttackResult], n: int) -> Check:
    """PGD accuracy <= FGSM accuracy (+ tolerance) for every pair run by the same backend at
    the same norm, eps, targeting and EOT draws."""
    fgsm = {_comparable(r): r for r in results if r.attack.startswith("fgsm")}
    pairs = [
        (fgsm[_comparable(r)], r)
        for r in results
        if r.attack.startswith("pgd") and _comparable(r) in fgsm
    ]
    if not pairs:
        return Check("iterative-vs-single-step", "skip", "no FGSM and PGD at the same budget")
    if any(r.sequential for pair in pairs for r in pair):
        return Check(
            "iterative-vs-single-step",
            "skip",
            "the attacks ran all-or-nothing: their accuracies are cumulative, not comparable",
        )
    bad = [
        (f, p)
        for f, p in pairs
        if p.robust_accuracy > f.robust_accuracy + tolerance(f.robust_accuracy, n)
    ]
    f, p = (
        bad[0] if bad else max(pairs, key=lambda fp: fp[1].robust_accuracy - fp[0].robust_accuracy)
    )
    line = (
        f"{p.attack} {_pct(p.robust_accuracy)} vs {f.attack} {_pct(f.robust_accuracy)} "
        f"({p.backend}, eps {f.eps:g})"
    )
    if bad:
        return Check(
            "iterative-vs-single-step",
            "fail",
            f"iterative attack weaker than single step: {line}; {len(bad)}/{len(pairs)} pairs",
        )
    return Check("iterative-vs-single-step", "pass", f"{len(pairs)} pair(s), closest: {line}")


def check_not_above(
    name: str, label: str, accuracy: float, baseline_label: str, baseline: float, n: int
) -> Check:
    """``fail`` when ``accuracy`` exceeds ``baseline`` by more than :func:`tolerance`."""
    tol = tolerance(baseline, n)
    line = (
        f"{label} {_pct(accuracy)} vs {baseline_label} {_pct(baseline)} "
        f"(tolerance {_pct(tol)}, {n} images)"
    )
    if accuracy > baseline + tol:
        return Check(name, "fail", f"accuracy rose: {line}")
    return Check(name, "pass", line)


def check_large_eps(accuracy: float, num_classes: int, n: int) -> Check:
    """Linf eps = 1.0 accuracy must not exceed chance (1 / ``num_classes``) beyond noise."""
    chance = 1.0 / num_classes
    tol = tolerance(chance, n)
    line = f"PGD Linf eps 1.0: {_pct(accuracy)} vs chance {_pct(chance)} ({n} images)"
    if accuracy > chance + tol:
        return Check("linf-eps-1", "fail", f"{line}: the attack cannot reach every image")
    return Check("linf-eps-1", "pass", line)


def check_white_box_vs_noise(
    white_box: Mapping[Budget, float], noise: Mapping[Budget, float], n: int
) -> Check:
    """White-box accuracy <= random-noise accuracy (+ tolerance) at every budget."""
    budgets = [b for b in white_box if b in noise]
    if not budgets:
        return Check("white-box-vs-noise", "skip", "no bounded untargeted attack")
    bad = [b for b in budgets if white_box[b] > noise[b] + tolerance(noise[b], n)]
    lines = "; ".join(
        f"{_budget(b)}: {_pct(white_box[b])} vs noise {_pct(noise[b])}" for b in (bad or budgets)
    )
    if bad:
        return Check("white-box-vs-noise", "fail", f"random noise beats the attacks: {lines}")
    return Check("white-box-vs-noise", "pass", f"white-box <= noise: {lines}")


def check_transfer(
    white_box: Mapping[Budget, float],
    transfer: Mapping[Budget, float] | None,
    noise: Mapping[Budget, float],
    n: int,
) -> Check:
    """White-box <= transfer from an undefended model (``fail`` otherwise) <= noise (``warn``
    otherwise). ``transfer`` is ``None`` when no reference model was given."""
    if transfer is None:
        return Check(
            "white-box-vs-transfer",
            "skip",
            "no reference_model (an undefended model to transfer attacks from)",
        )
    budgets = [b for b in white_box if b in transfer]
    if not budgets:
        return Check("white-box-vs-transfer", "skip", "no untargeted FGSM/PGD to transfer")
    bad = [b for b in budgets if white_box[b] > transfer[b] + tolerance(transfer[b], n)]
    odd = [b for b in budgets if b in noise and transfer[b] > noise[b] + tolerance(noise[b], n)]
    lines = "; ".join(
        f"{_budget(b)}: {_pct(white_box[b])} vs transfer {_pct(transfer[b])}"
        + (f" vs noise {_pct(noise[b])}" if b in noise else "")
        for b in (bad or odd or budgets)
    )
    if bad:
        return Check(
            "white-box-vs-transfer", "fail", f"transferred attacks beat white-box: {lines}"
        )
    if odd:
        return Check("white-box-vs-transfer", "warn", f"transfer weaker than noise: {lines}")
    return Check("white-box-vs-transfer", "pass", f"white-box <= transfer <= noise: {lines}")


def check_autoattack(results: Sequence[AttackResult]) -> Check:
    """PGD accuracy within :data:`MAX_AUTOATTACK_GAP` of AutoAttack at the same budget."""
    auto = [r for r in results if r.attack.startswith("autoattack")]
    if not auto:
        return Check("pgd-vs-autoattack", "skip", "AutoAttack was not run (add --autoattack)")
    gaps = []
    for a in auto:
        pgd = [
            r.robust_accuracy
            for r in results
            if r.attack.startswith("pgd") and (r.norm, r.eps) == (a.norm, a.eps) and not r.targeted
        ]
        if pgd:
            gaps.append((min(pgd) - a.robust_accuracy, a, min(pgd)))
    if not gaps:
        return Check("pgd-vs-autoattack", "skip", "no PGD at an AutoAttack budget")
    gap, a, pgd_acc = max(gaps, key=lambda g: g[0])
    line = f"PGD {_pct(pgd_acc)} vs AutoAttack {_pct(a.robust_accuracy)} at L{a.norm} eps {a.eps:g}"
    if gap > MAX_AUTOATTACK_GAP:
        return Check("pgd-vs-autoattack", "fail", f"gap over 5 points: {line}")
    return Check("pgd-vs-autoattack", "pass", line)


def check_sweep(sweep: Sweep, n: int) -> Check:
    """A sweep must not rise beyond noise; a steps / restarts sweep still falling past the
    base attack's own count is a warning (that attack had not converged)."""
    name = f"sweep-{sweep.kind}"
    unit = {"steps": "steps", "restarts": "restarts", "eps": "eps"}[sweep.kind]
    points = list(zip(sweep.values, sweep.robust_accuracy, strict=True))
    best_v, best_a = points[0]
    for v, a in points[1:]:
        tol = tolerance(best_a, n)
        if a > best_a + tol:
            return Check(
                name,
                "fail",
                f"accuracy rose: {_pct(a)} at {unit} {v:g} vs {_pct(best_a)} at {unit} "
                f"{best_v:g} (tolerance {_pct(tol)}, {n} images)",
            )
        if a < best_a:
            best_v, best_a = v, a
    line = " -> ".join(f"{v:g}: {_pct(a)}" for v, a in points)
    if sweep.kind in ("steps", "restarts"):
        own = sweep.base["steps" if sweep.kind == "steps" else "restarts"]
        at_own = [a for v, a in points if v <= own]
        last = points[-1][1]
        if at_own and points[-1][0] > own and last < at_own[-1] - tolerance(at_own[-1], n):
            return Check(
                name,
                "warn",
                f"still falling after the evaluated {own} {unit}: {line}; report the larger count",
            )
    return Check(name, "pass", line)


def check_backend_spread(results: Sequence[AttackResult]) -> Check:
    """``warn`` when backends running the same bounded attack differ by more than 2 points
    (an unbounded minimal-norm attack has no robust accuracy to compare)."""
    groups: dict[str, list[AttackResult]] = {}
    for r in results:
        if r.eps is not None:
            groups.setdefault(r.key, []).append(r)
    shared = {k: v for k, v in groups.items() if len({r.backend for r in v}) > 1}
    if not shared:
        return Check("backend-spread", "skip", "each attack ran through one backend only")
    spread = {
        k: max(r.robust_accuracy for r in v) - min(r.robust_accuracy for r in v)
        for k, v in shared.items()
    }
    key = max(spread, key=lambda k: spread[k])
    parts = ", ".join(f"{r.backend} {_pct(r.robust_accuracy)}" for r in shared[key])
    line = f"largest spread {_pct(spread[key])} on {key} ({parts})"
    if spread[key] > MAX_BACKEND_SPREAD:
        return Check("backend-spread", "warn", f"backends disagree by over 2 points: {line}")
    return Check("backend-spread", "pass", line)


def check_convergence(
    threat_models: Sequence[ThreatModelResult], threshold: float = CONVERGENCE_THRESHOLD
) -> Check:
    """``warn`` when, within a threat model and in run order, a later attack lowers the
    running worst case by more than ``threshold`` (1.5 points) after an iterative attack
    ran: the earlier attacks had not converged
    (:meth:`~art_denoise.evaluation.results.ThreatModelResult.unconverged`)."""
    if not threat_models:
        return Check("attacks-converged", "skip", "no bounded attack")
    found = [(t, a, before, after) for t in threat_models for a, before, after in t.unconverged()]
    if not found:
        return Check(
            "attacks-converged",
            "pass",
            f"no later attack lowered a worst case by over {threshold * 100:g} points "
            f"({', '.join(f'{t.label}: {len(t.attacks)} attacks' for t in threat_models)})",
        )
    parts = "; ".join(
        f"{t.label}: {a} lowered {_pct(before)} to {_pct(after)} "
        f"({(before - after) * 100:.1f} points)"
        for t, a, before, after in found
    )
    return Check("attacks-converged", "warn", f"the earlier attacks had not converged: {parts}")


# ------------------------------------------------------------------ measurements


def random_noise(x: torch.Tensor, norm: str, eps: float, seed: int) -> torch.Tensor:
    """``x`` plus random noise of size ``eps``: uniform random signs (a corner of the Linf
    ball) or a uniform random direction (L2), clipped to [0, 1]. Seeded, global RNG untouched."""
    gen = torch.Generator().manual_seed(seed)
    if norm == "inf":
        signs = torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1
        delta = eps * signs
    else:
        direction = torch.randn(x.shape, generator=gen).to(x)
        n = perturbation_norms(direction, "2").to(x.dtype).clamp_min(1e-12)
        delta = eps * direction / n.view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(0.0, 1.0)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor) -> float:
    """Robust accuracy as the report counts it: correct clean and on ``x``."""
    return float(((predict(model, x) == y) & clean).float().mean()) if len(x) else 0.0


def _input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        if not loss.requires_grad:  # the model cut the graph (detach, numpy round trip)
            return torch.zeros_like(x)
        (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def _white_box(report: ModelReport) -> dict[Budget, float]:
    """Per (norm, eps): the worst case over every attack and backend (the lowest
    untargeted accuracy in a report without per-example outcomes)."""
    if report.threat_models:
        return {(t.norm, t.eps): t.robust_accuracy for t in report.threat_models}
    out: dict[Budget, float] = {}
    for r in report.results:
        if r.eps is None or r.targeted:
            continue
        b = (r.norm, r.eps)
        out[b] = min(out.get(b, 1.0), r.robust_accuracy)
    return out


def _transfer_specs(specs: Sequence[AttackSpec]) -> list[AttackSpec]:
    """The untargeted FGSM/PGD specs of ``specs``, without EOT, once each."""
    out = [
        s.replace(eot_samples=1)
        for s in specs
        if s.attack in ("fgsm", "pgd") and not s.targeted and s.eps is not None
    ]
    return list(dict.fromkeys(out))


def _steps_spec(specs: Sequence[AttackSpec], report: ModelReport) -> AttackSpec | None:
    """The untargeted PGD spec with the highest reported accuracy (the largest claim)."""
    pgd = [s for s in specs if s.attack == "pgd" and not s.targeted]
    if not pgd:
        return None
    worst = report.worst_case()
    return max(pgd, key=lambda s: worst.get(s.key, 0.0))


def _pgd_label(spec: AttackSpec) -> str:
    label = f"PGD-{spec.steps}"
    if spec.restarts > 1:
        label += f" x{spec.restarts} restarts"
    return label + (f" +EOT{spec.eot_samples}" if spec.eot_samples > 1 else "")


def run_checks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    report: ModelReport,
    specs: Sequence[AttackSpec],
    backend: AttackBackend,
    *,
    reference: nn.Module | None = None,
    transfer_cache: dict[AttackSpec, torch.Tensor] | None = None,
    seed: int = 0,
    n_samples: int = CHECK_SAMPLES,
) -> list[Check]:
    """Run every check on one evaluated model and return them in report order.

    Args:
        model: the evaluated model, on ``x``'s device.
        x: the evaluation images (B, C, H, W) in [0, 1]; y: their labels (B,).
        report: the model's results from :func:`~art_denoise.evaluation.evaluate`.
        specs: the attacks it was evaluated with (EOT and the steps check read them).
        backend: runs the checks' own attacks (``native`` when the evaluation has it,
            else its first backend).
        reference: an undefended model to transfer attacks from; ``None`` skips the check.
        transfer_cache: spec -> adversarial images crafted on ``reference``, filled and
            reused across models.
        seed: seeds the checks' attacks and noise.
        n_samples: images the checks' attacks use (the first ones).

    Returns:
        The checks. The model's modes and gradients and the global RNG states are restored.
    """
    n_all = len(x)
    sub = slice(0, min(n_samples, n_all))
    xs, ys = x[sub], y[sub]
    ns = len(xs)
    eot = max((s.eot_samples for s in specs), default=1)
    checks: list[Check] = []
    with rng_preserved(), attack_guard(model):
        clean = predict(model, x) == y
        cs = clean[sub]
        with torch.no_grad():
            first, second = model(xs[:8]), model(xs[:8])
        randomised = not torch.equal(first, second)
        checks.append(check_logits(first))
        checks.append(check_deterministic(first, second, eot))
        checks.append(check_gradients(_input_gradients(model, xs, ys)))
        checks.append(check_single_step(report.results, n_all))

        def attack(spec: AttackSpec) -> float:
            return _accuracy(model, backend.run(model, xs, ys, spec, seed=seed), ys, cs)

        base = _steps_spec(specs, report)
        if base is None:
            checks += [
                Check(name, "skip", "no untargeted PGD attack to repeat")
                for name in ("more-steps", "more-restarts")
            ]
        else:
            base_acc = attack(base)
            more = base.replace(steps=2 * base.steps)
            restarts = base.replace(random_start=True, restarts=base.restarts + 2)
            for name, spec in (("more-steps", more), ("more-restarts", restarts)):
                checks.append(
                    check_not_above(
                        name, _pgd_label(spec), attack(spec), _pgd_label(base), base_acc, ns
                    )
                )

        large = LARGE_EPS_ATTACK.replace(eot_samples=eot if randomised else 1)
        try:
            backend.check(large)
        except UnsupportedAttackError as err:
            checks.append(Check("linf-eps-1", "skip", str(err)))
        else:
            num_classes = int(first.shape[1])
            checks.append(check_large_eps(attack(large), num_classes, ns))

        white_box = _white_box(report)
        noise = {
            b: _accuracy(model, random_noise(x, b[0], b[1], seed), y, clean) for b in white_box
        }
        checks.append(check_white_box_vs_noise(white_box, noise, n_all))

        transfer: dict[Budget, float] | None = None
        if reference is not None:
            cache = transfer_cache if transfer_cache is not None else {}
            transfer = {}
            for spec in _transfer_specs(specs):
                if spec not in cache:
                    cache[spec] = backend.run(reference, x, y, spec, seed=seed)
                b = (spec.norm, float(spec.eps or 0.0))
                transfer[b] = min(transfer.get(b, 1.0), _accuracy(model, cache[spec], y, clean))
        checks.append(check_transfer(white_box, transfer, noise, n_all))
        checks.append(check_autoattack(report.results))
        checks.append(check_backend_spread(report.results))
        checks.append(check_convergence(report.threat_models))
        checks += [check_sweep(sw, n_all) for sw in report.sweeps]
    return checks
