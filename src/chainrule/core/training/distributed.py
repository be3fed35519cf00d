"""Multi-process data parallelism under ``torchrun``; a no-op context for a plain single process.

Under torchrun (``WORLD_SIZE > 1``) the process group is initialised (gloo on CPU, nccl on CUDA), every
rank takes its contiguous slice of the same global batch, gradients are averaged by
``DistributedDataParallel``, and only rank 0 writes files or shows progress.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from chainrule.core.errors import ConfigError


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in a single process and on rank 0 under torchrun (which sets RANK): the one that writes run files."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class DistContext:
    """Rank information plus the few collectives the trainer needs (identity when single-process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shard(self, indices: Tensor) -> Tensor:
        """This rank's contiguous slice of ``indices``."""
        if not self.enabled:
            return indices
        return torch.tensor_split(indices, self.world_size)[self.rank]


def resolve_device(preference: str, ctx: DistContext) -> torch.device:
    """``auto`` -> CUDA if available else CPU; under torchrun each rank uses ``cuda:LOCAL_RANK``."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device is cuda but no CUDA device is available; use device: auto or cpu")
        if ctx.enabled or device.index is None:
            device = torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


@contextmanager
def distributed_context(device_preference: str) -> Iterator[tuple[DistContext, torch.device]]:
    """Yield ``(ctx, device)``; under torchrun initialise (and finally destroy) the process group."""
    world = env_world_size()
    if world <= 1:
        ctx = DistContext()
        yield ctx, resolve_device(device_preference, ctx)
        return
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    ctx = DistContext(rank=int(os.environ.get("RANK", "0")), world_size=world,
                      local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_preference, ctx)
    owns = not dist.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, **({"device_id": device} if device.type == "cuda" else {}))
    try:
        yield ctx, device
    finally:
        if owns and dist.is_initialized():
            dist.destroy_process_group()


class LossModule(nn.Module):
    """``forward(x, cond) = model.loss(x, cond)``, so DDP's gradient hooks see the training objective."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.model.loss(x, cond)


def wrap_for_training(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module to call in the training step: DDP-wrapped under torchrun, plain otherwise."""
    loss_module = LossModule(model)
    if not ctx.enabled:
        return loss_module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(loss_module, device_ids=ids)
