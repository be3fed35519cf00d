"""Model work for time-series runs: quantile forecasts from a posted history.

Each forecast draws its sample paths from its own seeded generator, so concurrent requests never see each
other's random state. Both run under the request's stop check (``chainrule.core.sampling.stop_when``): a
forecast's roll-out stops between steps, scoring between series.
"""

from __future__ import annotations

import math
from typing import Any

from chainrule.core.sampling import check_stop
from chainrule.serve.registry import ServedModel


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
    """``chainrule.modalities.series.api.forecast_from_history`` on the served run, as JSON-ready values."""
    from chainrule.modalities.series.api import forecast_from_history

    out = forecast_from_history(served.run, history, horizon=horizon, quantiles=tuple(quantiles),
                                num_samples=num_samples, seed=seed, start=start)
    return jsonable(out)


def surprisal(served: ServedModel, series: list[list[float | None]], start: str | None) -> list[dict[str, Any]]:
    """``chainrule.modalities.series.api.surprisal_from_history`` for each series, as JSON-ready values (an
    abandoned request stops between series)."""
    from chainrule.modalities.series.api import surprisal_from_history

    out = []
    for s in series:
        check_stop()
        out.append(jsonable(surprisal_from_history(served.run, s, start=start)))
    return out
