"""DistributedDataParallel plumbing: set up from ``torchrun``'s environment, ranks, barriers, gathering.

Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) everything here is a no-op for a
single process, so the trainer has one code path.

Example:
    >>> device = setup()  # under torchrun: joins the process group (nccl on GPU, gloo on CPU)
    >>> rank(), world_size()
    (0, 1)
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def setup() -> torch.device:
    """Joins the process group if launched by ``torchrun``; returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def teardown() -> None:
    """Leaves the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Waits for every process (no-op for one)."""
    if dist.is_initialized():
        dist.barrier()


def sync_buffers(module: torch.nn.Module) -> None:
    """Copies rank 0's buffers to every process.

    DDP broadcasts buffers at the start of each forward, so after the last training step each rank
    holds BatchNorm running statistics of its own batches; evaluation and checkpoints need one model.
    """
    if dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def gather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def mean(value: float) -> float:
    """The mean of ``value`` over all processes."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.item() / world_size()
