"""Mean validation NLL of a model, sharded across ranks under torchrun."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chainrule.core.evaluation.metrics import IndexedDataset, total_nll
from chainrule.core.training.distributed import DistContext


def mean_nll(model: nn.Module, dataset: IndexedDataset, batch_size: int, device: torch.device,
             ctx: DistContext | None = None, indices: Tensor | None = None) -> float:
    """Mean negative log-likelihood in nats per example over ``dataset[indices]`` (None = every example); under
    torchrun each rank scores a contiguous shard of the same indices and the sums are all-reduced."""
    ctx = ctx or DistContext()
    indices = torch.arange(len(dataset)) if indices is None else indices
    total = total_nll(model, dataset, ctx.shard(indices), batch_size, device)
    ctx.all_reduce_sum(total)
    return float(total.item()) / len(indices)
