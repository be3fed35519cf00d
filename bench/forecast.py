"""Forecasting benchmark: neural forecasters beside classical baselines on competition and real series.

Datasets and protocol: M3 monthly (1,428 series, horizon 18), M3 yearly (645, horizon 6) and Tourism monthly
(366, horizon 24) are scored on the competition holdout (the last ``horizon`` points of each series); MSFT
closing prices (horizon 20) and Seattle maximum temperature (horizon 14) on a rolling-origin backtest with
``--windows`` adjacent windows. Every model is fitted once on the data before the earliest origin. Reported:
sMAPE (M3 convention), MASE, CRPS (from sample paths), 90% interval coverage and fit + predict seconds.

Models: the neural ``lstm``, ``deepar`` and ``transformer`` (chainrule.modalities.series.neural), the baselines
``snaive``, ``naive``, ``drift``, statsforecast's ``theta``, ``autoets``, ``autoarima`` and GluonTS DeepAR
(``gluonts-deepar``) when those packages are installed; a model that is unavailable is reported and skipped.

    .venv/bin/python bench/forecast.py                                   # everything (slow)
    .venv/bin/python bench/forecast.py --datasets airpassengers --models naive,snaive
    .venv/bin/python bench/forecast.py --datasets m3-monthly --limit 20 --models snaive,theta,deepar --steps 200

Results are merged by (dataset, model) into bench/results/forecast.json and rendered as forecast.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from chainrule.core.errors import ChainruleError  # noqa: E402
from chainrule.core.runs.atomic import atomic_write_text  # noqa: E402
from chainrule.modalities.series.backtest import backtest  # noqa: E402
from chainrule.modalities.series.datasets import load_timeseries  # noqa: E402
from chainrule.modalities.series.table import SeriesSet  # noqa: E402

#: dataset -> (horizon, windows or None for the competition holdout)
DATASETS = {"m3-monthly": (18, None), "m3-yearly": (6, None), "tourism-monthly": (24, None), "msft": (20, "rolling"),
            "seattle-weather": (14, "rolling")}
NEURAL = ("lstm", "deepar", "transformer")
BASELINES = ("snaive", "naive", "drift", "theta", "autoets", "autoarima")
MODELS = NEURAL + BASELINES + ("gluonts-deepar",)

SOURCE = ('Makridakis, S. & Hibon, M. (2000). "The M3-Competition: results, conclusions and implications". '
          "International Journal of Forecasting 16(4), 451-476")
PUBLISHED = [
    {"dataset": "m3-yearly", "model": "Theta (M3 submission)", "smape": 16.90, "source": SOURCE,
     "verified": False, "note": "sMAPE averaged over horizons 1-6 as commonly cited; not verified against the "
                                "paper here"},
    {"dataset": "m3-monthly", "model": "Theta (M3 submission)", "smape": 13.85, "source": SOURCE,
     "verified": False, "note": "sMAPE averaged over horizons 1-18 as commonly cited; a secondary source quotes "
                                "the same published figure (and a recomputation of 13.94); not verified against "
                                "the paper here"},
]


class Unavailable(Exception):
    """A model whose package is not installed."""


class GluonTSDeepAR:
    """GluonTS's torch DeepAR behind the Forecaster protocol (only when ``gluonts`` is installed)."""

    def __init__(self, horizon: int, steps: int, seed: int):
        try:
            from gluonts.torch.model.deepar import DeepAREstimator  # noqa: F401
        except ImportError:
            raise Unavailable("gluonts not installed") from None
        self.name, self.horizon, self.steps, self.seed = "gluonts-deepar", horizon, steps, seed
        self.predictor = None

    @staticmethod
    def _freq(freq: str | None) -> str:
        """A period alias for GluonTS: start-anchored offsets (YS, QS, MS, ...) have none of their own."""
        base = (freq or "D").split("-")[0]
        return {"YS": "Y", "AS": "Y", "QS": "Q", "MS": "M", "BMS": "M", "BYS": "Y", "BQS": "Q"}.get(base, base)

    def _dataset(self, ss: SeriesSet):
        import pandas as pd
        from gluonts.dataset.common import ListDataset

        freq = self._freq(ss.freq)
        start = pd.Period("2000-01-01", freq=freq)
        return ListDataset([{"start": start, "target": np.asarray(v, dtype=np.float32)} for v in ss.values], freq=freq)

    def fit(self, train: SeriesSet) -> None:
        import lightning.pytorch as pl
        from gluonts.torch.model.deepar import DeepAREstimator

        pl.seed_everything(self.seed, workers=True)
        batches = 50
        estimator = DeepAREstimator(freq=self._freq(train.freq), prediction_length=self.horizon,
                                    num_batches_per_epoch=batches,
                                    trainer_kwargs={"max_epochs": max(1, self.steps // batches),
                                                    "enable_progress_bar": False, "logger": False,
                                                    "default_root_dir": tempfile.mkdtemp(prefix="gluonts-")})
        self.predictor = estimator.train(self._dataset(train))

    def predict(self, context: SeriesSet, horizon: int, num_samples: int, seed: int) -> np.ndarray:
        import torch

        torch.manual_seed(seed)
        forecasts = self.predictor.predict(self._dataset(context), num_samples=num_samples)
        return np.stack([np.asarray(f.samples, dtype=np.float64)[:, :horizon] for f in forecasts])


def make_model(name: str, ss: SeriesSet, horizon: int, steps: int, seed: int):
    if name in BASELINES:
        from chainrule.modalities.series.baselines import make_baseline

        try:
            return make_baseline(name)
        except ChainruleError as e:  # statsforecast missing
            raise Unavailable(str(e)) from None
    if name == "gluonts-deepar":
        return GluonTSDeepAR(horizon, steps, seed)
    try:
        from chainrule.modalities.series.neural import NeuralForecaster
    except ImportError as e:
        raise Unavailable(f"chainrule.modalities.series.neural not available ({e})") from None
    return NeuralForecaster(name, horizon=horizon, steps=steps, seed=seed)


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}
    for module in ("torch", "numpy", "pandas", "statsforecast", "gluonts"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def run_one(dataset: str, ss: SeriesSet, model: str, a: argparse.Namespace) -> dict:
    horizon, protocol = DATASETS.get(dataset, (ss.horizon, "rolling"))
    windows = 1 if protocol is None else a.windows
    row = {"dataset": dataset, "model": model, "horizon": horizon, "series": len(ss),
           "protocol": "competition holdout" if protocol is None else f"rolling origin, {windows} windows",
           "windows": windows, "samples": a.samples, "limit": a.limit,
           "steps": a.steps if model in NEURAL or model == "gluonts-deepar" else None}
    try:
        forecaster = make_model(model, ss, horizon, a.steps, a.seed)
        res = backtest(forecaster, ss, horizon, windows=windows, num_samples=a.samples, seed=a.seed)
    except Unavailable as e:
        print(f"  {model}: skipped ({e})", flush=True)
        return {**row, "status": "not installed" if "not installed" in str(e) else f"unavailable: {e}"}
    except (ChainruleError, ValueError, RuntimeError) as e:
        print(f"  {model}: failed ({type(e).__name__}: {e})", flush=True)
        if a.verbose:
            traceback.print_exc()
        return {**row, "status": f"failed: {type(e).__name__}: {e}"}
    m = res.metrics
    out = {**row, "status": "ok", "smape": m["smape"], "mase": m["mase"], "crps": m["crps"],
           "coverage_90": m.get("coverage_90"), "mae": m["mae"], "rmse": m["rmse"],
           "fit_seconds": res.fit_seconds, "predict_seconds": res.predict_seconds,
           "seconds": res.fit_seconds + res.predict_seconds}
    print(f"  {model:>15}: sMAPE {out['smape']:.2f}  MASE {out['mase']:.3f}  CRPS {out['crps']:.4g}  "
          f"cov90 {out['coverage_90']:.2f}  {out['seconds']:.1f}s", flush=True)
    return out


def _fmt(value, digits: int) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def markdown(data: dict) -> str:
    meta = data.get("meta", {})
    lines = ["# Forecasting benchmark", "",
             "sMAPE uses the M3 convention: mean of 200 |y - f| / (|y| + |f|) in percent over all series and "
             "horizon steps. MASE scales each series' MAE by its in-sample seasonal-naive MAE. CRPS is "
             "estimated from sample paths (unbiased pair estimator; baselines sample Gaussians with the FPP3 "
             "benchmark interval widths, statsforecast models a Gaussian matched to their 90% interval). "
             "Coverage: share of actual values inside the central 90% sample interval (a point forecaster such as "
             "lstm repeats its forecast, so its interval is empty and its CRPS equals its MAE). Seconds: fit + "
             "predict.", ""]
    rows = data.get("results", [])
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == dataset]
        first = group[0]
        lines += [f"## {dataset}", "",
                  f"{first['series']} series, horizon {first['horizon']}, {first['protocol']}"
                  + (f", first {first['limit']} series only" if first.get("limit") else ""), "",
                  "| model | sMAPE | MASE | CRPS | 90% coverage | seconds | status |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for r in sorted(group, key=lambda r: (r["status"] != "ok", r.get("smape") or 0.0)):
            lines.append(f"| {r['model']} | {_fmt(r.get('smape'), 2)} | {_fmt(r.get('mase'), 3)} | "
                         f"{_fmt(r.get('crps'), 4)} | {_fmt(r.get('coverage_90'), 3)} | {_fmt(r.get('seconds'), 1)} | "
                         f"{r['status']} |")
        for p in data.get("published", []):
            if p["dataset"] == dataset:
                lines.append(f"| {p['model']}, published | {p['smape']:.2f} | – | – | – | – | "
                             f"{'verified' if p['verified'] else 'unverified'} |")
        lines.append("")
    lines += ["## Published reference figures", ""]
    for p in data.get("published", []):
        lines.append(f"- {p['dataset']}: {p['model']} sMAPE {p['smape']:.2f}. {p['note']}. Source: {p['source']}.")
    info = meta.get("machine", {})
    described = ", ".join(f"{k} {v}" for k, v in info.items() if v is not None)
    lines += ["", f"Machine (last run): {described}", "", f"Last command: `{meta.get('command', '')}`", ""]
    return "\n".join(lines)


def merge(path: Path, rows: list[dict], meta: dict) -> dict:
    data = json.loads(path.read_text()) if path.is_file() else {}
    keep = {(r["dataset"], r["model"]): r for r in data.get("results", [])}
    for r in rows:
        keep[(r["dataset"], r["model"])] = r
    return {"meta": meta, "published": PUBLISHED, "results": list(keep.values())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated registry names")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--limit", type=int, default=None, help="use only the first N series of each dataset")
    p.add_argument("--out", default=str(HERE / "results" / "forecast.json"))
    p.add_argument("--samples", type=int, default=100, help="sample paths per forecast")
    p.add_argument("--steps", type=int, default=1000, help="training steps of the neural models")
    p.add_argument("--windows", type=int, default=5, help="rolling-origin windows (MSFT, Seattle)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failed models")
    a = p.parse_args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; available: {', '.join(MODELS)}")
    rows = []
    for dataset in [d.strip() for d in a.datasets.split(",") if d.strip()]:
        ss = load_timeseries(dataset)
        if a.limit:
            ss = ss.subset(slice(0, a.limit))
        print(f"{dataset}: {len(ss)} series, horizon {DATASETS.get(dataset, (ss.horizon,))[0]}", flush=True)
        for model in models:
            rows.append({**run_one(dataset, ss, model, a), "command": " ".join(sys.argv),
                         "date": datetime.date.today().isoformat()})
    meta = {"machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    out = Path(a.out)
    data = merge(out, rows, meta)
    atomic_write_text(out, json.dumps(data, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(data))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f}s")
