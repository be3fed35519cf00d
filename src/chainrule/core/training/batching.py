"""Which training examples each step sees: a per-epoch permutation that depends only on (seed, epoch)."""

from __future__ import annotations

import torch
from torch import Tensor


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """A permutation of ``range(n)`` for ``epoch``; identical in every process and after a resume."""
    g = torch.Generator(device="cpu").manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=g)


def batch_at(perm: Tensor, batch_size: int, position: int) -> Tensor:
    """The ``position``-th global batch of an epoch (incomplete tail batches are never used)."""
    return perm[position * batch_size:(position + 1) * batch_size]
