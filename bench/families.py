"""Families benchmark: VAE, flows (RealNVP, MAF), diffusion (DDPM), GAN and autoregressive models on one dataset
each, at one training budget (the same number of steps and batch size for every model), in one leaderboard.

Writes bench/results/families.json, bench/results/families.md and a sample grid per model in
bench/results/families/ (``-quick`` names for --quick).

    .venv/bin/python bench/families.py                         # digits, binarized MNIST subset, binarized Fashion-MNIST
    .venv/bin/python bench/families.py --datasets digits --models vae,ddpm --steps 2000
    .venv/bin/python bench/families.py --quick                 # tiny models, a few steps: checks that it all runs

NLL is on the test split: exact for the autoregressive models, an upper bound for the VAE (IWAE), the flows
(uniform dequantization) and DDPM (variational bound); none for the GAN. Sample quality uses the leaderboard's
classifier features (chainrule.leaderboard). Speed (samples/s, training seconds) depends on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from chainrule import api
from chainrule.leaderboard import format_table, leaderboard
from chainrule.modalities.registry import model_class

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DATASETS = {"digits": [], "mnist-subset": ["data.binarize=static"], "fashion-mnist": ["data.binarize=static"]}
MODELS = ["vae", "pixel_vae", "realnvp", "maf", "ddpm", "gan", "made", "pixelcnn"]


def overrides_for(model: str, steps: int, quick: bool) -> list[str]:
    sets = [f"train.steps={steps}", "train.eval_every=0", "train.checkpoint_every=0", "train.progress=false",
            "train.warmup_steps=0" if quick else "train.warmup_steps=100", "output.samples=0"]
    if quick:
        sets += [f"model.{k}={json.dumps(v)}" for k, v in model_class(model, "image").TINY.items()]
    return sets


def finished(run_dir: Path, steps: int) -> bool:
    """A run an earlier invocation completed with the same number of steps."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return False
    return json.loads(summary.read_text()).get("steps") == steps


def save(stem: Path, board: dict[str, list[dict]], settings: dict[str, dict]) -> Path:
    """Write ``stem``.json and .md, keeping the rows (and settings) of datasets this run did not touch."""
    out = stem.with_suffix(".json")
    if out.exists():
        old = json.loads(out.read_text())
        kept = [ds for ds in old.get("leaderboard", {}) if ds not in board]
        board = {**{ds: old["leaderboard"][ds] for ds in kept}, **board}
        previous = old.get("settings", {})
        settings = {**{ds: previous.get(ds, previous) for ds in kept}, **settings}
    out.write_text(json.dumps({"settings": settings, "leaderboard": board}, indent=2) + "\n")
    md = "\n\n".join(f"### {ds}\n\n{format_table(rows)}" for ds, rows in board.items())
    stem.with_suffix(".md").write_text(md + "\n")
    print(f"wrote {out.relative_to(ROOT)}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=2000, help="training steps for every model (default 2000)")
    p.add_argument("--samples", type=int, default=1000, help="samples per model for the quality figures")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny models, 5 steps, digits, 64 samples")
    p.add_argument("--reuse", action="store_true",
                   help="keep a model's finished run from an earlier invocation (same steps) instead of retraining it")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    datasets, models = a.datasets.split(","), a.models.split(",")
    steps, samples, suffix = a.steps, a.samples, ""
    if a.quick:
        datasets, steps, samples, suffix = ["digits"], 5, 64, "-quick"
    runs_root = HERE / "runs" / f"families{suffix}"
    grids = HERE / "results" / f"families{suffix}"
    for ds in datasets:
        runs = []
        for m in models:
            run_dir = runs_root / f"{ds}-{m}"
            if a.reuse and finished(run_dir, steps):
                print(f"{ds} {m}: reusing {run_dir.relative_to(ROOT)}", flush=True)
                runs.append(run_dir)
                continue
            shutil.rmtree(run_dir, ignore_errors=True)
            start = time.perf_counter()
            api.train(ds, m, overrides=DATASETS[ds] + overrides_for(m, steps, a.quick), run_dir=run_dir)
            print(f"{ds} {m}: trained in {time.perf_counter() - start:.0f} s", flush=True)
            runs.append(run_dir)
        rows = leaderboard(ds, runs, samples=samples, grids=grids)
        for r in rows:
            r["grid"] = Path(r["grid"]).resolve().relative_to(ROOT).as_posix()
        print(f"\n## {ds}\n\n{format_table(rows)}\n", flush=True)
        setting = {"steps": steps, "batch_size": "the image default (64)", "samples": samples,
                   "threads": a.threads, "speed": "measured under load unless stated otherwise"}
        save(HERE / "results" / f"families{suffix}", {ds: rows}, {ds: setting})  # after every dataset


if __name__ == "__main__":
    main()
