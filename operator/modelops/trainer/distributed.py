"""The process group of one training worker: backend, device, and the few collectives used.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for
each worker; :func:`init_distributed` turns them into a process group.
Backend choice: NCCL when CUDA is available (one GPU per local rank), gloo
on CPU. Everything here is called by every rank, in the same order.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# A rank that waits longer than this in a collective has lost its peers; fail
# instead of hanging until the Job's activeDeadlineSeconds.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_backend(cuda_available: bool) -> str:
    """NCCL for GPUs (gloo's GPU collectives are far slower), gloo for CPU training."""
    return "nccl" if cuda_available else "gloo"


def ranks_from_env(env: Mapping[str, str]) -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun exported them."""
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as err:
        raise RuntimeError(f"not a torchrun worker (RANK/WORLD_SIZE): {err}") from None
    if not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return rank, world, local


def init_distributed(env: Mapping[str, str] | None = None) -> DistContext:
    """Join the process group torchrun prepared; returns this worker's context."""
    rank, world, local = ranks_from_env(os.environ if env is None else env)
    cuda = torch.cuda.is_available()
    backend = choose_backend(cuda)
    if cuda:
        # Before init: NCCL binds each process to the current device.
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    context = DistContext(rank, world, local, backend, device)
    if context.is_main:
        log.info("process group: backend=%s device=%s world_size=%d", backend, device, world)
    return context


def leave_together() -> None:
    """Wait until every rank is done before any of them tears its process group down.

    Rank 0 exports and publishes after the last epoch while the others have
    nothing left to do. A rank that destroyed its gloo group and exited then
    was once seen aborting in gloo's threads (SIGABRT, "terminate called
    without an active exception") while its peer was still connected, which
    torchrun turns into a failed run. Only on success: after a failure the
    agent stops the other workers anyway.
    """
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    """Release the process group while the interpreter is fully alive.

    DDP's reducer holds the group through reference cycles; collecting them
    here frees gloo's worker threads now instead of during interpreter
    finalization, where freeing tensors they hold can abort the process.
    """
    gc.collect()
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(context: DistContext, values: Sequence[float | torch.Tensor]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (one collective for the whole list)."""
    tensor = torch.stack(
        [torch.as_tensor(v, dtype=torch.float64, device=context.device) for v in values]
    )
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.tolist()]


def broadcast_from_main(context: DistContext, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (pickled; for small state such as a checkpoint)."""
    box = [value if context.is_main else None]
    dist.broadcast_object_list(box, src=0, device=context.device)
    return box[0]


def gather_to_main(context: DistContext, value: Any) -> list[Any] | None:
    """Every rank's ``value`` as a list on rank 0; None elsewhere."""
    # all_gather rather than gather_object: gloo and NCCL both support it.
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered if context.is_main else None
