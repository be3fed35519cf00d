"""Model work for time-series runs: quantile forecasts from a posted history.

Forecasts run one at a time: the forecasters draw their sample paths from torch's global generator
(seeded per call), so serialising them keeps concurrent requests with different seeds from seeing each
other's draws. The app queues forecasts on an asyncio lock, so waiting ones hold no worker thread; the lock
here guards direct callers. Text and image requests use their own generators and are unaffected.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from chainrule.serve.registry import ServedModel

_LOCK = threading.Lock()


def jsonable(value: Any) -> Any:
    """Arrays/tensors -> lists, numpy scalars -> Python numbers, NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def forecast(served: ServedModel, history: list[float | None], horizon: int | None, quantiles: list[float],
             num_samples: int, seed: int, start: str | None) -> dict[str, Any]:
    """``chainrule.timeseries.api.forecast_from_history`` on the served run, as JSON-ready values."""
    from chainrule.timeseries.api import forecast_from_history

    with _LOCK:
        out = forecast_from_history(served.run, history, horizon=horizon, quantiles=tuple(quantiles),
                                    num_samples=num_samples, seed=seed, start=start)
    return jsonable(out)
