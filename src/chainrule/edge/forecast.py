"""Forecasting from an exported forecaster step graph, in numpy (mirrors :mod:`chainrule.modalities.series`).

Inputs follow :mod:`chainrule.modalities.series.features`: the last ``history`` points (left-padded with missing
values), a scale from the last ``context`` of them, forward-filled scaled values with observed flags for
each lag, the precomputed calendar rows and ``log1p(scale)``. The history is fed one step at a time, the
cache is copied to every sample path, then each forecast step is drawn from the head and fed back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.core.limits import check_count, check_series
from chainrule.edge.errors import EdgeError
from chainrule.edge.model import EdgeModel

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_MIN_SIGMA = 1e-3


def context_scale(y: np.ndarray, context: int, offset: float) -> float:
    """``offset + mean |y|`` over the observed values of the last ``context`` points (all points when none
    is observed there); 1 when that is 0 or undefined."""
    def mean_abs(v: np.ndarray) -> tuple[float, int]:
        obs = np.isfinite(v)
        return float(np.abs(v[obs]).sum(dtype=np.float32) / max(int(obs.sum()), 1)), int(obs.sum())

    m_ctx, n_ctx = mean_abs(y[-context:] if context > 0 else y[:0])
    s = (m_ctx if n_ctx > 0 else mean_abs(y)[0]) + offset
    return s if math.isfinite(s) and s > 0 else 1.0


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def sample_head(head: str, raw: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of raw parameters ``(B, P)`` in original units (see ``chainrule.core.heads.continuous``)."""
    raw = raw.astype(np.float64)
    if head == "squared_error":
        return raw[:, 0] * scale
    if head in ("gaussian", "student_t"):
        loc, sd = raw[:, 0] * scale, (softplus(raw[:, 1]) + _MIN_SIGMA) * scale
        noise = rng.standard_normal(len(raw)) if head == "gaussian" else rng.standard_t(2.0 + softplus(raw[:, 2]))
        return loc + sd * noise
    if head == "negative_binomial":
        mu = softplus(raw[:, 0]) * scale + 1e-6
        r = 1.0 / (softplus(raw[:, 1]) / math.sqrt(scale) + 1e-6)
        return rng.poisson(rng.gamma(r, mu / r)).astype(np.float64)  # Gamma-Poisson mixture
    raise EdgeError(f"the edge runtime cannot sample a {head!r} forecast head")


def parse_history(text: str) -> list[float | None]:
    """``"1,2,,4"`` -> ``[1.0, 2.0, None, 4.0]`` (empty, ``nan``, ``null`` or ``none`` = missing)."""
    out: list[float | None] = []
    for item in text.split(","):
        item = item.strip()
        if item.lower() in ("", "nan", "null", "none"):
            out.append(None)
            continue
        try:
            out.append(float(item))
        except ValueError:
            raise EdgeError(f"history: {item!r} is not a number (use commas between values, empty = missing)") from None
    return out


class _Inputs:
    """Step inputs for ``B`` paths: forward-filled scaled values and flags per step, calendar rows, scale."""

    def __init__(self, meta: dict[str, Any], y: np.ndarray, scale: float, steps: int) -> None:
        self.lags = [int(v) for v in meta["lags"]]
        self.scale = scale
        z = (y / np.float32(scale)).astype(np.float32)
        obs = np.isfinite(z)
        self.z = np.zeros((1, steps), dtype=np.float32)
        self.obs = np.zeros((1, steps), dtype=np.float32)
        last = 0.0
        for t in range(len(y)):  # forward fill (0 before the first observed value)
            last = float(z[t]) if obs[t] else last
            self.z[0, t], self.obs[0, t] = last, float(obs[t])
        rows = meta.get("time_features") or []
        nt = int(meta.get("num_time_features", 0))
        self.time = np.asarray(rows, dtype=np.float32)[:steps] if nt else np.zeros((steps, 0), np.float32)
        if self.time.shape != (steps, nt):
            raise EdgeError(f"the model metadata has time features for {len(rows)} steps, {steps} are needed")
        self.static = np.float32(math.log1p(scale))

    def at(self, t: int) -> np.ndarray:
        """Inputs ``(B, num_inputs)`` of step ``t`` from the values of steps ``< t``."""
        b = self.z.shape[0]
        cols = []
        for lag in self.lags:
            if t - lag >= 0:
                cols += [self.z[:, t - lag], self.obs[:, t - lag]]
            else:
                cols += [np.zeros(b, np.float32), np.zeros(b, np.float32)]
        return np.concatenate([np.stack(cols, 1), np.broadcast_to(self.time[t], (b, self.time.shape[1])),
                               np.full((b, 1), self.static, np.float32)], axis=1)

    def append(self, t: int, values: np.ndarray) -> None:
        """Store the drawn values ``(B,)`` of step ``t`` (a non-finite draw keeps the last value, flag 0)."""
        z = values / self.scale
        ok = np.isfinite(z)
        self.z[:, t] = np.where(ok, z, self.z[:, t - 1]).astype(np.float32)
        self.obs[:, t] = ok


