"""Mean validation NLL of a model, sharded across ranks under torchrun."""

from __future__ import annotations

import torch
from torch import nn

from chainrule.core.evaluation.metrics import IndexedDataset, total_nll
from chainrule.core.training.distributed import DistContext


def mean_nll(model: nn.Module, dataset: IndexedDataset, batch_size: int, device: torch.device,
             ctx: DistContext | None = None) -> float:
    """Mean negative log-likelihood in nats per example; under torchrun each rank scores a contiguous shard
    and the sums are all-reduced."""
    ctx = ctx or DistContext()
    total = total_nll(model, dataset, ctx.shard(torch.arange(len(dataset))), batch_size, device)
    ctx.all_reduce_sum(total)
    return float(total.item()) / len(dataset)
