"""Image benchmark: every model on binarized MNIST (the 5,000-image subset), binarized Fashion-MNIST and the RGB
photo patches (256 levels) at a fixed CPU budget; conditional models (super-resolution, colorization) on their
derived datasets (``upscale4:photos``, ``colorize:photos``).

Writes bench/results/images.json and bench/results/images.md (the table copied into BENCHMARKS.md).

    .venv/bin/python bench/images.py                       # full run (hours on 2 cores)
    .venv/bin/python bench/images.py --datasets digits --models histogram,made --seconds 20
    .venv/bin/python bench/images.py --quick               # every model and dataset, tiny models, seconds each
    .venv/bin/python bench/images.py --sampling-only --uncached-steps 28   # sampling speed at the MNIST sizes
    .venv/bin/python bench/images.py --sampling-only --quick               # the same at a tiny size (a smoke run)
    .venv/bin/python bench/images.py --sampling-only --merge --models pixelsnail   # re-time one model's row

Sampling is timed for 64 images, cached (each model's incremental ``step``) and uncached (the network re-run
for every position). ``--uncached-steps K`` times the uncached path over its first K steps only and scales by the
steps of a whole run / K: every uncached step re-runs the same full network, so the estimate is fair and saves
hours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from chainrule import api
from chainrule.core.contract import Condition
from chainrule.core.sampling import SamplingStopped, stop_when
from chainrule.modalities.image.conditioning import parse_task
from chainrule.modalities.registry import build_model, model_class, model_names

HERE = Path(__file__).resolve().parent
PUBLISHED = {  # binarized MNIST test NLL, nats (static binarization)
    "pixel_lstm": ("PixelRNN (Row LSTM/Diagonal BiLSTM, van den Oord et al. 2016)", 79.20),
    "pixelcnn": ("PixelCNN (van den Oord et al. 2016)", 81.30),
    "made": ("MADE, 32 masks (Germain et al. 2015)", 86.64),
}
BATCH = 64
SAMPLES = 64
MNIST_SHAPE = (1, 28, 28)
#: datasets of RGB photos (kept at 256 levels; the grey ones are binarized)
RGB = ("photos",)
DATASETS = "mnist-subset,fashion-mnist,photos,upscale4:photos,colorize:photos"


def time_sampling(net: torch.nn.Module, n: int = SAMPLES, uncached_steps: int | None = None,
                  cond: Condition | None = None) -> dict:
    """Seconds to draw ``n`` images (given ``cond``) cached (when the model has a step) and uncached. With
    ``uncached_steps`` the uncached path is timed over that many sampling steps and scaled to the number of steps
    the cached run took (a MADE ensemble runs one pass per mask), which is recorded."""
    out: dict = {}
    steps = [0]

    def count(limit: int | None = None) -> bool:
        steps[0] += 1
        return limit is not None and steps[0] > limit

    if net.supports_cache:
        t = time.perf_counter()
        with stop_when(count):
            net.sample(n, cond, use_cache=True, generator=torch.Generator().manual_seed(0))
        out["cached"] = time.perf_counter() - t
    total, steps[0] = steps[0], 0
    limit = uncached_steps if uncached_steps and uncached_steps < total else None
    t = time.perf_counter()
    try:
        with stop_when(lambda: count(limit)):
            net.sample(n, cond, use_cache=False, generator=torch.Generator().manual_seed(0))
    except SamplingStopped:
        pass
    out["uncached"] = time.perf_counter() - t
    if limit is not None:
        out["uncached"] *= total / limit
        out["uncached_scaled_from_steps"] = f"{limit} of {total}"
    return out


def data_overrides(dataset: str) -> list[str]:
    """Grey datasets are binarized (one seeded draw); the photos keep their 256 levels."""
    return [] if dataset.split(":")[-1] in RGB else ["data.binarize=static"]


def applies(dataset: str, model: str) -> bool:
    """Conditional image models train on derived datasets (``upscale4:photos``), the others on plain ones."""
    return model_class(model, "image").takes_image == (parse_task(dataset) is not None)


def bench_one(dataset: str, model: str, seconds: float, root: Path, time_sampling_too: bool = True, grid: int = 64,
              uncached_steps: int | None = None, options: dict | None = None, samples: int = SAMPLES) -> dict:
    run_dir = root / f"{dataset.replace(':', '-')}-{model}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = [*data_overrides(dataset), f"train.batch_size={BATCH}", "train.lr=2e-3",
                 f"train.max_seconds={seconds}", "train.steps=100000", "train.eval_every=500",
                 "train.checkpoint_every=100000", "train.progress=false", f"output.samples={grid}",
                 *(f"model.{k}={json.dumps(v)}" for k, v in (options or {}).items())]
    t0 = time.perf_counter()
    run = api.train(dataset, model, run_dir=run_dir, overrides=overrides)
    wall = time.perf_counter() - t0
    summary = json.loads((run.path / "summary.json").read_text())
    steps = int(summary.get("steps", 0))
    train_seconds = float(summary.get("wall_time") or wall)
    res = api.evaluate(run)
    net = run.load_model()
    timings = time_sampling(net.eval(), samples, uncached_steps) if time_sampling_too else {}
    return {
        "dataset": dataset, "model": model, "data": res["data"], "nll_nats": res["nll_nats"], "bpd": res["bpd"],
        "params": res["params"], "steps": steps, "batch_size": BATCH, "train_seconds": train_seconds,
        "event_shape": list(net.event_shape), "levels": int(run.spec["levels"]),
        "train_images_per_s": steps * BATCH / train_seconds if train_seconds > 0 and steps else None,
        "sample64_seconds": timings, "samples_timed": samples,
    }


def table(rows: list[dict]) -> str:
    n = rows[0].get("samples_timed", SAMPLES) if rows else SAMPLES
    out = ["| data | model | test NLL (nats) | bits/dim | params | train img/s | steps | "
           f"sample {n}, uncached (s) | cached (s) | published, binarized MNIST (nats) |",
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


def sampling_rows(models: list[str], quick: bool, uncached_steps: int | None) -> list[dict]:
    """Sampling speed alone, at the benchmark's model sizes on binarized MNIST (or tiny models with ``quick``):
    random weights, since the time depends on the architecture and the image size only (a model conditioned on an
    image gets a random one in [-1, 1], as from ``upscale4:`` or ``colorize:`` data)."""
    shape, n = ((1, 8, 8), 4) if quick else (MNIST_SHAPE, SAMPLES)
    rows = []
    for name in models:
        options = model_class(name, "image").TINY if quick else {}
        torch.manual_seed(0)
        net = build_model(name, shape, 2, head="auto", **options).eval()  # as a run on binarized data
        print(f"== sampling {name} {shape}", flush=True)
        cond = Condition(image=torch.rand(n, *shape) * 2 - 1) if net.takes_image else None
        timings = time_sampling(net, n, uncached_steps, cond)
        rows.append({"model": name, "event_shape": list(shape), "samples": n, "quick": quick,
                     "params": sum(p.numel() for p in net.parameters()), "sample_seconds": timings,
                     "speedup": timings["uncached"] / timings["cached"] if "cached" in timings else None,
                     "load_average_1min": round(os.getloadavg()[0], 1)})  # > cores: measured under load
        print(json.dumps(rows[-1]), flush=True)
    return rows


def sampling_table(rows: list[dict]) -> str:
    out = ["| model | params | images | uncached (s) | cached (s) | speed-up |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["sample_seconds"]
        part = s.get("uncached_scaled_from_steps")
        scaled = f" (from {part} steps)" if part else ""
        cached = f"{s['cached']:.2f}" if "cached" in s else "–"
        speedup = (f"{r['speedup']:.0f}x" if r["speedup"] >= 10 else f"{r['speedup']:.1f}x") if r["speedup"] else "–"
        out.append(f"| {r['model']} | {r['params']:,} | {r['samples']} | {s['uncached']:.2f}{scaled} | {cached} | "
                   f"{speedup} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=DATASETS)
    p.add_argument("--models", default=",".join(model_names("image")))
    p.add_argument("--seconds", type=float, default=None,
                   help="training budget per run (default: 45 s digits, 120 s MNIST/Fashion-MNIST)")
    p.add_argument("--out", default=str(HERE / "results" / "images.json"))
    p.add_argument("--no-sample-timing", action="store_true",
                   help="skip timing 64 samples (it depends on architecture and image size, not on the data)")
    p.add_argument("--grid", type=int, default=64, help="images in each run's sample grid")
    p.add_argument("--merge", action="store_true",
                   help="replace only these (dataset, model) rows (with --sampling-only: model rows) in the results")
    p.add_argument("--uncached-steps", type=int, default=None,
                   help="time the uncached sampler over this many steps and scale (default: all of them)")
    p.add_argument("--sampling-only", action="store_true",
                   help="only time sampling, at the MNIST model sizes with random weights (no training)")
    p.add_argument("--quick", action="store_true",
                   help="tiny models (TINY options), 5 s of training, 4 uncached steps; with --sampling-only: 8x8")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.sampling_only:
        models = [m for m in a.models.split(",") if model_class(m, "image").modality == "image"]
        rows = sampling_rows(models, a.quick, a.uncached_steps)
        out = HERE / "results" / ("image_sampling-quick.json" if a.quick else "image_sampling.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        earlier = []
        if a.merge and out.is_file():  # keep the other models' rows, and the meta of the runs that measured them
            old = json.loads(out.read_text())
            done = {r["model"] for r in rows}
            rows = [r for r in old["results"] if r["model"] not in done] + rows
            earlier = old["meta"].pop("earlier", []) + [old["meta"]]
        meta = {"machine": f"{platform.processor() or platform.machine()}, {a.threads} threads, "
                           f"torch {torch.__version__}, CPU only",
                "load_average_1min_at_end": round(os.getloadavg()[0], 1),  # > cores: other work shared the CPU
                "command": "python bench/images.py " + " ".join(
                    f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')} {v}"
                    for k, v in vars(a).items() if v and k not in ("out", "datasets", "grid"))}
        if earlier:
            meta["earlier"] = earlier
        out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
        out.with_suffix(".md").write_text(sampling_table(rows) + "\n")
        print(sampling_table(rows))
        return
    root = HERE / "runs"
    rows = []
    if a.quick:
        a.seconds, a.grid, a.uncached_steps = a.seconds or 5.0, 4, a.uncached_steps or 4
    for ds in a.datasets.split(","):
        for m in a.models.split(","):
            if not applies(ds, m):
                continue
            budget = a.seconds or (45.0 if ds == "digits" else 120.0)
            print(f"== {ds} / {m} ({budget:.0f} s budget)", flush=True)
            options = model_class(m, "image").TINY if a.quick else {}
            rows.append(bench_one(ds, m, budget, root, not a.no_sample_timing, a.grid, a.uncached_steps, options,
                                  4 if a.quick else SAMPLES))
            print(json.dumps(rows[-1]), flush=True)
    meta = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                       f"torch {torch.__version__}, CPU only",
            "command": "python bench/images.py " + " ".join(
                f"--{k}" if v is True else f"--{k} {v}" for k, v in vars(a).items() if v and k != "out"),
            "batch_size": BATCH, "binarization": "grey data: static (one seeded Bernoulli draw); photos: 256 levels",
            "load_average_1min_at_end": round(os.getloadavg()[0], 1), "quick": bool(a.quick)}
    out = Path(a.out) if not a.quick else HERE / "results" / "images-quick.json"
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
