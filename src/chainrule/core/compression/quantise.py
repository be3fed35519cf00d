"""Deterministic quantisation of a conditional distribution to the integer frequencies an entropy coder uses.

Encoder and decoder must use bit-identical probabilities, or decoding derails. Both compute the model's
log-probabilities the same way (same code path, batch shape and thread count; see
:func:`chainrule.core.compression.coder.fixed_threads`), and this function turns them into integers with
float64 arithmetic whose result depends only on its input:

* ``p = softmax(log-probs)`` in float64 (a row with NaN or +inf, or with no finite entry, becomes uniform);
* ``q_k = floor(p_k * (2^24 - K))``; the ``2^24 - K - sum(q)`` units left over go to the most probable symbol
  (the lowest index among ties);
* symbol ``k`` is coded with probability ``(q_k + 1) / 2^24``: every symbol keeps at least ``2^-24``, so any
  input can be coded whatever the model says, at a cost of at most 24 bits per symbol.

The ``+ 1`` is added by the coder: ``constriction``'s lazy categorical model maps float weights ``w`` summing to
``2^24 - K`` to exactly ``w_k + 1`` (its scale is then 1 and integer sums below ``2^24`` are exact in float).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: bits of probability resolution: frequencies are integers out of ``2^PRECISION`` (constriction's default)
PRECISION = 24
TOTAL = 1 << PRECISION


def frequencies(log_probs: Tensor | np.ndarray) -> np.ndarray:
    """``(B, K)`` log-probabilities (any per-row offset) -> ``(B, K)`` float64 integer weights ``q`` with
    ``sum(q) = 2^24 - K`` per row; symbol ``k`` is coded with probability ``(q_k + 1) / 2^24``."""
    if isinstance(log_probs, Tensor):
        log_probs = log_probs.detach().to("cpu", torch.float64).numpy()
    lp = np.array(log_probs, dtype=np.float64, ndmin=2)
    rows, k = lp.shape
    bad = np.isnan(lp).any(1) | (lp == np.inf).any(1) | ~np.isfinite(lp).any(1)
    lp[bad] = 0.0
    p = np.exp(lp - lp.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    free = TOTAL - k
    q = np.floor(p * free)
    q[np.arange(rows), p.argmax(1)] += free - q.sum(1)
    return q


def information_bits(weights: np.ndarray, symbols: np.ndarray) -> float:
    """``sum -log2 p`` of ``symbols`` under the quantised probabilities ``(weights + 1) / 2^24``: what an ideal
    coder spends on them, and what the range coder spends within a few bytes."""
    chosen = weights[np.arange(len(symbols)), symbols]
    return float(np.sum(PRECISION - np.log2(chosen + 1.0)))
