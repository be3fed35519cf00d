"""Which validation examples the trainer's evaluations score: the whole split, or one fixed seeded subset."""

from __future__ import annotations

import torch
from torch import Tensor

#: keeps the subset's stream apart from the per-epoch permutations, which are seeded from the same run seed
_SALT = 0x5EED_E7A1


def eval_indices(num_examples: int, max_examples: int, seed: int) -> Tensor | None:
    """Sorted indices of ``max_examples`` of ``range(num_examples)`` drawn from ``seed``; None = the whole split
    (``max_examples`` 0, or at least the split's size).

    A pure function of its arguments, drawn from its own generator: every evaluation of a run scores the same
    examples (so the curve, early stopping and best-weights selection compare like with like), every process
    under torchrun draws the same subset, a resumed run draws it again identically, and the training RNG
    streams are not touched.
    """
    if max_examples <= 0 or max_examples >= num_examples:
        return None
    g = torch.Generator(device="cpu").manual_seed((seed * 1_000_003 + _SALT) % (2**63 - 1))
    return torch.randperm(num_examples, generator=g)[:max_examples].sort().values
