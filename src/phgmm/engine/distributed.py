"""Multi-process helpers on PyTorch's own engine (torchrun + torch.distributed).

``torchrun`` sets RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; :func:`init` reads
them. A plain ``python``/``phgmm`` process is a world of one and every helper is then a no-op.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = [
    "init",
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "all_reduce_sum",
    "all_gather_tensors",
    "broadcast_buffers",
    "cleanup",
    "local_rank",
]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def init(device: str = "auto") -> torch.device:
    """Join the process group when launched by torchrun; return this process's device.

    NCCL on CUDA, gloo on CPU. ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (with
    torchrun, ``cuda`` means this process's LOCAL_RANK GPU).
    """
    from .precision import check_device

    dev = check_device(device)  # a device that cannot serve is refused here
    want_cuda = dev.type == "cuda"
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not is_distributed():
        backend = "nccl" if want_cuda else "gloo"
        if want_cuda:
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    if want_cuda and (is_distributed() or dev.index is None):
        return torch.device("cuda", local_rank() if is_distributed() else torch.cuda.current_device())
    return dev


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_tensors(t: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the tensors of every rank; their first dimensions may differ."""
    if not is_distributed():
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    largest = int(max(s.item() for s in sizes))
    padded = torch.zeros((largest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    out = [torch.zeros_like(padded) for _ in range(world_size())]
    dist.all_gather(out, padded)
    return torch.cat([o[: int(s.item())] for o, s in zip(out, sizes, strict=True)])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP syncs buffers at the start of each forward, so after the last step of an epoch every
    rank holds statistics of its own last batch; evaluation and checkpoints need one model.
    """
    if is_distributed():
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
