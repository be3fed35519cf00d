"""Anomaly scores from exact likelihood: the one-step-ahead surprisal ``-log p(y_t | y_<t)`` of every step.

Each step ``t`` is scored as the first forecast step of a window that ends just before it, exactly as the
model forecasts: the ``history = max(lags) + context`` points before ``t`` (left-padded with missing values
near the start), the scale from that window's context. All windows are scored in one batched,
teacher-forced pass. Steps with no observed value before them (the start of the series) are not scored:
there the model knows nothing, not even the series' level. For the ``squared_error`` head the score is the
unit-variance Gaussian in scaled units (see :mod:`chainrule.core.heads.continuous`), so it ranks steps but is not a
density of ``y``.
"""

from __future__ import annotations

import numpy as np
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
