"""Sampling one position's values from head parameters in numpy (categorical, Bernoulli, logistic mixture).

Each function takes the parameters of one position for a batch, ``(B, P)``, and returns levels ``(B, C)``,
following the matching head in :mod:`chainrule.core.heads` (temperature scales logits / logistic scales).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.edge.errors import EdgeError
from chainrule.edge.sampling import softmax

MIN_LOG_SCALE = -7.0


def _categorical(params: np.ndarray, channels: int, head: dict[str, Any], temperature: float,
                 rng: np.random.Generator) -> np.ndarray:
    logits = params.reshape(params.shape[0], channels, int(head["levels"])).astype(np.float64)
    if temperature <= 0:
        return logits.argmax(-1)
    cdf = np.cumsum(softmax(logits / temperature), axis=-1)
    u = rng.random((*cdf.shape[:-1], 1)) * cdf[..., -1:]
    return np.minimum((cdf <= u).sum(-1), cdf.shape[-1] - 1)


def _bernoulli(params: np.ndarray, channels: int, head: dict[str, Any], temperature: float,
               rng: np.random.Generator) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-params.astype(np.float64) / max(temperature, 1e-8)))
    return (rng.random(p.shape) < p).astype(np.int64)


def _logistic_mixture(params: np.ndarray, channels: int, head: dict[str, Any], temperature: float,
                      rng: np.random.Generator) -> np.ndarray:
    m, c, levels = int(head["num_mix"]), channels, int(head["levels"])
    b = params.shape[0]
    p = params.astype(np.float64)
    logits, means, log_scales, coeffs = np.split(p, np.cumsum([m, c * m, c * m]), axis=1)
    means, log_scales = means.reshape(b, c, m), np.maximum(log_scales.reshape(b, c, m), MIN_LOG_SCALE)
    coeffs = np.tanh(coeffs.reshape(b, c * (c - 1) // 2, m))
    if temperature <= 0:
        comp = logits.argmax(1)
    else:
        cdf = np.cumsum(softmax(logits / temperature, axis=1), axis=1)
        comp = np.minimum((cdf <= rng.random((b, 1)) * cdf[:, -1:]).sum(1), m - 1)
    rows = np.arange(b)
    mu, log_s, co = means[rows, :, comp], log_scales[rows, :, comp], coeffs[rows, :, comp]
    if temperature > 0:
        eps = np.finfo(np.float32).eps
        u = np.clip(rng.random(mu.shape), eps, 1 - eps)
        mu = mu + np.log(u / (1 - u)) * np.exp(log_s) * temperature
    out = np.zeros((b, c), dtype=np.int64)
    values = np.zeros((b, c))
    for i in range(c):  # R, then G | R, then B | R, G
        start = i * (i - 1) // 2
        z = mu[:, i] + sum(co[:, start + j] * values[:, j] for j in range(i))
        q = np.round((np.clip(z, -1.0, 1.0) + 1.0) * ((levels - 1) / 2.0))
        out[:, i] = q.astype(np.int64)
        values[:, i] = q * (2.0 / (levels - 1)) - 1.0
    return out


SAMPLERS = {"categorical": _categorical, "bernoulli": _bernoulli, "logistic_mixture": _logistic_mixture}


def sample_position(params: np.ndarray, channels: int, head: dict[str, Any], temperature: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Levels ``(B, C)`` drawn from one position's parameters ``(B, P)``."""
    sampler = SAMPLERS.get(str(head.get("type")))
    if sampler is None:
        raise EdgeError(f"the edge runtime cannot sample a {head.get('type')!r} head")
    return sampler(params, channels, head, temperature, rng)
