"""Torch DDP plumbing: the process group, which rank does what, and agreeing across ranks.

A run started by ``torchrun`` (or ``sarcube train --nproc N``, which goes
through the same elastic launcher) finds ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
in its environment: :func:`init` joins the process group (NCCL on CUDA, gloo
on the CPU) and pins each rank to its GPU. Without them everything here is a
no-op for one process, so a single-process run takes the same code path.
Torch only: nothing here reads files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
import torch.distributed as dist

#: environment variables torch's elastic launcher sets for every rank
RANK_ENV, WORLD_SIZE_ENV, LOCAL_RANK_ENV, LOCAL_WORLD_SIZE_ENV = "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"
#: the rank that reads shared statistics first and alone writes files
MAIN_RANK = 0

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a (possibly one-process) run."""

    #: this process's global rank
    rank: int = 0
    #: processes in the run
    world_size: int = 1
    #: rank on this node (its GPU index on CUDA)
    local_rank: int = 0
    #: whether :func:`init` started the process group (and :func:`shutdown` ends it)
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the one rank that writes checkpoints, metrics and plots."""
        return self.rank == MAIN_RANK


def ranks_from_env() -> Ranks:
    """The ranks the launcher gave this process (one process when it gave none)."""
    return Ranks(
        int(os.environ.get(RANK_ENV, 0)), int(os.environ.get(WORLD_SIZE_ENV, 1)), int(os.environ.get(LOCAL_RANK_ENV, 0))
    )


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def init(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group when launched as several ranks; returns the ranks and this rank's device.

    On CUDA each rank takes GPU ``LOCAL_RANK``; on the CPU each rank gets its
    share of the node's cores for intra-op threads (ranks would oversubscribe them otherwise).
    A process group the caller already started is used as it is, and left to the caller to end.
    """
    ranks = ranks_from_env()
    if not ranks.distributed:
        return ranks, device
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    else:
        per_node = int(os.environ.get(LOCAL_WORLD_SIZE_ENV, ranks.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
    if dist.is_initialized():
        return ranks, device
    dist.init_process_group(backend_for(device), device_id=device if device.type == "cuda" else None)
    return replace(ranks, owns_group=True), device


def shutdown(ranks: Ranks) -> None:
    """Wait for every rank (the main rank's files are all written then), and end the group :func:`init` started."""
    if not ranks.distributed or not dist.is_initialized():
        return
    dist.barrier()
    if ranks.owns_group:
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (gradients all-reduced after each backward) when distributed."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def from_main(ranks: Ranks, compute: Callable[[], T]) -> T:
    """``compute()`` on the main rank only, its result sent to every rank (e.g. normalisation statistics)."""
    if not ranks.distributed:
        return compute()
    box: list[Any] = [compute() if ranks.is_main else None]
    dist.broadcast_object_list(box, src=MAIN_RANK)
    return box[0]


def gather(ranks: Ranks, value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank (e.g. the pairs each rank finished)."""
    if not ranks.distributed:
        return [value]
    box: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(box, value)
    return box


def barrier(ranks: Ranks) -> None:
    """Wait until every rank is here (e.g. rank 0 made what the others write into)."""
    if ranks.distributed:
        dist.barrier()


def dealt(items: Sequence[T], ranks: Ranks) -> list[T | None]:
    """This rank's item in each round of dealing ``items`` out round-robin: item ``r * world_size + rank``
    in round ``r``, None where the last round runs out. The ranks' items are disjoint and cover ``items``,
    and every rank takes as many rounds (collectives between rounds pair up)."""
    rounds = -(-len(items) // ranks.world_size)
    picks = (r * ranks.world_size + ranks.rank for r in range(rounds))
    return [items[i] if i < len(items) else None for i in picks]


def min_over_ranks(ranks: Ranks, value: int) -> int:
    """The smallest ``value`` of all ranks (e.g. batches each rank can take, so all take as many)."""
    if not ranks.distributed:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def mean_over_ranks(ranks: Ranks, value: float) -> float:
    """The mean of ``value`` over all ranks (e.g. each shard's training loss)."""
    if not ranks.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / ranks.world_size


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sync_buffers(ranks: Ranks, model: torch.nn.Module) -> None:
    """Give every rank the main rank's buffers (BatchNorm statistics drift apart on different shards)."""
    if not ranks.distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=MAIN_RANK)


__all__ = [
    "MAIN_RANK",
    "Ranks",
    "backend_for",
    "barrier",
    "dealt",
    "from_main",
    "gather",
    "init",
    "mean_over_ranks",
    "min_over_ranks",
    "ranks_from_env",
    "shutdown",
    "sync_buffers",
    "wrap",
]
