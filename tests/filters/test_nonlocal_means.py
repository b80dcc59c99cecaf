"""Known values of the non-local means; the shared checks are in ``test_contract.py``."""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import pytest
import torch

from art_denoise.filters import NonLocalMeans2d, nonlocal_means2d
from tests._references import reference_nonlocal, seeded_embeddings


class Case(NamedTuple):
    mode: str
    embed_width: int | None  # None: q = k = x
    shape: tuple[int, int, int, int]


CASES = [
    Case("gaussian", None, (2, 6, 3, 4)),
    Case("gaussian", 3, (2, 6, 3, 4)),  # C' < C: q, k padded to C
    Case("gaussian", 9, (2, 6, 3, 4)),  # C' > C: v padded to C'
    Case("dot", None, (2, 6, 3, 4)),  # C < N: the C x C reassociation
    Case("dot", 3, (2, 6, 3, 4)),
    Case("dot", None, (1, 20, 3, 4)),  # C >= N: materialised
    Case("dot", 16, (1, 6, 3, 4)),  # C' >= N: materialised
]
IDS = [f"{c.mode}-embed{c.embed_width}-{'x'.join(map(str, c.shape))}" for c in CASES]


@pytest.mark.parametrize("implementation", ["auto", "sdpa", "reference"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_naive_loop(case: Case, implementation: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(case.shape, dtype=torch.float64)
    theta, phi = seeded_embeddings(x, case.embed_width) if case.embed_width else (None, None)
    out = nonlocal_means2d(x, theta, phi, mode=case.mode, implementation=implementation)
    expected = reference_nonlocal(x, theta, phi, mode=case.mode)
    torch.testing.assert_close(out, expected)
    assert out.dtype == x.dtype and out.is_contiguous()


@pytest.mark.parametrize("mode", ["gaussian", "dot"])
@pytest.mark.parametrize(
    ("embed", "small", "large"),
    [(None, (2, 4), (3, 3)), (4, (4, 8), (6, 6))],  # N <= C resp. N <= 4 C: materialised
    ids=["plain", "embedded"],
)
def test_auto_materialises_only_small_matrices(mode: str, embed, small, large) -> None:
    torch.manual_seed(0)
    for hw, materialised in ((small, mode == "gaussian"), (large, False)):
        x = torch.randn(2, 8, *hw)
        args = (x, *seeded_embeddings(x, embed)) if embed else (x,)
        expected = nonlocal_means2d(
            *args, mode=mode, implementation="reference" if materialised else "sdpa"
        )
        # exact: "auto" must take the very same path
        assert torch.equal(nonlocal_means2d(*args, mode=mode), expected)


def test_default_is_softmax_over_x_itself_with_custom_scale() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    xs = x.flatten(2)  # (B, C, N)
    weights = (xs.transpose(1, 2) @ xs / 2.0).softmax(-1)  # 1/sqrt(C) = 1/2
    expected = (xs @ weights.transpose(1, 2)).view_as(x)
    torch.testing.assert_close(nonlocal_means2d(x), expected)
    torch.testing.assert_close(nonlocal_means2d(x, scale=0.3), reference_nonlocal(x, scale=0.3))


def test_embedding_width_and_repr() -> None:
    layer = NonLocalMeans2d(8, embed=True)
    assert layer.theta is not None and layer.phi is not None
    assert layer.theta.out_channels == 4  # C // 2
    assert "embed=True" in repr(layer)


def test_embedded_scale_uses_embedding_width() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    theta, phi = seeded_embeddings(x, 2)
    out = nonlocal_means2d(x, theta, phi)
    torch.testing.assert_close(out, reference_nonlocal(x, theta, phi, scale=1 / math.sqrt(2)))


@pytest.mark.parametrize(
    ("dtype", "tol"),
    [(torch.float16, 1e-2), (torch.bfloat16, 5e-2), (torch.float32, 1e-5)],
    ids=["float16", "bfloat16", "float32"],
)
@pytest.mark.parametrize("implementation", ["sdpa", "reference"])
def test_dtypes_agree_with_float64(dtype: torch.dtype, tol: float, implementation: str) -> None:
    torch.manual_seed(0)
    x64 = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    t64, p64 = seeded_embeddings(x64, 4)
    for mode in ("gaussian", "dot"):
        expected = nonlocal_means2d(x64, t64, p64, mode=mode)
        out = nonlocal_means2d(
            x64.to(dtype), t64.to(dtype), p64.to(dtype), mode=mode, implementation=implementation
        )
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), expected, atol=tol * 4, rtol=tol)


def _peak_mib(fn) -> float:
    """Peak resident memory above the start, in MiB (Linux: VmHWM after clear_refs)."""

    def read(key: str) -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(key)

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    start = read("VmRSS:")
    fn()
    return read("VmHWM:") - start


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc peak-RSS reset"
)
def test_sdpa_path_does_not_materialise_the_matrix() -> None:
    """The fused CPU kernel must engage (a silent math fallback builds N x N floats)."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 64, 64, requires_grad=True)  # N = 4096: one N x N matrix = 64 MiB
    theta = torch.randn(1, 3, 64, 64, requires_grad=True)  # C' != C: padded path
    phi = torch.randn(1, 3, 64, 64, requires_grad=True)

    def run(implementation: str, embedded: bool):
        def fn() -> None:
            args = (x, theta, phi) if embedded else (x,)
            nonlocal_means2d(*args, implementation=implementation).sum().backward()

        return fn

    for embedded in (False, True):
        assert _peak_mib(run("reference", embedded)) > 60  # the measure sees the matrix
        assert _peak_mib(run("sdpa", embedded)) < 24


class Bad(NamedTuple):
    call: object
    error: type[Exception]
    match: str


X = torch.zeros(1, 4, 3, 3)
BAD = {
    "theta-alone": Bad(lambda: nonlocal_means2d(X, X), ValueError, "together"),
    "theta-phi-shapes": Bad(
        lambda: nonlocal_means2d(X, X, torch.zeros(1, 2, 3, 3)), ValueError, "same shape"
    ),
    "theta-spatial": Bad(
        lambda: nonlocal_means2d(X, *(torch.zeros(1, 4, 2, 3),) * 2), ValueError, "spatial"
    ),
    "theta-rank": Bad(
        lambda: nonlocal_means2d(X, *(torch.zeros(4, 3, 3),) * 2), ValueError, r"\(4, 3, 3\)"
    ),
    "mode": Bad(lambda: nonlocal_means2d(X, mode="cosine"), ValueError, "'cosine'"),
    "implementation": Bad(
        lambda: nonlocal_means2d(X, implementation="flash"), ValueError, "'flash'"
    ),
    "scale-zero": Bad(lambda: nonlocal_means2d(X, scale=0.0), ValueError, "0.0"),
    "scale-str": Bad(lambda: nonlocal_means2d(X, scale="1"), TypeError, "'1'"),
    "embed-no-channels": Bad(lambda: NonLocalMeans2d(embed=True), ValueError, "channels=None"),
    "embed-channels-alone": Bad(
        lambda: NonLocalMeans2d(4, embed_channels=2), ValueError, "embed_channels=2"
    ),
    "channels-mismatch": Bad(lambda: NonLocalMeans2d(8, embed=True)(X), ValueError, "8 channels"),
    "module-mode": Bad(lambda: NonLocalMeans2d(mode="x"), ValueError, "'x'"),
}


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
def test_bad_input(case: Bad) -> None:
    with pytest.raises(case.error, match=case.match):
        case.call()  # type: ignore[operator]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("embed_width", [None, 16, 40])
def test_cuda_sdpa_matches_reference(dtype: torch.dtype, embed_width: int | None) -> None:
    torch.manual_seed(0)
    x64 = torch.randn(2, 32, 8, 8, dtype=torch.float64)
    t64, p64 = seeded_embeddings(x64, embed_width) if embed_width else (None, None)
    for mode in ("gaussian", "dot"):
        expected = nonlocal_means2d(x64, t64, p64, mode=mode, implementation="reference")
        args = [None if t is None else t.to("cuda", dtype) for t in (x64, t64, p64)]
        out = nonlocal_means2d(*args, mode=mode)
        assert out.device.type == "cuda" and out.dtype == dtype
        torch.testing.assert_close(out.double().cpu(), expected, atol=5e-2, rtol=5e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_cuda_sdpa_does_not_materialise_the_matrix(dtype: torch.dtype) -> None:
    n_bytes = torch.finfo(dtype).bits // 8
    x = torch.randn(4, 64, 48, 48, device="cuda", dtype=dtype, requires_grad=True)
    matrix = 4 * (48 * 48) ** 2 * n_bytes
    for embedded in (False, True):
        theta = phi = None
        if embedded:
            theta = torch.randn(4, 32, 48, 48, device="cuda", dtype=dtype, requires_grad=True)
            phi = torch.randn_like(theta, requires_grad=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        nonlocal_means2d(x, theta, phi).float().sum().backward()
        torch.cuda.synchronize()
        assert torch.cuda.max_memory_allocated() - before < matrix / 2
