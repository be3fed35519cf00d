"""``chainrule forecast train | predict | backtest | stability | datasets | models`` — the forecasting CLI."""

from __future__ import annotations

import argparse
import json
from typing import Any

from chainrule.cli.options import (
    add_config,
    add_device,
    add_json,
    add_num_samples,
    add_out,
    add_resume,
    add_run_option,
    add_seed,
    add_set,
)
from chainrule.core.errors import ChainruleError, ConfigError

EXAMPLES = {
    "train": """examples:
  chainrule forecast train prices.csv --time Date --target Close --horizon 20 --run runs/prices
  chainrule forecast train sales.csv --time week --target units --id store --head negative_binomial --horizon 8
  chainrule forecast train load.parquet --time ts --target mw --covariates temp,holiday --horizon 24 --freq h
  chainrule forecast train msft --model transformer --steps 2000       # a registered dataset
  chainrule forecast train airpassengers --model lstm --set model.hidden_size=64 --set train.weight_decay=0
  chainrule forecast train --config prices.yaml --set train.lr=3e-4 --run runs/prices   # data/model/train/output
  chainrule forecast train --resume --run runs/prices     # continue exactly where it stopped""",
    "predict": """examples:
  chainrule forecast predict runs/prices --out forecast.csv             # also writes forecast.png
  chainrule forecast predict runs/prices --data new.csv --quantiles 0.1,0.5,0.9 --num-samples 500 --seed 1""",
    "backtest": """examples:
  chainrule forecast backtest runs/prices --windows 3 --baselines naive,snaive,drift,theta,autoets,autoarima
  chainrule forecast backtest deepar --data m3-monthly --steps 2000 --baselines naive,theta --out metrics.csv
  chainrule forecast backtest transformer --data prices.csv --time Date --target Close --horizon 20 --seeds 5""",
    "stability": """examples:
  chainrule forecast stability deepar --data airpassengers --seeds 5 --steps 300
  chainrule forecast stability runs/prices --seeds 3 --start-shift 20 --json""",
    "datasets": "example:\n  chainrule forecast datasets",
    "models": "example:\n  chainrule forecast models",
}


def _data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data columns (CSV/Parquet files; not needed for a registered dataset)")
    g.add_argument("--time", metavar="COL", help="timestamp column (dates, datetimes or integers)")
    g.add_argument("--target", metavar="COL", help="numeric column to forecast")
    g.add_argument("--id", metavar="COL", help="series-id column, for a table holding many series")
    g.add_argument("--covariates", metavar="A,B", default="",
                   help="numeric columns known in advance (their future rows are needed to forecast)")
    g.add_argument("--freq", help="pandas frequency (D, B, W, MS, QS, YS, h, ...); default: inferred")


def _model_args(p: argparse.ArgumentParser, train: bool = False) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--head", choices=["gaussian", "student_t", "negative_binomial", "squared_error"],
                   help="output distribution (default: squared_error for lstm, student_t otherwise)")
    g.add_argument("--horizon", type=int, help="steps to forecast (default: the dataset's horizon)")
    g.add_argument("--context", type=int, help="context points before each forecast origin (default: "
                                               "max(horizon, season))")
    g.add_argument("--lags", metavar="1,7,...", help="lagged inputs (default: from the frequency)")
    g.add_argument("--no-calendar", action="store_true", help="no calendar (day/month...) features")
    g.add_argument("--steps", type=int, help="training steps, train.steps (default 1000)")
    g.add_argument("--batch-size", type=int, help="windows per step, train.batch_size (default 64)")
    g.add_argument("--lr", type=float, help="peak learning rate, train.lr (default 1e-3): reached by a linear warm-up "
                                            "over the first train.warmup_steps steps (default 50), then decayed "
                                            "along a cosine to train.min_lr_ratio x lr (default 0.1) at the last "
                                            "step")
    g.add_argument("--max-seconds", type=float, help="training time budget in seconds (default: none)")
    add_device(g, help="auto (default), cpu, cuda, ...")
    add_set(g, help="a config value, e.g. model.hidden_size=64 or train.weight_decay=0 (repeatable)"
            if train else "model.* architecture or train.* option, e.g. model.hidden_size=64 (repeatable)")


