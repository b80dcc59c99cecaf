"""Distributed training under ``torchrun``: process group, sharding, reductions.

``torchrun --nproc_per_node=N`` (and multi-node with ``--nnodes``/``--rdzv_endpoint``)
sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. :func:`init_distributed` joins the
process group (NCCL on CUDA, gloo on the CPU). The training loop then takes the same
global batch on every rank, draws its randomness once for the global batch, and
keeps slice ``rank`` of both; gradients are averaged by DistributedDataParallel, so a
run on N processes equals a single-process run with the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "all_reduce_sum", "init_distributed", "shard"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device, backend: str | None = None) -> DistContext:
    """Join the process group described by torchrun's variables, if there is one.

    Without ``WORLD_SIZE`` (or with 1) this is a single-process run and nothing is
    initialised. The backend defaults to NCCL for CUDA devices and gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        chosen = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend=chosen)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank)


def shard(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (axis 0)."""
    if not ctx.enabled:
        return t
    return torch.tensor_split(t, ctx.world_size)[ctx.rank]


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``t`` over ranks (in place, returned); a no-op in a single process."""
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
