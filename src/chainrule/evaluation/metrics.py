"""Exact test log-likelihood: nats per example and bits per dimension."""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from chainrule.models.base import AutoregressiveModel


class IndexedDataset(Protocol):
    def __len__(self) -> int: ...
    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]: ...


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
    """Convert nats per example to bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))


@torch.no_grad()
def dataset_nll(model: AutoregressiveModel, data: IndexedDataset, batch_size: int = 256,
                max_examples: int | None = None) -> dict[str, float]:
    """Mean negative log-likelihood of ``data`` under ``model`` (eval mode), in nats and bits/dim."""
    was_training = model.training
    model.eval()
    n = len(data) if max_examples is None else min(len(data), max_examples)
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    total = 0.0
    device = model.device
    try:
        for start in range(0, n, batch_size):
            x, y = data.get(torch.arange(start, min(start + batch_size, n)))
            cond = y.to(device) if (y is not None and model.num_classes > 0) else None
            total += -model.log_prob(x.to(device), cond).double().sum().item()
    finally:
        model.train(was_training)
    nll = total / n
    return {"nll": nll, "bpd": bits_per_dim(nll, model.num_dims), "examples": n}
