"""``NeuralForecaster``: the neural models behind TS-data's :class:`~chainrule.modalities.series.forecaster.Forecaster`
protocol — ``fit`` on a :class:`SeriesSet`, ``predict`` seeded sample paths ``(S, N, H)`` in original units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.core.errors import ConfigError
from chainrule.core.heads import build_head
from chainrule.core.training import TrainConfig, Trainer
from chainrule.core.training.distributed import DistContext, resolve_device
from chainrule.core.training.metrics import MetricsSink
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.series.features import FeatureSpec, TrainingWindows, history_batch
from chainrule.modalities.series.forecaster import require_forecaster
from chainrule.modalities.series.models.base import ForecastModel
from chainrule.modalities.series.run_config import TRAIN_DEFAULTS
from chainrule.modalities.series.table import SeriesSet


def default_context(horizon: int, season: int) -> int:
    """Context length when none is given: the horizon, or one season when that is longer."""
    return max(int(horizon), int(season), 2)


class NeuralForecaster:
    """A neural forecaster by registry name (``lstm``, ``deepar``, ``transformer``), trained by the one
    :class:`~chainrule.core.training.Trainer` on every window of the series.

    Args:
        model: registry name.
        context: points before the origin that set the scale and are scored in training (default:
            :func:`default_context`); the lags reach ``max(lags)`` points further back.
        horizon: training horizon (default: the series set's ``horizon``); forecasts may be longer.
        steps: optimiser steps; ``seed``: seed of the initial weights and the order of the training windows.
        lags: lag list (default: from the frequency); ``calendar``: use calendar features.
        batch_size, lr, max_seconds, progress, device: training options (None = the forecasters' default,
            :data:`~chainrule.modalities.series.run_config.TRAIN_DEFAULTS`); ``train_options`` sets any other
            :class:`~chainrule.core.training.TrainConfig` option (e.g. ``weight_decay``, ``ema``).
        max_batch: most sample paths rolled out at once in ``predict``.
        fit_only: allow a registered series model that has no forecast (the sequence VAE): it is trained on the
            same windows, and ``predict`` refuses it. Without it such a model is refused at once.
        **model_kwargs: architecture options, e.g. ``head="negative_binomial"``, ``hidden_size=64``.
    """

    def __init__(self, model: str = "deepar", context: int | None = None, horizon: int | None = None,
                 steps: int | None = None, seed: int | None = None, lags: list[int] | None = None,
                 calendar: bool = True, batch_size: int | None = None, lr: float | None = None,
                 max_seconds: float | None = None, progress: bool = False, device: str | None = None,
                 max_batch: int = 16384, train_options: dict[str, Any] | None = None, fit_only: bool = False,
                 **model_kwargs: Any) -> None:
        cls = model_class(model, "series")
        if not fit_only:
            require_forecaster(cls)  # before anything trains: a backtest of a model that cannot forecast
        self.model_name = cls.name
        self.head_name = build_head(model_kwargs.pop("head", None) or cls.default_head).name
        self.name = self.model_name if self.head_name == cls.default_head else f"{self.model_name}-{self.head_name}"
        self.context, self.horizon, self.lags, self.calendar = context, horizon, lags, calendar
        given = {"steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr, "max_seconds": max_seconds,
                 "device": device}
        self.train_cfg = TrainConfig.from_dict({**TRAIN_DEFAULTS, "progress": progress,
                                                **{k: v for k, v in given.items() if v is not None},
                                                **(train_options or {})})
        self.model_kwargs = model_kwargs
        build_model(self.model_name, modality="series", lags=[1], num_time_features=0, head=self.head_name,
                    **model_kwargs)  # unknown options fail now, not after the data has loaded
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
        head = build_head(self.head_name)
        head.check_values(train.values, f"{train.name}: column {train.target!r}" if train.target else train.name)
        return FeatureSpec.for_series(train, context, horizon, self.lags, head.scale_offset, self.calendar)

    def fresh_model(self, spec: FeatureSpec) -> ForecastModel:
        """A fresh model for ``spec``'s inputs, its weights drawn from ``train.seed``."""
        torch.manual_seed(self.train_cfg.seed)
        return build_model(self.model_name, modality="series", lags=spec.lags,
                           num_time_features=spec.num_time_features, head=self.head_name, **self.model_kwargs)

    def fit(self, train: SeriesSet, run_dir: str | Path | None = None, resume: bool = False,
            sinks: Sequence[MetricsSink] = ()) -> None:
        """Train a fresh model on every window of ``train``; with ``run_dir``, write checkpoints, metrics, the
        final weights and the summary there (``resume`` continues from its newest checkpoint; ``sinks`` receive
        the metrics too); without, fit in memory."""
        spec = self.make_spec(train)
        windows = TrainingWindows(train, spec, min_size=self.train_cfg.batch_size)
        extra = {"model": self.model_name, "head": self.head_name, "windows": windows.num_windows}
        trainer = Trainer(self.fresh_model(spec), windows, None, self.train_cfg, run_dir, resume=resume,
                          summary_extra=extra, sinks=sinks)
        self.summary = trainer.fit()
        self.model, self.spec = trainer.eval_model.eval(), spec  # the EMA weights when EMA is on, as saved

    # ------------------------------------------------------------------ predict
    def predict(self, context: SeriesSet, horizon: int, num_samples: int = 100, seed: int = 0) -> np.ndarray:
        """Sample paths ``(len(context), num_samples, horizon)`` (float64) from the end of each series."""
        if self.model is None or self.spec is None:
            raise ConfigError(f"{self.name}: predict before fit")
        require_forecaster(self.model)
        y, cond = history_batch(context, self.spec, horizon)
        device = self.model.device
        paths = self.model.sample_paths(y.to(device), cond.to(device), horizon, num_samples, seed=seed,
                                        max_batch=self.max_batch)
        return paths.double().cpu().numpy()

    # ------------------------------------------------------------------ runs
    @classmethod
    def from_model(cls, model: ForecastModel, spec: FeatureSpec, device: str = "auto") -> NeuralForecaster:
        """Wrap a trained model (e.g. one loaded from a run) for ``predict``."""
        opts = {k: v for k, v in model.config().items() if k not in ("head", "lags", "num_time_features")}
        f = cls(model.name, context=spec.context, horizon=spec.horizon, lags=spec.lags, head=model.head.name,
                **opts)
        f.model, f.spec = model.to(resolve_device(device, DistContext())).eval(), spec
        return f
