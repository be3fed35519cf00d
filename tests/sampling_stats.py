"""How far an empirical distribution may honestly lie from the true one: a total-variation bound from the sample
size, used by the tests that check what a sampler draws.

Derivation, for ``n`` independent draws over ``k`` outcomes with true probabilities ``p`` and frequencies ``f``,
``TV = 1/2 sum_j |f_j - p_j|``:

- mean: ``E|f_j - p_j| <= sqrt(Var f_j) = sqrt(p_j (1 - p_j) / n)``, and by Cauchy-Schwarz
  ``sum_j sqrt(p_j (1 - p_j)) <= sqrt(k sum_j p_j (1 - p_j)) <= sqrt(k - 1)``, so ``E TV <= sqrt((k - 1) / n) / 2``;
- spread: changing one draw moves ``1/n`` of mass between two outcomes, so TV changes by at most ``1/n``;
  McDiarmid's inequality gives ``P(TV >= E TV + t) <= exp(-2 n t^2)``, i.e. ``t = sqrt(ln(1/delta) / (2n))``
  for a false-failure probability ``delta``.

Hence ``TV <= sqrt((k - 1) / n) / 2 + sqrt(ln(1/delta) / (2n))`` except with probability ``delta``, whatever the
seed. With ``delta = 1e-9`` a test using several such checks still fails by chance less than once in 10^8 runs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: false-failure probability of one bound
DELTA = 1e-9


def tv_bound(n: int, k: int, delta: float = DELTA) -> float:
    """Total variation that ``n`` draws over ``k`` outcomes exceed with probability below ``delta``."""
    return math.sqrt((k - 1) / n) / 2 + math.sqrt(math.log(1 / delta) / (2 * n))


def frequencies(codes: Tensor, k: int) -> Tensor:
    """Empirical distribution (float64, ``(k,)``) of integer outcome codes in ``0 .. k-1``."""
    return torch.bincount(codes.reshape(-1), minlength=k).double() / codes.numel()


def total_variation(p: Tensor, q: Tensor) -> float:
    return float((p.double() - q.double()).abs().sum() / 2)
