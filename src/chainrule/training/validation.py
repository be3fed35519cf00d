"""Mean validation NLL of a model over a whole dataset (batched, eval mode, no grad)."""

from __future__ import annotations

import torch
from torch import nn

from chainrule.data.base import ImageDataset
from chainrule.training.distributed import DistContext


def conditioning(model: nn.Module, y: torch.Tensor | None) -> torch.Tensor | None:
    """Labels to pass as ``cond``: only to class-conditional models."""
    return y if getattr(model, "num_classes", 0) > 0 else None


@torch.no_grad()
def mean_nll(model: nn.Module, dataset: ImageDataset, batch_size: int, device: torch.device,
             ctx: DistContext | None = None) -> float:
    """Mean negative log-likelihood in nats per example; under torchrun each rank scores a contiguous shard
    and the sums are all-reduced."""
    ctx = ctx or DistContext()
    was_training = model.training
    model.eval()
    try:
        idx = ctx.shard(torch.arange(len(dataset)))
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, len(idx), batch_size):
            x, y = dataset.get(idx[start:start + batch_size])
            x = x.to(device, non_blocking=True)
            cond = conditioning(model, y)
            if cond is not None:
                cond = cond.to(device, non_blocking=True)
            total += -model.log_prob(x, cond).double().sum()
        ctx.all_reduce_sum(total)
    finally:
        model.train(was_training)
    return float(total.item()) / len(dataset)