def add_parser(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """Register ``forecast`` and its subcommands on the top-level parser."""
    f = sub.add_parser("forecast", help="time-series forecasting: train, predict, backtest, stability",
                       formatter_class=fmt,
                       description="Neural forecasters (lstm, deepar, transformer) for one or many series from a "
                                   "CSV/Parquet file or a registered dataset. Forecasts are seeded ancestral sample "
                                   "paths summarised by mean, median and quantiles.",
                       epilog="Run 'chainrule forecast COMMAND --help' for each command's options and examples.")
    fs = f.add_subparsers(dest="forecast_command", metavar="COMMAND", required=True)

    t = fs.add_parser("train", help="train a forecaster into a run directory", formatter_class=fmt,
                      description="Train on every window of every series (reshuffled each epoch) with the trainer "
                                  "'chainrule train' uses (checkpoints, exact --resume, train.ema, torchrun). "
                                  "Writes RUN/config.yaml, checkpoints/, best.safetensors (the final weights), "
                                  "metrics.jsonl and summary.json. The configuration merges as for 'chainrule "
                                  "train': defaults <- --config <- flags <- --set. Sections: data (source, time, "
                                  "target, id, covariates, freq), model (name, head, horizon, context, lags, "
                                  "calendar and the architecture's options), train (as 'chainrule train'), output.",
                      epilog=EXAMPLES["train"])
    t.add_argument("data", metavar="DATA", nargs="?",
                   help="CSV/Parquet file or a dataset name (see 'chainrule forecast datasets'); data.source")
    t.add_argument("--model", help="lstm, deepar (default) or transformer; model.name")
    add_seed(t, help="seed of the weights and the order of the training windows, train.seed (default 0)")
    add_config(t)
    add_run_option(t, help="run directory (default: runs/DATA-MODEL-TIME)")
    add_resume(t)
    _data_args(t)
    _model_args(t, train=True)

    p = fs.add_parser("predict", help="forecast CSV + fan chart PNG from a trained run", formatter_class=fmt,
                      description="Forecast each series from its last observed value. The CSV has one row per "
                                  "series x step: id, timestamp, step, mean, median, q<quantile>...; the PNG shows "
                                  "history, median and the 50% and 90% bands.", epilog=EXAMPLES["predict"])
    p.add_argument("run", metavar="RUN", help="run directory written by 'chainrule forecast train'")
    p.add_argument("--data", help="data to forecast from (default: the run's training data); same columns")
    add_out(p, "forecast.csv", "output CSV (default forecast.csv)", metavar="FILE.csv")
    p.add_argument("--plot", metavar="PATH", help="fan chart PNG (default: the --out path with .png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the fan chart")
    p.add_argument("--quantiles", default="0.05,0.5,0.95", help="comma-separated quantiles (default 0.05,0.5,0.95)")
    add_num_samples(p, 100, "sample paths per series (default 100)")
    p.add_argument("--horizon", type=int, help="steps to forecast (default: the run's horizon)")
    add_seed(p, help="sampling seed (default 0)")
    add_device(p, default="auto", help="auto (default), cpu, cuda, ...")

    for name, helptext, desc in (
        ("backtest", "rolling-origin backtest of a model or run beside baselines",
         "Fit on the data before the earliest origin (a RUN's configuration is retrained, so nothing looks "
         "ahead), forecast each window and score mae, rmse, smape, mase, crps, quantile loss and coverage. "
         "With --seeds N > 1, runs the stability check instead."),
        ("stability", "retrain from several seeds and start points; report the spread",
         "Train from --seeds seeds, dropping a further --start-shift points from the start of each series per "
         "run, backtest each and report mean/std/min/max of the metrics and the spread of the forecast median."),
    ):
        b = fs.add_parser(name, help=helptext, formatter_class=fmt, description=desc, epilog=EXAMPLES[name])
        b.add_argument("target_model", metavar="RUN-or-MODEL",
                       help="run directory, model name (lstm, deepar, transformer) or baseline name")
        b.add_argument("--data", help="CSV/Parquet file or dataset name (default: a run's training data)")
        b.add_argument("--windows", type=int, default=3 if name == "backtest" else 1,
                       help=f"backtest windows (default {3 if name == 'backtest' else 1})")
        add_num_samples(b, 100, "sample paths per forecast (default 100)")
        add_seed(b, help="first training seed and the sampling seed (default 0)")
        b.add_argument("--seeds", type=int, default=1 if name == "backtest" else 3,
                       help="number of training runs for the stability check")
        b.add_argument("--start-shift", type=int, help="points dropped per run from each series' start "
                                                       "(stability; default: the season)")
        if name == "backtest":
            b.add_argument("--baselines", default="", metavar="A,B",
                           help="comparators: naive, snaive, drift, theta, autoets, autoarima")
        add_out(b, None, "also write the table as CSV", metavar="FILE.csv")
        add_json(b, help="print JSON instead of a table")
        _data_args(b)
        _model_args(b)

    fs.add_parser("datasets", help="list the registered time-series datasets", formatter_class=fmt,
                  description="Registered datasets usable in place of a CSV path.", epilog=EXAMPLES["datasets"])
    fs.add_parser("models", help="list the forecasting models and heads", formatter_class=fmt,
                  description="Registered forecasters.", epilog=EXAMPLES["models"])


# ---------------------------------------------------------------------------- helpers
def _ints(text: str | None, what: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _options(a: argparse.Namespace) -> dict[str, Any]:
    """Model/training options from the shared flags; ``--set`` model.* and train.* entries."""
    from chainrule.core.runs.config import parse_set

    sets = parse_set(a.overrides)
    other = sorted(set(sets) - {"model", "train"})
    if other:
        raise ConfigError(f"--set: only model.* and train.* options apply to forecasting, got {other[0]}.*")
    opts: dict[str, Any] = {"head": a.head, "context": a.context, "lags": _ints(a.lags, "--lags"),
                            "batch_size": a.batch_size, "lr": a.lr, "max_seconds": a.max_seconds,
                            "device": a.device, **sets.get("model", {})}
    if a.no_calendar:
        opts["calendar"] = False
    if sets.get("train"):
        opts["train_options"] = sets["train"]
    return {k: v for k, v in opts.items() if v is not None}


def _data_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    return {"time": a.time, "target": a.target, "id": a.id, "covariates": _names(a.covariates), "freq": a.freq}


def _write_csv(frame, path: str) -> None:
    from chainrule.core.runs.atomic import atomic_write_text

    atomic_write_text(path, frame.to_csv(index=False))


# ---------------------------------------------------------------------------- commands
def _train(a: argparse.Namespace) -> None:
    from chainrule.core.training.distributed import is_main_process
    from chainrule.modalities.series import api

    if not a.resume and not a.data and not a.config:
        raise ChainruleError("forecast train needs DATA (or --config); see 'chainrule forecast train --help'")
    run = api.train_forecaster(a.data, a.model, horizon=a.horizon, context=a.context, run_dir=a.run, steps=a.steps,
                               seed=a.seed, batch_size=a.batch_size, lr=a.lr, max_seconds=a.max_seconds,
                               lags=_ints(a.lags, "--lags"), calendar=False if a.no_calendar else None,
                               device=a.device, head=a.head, config_file=a.config, overrides=a.overrides,
                               resume=a.resume, **_data_kwargs(a))
    if not is_main_process():
        return
    s = run.spec
    print(f"run written to {run.path} ({s['model']} with {s['head']} head, {s['series']} series, "
          f"context {s['context']}, horizon {s['horizon']}, lags {','.join(map(str, s['lags']))})")


def _predict(a: argparse.Namespace) -> None:
    from pathlib import Path

    from chainrule.modalities.series import api

    plot = None if a.no_plot else (a.plot or str(Path(a.out).with_suffix(".png")))
    frame = api.predict(a.run, data=a.data, horizon=a.horizon, quantiles=a.quantiles, num_samples=a.num_samples,
                        seed=a.seed, out=a.out, plot=plot, device=a.device)
    series = frame["id"].nunique()
    print(f"wrote {a.out} ({len(frame)} rows: {series} series x {len(frame) // max(series, 1)} steps)"
          + (f" and {plot}" if plot else ""))


def _backtest(a: argparse.Namespace) -> None:
    from chainrule.modalities.series import api

    if a.seeds > 1:
        return _stability(a)
    opts = _options(a)
    frame = api.backtest(a.target_model, data=a.data, horizon=a.horizon, windows=a.windows,
                         baselines=_names(a.baselines), num_samples=a.num_samples, seed=a.seed, steps=a.steps,
                         train_seed=a.seed, progress=True, **_data_kwargs(a), **opts)
    if a.out:
        _write_csv(frame, a.out)
    if a.json:
        print(json.dumps({**frame.attrs, "results": frame.to_dict(orient="records")}, indent=2, default=str))
        return
    at = frame.attrs
    print(f"backtest on {at['dataset']}: {at['series']} series, {at['windows']} window(s) of horizon {at['horizon']}")
    print(api.format_table(frame))
    if a.out:
        print(f"wrote {a.out}")


def _stability(a: argparse.Namespace) -> None:
    from chainrule.modalities.series import api

    opts = _options(a)
    res = api.stability(a.target_model, data=a.data, horizon=a.horizon, runs=a.seeds, seed=a.seed,
                        start_shift=a.start_shift, windows=a.windows, num_samples=a.num_samples, steps=a.steps,
                        progress=True, **_data_kwargs(a), **opts)
    if a.out:
        _write_csv(res.metrics, a.out)
    if a.json:
        print(json.dumps(res.to_dict(), indent=2, default=str))
        return
    print(f"stability of {res.forecaster} on {res.dataset}: {len(res.runs)} runs (seeds "
          f"{', '.join(map(str, res.runs['seed']))}; start shifts {', '.join(map(str, res.runs['start_shift']))})")
    print(api.format_table(res.metrics))
    print("forecast median across runs: " + ", ".join(f"{k} {v:.4g}" for k, v in res.median_spread.items()))
    if a.out:
        print(f"wrote {a.out}")


def _datasets(_: argparse.Namespace) -> None:
    from chainrule.modalities.series.datasets import TS_DATASET_INFO, TS_DATASETS

    for name in TS_DATASETS:
        print(f"{name:18s} {TS_DATASET_INFO.get(name, '')}")


def _models(_: argparse.Namespace) -> None:
    from chainrule.core.heads import CONTINUOUS_HEADS as HEADS
    from chainrule.modalities.registry import model_class, model_names

    latent = []
    for name in model_names("series"):
        cls = model_class(name, "series")
        if cls.family != "autoregressive":  # no forecast: listed apart
            latent.append(name)
            continue
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} {doc}  [default head {cls.default_head}]")
    print(f"heads: {', '.join(HEADS)}")
    if latent:
        print(f"latent-variable models of series windows (no forecast; 'chainrule train DATASET NAME', then "
              f"'chainrule eval' / 'chainrule sample'): {', '.join(latent)}")


SUBCOMMANDS = {"train": _train, "predict": _predict, "backtest": _backtest, "stability": _stability,
               "datasets": _datasets, "models": _models}


def run(a: argparse.Namespace) -> None:
    SUBCOMMANDS[a.forecast_command](a)
