"""Evaluation across processes: ``torchrun`` or any initialised ``torch.distributed`` group.

:func:`~art_denoise.evaluation.evaluate.evaluate` called inside an initialised process
group of ``world_size`` > 1 splits every (attack, backend) run across the ranks and
gathers the per-example outcomes, so that the report equals the one a single process
writes at the same seed (the ``seconds`` fields aside). The same code runs in one process,
where this module's functions are the identity.

How the equality holds:

* **A global batch grid.** The images an attack runs on (all of them, or the ones still
  standing in an all-or-nothing run, known to every rank) are cut into batches of the
  spec's ``batch_size`` in their order. Batch ``k`` is the same images whichever rank
  attacks it: each rank takes a contiguous run of whole batches (:func:`shard`).
* **Seeds per batch, not per process.** Batch ``k``'s attack is one call of
  :meth:`AttackBackend.run` seeded :func:`batch_seed` ``(seed, k)`` (its restart ``r``
  ``batch_seed + r``), so a library's random start, a target-free EOT draw and every
  other global-RNG draw depend on (seed, k) only. Batch 0 keeps the seed itself: an
  evaluation of at most ``batch_size`` images is seeded as before. The predictions after
  an attack (:func:`prediction_seed` ``(seed, k, run)``, a fresh draw per attack run) and
  the clean predictions (batches of :data:`PREDICT_BATCH`, ``(seed, k)``) are seeded too,
  which matters only for a randomised model.
* **Target labels** are drawn for all the images at once, on every rank (one generator
  seeded with ``seed``), and sliced.
* **Gathered, then reduced in one order.** Each batch's per-example predictions and
  perturbation norms are gathered (:func:`gather_batches`, ``all_gather_object``) in batch
  order on every rank, and every number of the report is computed from them the same way
  in one process or many.
* **The parts on a subset run on rank 0.** The sanity checks (the first 100 images), the
  sweeps, and RP2 run on rank 0 only, on the full data every rank holds, each seeded with
  ``seed`` first; rank 0 then sends the finished report to the others
  (:func:`share_from_main`), so every rank returns the same :class:`Report`. The other
  ranks wait in that broadcast while rank 0 runs them: give ``init_process_group`` a
  ``timeout`` longer than the checks and sweeps take (:func:`init_from_env`, used by the
  command line, sets :data:`TIMEOUT`).

The equality is exact on the CPU. On CUDA it is as exact as two single-process runs are:
with ``torch.use_deterministic_algorithms(True)`` (and ``CUBLAS_WORKSPACE_CONFIG``) each
batch computes the same bits on any GPU of one kind; without it, cuDNN's non-deterministic
kernels can move an image near the decision boundary either way.

Each rank holds the whole data set (the command line loads it on every rank) and runs on
its own device: ``cuda:LOCAL_RANK`` when CUDA is available (:func:`local_device`), else the
CPU with the ``gloo`` backend. Only rank 0 prints and writes files
(:func:`is_main_process`).

Example:
    ``torchrun --nproc_per_node=8 -m art_denoise.cli.main evaluate --model runs/x ...``
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from art_denoise._torch import resolve_device

__all__ = [
    "PREDICT_BATCH",
    "SEED_STRIDE",
    "TIMEOUT",
    "batch_seed",
    "concat",
    "gather_batches",
    "init_from_env",
    "is_main_process",
    "local_device",
    "prediction_seed",
    "rank_and_world",
    "shard",
    "share_from_main",
]

T = TypeVar("T")

#: Distance between the seeds of consecutive batches (restarts use the seeds in between).
SEED_STRIDE = 1_000_003
#: Images per clean-prediction batch (the grid of the clean predictions).
PREDICT_BATCH = 512
#: The process-group timeout :func:`init_from_env` sets: rank 0's checks and sweeps run
#: while the other ranks wait.
TIMEOUT = timedelta(hours=12)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised default process group; ``(0, 1)`` without one.

    Example:
        >>> rank_and_world()
        (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Whether this process prints and writes files (rank 0, or no process group)."""
    return rank_and_world()[0] == 0


def batch_seed(seed: int, batch: int) -> int:
    """The seed of global batch ``batch`` (its restart ``r`` uses this plus ``r``).

    Example:
        >>> batch_seed(7, 0), batch_seed(7, 2)
        (7, 2000013)
    """
    return seed + batch * SEED_STRIDE


def prediction_seed(seed: int, batch: int, run: str | None = None) -> int:
    """The seed of the predictions on global batch ``batch`` (between its restarts' seeds
    and the next batch's): the clean predictions' without ``run``; the predictions after
    the attack run ``run`` (e.g. ``"pgd-linf@0.1/art"``) one of their own, so that a
    randomised model meets a fresh noise draw in every run, as AutoAttack judges each of
    its attacks (the same draw for every run would let one lucky draw stand for all).

    Example:
        >>> prediction_seed(7, 0), prediction_seed(7, 0, "a") == prediction_seed(7, 0, "b")
        (500008, False)
    """
    base = batch_seed(seed, batch) + SEED_STRIDE // 2
    if run is None:
        return base
    salt = int.from_bytes(hashlib.sha256(run.encode()).digest()[:4], "big")
    return base + 1 + salt % (SEED_STRIDE // 2 - 1)


def shard(n_batches: int, rank: int, world: int) -> range:
    """The contiguous global batches rank ``rank`` of ``world`` runs (balanced to one batch).

    Example:
        >>> [list(shard(5, r, 2)) for r in range(2)]
        [[0, 1], [2, 3, 4]]
    """
    return range(rank * n_batches // world, (rank + 1) * n_batches // world)


def gather_batches(n_batches: int, fn: Callable[[int], T]) -> list[T]:
    """``[fn(k) for k in range(n_batches)]``, each rank computing its :func:`shard` and
    every rank receiving all of them in batch order (``all_gather_object``).

    ``fn`` must return a picklable object (CPU tensors, lists, numbers).
    """
    rank, world = rank_and_world()
    mine = [fn(k) for k in shard(n_batches, rank, world)]
    if world == 1:
        return mine
    parts: list[list[T] | None] = [None] * world
    dist.all_gather_object(parts, mine)
    return [item for part in parts for item in (part or [])]


def share_from_main(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (``broadcast_object_list``); ``obj`` itself in one
    process."""
    _, world = rank_and_world()
    if world == 1:
        return obj
    box: list[T | None] = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def local_device(device: torch.device) -> torch.device:
    """``cuda`` without an index becomes ``cuda:LOCAL_RANK`` inside a process group (each
    rank its own GPU); any other device is kept."""
    _, world = rank_and_world()
    if world > 1 and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_env(device: str | torch.device = "auto") -> torch.device:
    """Join the process group ``torchrun`` describes, if any, and return this rank's device.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) and no group yet: the
    default group is initialised (``nccl`` on CUDA, ``gloo`` on the CPU, timeout
    :data:`TIMEOUT`), the rank's GPU selected, and the group destroyed at exit. Otherwise
    nothing changes.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        The device this rank evaluates on (:func:`local_device`).
    """
    dev = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = dev.type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=TIMEOUT)
        atexit.register(_destroy)
    return local_device(dev)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def concat(parts: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The concatenation of gathered per-batch tensors (an empty one of ``dtype`` for none)."""
    return torch.cat(list(parts)) if parts else torch.empty(0, dtype=dtype)
