"""Anomaly scores from exact likelihood: the one-step-ahead surprisal ``-log p(y_t | y_<t)`` of every step.

Each step ``t`` is scored as the first forecast step of a window that ends just before it, exactly as the
model forecasts: the ``history = max(lags) + context`` points before ``t`` (left-padded with missing values
near the start), the scale from that window's context. All windows are scored in one batched,
teacher-forced pass. Steps with no observed value before them (the start of the series) are not scored:
there the model knows nothing, not even the series' level. For the ``squared_error`` head the score is the
unit-variance Gaussian in scaled units (see :mod:`chainrule.core.heads.continuous`), so it ranks steps but is not a
density of ``y``.

Beside it: the rolling z-score, the usual baseline detector, and :func:`detection_metrics`, which scores any
detector against labelled steps (e.g. anomalies from :mod:`chainrule.modalities.series.inject`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from chainrule.core.contract import Condition
from chainrule.modalities.series.features import FeatureSpec, context_scale
from chainrule.modalities.series.models.base import ForecastModel
from chainrule.modalities.series.table import SeriesSet


@torch.inference_mode()
def one_step_log_probs(model: ForecastModel, spec: FeatureSpec, ss: SeriesSet, index: int = 0,
                       max_batch: int = 4096) -> np.ndarray:
    """``log p(y_t | y_<t)`` in nats for every step of series ``index`` of ``ss``; NaN where ``y_t`` is
    missing or no earlier value is observed."""
    values = np.asarray(ss.values[index], dtype=np.float64)
    n, width = len(values), spec.history + 1
    rows = spec.time_rows(ss, index, width - 1, 0)  # (width - 1 + n, F): padding rows, then one per step
    device = model.device
    y = torch.from_numpy(np.concatenate([np.full(width - 1, np.nan), values]).astype(np.float32)).to(device)
    feats = torch.from_numpy(np.asarray(rows, dtype=np.float32)).to(device)
    out = []
    for lo in range(0, n, max_batch):  # window t covers padded positions [t, t + width)
        idx = torch.arange(lo, min(n, lo + max_batch), device=device)[:, None] + torch.arange(width, device=device)
        yw = y[idx]
        scale = context_scale(yw[:, : spec.history], spec.context, spec.scale_offset)
        mask = torch.zeros_like(yw, dtype=torch.bool)
        mask[:, -1] = True
        cond = Condition(time_features=feats[idx], scale=scale, observed=mask)
        out.append(model.log_prob_positions(yw, cond)[:, -1])
    lp = torch.cat(out).double().cpu().numpy()
    seen_before = np.concatenate([[False], np.cumsum(np.isfinite(values))[:-1] > 0])
    return np.where(np.isfinite(values) & seen_before, lp, np.nan)


def rolling_zscore(values: np.ndarray, window: int = 24) -> np.ndarray:
    """``|y_t - mean| / std`` over the ``window`` steps before ``t`` (observed ones only, at least 3); NaN where
    ``y_t`` is missing or the window has too few values."""
    if window < 3:
        raise ValueError(f"the rolling z-score needs a window of at least 3 steps; got {window}")
    y = pd.Series(np.asarray(values, dtype=np.float64))
    past = y.shift(1).rolling(window, min_periods=3)
    z = (y - past.mean()).abs() / past.std().replace(0.0, np.nan)
    return z.to_numpy()


def detection_metrics(scores: np.ndarray, labels: np.ndarray, events: list[Any] = ()) -> dict[str, float]:
    """How well ``scores`` (higher = more anomalous; NaN = unscored, counted as not flagged) find the labelled
    steps: AUROC, and precision, recall and F1 at the threshold with the best F1; with ``events`` (objects with
    ``start``/``end``), also the fraction of events with at least one flagged step at that threshold."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    s = np.where(np.isfinite(s), s, -np.inf)
    finite_low = np.min(s[np.isfinite(s)]) - 1.0 if np.isfinite(s).any() else 0.0
    s = np.where(np.isfinite(s), s, finite_low)  # unscored steps rank below every scored one
    precision, recall, thresholds = precision_recall_curve(y, s)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
    threshold = float(thresholds[best]) if len(thresholds) else float("inf")
    flagged = s >= threshold
    out = {"auroc": float(roc_auc_score(y, s)), "precision": float(precision[best]), "recall": float(recall[best]),
           "f1": float(f1[best]), "threshold": threshold}
    if len(events):
        out["event_recall"] = float(np.mean([flagged[e.start:e.end].any() for e in events]))
    return out
