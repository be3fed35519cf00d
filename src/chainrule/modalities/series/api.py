"""Python API of the forecasters: train into a run directory, predict, backtest, forecast from a list.

>>> from chainrule.modalities.series import api
>>> run = api.train_forecaster("prices.csv", "deepar", horizon=20, time="Date", target="Close", steps=500)
>>> frame = api.predict(run, out="forecast.csv")          # also writes forecast.png
>>> api.forecast_from_history(run, [1.0, 2.0, None, 4.0], horizon=5)["median"]
>>> api.ChainruleForecast("deepar", h=12).fit(df).predict(12, level=[80, 95])   # pandas, StatsForecast's frames
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from chainrule.core.errors import CheckpointError, ConfigError, DataError
from chainrule.core.heads.continuous import ContinuousHead
from chainrule.core.limits import check_count, check_horizon, check_series
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.core.runs.files import PLOTS_DIR
from chainrule.core.runs.kind import RunKind
from chainrule.core.runs.lock import run_lock
from chainrule.core.runs.run import Run, check_new_run_dir, default_run_dir, open_run
from chainrule.core.training.checkpoint import list_checkpoints
from chainrule.core.training.distributed import DistContext, env_world_size, is_main_process, resolve_device
from chainrule.core.training.tensorboard import tensorboard_sink, wants_tensorboard
from chainrule.modalities.series.features import FeatureSpec
from chainrule.modalities.series.frames import ChainruleForecast as ChainruleForecast  # re-exported: pandas API
from chainrule.modalities.series.models.base import ForecastModel
from chainrule.modalities.series.neural import NeuralForecaster
from chainrule.modalities.series.run_config import DATA_KEYS, forecast_config, forecaster_options
from chainrule.modalities.series.table import SeriesSet, check_length

DEFAULT_QUANTILES = (0.05, 0.5, 0.95)


# ---------------------------------------------------------------------------- data
def is_dataset_name(data: str) -> bool:
    from chainrule.modalities.series.datasets import TS_DATASETS

    key = str(data).strip().lower().replace("_", "-")
    return key in TS_DATASETS and not Path(data).exists()


def load_series(data: str | Path, time: str | None = None, target: str | None = None, id: str | None = None,
                covariates: Sequence[str] = (), freq: str | None = None) -> SeriesSet:
    """A registered dataset by name (column options ignored) or a CSV/Parquet file (``time``/``target`` needed)."""
    from chainrule.modalities.series.datasets import load_timeseries
    from chainrule.modalities.series.table import read_table

    if is_dataset_name(str(data)):
        return load_timeseries(str(data))
    if not time or not target:
        if not Path(data).exists():
            raise DataError(f"{data}: no such file and not a registered dataset (see 'chainrule forecast datasets')")
        raise ConfigError(f"{data}: give the time and target columns (--time COLUMN --target COLUMN)")
    return read_table(data, time=time, target=target, id=id, covariates=list(covariates), freq=freq)


def _run_data(run: Run, data: str | Path | None) -> SeriesSet:
    d = run.config.get("data", {})
    return load_series(data if data is not None else d.get("source"), d.get("time"), d.get("target"), d.get("id"),
                       d.get("covariates") or (), d.get("freq"))


def until_last_observed(ss: SeriesSet) -> SeriesSet:
    """Cut each series after its last observed value (rows after it, e.g. future covariates, stay in
    ``covariates``): forecasts start right after the last known target."""
    values, times = [], []
    for sid, v, t in zip(ss.ids, ss.values, ss.times, strict=True):
        obs = np.flatnonzero(np.isfinite(v))
        if obs.size == 0:
            raise DataError(f"{ss.name}: series {sid!r} has no observed target values")
        values.append(v[: obs[-1] + 1])
        times.append(t[: obs[-1] + 1])
    return replace(ss, values=values, times=times)


# ---------------------------------------------------------------------------- training
def train_forecaster(data: str | Path | None = None, model: str | None = None, horizon: int | None = None,
                     context: int | None = None, *, time: str | None = None, target: str | None = None,
                     id: str | None = None, covariates: Sequence[str] = (), freq: str | None = None,
                     run_dir: str | Path | None = None, steps: int | None = None, seed: int | None = None,
                     batch_size: int | None = None, lr: float | None = None, max_seconds: float | None = None,
                     lags: list[int] | None = None, calendar: bool | None = None, progress: bool | None = None,
                     device: str | None = None, train_options: dict[str, Any] | None = None,
                     config_file: str | Path | None = None, overrides: Sequence[str] = (), resume: bool = False,
                     **model_kwargs: Any) -> Run:
    """Train a forecaster on a CSV/Parquet file or a registered dataset; returns the written :class:`Run`
    (``config.yaml`` with a ``timeseries`` spec, ``checkpoints/``, ``best.safetensors`` = the final weights,
    ``metrics.jsonl``, ``summary.json``).

    The configuration merges like every run's: the forecasters' defaults <- ``config_file`` <- the keyword
    arguments given (None = not given) <- ``overrides`` (``section.key=value``). ``resume=True`` continues the
    run in ``run_dir`` from its newest checkpoint with its saved configuration (or starts it again when it was
    stopped before its first checkpoint). The run directory is locked while it is written.
    """
    if resume:
        return _resume_forecaster(run_dir)
    flags = {"data": {"source": None if data is None else str(data), "time": time, "target": target, "id": id,
                      "covariates": list(covariates) or None, "freq": freq},
             "model": {"name": model, "horizon": horizon, "context": context, "lags": lags, "calendar": calendar,
                       **model_kwargs},
             "train": {"steps": steps, "seed": seed, "batch_size": batch_size, "lr": lr, "max_seconds": max_seconds,
                       "progress": progress, "device": device, **(train_options or {})}}
    cfg = forecast_config(config_file, flags, overrides)
    wants_tensorboard(cfg)  # a bad output.tensorboard fails before anything is written
    cfg["train"].setdefault("progress", True)  # a training command shows its progress unless told not to
    d = cfg["data"]
    ss = load_series(d["source"], d.get("time"), d.get("target"), d.get("id"), d["covariates"], d.get("freq"))
    name, opts = forecaster_options(cfg["model"])
    f = NeuralForecaster(name, train_options=cfg["train"], fit_only=True, **opts)
    fspec = f.make_spec(ss)
    check_length(ss, fspec.context, fspec.horizon)
    if run_dir is None and env_world_size() > 1:
        raise ConfigError("under torchrun, give the run directory explicitly with --run DIR")
    path = Path(run_dir) if run_dir else default_run_dir(str(d["source"]), f.model_name)
    with run_lock(path, create=True, enabled=is_main_process()):
        if is_main_process():
            check_new_run_dir(path)
            save_forecast_run(path, f, ss, d, fspec, output=cfg["output"])  # config first: a run from the start
        _fit_run(f, ss, path)
    return open_run(path)


def _resume_forecaster(run_dir: str | Path | None) -> Run:
    """Continue a forecasting run from its newest checkpoint (from the start when it has none yet), rebuilt from
    its ``config.yaml``."""
    if run_dir is None:
        raise ConfigError("--resume needs the run directory (--run DIR)")
    with run_lock(run_dir, enabled=is_main_process()):
        run = open_run(run_dir)
        f = make_forecaster(run.path, progress=bool(run.config.get("train", {}).get("progress", True)),
                            fit_only=True)[0]
        _fit_run(f, _run_data(run, None), run.path, resume=bool(list_checkpoints(run.path)))
    return run


def _fit_run(f: NeuralForecaster, ss: SeriesSet, path: Path, resume: bool = False) -> None:
    """Train ``f`` into the run at ``path``; with ``output.tensorboard=true`` also into its TensorBoard event
    file, with the fan chart of a forecast from the end of the training data (``plots/forecast.png``)."""
    from chainrule.modalities.series.latent import holdout_cut, is_latent

    if is_latent(f.model_name):  # judged by its likelihood on the held-out tail (series/latent.py)
        ss = holdout_cut(ss, f.make_spec(ss).horizon)
    sink = tensorboard_sink(path, open_run(path).config) if is_main_process() else None
    try:
        f.fit(ss, run_dir=path, resume=resume, sinks=[sink] if sink else [])
        if sink is not None:
            try:
                predict(path, plot=Path(path) / PLOTS_DIR / "forecast.png")
            except (DataError, ConfigError) as e:  # future covariates the data lacks; a model with no forecast
                warnings.warn(f"no fan chart for TensorBoard: {e}", stacklevel=2)
            sink.add_run_outputs(path)
    finally:
        if sink is not None:
            sink.close()


def save_forecast_run(path: str | Path, f: NeuralForecaster, ss: SeriesSet, data_cfg: dict[str, Any],
                      fspec: FeatureSpec | None = None, output: dict[str, Any] | None = None) -> Run:
    """Write ``config.yaml`` for forecaster ``f`` (fitted, or about to be with feature spec ``fspec``): the
    ``data``/``model``/``train``/``output`` sections and the ``timeseries`` spec."""
    fspec = fspec or f.spec
    spec = {"kind": RunKind.SERIES.value, "model": f.model_name, "head": f.head_name, **fspec.to_dict(),
            "target": ss.target or data_cfg.get("target"), "time": data_cfg.get("time"), "id": data_cfg.get("id"),
            "data": ss.name, "series": len(ss), "last_timestamp": str(ss.times[0][-1])}
    net = f.model if f.model is not None else f.fresh_model(fspec)
    data = {k: data_cfg.get(k) for k in DATA_KEYS}
    data["covariates"] = list(data["covariates"] or [])
    run = Run(path=Path(path), config={"data": data, "model": {"name": f.model_name, **net.config()},
                                       "train": f.train_cfg.to_dict(), "output": dict(output or {}), "spec": spec})
    run.path.mkdir(parents=True, exist_ok=True)
    run.save_config()
    return run


# ---------------------------------------------------------------------------- runs
def load_forecast_run(path: str | Path | Run, device: str = "auto") -> tuple[ForecastModel, dict[str, Any]]:
    """The trained model (eval mode) and the ``timeseries`` spec of a run directory."""
    from chainrule.core.training.checkpoint import load_weights
    from chainrule.modalities.registry import build_model

    run = _series_run(path if isinstance(path, Run) else open_run(path))
    spec = run.spec
    opts = dict(run.config["model"])
    name = opts.pop("name")
    lags, nt = opts.pop("lags", spec["lags"]), opts.pop("num_time_features", None)
    if nt is None:
        nt = FeatureSpec.from_dict(spec).num_time_features
    model = build_model(name, modality="series", lags=lags, num_time_features=nt, **opts)
    load_weights(model, run.weights_path())
    return model.to(resolve_device(device, DistContext())).eval(), spec


def _series_run(run: Run) -> Run:
    """``run`` when it is a forecasting run; :class:`CheckpointError` naming its kind otherwise."""
    if run.kind is not RunKind.SERIES:
        raise CheckpointError(f"{run.path}: not a forecasting run (its spec kind is {run.kind.value!r}); use "
                              "'chainrule eval'")
    return run


def forecaster_from_run(path: str | Path | Run, device: str = "auto") -> NeuralForecaster:
    model, spec = load_forecast_run(path, device)
    return NeuralForecaster.from_model(model, FeatureSpec.from_dict(spec), device)


@functools.lru_cache(maxsize=8)
def _cached_forecaster(path: str, stamp: int) -> tuple[NeuralForecaster, dict[str, Any]]:
    run = open_run(path)
    return forecaster_from_run(run), run.spec


# ---------------------------------------------------------------------------- prediction
def parse_quantiles(qs: Sequence[float] | str) -> tuple[float, ...]:
    items = [s for s in qs.split(",") if s.strip()] if isinstance(qs, str) else list(qs)
    try:
        out = tuple(float(q) for q in items)
    except (TypeError, ValueError):
        raise ConfigError(f"quantiles must be numbers in (0, 1), e.g. 0.05,0.5,0.95; got {qs!r}") from None
    if not out or any(not 0 < q < 1 for q in out):
        raise ConfigError(f"quantiles must be numbers in (0, 1), e.g. 0.05,0.5,0.95; got {qs!r}")
    return out


def quantile_key(q: float) -> str:
    return f"{q:g}"


def forecast_frame(ss: SeriesSet, samples: np.ndarray, quantiles: Sequence[float]) -> pd.DataFrame:
    """One row per series × step: ``id, timestamp, step, mean, median, q<q>...`` from sample paths ``(S, N, H)``."""
    s, _, h = samples.shape
    qv = np.quantile(samples, quantiles, axis=1) if quantiles else np.zeros((0, s, h))
    cols: dict[str, Any] = {
        "id": np.repeat(ss.ids, h),
        "timestamp": np.concatenate([np.asarray(ss.future_times(i, h), dtype=object) for i in range(s)]),
        "step": np.tile(np.arange(1, h + 1), s),
        "mean": samples.mean(1).ravel(),
        "median": np.median(samples, axis=1).ravel(),
    }
    for q, v in zip(quantiles, qv, strict=True):
        cols[f"q{quantile_key(q)}"] = v.ravel()
    return pd.DataFrame(cols)


def predict(run: str | Path | Run, data: str | Path | None = None, horizon: int | None = None,
            quantiles: Sequence[float] | str = DEFAULT_QUANTILES, num_samples: int = 100, seed: int = 0,
            out: str | Path | None = None, plot: str | Path | None = None, device: str = "auto") -> pd.DataFrame:
    """Forecast every series of ``data`` (default: the run's training data) from its last observed value.

    Returns (and with ``out`` writes as CSV) one row per series × step; ``plot`` writes a fan chart PNG.
    """
    run = run if isinstance(run, Run) else open_run(run)
    qs = parse_quantiles(quantiles)
    horizon, num_samples = _check_forecast_options(horizon, num_samples)
    f = forecaster_from_run(run, device)
    ss = until_last_observed(_run_data(run, data))
    f.model.head.check_values(ss.values, ss.name)
    h = f.spec.horizon if horizon is None else horizon
    with _timestamps_in_range(h):
        samples = f.predict(ss, h, num_samples, seed)
        frame = forecast_frame(ss, samples, qs)
    if out is not None:
        atomic_write_text(out, frame.to_csv(index=False))
    if plot is not None:
        from chainrule.modalities.series.plots import fan_chart

        fan_chart(ss.ids, ss.times, ss.values, [ss.future_times(i, h) for i in range(len(ss))], samples, plot,
                  title=f"{f.name} forecast of {ss.name}")
    return frame


def forecast_from_history(run: str | Path | Run, history: Sequence[float | None], horizon: int | None = None,
                          quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), num_samples: int = 100,
                          seed: int = 0, start: str | None = None) -> dict[str, Any]:
    """Forecast one series given as a list (``None`` = missing) with a run's model.

    ``start`` is the timestamp of the first history value; without it the history is taken to end where the
    training data ended (it matters only for models with calendar features). Returns
    ``{"mean": [...], "median": [...], "quantiles": {"0.05": [...], ...}, "horizon": H}``.
    """
    horizon, num_samples = _check_forecast_options(horizon, num_samples)
    qs = parse_quantiles(quantiles)
    path = run.path if isinstance(run, Run) else Path(run)
    weights = open_run(path).weights_path()
    f, spec = _cached_forecaster(str(path.resolve()), weights.stat().st_mtime_ns)
    values = _history_values(history, f.model.head)
    if spec.get("covariates"):
        raise ConfigError(f"{path}: the model needs covariates {', '.join(spec['covariates'])}; use predict() with "
                          "a table instead")
    h = int(spec["horizon"]) if horizon is None else horizon
    times = _history_times(spec, len(values), start)
    ss = SeriesSet(name="history", ids=["history"], values=[values], times=[times], freq=spec.get("freq"),
                   season=int(spec.get("season", 1)))
    with _timestamps_in_range(h):
        samples = f.predict(ss, h, num_samples, int(seed))[0]  # (N, H)
    qv = np.quantile(samples, qs, axis=0)
    return {"mean": samples.mean(0).tolist(), "median": np.median(samples, axis=0).tolist(),
            "quantiles": {quantile_key(q): row.tolist() for q, row in zip(qs, qv, strict=True)}, "horizon": h}


def surprisal_from_history(run: str | Path | Run, history: Sequence[float | None],
                           start: str | None = None) -> dict[str, Any]:
    """Anomaly scores of one series (``None`` = missing): the one-step-ahead surprisal ``-log p(y_t | y_<t)``
    of every step in nats (``None`` where missing or before any earlier observation), their sum (the negative
    log-likelihood of the scored steps) and how many steps were scored (see :mod:`chainrule.modalities.series.anomaly`).
    ``start`` as in :func:`forecast_from_history`."""
    from chainrule.modalities.series.anomaly import one_step_log_probs

    path = run.path if isinstance(run, Run) else Path(run)
    f, spec = _cached_forecaster(str(path.resolve()), open_run(path).weights_path().stat().st_mtime_ns)
    values = _history_values(history, f.model.head)
    if spec.get("covariates"):
        raise ConfigError(f"{path}: the model needs covariates {', '.join(spec['covariates'])}")
    ss = SeriesSet(name="history", ids=["history"], values=[values], times=[_history_times(spec, len(values), start)],
                   freq=spec.get("freq"), season=int(spec.get("season", 1)))
    lp = one_step_log_probs(f.model, f.spec, ss)
    surprisal = [None if not np.isfinite(v) else float(-v) for v in lp]
    return {"nll": float(-np.nansum(lp)), "surprisal": surprisal, "scored": int(np.isfinite(lp).sum()),
            "head": f.model.head.name}


def _check_forecast_options(horizon: Any, num_samples: Any) -> tuple[int | None, int]:
    """The shared rules (:mod:`chainrule.core.limits`): a horizon of ``None`` (the run's) or >= 1, never 0 read as
    "the default"; at least one sample path."""
    return check_horizon(horizon, ConfigError), check_count(num_samples, "num_samples", ConfigError)


@contextlib.contextmanager
def _timestamps_in_range(horizon: int) -> Iterator[None]:
    """A forecast whose timestamps would pass pandas' range (years 1677..2262) as a :class:`ConfigError`."""
    try:
        yield
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise ConfigError(f"horizon {horizon}: the forecast's timestamps would pass pandas' range "
                          f"({pd.Timestamp.min.year}..{pd.Timestamp.max.year})") from None


def _history_values(history: Sequence[float | None], head: ContinuousHead) -> np.ndarray:
    """A history list as float64 (``None`` or NaN = missing); :class:`DataError` naming the first impossible value
    (infinity, beyond float32, outside ``head``'s support) and unless it holds at least one number."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence | np.ndarray):
        raise DataError("history: give a list of numbers (null for a missing value)")
    values = np.array(check_series(history, DataError), dtype=np.float64)
    head.check_support(torch.from_numpy(values), "history")
    if not np.isfinite(values).any():
        raise DataError("history: give a list of numbers (null for a missing value) with at least one number")
    return values


def _history_times(spec: dict[str, Any], n: int, start: str | None) -> pd.Index:
    freq = spec.get("freq")
    if not spec.get("calendar"):
        return pd.RangeIndex(n)
    try:
        if start is not None:
            return pd.date_range(pd.Timestamp(start), periods=n, freq=freq)
        return pd.date_range(end=pd.Timestamp(spec["last_timestamp"]), periods=n, freq=freq)
    except (ValueError, TypeError, OverflowError) as e:
        raise ConfigError(f"start {start!r}: not a timestamp on the {freq!r} grid ({e})") from None


# ---------------------------------------------------------------------------- evaluation
def make_forecaster(model_or_run: str | Path, steps: int | None = None, seed: int | None = None,
                    fit_only: bool = False, **options: Any) -> tuple[Any, Run | None]:
    """A fresh (untrained) forecaster: a baseline name, a neural model name, or a run directory's
    configuration (retrained by the backtest on each training cut, so nothing looks ahead). A model without a
    forecast (the sequence VAE) is refused unless ``fit_only`` (resuming its training)."""
    from chainrule.modalities.series.baselines import BASELINES, make_baseline

    p = Path(str(model_or_run))
    if p.is_dir():
        run = _series_run(open_run(p))
        spec = run.spec
        name, model = forecaster_options(run.config["model"])
        model.pop("lags", None)
        train = {k: v for k, v in run.config.get("train", {}).items() if k != "progress"}
        train.update({k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None})
        return NeuralForecaster(name, context=spec["context"], horizon=spec["horizon"], lags=spec["lags"],
                                calendar=bool(spec.get("calendar")), progress=options.get("progress", False),
                                train_options=train, fit_only=fit_only, **model), run
    if str(model_or_run).lower() in BASELINES:
        return make_baseline(str(model_or_run)), None
    opts = {k: v for k, v in options.items() if v is not None}
    return NeuralForecaster(str(model_or_run), steps=steps, seed=seed, **opts), None


def backtest(model_or_run: str | Path, data: str | Path | None = None, horizon: int | None = None,
             windows: int = 3, baselines: Sequence[str] = (), num_samples: int = 100, seed: int = 0,
             quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), refit: bool = False,
             time: str | None = None, target: str | None = None, id: str | None = None,
             covariates: Sequence[str] = (), freq: str | None = None, steps: int | None = None,
             train_seed: int | None = None, **options: Any) -> pd.DataFrame:
    """Rolling-origin backtest of a model (or a run's configuration) beside ``baselines``; one row per
    forecaster with the mean of each metric and the fit/predict seconds."""
    from chainrule.modalities.series.backtest import backtest as run_backtest
    from chainrule.modalities.series.baselines import make_baseline

    main, run = make_forecaster(model_or_run, steps=steps, seed=train_seed, **options)
    ss, h = _data_and_horizon(main, run, data, horizon, time, target, id, covariates, freq)
    if isinstance(main, NeuralForecaster) and main.horizon is None:
        main.horizon = h
    forecasters = [main] + [make_baseline(b) for b in baselines]
    rows = []
    for f in forecasters:
        res = run_backtest(f, ss, h, windows=windows, num_samples=num_samples, seed=seed, quantiles=quantiles,
                           refit=refit)
        rows.append({"forecaster": res.forecaster, **res.metrics, "fit_seconds": round(res.fit_seconds, 3),
                     "predict_seconds": round(res.predict_seconds, 3)})
    frame = pd.DataFrame(rows)
    frame.attrs.update({"dataset": ss.name, "horizon": h, "windows": windows, "series": len(ss)})
    return frame


def _data_and_horizon(forecaster: Any, run: Run | None, data: str | Path | None, horizon: int | None,
                      time: str | None, target: str | None, id: str | None, covariates: Sequence[str],
                      freq: str | None) -> tuple[SeriesSet, int]:
    """The series to evaluate on (the run's own data when ``data`` is None) and the horizon: the one given,
    else the forecaster's, else the dataset's."""
    ss = (_run_data(run, data) if run is not None and data is None
          else _load_for(run, data, time, target, id, covariates, freq))
    h = int(horizon or getattr(forecaster, "horizon", None) or ss.horizon or 0)
    if h < 1:
        raise ConfigError(f"{ss.name}: give --horizon (the data has no default horizon)")
    return ss, h


def _load_for(run: Run | None, data: str | Path | None, time: str | None, target: str | None, id: str | None,
              covariates: Sequence[str], freq: str | None) -> SeriesSet:
    if data is None:
        raise ConfigError("give the data to backtest on (--data FILE.csv or a dataset name)")
    if run is not None:
        d = run.config.get("data", {})
        time, target, id = time or d.get("time"), target or d.get("target"), id or d.get("id")
        covariates, freq = covariates or d.get("covariates") or (), freq or d.get("freq")
    return load_series(data, time, target, id, covariates, freq)


def format_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A plain-text table of a metrics frame (NaN as '-')."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "-" if not math.isfinite(v) else f"{v:.{digits}g}"
        return str(v)

    head = list(frame.columns)
    body = [[fmt(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def stability(model_or_run: str | Path, data: str | Path | None = None, horizon: int | None = None, runs: int = 3,
              seed: int = 0, start_shift: int | None = None, windows: int = 1, num_samples: int = 100,
              time: str | None = None, target: str | None = None, id: str | None = None,
              covariates: Sequence[str] = (), freq: str | None = None, steps: int | None = None,
              **options: Any):
    """Retrain ``model_or_run`` from ``runs`` seeds and start points and report the spread of its backtest
    metrics and forecast medians (:func:`chainrule.modalities.series.stability.stability_check`)."""
    from chainrule.modalities.series.stability import stability_check

    first, run = make_forecaster(model_or_run, steps=steps, seed=seed, **options)
    ss, h = _data_and_horizon(first, run, data, horizon, time, target, id, covariates, freq)

    def make(s: int):
        f = make_forecaster(model_or_run, steps=steps, seed=s, **options)[0]
        if isinstance(f, NeuralForecaster) and f.horizon is None:
            f.horizon = h
        return f

    return stability_check(make, ss, h, runs=runs, seed=seed, start_shift=start_shift, windows=windows,
                           num_samples=num_samples)
