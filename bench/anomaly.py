"""Series anomaly benchmark: one-step-ahead surprisal against a rolling z-score on injected, labelled anomalies.

For each bundled series a DeepAR model is trained on its first 60 % only; spikes (6 sigma), temporary level
shifts (4 sigma, 6 steps) and variance bursts (noise of 3 sigma, 6 steps), sigma = the robust standard deviation
of the series' first differences, are injected into the remaining 40 % with a fixed seed
(:func:`chainrule.modalities.series.inject.inject_anomalies`). Both detectors score every step of the changed
series; each gets AUROC over the steps of the last 40 %, and precision, recall and F1 at its best-F1 threshold
(step level), and the fraction of events with a flagged step at that threshold.
Writes bench/results/anomaly.json and anomaly.md.

    .venv/bin/python bench/anomaly.py              # 60 s of training per series
    .venv/bin/python bench/anomaly.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_files import write_results  # bench/ is on the path

from chainrule.modalities.series import api
from chainrule.modalities.series.anomaly import detection_metrics, one_step_log_probs, rolling_zscore
from chainrule.modalities.series.datasets import load_timeseries
from chainrule.modalities.series.inject import inject_anomalies

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERIES = ("airpassengers", "sunspots", "co2", "seattle-weather")
TRAIN_FRACTION = 0.6
LENGTH, GAP = 6, 5  # steps of a level shift or variance burst; clean steps kept between events
ZSCORE_WINDOWS = {"airpassengers": 12, "sunspots": 11, "co2": 52, "seattle-weather": 28}  # about one season


def bench_series(name: str, seconds: float, per_kind: int, seed: int) -> dict:
    ss = load_timeseries(name)
    values = ss.values[0].astype(np.float64)
    cut = int(len(values) * TRAIN_FRACTION)
    folder = HERE / "runs" / f"anomaly-{name}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    csv = folder / "train.csv"
    pd.DataFrame({"time": ss.times[0][:cut], "y": values[:cut]}).to_csv(csv, index=False)
    run = api.train_forecaster(csv, "deepar", horizon=ss.horizon, time="time", target="y", freq=ss.freq,
                               max_seconds=seconds, steps=100000, progress=False, run_dir=folder / "run")
    forecaster = api.forecaster_from_run(run)
    # as many events of each kind as fit loosely into the test part (at least one)
    per_kind = max(1, min(per_kind, (len(values) - cut) // (3 * (LENGTH + 2 * GAP))))
    injected = inject_anomalies(values, per_kind=per_kind, start=cut, length=LENGTH, gap=GAP, seed=seed)
    changed = replace(ss, values=[injected.values])
    surprisal = -one_step_log_probs(forecaster.model, forecaster.spec, changed)
    zscore = rolling_zscore(injected.values, ZSCORE_WINDOWS.get(name, 24))
    test = slice(cut, len(values))
    labels = injected.labels[test]
    events = [replace(e, start=e.start - cut, end=e.end - cut) for e in injected.events]
    summary = json.loads((run.path / "summary.json").read_text())
    return {"series": name, "length": len(values), "train_steps_of_series": cut, "events": len(injected.events),
            "labelled_steps": int(labels.sum()), "train_seconds": seconds, "optimizer_steps": summary.get("steps"),
            "run": run.path.relative_to(ROOT).as_posix(),
            "surprisal": detection_metrics(surprisal[test], labels, events),
            "rolling_zscore": {"window": ZSCORE_WINDOWS.get(name, 24),
                               **detection_metrics(zscore[test], labels, events)}}


def table(rows: list[dict]) -> str:
    out = ["| series (test steps, events) | detector | AUROC | precision | recall | F1 | events found |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for key, label in (("surprisal", "DeepAR one-step surprisal"),
                           ("rolling_zscore", f"rolling z-score (window {r['rolling_zscore']['window']})")):
            m = r[key]
            out.append(f"| {r['series']} ({r['length'] - r['train_steps_of_series']}, {r['events']}) | {label} | "
                       f"{m['auroc']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                       f"{m['event_recall']:.2f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", default=",".join(SERIES))
    p.add_argument("--seconds", type=float, default=60.0, help="training budget per series (s)")
    p.add_argument("--per-kind", type=int, default=3, help="events of each kind per series, at most")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: airpassengers, 3 s of training")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine more "
                                                          "threads mostly wait for each other)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    names, seconds, per_kind = (["airpassengers"], 3.0, 1) if a.quick else (a.series.split(","), a.seconds, a.per_kind)
    rows = [bench_series(n, seconds, per_kind, a.seed) for n in names]
    for r in rows:
        print(json.dumps(r, indent=2))
    write_results("anomaly", a.quick, {"rows": rows}, table(rows))


if __name__ == "__main__":
    main()
