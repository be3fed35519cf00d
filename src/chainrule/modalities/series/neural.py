"""``NeuralForecaster``: the neural models behind TS-data's :class:`~chainrule.modalities.series.forecaster.Forecaster`
protocol — ``fit`` on a :class:`SeriesSet`, ``predict`` seeded sample paths ``(S, N, H)`` in original units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.core.errors import ConfigError
from chainrule.core.heads.continuous import build_forecast_head
from chainrule.modalities.series.features import FeatureSpec, WindowSampler, history_batch
from chainrule.modalities.series.models.base import ForecastModel
from chainrule.modalities.series.models.registry import build_forecast_model, forecast_model_class
from chainrule.modalities.series.table import SeriesSet
from chainrule.modalities.series.training import ForecastTrainConfig, resolve_device, train_forecast_model


def default_context(horizon: int, season: int) -> int:
    """Context length when none is given: the horizon, or one season when that is longer."""
    return max(int(horizon), int(season), 2)


class NeuralForecaster:
    """A neural forecaster by registry name (``lstm``, ``deepar``, ``transformer``).

    Args:
        model: registry name.
        context: points before the origin that set the scale and are scored in training (default:
            :func:`default_context`); the lags reach ``max(lags)`` points further back.
        horizon: training horizon (default: the series set's ``horizon``); forecasts may be longer.
        steps: optimiser steps; ``seed``: seed of the initial weights and the training windows.
        lags: lag list (default: from the frequency); ``calendar``: use calendar features.
        batch_size, lr, max_seconds, progress, device: training options; ``train_options`` sets any other
            :class:`ForecastTrainConfig` field (e.g. ``weight_decay``).
        max_batch: most sample paths rolled out at once in ``predict``.
        **model_kwargs: architecture options, e.g. ``head="negative_binomial"``, ``hidden_size=64``.
    """

    def __init__(self, model: str = "deepar", context: int | None = None, horizon: int | None = None,
                 steps: int = 1000, seed: int = 0, lags: list[int] | None = None, calendar: bool = True,
                 batch_size: int = 64, lr: float = 1e-3, max_seconds: float = 0.0, progress: bool = False,
                 device: str = "auto", max_batch: int = 16384, train_options: dict[str, Any] | None = None,
                 **model_kwargs: Any) -> None:
        cls = forecast_model_class(model)
        self.model_name = cls.name
        self.head_name = build_forecast_head(model_kwargs.pop("head", None) or cls.default_head).name
        self.name = self.model_name if self.head_name == cls.default_head else f"{self.model_name}-{self.head_name}"
        self.context, self.horizon, self.lags, self.calendar = context, horizon, lags, calendar
        opts = {"steps": int(steps), "seed": int(seed), "batch_size": int(batch_size), "lr": float(lr),
                "max_seconds": float(max_seconds), "progress": progress, "device": device, **(train_options or {})}
        self.train_cfg = ForecastTrainConfig.from_dict(opts)
        self.model_kwargs = model_kwargs
        build_forecast_model(self.model_name, [1], 0, head=self.head_name, **model_kwargs)  # unknown options: now
        self.max_batch = int(max_batch)
        self.model: ForecastModel | None = None
        self.spec: FeatureSpec | None = None
        self.summary: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit
    def make_spec(self, train: SeriesSet) -> FeatureSpec:
        horizon = self.horizon or train.horizon
        if not horizon:
            raise ConfigError(f"{train.name}: no forecast horizon given and the data has no default horizon")
        context = self.context or default_context(horizon, train.season)
        head = build_forecast_head(self.head_name)
        head.check_target(train.values, f"{train.name}: column {train.target!r}" if train.target else train.name)
        return FeatureSpec.for_series(train, context, horizon, self.lags, head.scale_offset, self.calendar)

    def fit(self, train: SeriesSet, run_dir: str | Path | None = None) -> None:
        """Train a fresh model on every window of ``train`` (writing weights/summary into ``run_dir`` if given)."""
        spec = self.make_spec(train)
        torch.manual_seed(self.train_cfg.seed)
        model = build_forecast_model(self.model_name, spec.lags, spec.num_time_features, head=self.head_name,
                                     **self.model_kwargs)
        self.summary = train_forecast_model(model, WindowSampler(train, spec), self.train_cfg, run_dir)
        self.model, self.spec = model, spec

    # ------------------------------------------------------------------ predict
    def predict(self, context: SeriesSet, horizon: int, num_samples: int = 100, seed: int = 0) -> np.ndarray:
        """Sample paths ``(len(context), num_samples, horizon)`` (float64) from the end of each series."""
        if self.model is None or self.spec is None:
            raise ConfigError(f"{self.name}: predict before fit")
        batch = history_batch(context, self.spec, horizon).to(self.model.device)
        paths = self.model.sample_paths(batch.y, batch.time_feats, batch.scale, horizon, num_samples, seed=seed,
                                        max_batch=self.max_batch)
        return paths.double().cpu().numpy()

    # ------------------------------------------------------------------ runs
    @classmethod
    def from_model(cls, model: ForecastModel, spec: FeatureSpec, device: str = "auto") -> NeuralForecaster:
        """Wrap a trained model (e.g. one loaded from a run) for ``predict``."""
        opts = {k: v for k, v in model.config().items() if k not in ("head", "lags", "num_time_features")}
        f = cls(model.name, context=spec.context, horizon=spec.horizon, lags=spec.lags, head=model.head.name,
                **opts)
        f.model, f.spec = model.to(resolve_device(device)).eval(), spec
        return f
