"""Fan chart of probabilistic forecasts (recent history, the median and the 50% / 90% bands), and windows drawn by
a latent model beside the data's last window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.evaluation.plots import save_png

#: quantiles a fan chart needs (90% band, 50% band, median)
FAN_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def fan_chart(ids: Sequence[str], history_times: Sequence, history: Sequence[np.ndarray], future_times: Sequence,
              samples: np.ndarray, out: str | Path, title: str = "", max_series: int = 6,
              history_points: int | None = None) -> Path:
    """Write a PNG with one panel per series (the first ``max_series``).

    ``samples`` ``(S, N, H)`` sample paths; the bands are their 5-95% and 25-75% quantiles. Each panel shows
    the last ``history_points`` observations (default: ``max(4·H, 48)``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(ids), max_series)
    h = samples.shape[-1]
    keep = history_points or max(4 * h, 48)
    q = np.quantile(samples[:n], FAN_QUANTILES, axis=1)  # (5, n, H)
    fig, panels = _panels(plt, n)
    for k, ax in enumerate(panels):
        ht, hv = list(history_times[k])[-keep:], np.asarray(history[k], dtype=float)[-keep:]
        ft = list(future_times[k])
        ax.plot(ht, hv, color="black", lw=1.2, label="history")
        ax.fill_between(ft, q[0, k], q[4, k], color="tab:blue", alpha=0.2, lw=0, label="90% band")
        ax.fill_between(ft, q[1, k], q[3, k], color="tab:blue", alpha=0.4, lw=0, label="50% band")
        ax.plot(ft, q[2, k], color="tab:blue", lw=1.5, label="median")
        ax.set_title(str(ids[k]), fontsize=10)
    fig.autofmt_xdate()
    return _finish(fig, panels, ids, title, out)


def window_samples_chart(ids: Sequence[str], last_windows: Sequence[np.ndarray], samples: np.ndarray,
                         out: str | Path, title: str = "", max_series: int = 6) -> Path:
    """A PNG with one panel per series (the first ``max_series``): its last window (black) and the windows a
    latent model drew for it (``samples`` ``(N, S, T)``: S windows per series, thin lines), over the window's steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(ids), max_series)
    fig, panels = _panels(plt, n)
    steps = np.arange(1, samples.shape[-1] + 1)
    for k, ax in enumerate(panels):
        for i, path in enumerate(samples[k]):
            ax.plot(steps, path, color="tab:blue", lw=0.8, alpha=0.6, label="drawn windows" if i == 0 else None)
        last = np.asarray(last_windows[k], dtype=float)
        ax.plot(steps[-len(last):], last, color="black", lw=1.4, label="last window of the data")
        ax.set_title(str(ids[k]), fontsize=10)
        ax.set_xlabel("step of the window")
    return _finish(fig, panels, ids, title, out)


def _panels(plt: Any, n: int) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, two per row (one when alone); the unused cell of an odd count is hidden."""
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols if cols == 1 else 6 * cols, 3.2 * rows), squeeze=False)
    cells = [axes[k // cols][k % cols] for k in range(rows * cols)]
    for ax in cells[n:]:
        ax.axis("off")
    return fig, cells[:n]


def _finish(fig: Any, panels: list[Any], ids: Sequence[str], title: str, out: str | Path) -> Path:
    """Grid and legend on the panels (the legend once, on the first), the title naming how many series are shown."""
    for ax in panels:
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=8, loc="upper left")
    if title:
        n = len(panels)
        fig.suptitle(title + (f" (first {n} of {len(ids)} series)" if len(ids) > n else ""))
    fig.tight_layout()
    return save_png(fig, out)
