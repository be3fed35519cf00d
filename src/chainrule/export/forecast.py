"""Export of neural forecasters (:mod:`chainrule.modalities.series.models`): the incremental step plus what the
edge runtime needs to build each step's inputs without pandas or torch.

The graph maps ``(inputs (B, num_inputs), position (), *past_cache) -> (params (B, P), *present_cache)``,
where ``inputs`` are one step's lag values and flags, time features and ``log1p(scale)`` (see
:mod:`chainrule.modalities.series.features`). The calendar features of the steps around the forecast origin are
precomputed into the metadata for a history that ends where the training data ended (as
``forecast_from_history`` assumes without ``start``), for up to ``max_context - history`` forecast steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from chainrule.core.errors import ConfigError
from chainrule.core.nn.attention import static_step_blocks
from chainrule.core.runs.kind import RunKind
from chainrule.export.metadata import FORMAT, VERSION
from chainrule.export.plan import EXAMPLE_BATCH, ExportPlan
from chainrule.export.steps import kv_specs, rnn_specs, rnn_step, zero_cache

#: registered forecasters that cannot be exported, with the reason (none today; the tests check this list)
NOT_EXPORTABLE_FORECASTERS: dict[str, str] = {}
#: default forecast steps an export allows, in multiples of the trained horizon
HORIZON_FACTOR = 4


class RecurrentForecastStep(nn.Module):
    """LSTM forecasters (``lstm``, ``deepar``): the hidden and cell state are the cache."""

    def __init__(self, model: nn.Module, max_context: int) -> None:
        super().__init__()
        self.model, self.cache_specs = model, rnn_specs(model.rnn)

    def forward(self, inputs: Tensor, position: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        out, state = rnn_step(self.model.rnn, inputs[:, None], (h,) if c is None else (h, c))
        return (self.model.out(out[:, 0]), *state)


class AttentionForecastStep(nn.Module):
    """The Transformer forecaster: rotary attention over a fixed-size KV cache."""

    def __init__(self, model: nn.Module, max_context: int) -> None:
        super().__init__()
        self.model, self.cache_specs = model, kv_specs(model.blocks, max_context)

    def forward(self, inputs: Tensor, position: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        h, keys, values = static_step_blocks(m.blocks, m.embed(inputs)[:, None], position, keys, values)
        return m.out(m.ln_f(h))[:, 0], keys, values


FORECAST_STEPS: dict[str, type[nn.Module]] = {"lstm": RecurrentForecastStep, "deepar": RecurrentForecastStep,
                                              "transformer": AttentionForecastStep}


def calendar_rows(spec: Any, last_timestamp: str | None, steps: int) -> list[list[float]]:
    """Time features of ``steps`` consecutive steps, the first ``spec.history`` ending at ``last_timestamp``
    (an empty list for a model without calendar features)."""
    if not spec.calendar:
        return []
    import pandas as pd

    from chainrule.modalities.series.features import calendar_features, extended_index

    try:
        index = pd.date_range(end=pd.Timestamp(last_timestamp), periods=spec.history, freq=spec.freq)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot rebuild the calendar from the run's last timestamp {last_timestamp!r} and "
                          f"frequency {spec.freq!r} ({e})") from None
    ext = extended_index(index, spec.freq, 0, steps - spec.history)
    return calendar_features(ext, spec.calendar).tolist()


def forecast_plan(model: nn.Module, spec: dict[str, Any], max_context: int | None = None) -> ExportPlan:
    """Export plan of a forecaster with its run's ``timeseries`` spec; :class:`ConfigError` if not exportable."""
    from chainrule.modalities.series.features import FeatureSpec

    if model.family != "autoregressive":  # the sequence VAE on windows: no forecast, so no step to export
        raise ConfigError(f"model {model.name!r} cannot be exported: a latent-variable model of series windows has "
                          "no forecast step (use `chainrule sample` / `chainrule eval`)")
    if model.name in NOT_EXPORTABLE_FORECASTERS or model.name not in FORECAST_STEPS:
        why = NOT_EXPORTABLE_FORECASTERS.get(model.name, "no exportable incremental step")
        raise ConfigError(f"forecasting model {model.name!r} cannot be exported: {why}")
    fs = FeatureSpec.from_dict(spec)
    if fs.covariates:
        raise ConfigError(f"forecasting model {model.name!r} cannot be exported: it needs covariates "
                          f"({', '.join(fs.covariates)}), which the edge runtime cannot supply")
    n = fs.history + HORIZON_FACTOR * fs.horizon if max_context is None else int(max_context)
    if n <= fs.history:
        raise ConfigError(f"max context must exceed the model's {fs.history} history points "
                          f"(max lag {fs.max_lag} + context {fs.context}), got {n}")
    wrapper = FORECAST_STEPS[model.name](model, n).eval()
    like = next(model.parameters())
    inputs = like.new_zeros(EXAMPLE_BATCH, model.num_inputs)
    position = torch.tensor(0, dtype=torch.long, device=like.device)
    cache = zero_cache(wrapper.cache_specs, EXAMPLE_BATCH, like)
    past, present = [s[0] for s in wrapper.cache_specs], [s[1] for s in wrapper.cache_specs]
    axes = {"inputs": 0, "params": 0}
    for name_in, name_out, shape in wrapper.cache_specs:
        axes[name_in] = axes[name_out] = shape.index("batch")
    meta = {
        "format": FORMAT, "version": VERSION, "kind": RunKind.SERIES.value, "model": model.name, "graph": "step",
        "inputs": ["inputs", "position", *past], "outputs": ["params", *present],
        "cache": [{"input": i, "output": o, "shape": s} for i, o, s in wrapper.cache_specs],
        "head": {"type": model.head.name, "num_params": model.num_params_out}, "num_inputs": model.num_inputs,
        "max_context": n, "history": fs.history, "context": fs.context, "horizon": fs.horizon, "lags": fs.lags,
        "scale_offset": fs.scale_offset, "num_time_features": fs.num_time_features,
        "time_features": calendar_rows(fs, spec.get("last_timestamp"), n), "config": model.config(),
    }
    return ExportPlan(wrapper, (inputs, position, *cache), ["inputs", "position", *past], ["params", *present],
                      axes, meta)


def export_forecast_run(run: Any, out: Any, max_context: int | None = None,
                        extra_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export a forecasting run (see :func:`chainrule.export.export_run`)."""
    from chainrule.export.onnx import export_plan
    from chainrule.modalities.series.api import load_forecast_run

    model, spec = load_forecast_run(run)
    return export_plan(forecast_plan(model, spec, max_context), out, extra_metadata)
