"""torch.distributed for the trainer: set-up from torchrun's environment, DDP or FSDP2.

Launch with torchrun (``torchrun --nproc-per-node 8 training/train.py --config c.toml``;
multi-node through its rendezvous, or ``srun`` under SLURM, see docs/training.md). Without
torchrun's variables the trainer runs as one process and nothing is initialised. The
backend is NCCL on GPUs and gloo on the CPU (how the tests run 2 processes here).

- ``ddp``: every rank holds the whole model; gradients are averaged across ranks.
- ``fsdp2``: ``fully_shard`` on every transformer block, then on the whole model: each
  rank holds 1/N of the weights, gradients and optimizer state (the 14B model on 80 GB GPUs).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None, timeout_s: float = 1800) -> DistEnv:
    """The process's place in the job (from torchrun's RANK, WORLD_SIZE, LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    dev = torch.device("cuda", local) if cuda else torch.device(device or "cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s),
                                **({"device_id": dev} if cuda else {}))
    return DistEnv(rank, world, local, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def mean_across_ranks(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """True on every rank if it is true on any (e.g. a stop signal seen by one rank)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def wrap(module: nn.Module, blocks: nn.ModuleList, strategy: str, env: DistEnv) -> nn.Module:
    """``module`` ready for distributed training (unchanged for one process with DDP)."""
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for block in blocks:
            fully_shard(block)
        fully_shard(module)
        return module
    if not env.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def no_gradient_sync(wrapped: nn.Module, sync: bool):
    """Context for one micro-batch of gradient accumulation: reduce gradients only on the last."""
    if sync:
        return contextlib.nullcontext()
    if hasattr(wrapped, "no_sync"):  # DDP
        return wrapped.no_sync()
    if hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2
        @contextlib.contextmanager
        def deferred():
            wrapped.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                wrapped.set_requires_gradient_sync(True)
        return deferred()
    return contextlib.nullcontext()


def unwrap(wrapped: nn.Module) -> nn.Module:
    """The module inside DDP / torch.compile wrappers (FSDP2 shards in place)."""
    while True:
        inner = getattr(wrapped, "module", None) or getattr(wrapped, "_orig_mod", None)
        if inner is None:
            return wrapped
        wrapped = inner
