"""Training on several processes with `torchrun`: DistributedDataParallel over gloo (CPU) or nccl (CUDA).

`torchrun --nproc_per_node N -m train ...` starts N copies of `python -m train`, each told its RANK and
WORLD_SIZE in the environment. Every rank builds the same data and the same seeded model; each step, rank r
takes every N-th identity batch of the epoch (the global batch is N times the preset's), DDP averages the
gradients, and the weights stay identical on every rank. Validation runs on every rank and rank 0's figures
decide (early stopping, best.pt), so all ranks take the same path; only rank 0 writes files. Without torchrun
(no WORLD_SIZE, or 1) nothing here runs: a single process trains exactly as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from verify_cli.errors import FaceverifyError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank `rank` of `world` (0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local: int = 0  # the rank on this machine: the CUDA device it uses

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, history, plots and results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


SINGLE = Ranks()


def start() -> Ranks:
    """Join the process group torchrun set up (gloo on the CPU, nccl on CUDA); a single process joins nothing."""
    try:
        world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise FaceverifyError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them)") from None
    if world <= 1:
        return SINGLE
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    try:
        dist.init_process_group("nccl" if cuda else "gloo")
    except (RuntimeError, ValueError) as exc:
        raise FaceverifyError(f"torchrun: cannot join the process group ({str(exc).splitlines()[0]})") from None
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def stop(ranks: Ranks) -> None:
    """Leave the process group (a no-op for a single process)."""
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def my_share(batches: list[Any], ranks: Ranks) -> list[Any]:
    """Rank r's batches of an epoch: every world-th from r, all ranks the same count (DDP steps in lockstep)."""
    per_rank = len(batches) // ranks.world
    return batches[ranks.rank : per_rank * ranks.world : ranks.world]


def sum_over_ranks(values: list[float], ranks: Ranks) -> list[float]:
    """Element-wise sums of some numbers over all ranks (the numbers themselves for a single process)."""
    if not ranks.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def from_main(obj: Any, ranks: Ranks) -> Any:
    """Rank 0's `obj` on every rank (a picklable object; the object itself for a single process)."""
    if not ranks.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def share_buffers(module: torch.nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank: each rank updated its own in training."""
    if ranks.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def weights_agree(module: torch.nn.Module, ranks: Ranks, buffers: bool = True) -> bool:
    """Whether every rank holds exactly rank 0's parameters, and buffers (True for a single process). Between
    steps only the parameters agree: each rank's BatchNorm statistics saw its own batch (`share_buffers`)."""
    if not ranks.distributed:
        return True
    mismatch = torch.zeros(1, device=next(module.parameters()).device)
    for tensor in [*module.parameters(), *(module.buffers() if buffers else [])]:
        mine = tensor.detach().clone()
        dist.broadcast(mine, src=0)
        mismatch += float(not torch.equal(mine, tensor.detach()))
    dist.all_reduce(mismatch)
    return bool(mismatch.item() == 0)
