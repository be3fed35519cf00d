"""Exact log-likelihood of a dataset: nats per example and bits per dimension."""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from chainrule.core.contract import Condition


class IndexedDataset(Protocol):
    """What training and evaluation need of a split: indexed examples with their conditioning.

    ``get`` returns ``(x, cond)``: class labels (or None) for images and text, a :class:`Condition` for series
    windows. The trainer draws a seeded permutation of ``range(len(ds))`` per epoch and tells the dataset the
    epoch first (``set_epoch``, for per-epoch randomness such as dynamic binarisation).
    """

    labels: Tensor | None
    event_shape: tuple[int, ...]

    def __len__(self) -> int: ...
    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | Condition | None]: ...
    def set_epoch(self, epoch: int) -> None: ...
    def describe(self) -> str: ...


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
    """Convert nats per example to bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))


def conditioning(model: nn.Module, y: Any) -> Tensor | Condition | None:
    """What to pass as ``cond``: a :class:`Condition` as it is; class labels only to class-conditional models."""
    if isinstance(y, Condition):
        return y
    return y if getattr(model, "num_classes", 0) > 0 else None


@torch.no_grad()
def total_nll(model: nn.Module, data: IndexedDataset, indices: Tensor, batch_size: int,
              device: torch.device) -> Tensor:
    """Sum of ``-log p(x)`` in nats over ``data[indices]`` (eval mode, batched), as a float64 scalar."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for start in range(0, len(indices), batch_size):
            x, y = data.get(indices[start:start + batch_size])
            cond = conditioning(model, y)
            total += -model.log_prob(x.to(device), None if cond is None else cond.to(device)).double().sum()
    finally:
        model.train(was_training)
    return total


def dataset_nll(model: nn.Module, data: IndexedDataset, batch_size: int = 256,
                limit: int | None = None) -> dict[str, float]:
    """Mean negative log-likelihood of a whole split (or of its first ``limit`` examples), in nats per example
    and bits/dim; ``examples`` says how many were scored."""
    n = len(data) if limit is None else min(len(data), limit)
    if n == 0:
        raise ValueError("cannot evaluate on an empty split")
    device = next(iter(model.parameters())).device
    nll = total_nll(model, data, torch.arange(n), batch_size, device).item() / n
    return {"nll": nll, "bpd": bits_per_dim(nll, model.num_dims), "examples": n}
