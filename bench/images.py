"""Image benchmark: every model on binarized digits, MNIST and Fashion-MNIST at a fixed CPU budget.

Writes bench/results/images.json and bench/results/images.md (the table copied into BENCHMARKS.md).

    .venv/bin/python bench/images.py                       # full run (about an hour on 2 cores)
    .venv/bin/python bench/images.py --datasets digits --models histogram,made --seconds 20
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from chainrule import api
from chainrule.modalities.registry import model_names

HERE = Path(__file__).resolve().parent
PUBLISHED = {  # binarized MNIST test NLL, nats (static binarization)
    "pixel_lstm": ("PixelRNN (Row LSTM/Diagonal BiLSTM, van den Oord et al. 2016)", 79.20),
    "pixelcnn": ("PixelCNN (van den Oord et al. 2016)", 81.30),
    "made": ("MADE, 32 masks (Germain et al. 2015)", 86.64),
}
BATCH = 64


def bench_one(dataset: str, model: str, seconds: float, root: Path, time_sampling: bool = True, grid: int = 64) -> dict:
    run_dir = root / f"{dataset}-{model}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = ["data.binarize=static", f"train.batch_size={BATCH}", "train.lr=2e-3", f"train.max_seconds={seconds}",
                 "train.steps=100000", "train.eval_every=500", "train.checkpoint_every=100000",
                 "train.progress=false", f"output.samples={grid}"]
    t0 = time.perf_counter()
    run = api.train(dataset, model, run_dir=run_dir, overrides=overrides)
    wall = time.perf_counter() - t0
    summary = json.loads((run.path / "summary.json").read_text())
    steps = int(summary.get("steps", 0))
    train_seconds = float(summary.get("wall_time") or wall)
    res = api.evaluate(run)
    net = run.load_model()
    timings = {}
    for cached in ([True, False] if net.supports_cache else [False]) if time_sampling else []:
        t = time.perf_counter()
        api.sample(run, 64, seed=0, use_cache=cached, model=net)
        timings["cached" if cached else "uncached"] = time.perf_counter() - t
    return {
        "dataset": dataset, "model": model, "data": res["data"], "nll_nats": res["nll_nats"], "bpd": res["bpd"],
        "params": res["params"], "steps": steps, "batch_size": BATCH, "train_seconds": train_seconds,
        "train_images_per_s": steps * BATCH / train_seconds if train_seconds > 0 and steps else None,
        "sample64_seconds": timings,
    }


def table(rows: list[dict]) -> str:
    out = ["| data | model | test NLL (nats) | bits/dim | params | train img/s | steps | "
           "sample 64, uncached (s) | cached (s) | published, binarized MNIST (nats) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        pub = PUBLISHED.get(r["model"]) if r["dataset"] == "mnist" else None
        ips = f"{r['train_images_per_s']:.0f}" if r["train_images_per_s"] else "closed form"
        s = r["sample64_seconds"]
        if s:
            uncached, cached = f"{s['uncached']:.2f}", (f"{s['cached']:.2f}" if "cached" in s else "–")
        else:  # sampling time depends on the architecture and image size only, not on the data
            uncached = cached = "as MNIST"
        published = f"{pub[0]}: {pub[1]:.2f}" if pub else ""
        out.append(f"| {r['data']} | {r['model']} | {r['nll_nats']:.2f} | {r['bpd']:.4f} | {r['params']:,} | "
                   f"{ips} | {r['steps']} | {uncached} | {cached} | {published} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="digits,mnist,fashion-mnist")
    p.add_argument("--models", default=",".join(model_names("image")))
    p.add_argument("--seconds", type=float, default=None,
                   help="training budget per run (default: 45 s digits, 120 s MNIST/Fashion-MNIST)")
    p.add_argument("--out", default=str(HERE / "results" / "images.json"))
    p.add_argument("--no-sample-timing", action="store_true",
                   help="skip timing 64 samples (it depends on architecture and image size, not on the data)")
    p.add_argument("--grid", type=int, default=64, help="images in each run's sample grid")
    p.add_argument("--merge", action="store_true",
                   help="replace only these (dataset, model) rows in an existing results file")
    a = p.parse_args()
    torch.set_num_threads(2)
    root = HERE / "runs"
    rows = []
    for ds in a.datasets.split(","):
        for m in a.models.split(","):
            budget = a.seconds or (45.0 if ds == "digits" else 120.0)
            print(f"== {ds} / {m} ({budget:.0f} s budget)", flush=True)
            rows.append(bench_one(ds, m, budget, root, not a.no_sample_timing, a.grid))
            print(json.dumps(rows[-1]), flush=True)
    meta = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                       f"torch {torch.__version__}, CPU only",
            "command": "python bench/images.py " + " ".join(
                f"--{k}" if v is True else f"--{k} {v}" for k, v in vars(a).items() if v and k != "out"),
            "batch_size": BATCH, "binarization": "static (one seeded Bernoulli draw)"}
    out = Path(a.out)
    if a.merge and out.is_file():
        done = {(r["dataset"], r["model"]) for r in rows}
        old = json.loads(out.read_text())
        meta = {**old["meta"], "reruns": old["meta"].get("reruns", []) + [meta["command"]]}
        order = [(r["dataset"], r["model"]) for r in old["results"]]
        merged = {(r["dataset"], r["model"]): r for r in old["results"] if (r["dataset"], r["model"]) not in done}
        merged.update({(r["dataset"], r["model"]): r for r in rows})
        rows = [merged[k] for k in order if k in merged] + [r for k, r in merged.items() if k not in order]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