def sample_paths(model: EdgeModel, history: Sequence[float | None], horizon: int, num_samples: int = 100,
                 seed: int = 0) -> np.ndarray:
    """Sample paths ``(num_samples, horizon)`` continuing ``history`` (``None`` = missing)."""
    model.require("timeseries", "forecast")
    meta = model.metadata
    hist, cap = int(meta["history"]), int(meta["max_context"])
    horizon = check_count(horizon, "horizon", EdgeError)
    num_samples = check_count(num_samples, "samples", EdgeError)
    counts = meta["head"]["type"] == "negative_binomial"  # the only head whose support is not every real number
    values = np.array(check_series(history, EdgeError, counts=counts), dtype=np.float64)
    if not np.isfinite(values).any():
        raise EdgeError("history: give a list of numbers with at least one observed value")
    if hist + horizon > cap:
        raise EdgeError(f"{model.path}: this export forecasts at most {cap - hist} steps; re-export with "
                        f"--max-context {hist + horizon} or more")
    y = np.concatenate([np.full(max(0, hist - len(values)), np.nan), values[-hist:]]).astype(np.float32)
    scale = context_scale(y, int(meta["context"]), float(meta.get("scale_offset", 0.0)))
    inputs = _Inputs(meta, y, scale, hist + horizon)
    specs = meta["cache"]
    cache = [np.zeros([1 if d == "batch" else int(d) for d in s["shape"]], np.float32) for s in specs]

    def step(t: int, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        feeds = {"inputs": inputs.at(t), "position": np.array(t, np.int64)}
        feeds.update({s["input"]: c for s, c in zip(specs, cache, strict=True)})
        params, *cache = model.run(feeds)
        return params, cache

    for t in range(hist):  # consume the history
        _, cache = step(t, cache)
    cache = [np.repeat(c, num_samples, axis=s["shape"].index("batch")) for s, c in zip(specs, cache, strict=True)]
    inputs.z, inputs.obs = np.repeat(inputs.z, num_samples, 0), np.repeat(inputs.obs, num_samples, 0)
    rng = np.random.default_rng(seed)
    out = np.zeros((num_samples, horizon))
    for h in range(horizon):
        params, cache = step(hist + h, cache)
        out[:, h] = sample_head(str(meta["head"]["type"]), params, scale, rng)
        inputs.append(hist + h, out[:, h])
    return out


def forecast(model: EdgeModel, history: Sequence[float | None], horizon: int | None = None, num_samples: int = 100,
             quantiles: Sequence[float] = DEFAULT_QUANTILES, seed: int = 0) -> dict[str, Any]:
    """``{"mean", "median", "quantiles": {"0.05": [...]}, "horizon"}`` for one series given as a list."""
    if not quantiles or any(not 0 < q < 1 for q in quantiles):
        raise EdgeError(f"quantiles must be numbers in (0, 1), got {list(quantiles)}")
    model.require("timeseries", "forecast")
    h = int(model.metadata["horizon"]) if horizon is None else check_count(horizon, "horizon", EdgeError)
    paths = sample_paths(model, history, h, num_samples, seed)
    qv = np.quantile(paths, list(quantiles), axis=0)
    return {"mean": paths.mean(0).tolist(), "median": np.median(paths, axis=0).tolist(),
            "quantiles": {f"{q:g}": row.tolist() for q, row in zip(quantiles, qv, strict=True)}, "horizon": h}
