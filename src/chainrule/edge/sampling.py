"""Next-token choice in numpy, with the same rules as :mod:`chainrule.modalities.text.generation.processors`.

Temperature 0 is greedy (argmax, lowest id on ties); otherwise logits are divided by the temperature,
filtered by top-k (exactly k kept, lower ids first on ties) and top-p (smallest most-likely set reaching
mass p), and one token is drawn per row from their softmax.
"""

from __future__ import annotations

import numpy as np

from chainrule.core.limits import check_temperature, check_top_k, check_top_p
from chainrule.edge.errors import EdgeError


def check_options(temperature: float, top_k: int | None, top_p: float) -> None:
    """:class:`EdgeError` for out-of-range sampling options (the library's rules, :mod:`chainrule.core.limits`)."""
    check_temperature(temperature, EdgeError)
    check_top_k(top_k, EdgeError, name="top-k")
    check_top_p(top_p, EdgeError, name="top-p")


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - np.max(logits, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def top_k_filter(logits: np.ndarray, k: int | None) -> np.ndarray:
    if not k or k >= logits.shape[1]:
        return logits
    order = np.argsort(-logits, axis=1, kind="stable")
    keep = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :k], True, axis=1)
    return np.where(keep, logits, -np.inf)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    if p >= 1:
        return logits
    probs = softmax(logits, axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, axis=1)
    drop_sorted = (np.cumsum(sorted_probs, axis=1) - sorted_probs) >= p
    drop_sorted[:, 0] = False
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=1)
    return np.where(drop, -np.inf, logits)


def choose_tokens(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Next token ids ``(B,)`` from logits ``(B, V)``."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return logits.argmax(axis=1).astype(np.int64)
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    cdf = np.cumsum(softmax(logits, axis=1), axis=1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), logits.shape[1] - 1).astype(np.int64)
