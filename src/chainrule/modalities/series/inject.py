"""Labelled anomalies injected into a real series, for measuring detectors where no labels exist.

Three documented kinds, each sized in units of the series' own step noise ``sigma`` (the robust standard
deviation of its first differences: 1.4826 x the median absolute deviation), so one setting fits any scale:

* ``spike``: one step moved by ``spike`` sigma (sign drawn at random); one labelled step;
* ``level_shift``: ``length`` consecutive steps moved by ``shift`` sigma (same sign), then back; all labelled;
* ``variance``: ``length`` consecutive steps with Gaussian noise of standard deviation ``noise`` sigma added; all
  labelled.

Events are placed at random, non-overlapping and at least ``gap`` steps apart, only at or after ``start`` (so a
model can be trained on the clean part before it) and only over observed values. The draw is a function of the
seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chainrule.core.errors import ConfigError

__all__ = ["KINDS", "Anomaly", "Injected", "inject_anomalies", "step_noise"]

KINDS = ("spike", "level_shift", "variance")


@dataclass(frozen=True)
class Anomaly:
    """One injected event: its kind and the steps ``start .. end - 1`` it changed."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Injected:
    """The changed values, a per-step label (True where an event changed the value) and the events."""

    values: np.ndarray
    labels: np.ndarray
    events: list[Anomaly] = field(default_factory=list)


def step_noise(values: np.ndarray) -> float:
    """The robust standard deviation of the observed first differences (1.4826 x their MAD)."""
    diffs = np.diff(np.asarray(values, dtype=np.float64))
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 2:
        raise ConfigError("a series needs at least 3 observed consecutive values to size injected anomalies")
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return 1.4826 * mad if mad > 0 else float(np.std(diffs)) or 1.0


def inject_anomalies(values: np.ndarray, per_kind: int = 2, kinds: tuple[str, ...] = KINDS, start: int = 0,
                     length: int = 6, gap: int = 10, spike: float = 6.0, shift: float = 4.0, noise: float = 3.0,
                     seed: int = 0) -> Injected:
    """``per_kind`` events of each of ``kinds`` in a copy of ``values`` (see the module docstring)."""
    y = np.asarray(values, dtype=np.float64).copy()
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown anomaly kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    if per_kind < 0 or length < 1 or gap < 0 or not 0 <= start < len(y):
        raise ConfigError(f"injection needs per_kind >= 0, length >= 1, gap >= 0 and 0 <= start < {len(y)}")
    sigma = step_noise(y)
    rng = np.random.default_rng(seed)
    plan = [k for k in kinds for _ in range(per_kind)]
    order = rng.permutation(len(plan))
    taken = np.zeros(len(y), dtype=bool)  # steps an event (with its gap) already holds
    labels = np.zeros(len(y), dtype=bool)
    events = []
    for kind in (plan[i] for i in order):
        width = 1 if kind == "spike" else length
        free = free_starts(taken, np.isfinite(y), start, width, gap)
        if not len(free):
            raise ConfigError(f"no room left for a {kind} after step {start}: fewer events, a shorter length or gap")
        s = int(rng.choice(free))
        sign = rng.choice([-1.0, 1.0])
        if kind == "spike":
            y[s] += sign * spike * sigma
        elif kind == "level_shift":
            y[s:s + width] += sign * shift * sigma
        else:
            y[s:s + width] += rng.normal(0.0, noise * sigma, width)
        taken[s:s + width] = labels[s:s + width] = True
        events.append(Anomaly(kind, s, s + width))
    return Injected(y, labels, sorted(events, key=lambda e: e.start))


def free_starts(taken: np.ndarray, observed: np.ndarray, start: int, width: int, gap: int) -> np.ndarray:
    """Every ``s >= start`` where ``width`` observed steps fit with no taken step within ``gap`` of them."""
    n = len(taken)
    s = np.arange(start, n - width + 1)
    busy = np.concatenate([[0], np.cumsum(taken)])
    missing = np.concatenate([[0], np.cumsum(~observed)])
    near = busy[np.minimum(n, s + width + gap)] - busy[np.maximum(0, s - gap)]
    return s[(near == 0) & (missing[s + width] - missing[s] == 0)]
