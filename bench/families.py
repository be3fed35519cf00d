"""Families benchmark: VAE, flows (RealNVP, MAF), diffusion (DDPM), GAN and autoregressive models on one dataset
each, at one training budget (the same number of steps and batch size for every model), in one leaderboard.

Writes bench/results/families.json, bench/results/families.md and a sample grid per model in
bench/results/families/ (``-quick`` names for --quick); the DDPM sampler table (ancestral over every step, DDIM
over fewer) goes to bench/results/families_ddim.json and .md.

    .venv/bin/python bench/families.py                         # digits, binarized MNIST subset, binarized Fashion-MNIST
    .venv/bin/python bench/families.py --datasets digits --models vae,ddpm --steps 2000
    .venv/bin/python bench/families.py --datasets fashion-mnist-256 --test-limit 1000   # 256 grey levels
    .venv/bin/python bench/families.py --datasets digits --conditional   # the models that take class labels
    .venv/bin/python bench/families.py --datasets digits --ddim-only --reuse   # DDPM vs DDIM sampling speed only
    .venv/bin/python bench/families.py --quick                 # tiny models, a few steps: checks that it all runs

NLL is on the test split (or its first ``--test-limit`` images): exact for the autoregressive models, an upper
bound for the VAE (IWAE), the flows (uniform dequantization) and DDPM (variational bound); none for the GAN.
Sample quality uses the leaderboard's classifier features (chainrule.leaderboard); with ``--conditional`` the
models that accept class labels are trained with them and their balanced class-conditional samples are
classified ("class acc"; the classifier's own test accuracy is the ceiling). Speed (samples/s, training seconds)
depends on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from chainrule import api
from chainrule.core.heads import build_head
from chainrule.leaderboard import diffusion_samplers, format_sampler_table, format_table, leaderboard
from chainrule.modalities.registry import model_class

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# table name -> (dataset, its overrides); fashion-mnist-256 is opt-in (the longest: 256-way heads)
DATASETS = {"digits": ("digits", []), "mnist-subset": ("mnist-subset", ["data.binarize=static"]),
            "fashion-mnist": ("fashion-mnist", ["data.binarize=static"]), "fashion-mnist-256": ("fashion-mnist", [])}
DEFAULT_DATASETS = ["digits", "mnist-subset", "fashion-mnist"]
MODELS = ["vae", "pixel_vae", "realnvp", "maf", "ddpm", "gan", "made", "pixelcnn"]


def accepts_labels(model: str) -> bool:
    """Whether ``model`` can be built class-conditional (the unconditional families refuse labels)."""
    cls = model_class(model, "image")
    try:
        cls((1, 8, 8), build_head("auto", 2), num_classes=2, **cls.TINY)
    except ValueError:
        return False
    return True


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


def ceiling(rows: list[dict]) -> str:
    """The note under a table of class-conditional runs: the classifier's own test accuracy bounds "class acc"."""
    accuracy = next((r["classifier_accuracy"] for r in rows if r.get("class_accuracy") is not None), None)
    return "" if accuracy is None else f"\n\nClassifier test accuracy (the ceiling of class acc): {accuracy:.3f}"


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
    md = "\n\n".join(f"### {ds}\n\n{format_table(rows)}{ceiling(rows)}" for ds, rows in board.items())
    stem.with_suffix(".md").write_text(md + "\n")
    print(f"wrote {out.relative_to(ROOT)}", flush=True)
    return out


def train_runs(label: str, models: list[str], runs_root: Path, steps: int, a: argparse.Namespace) -> list[Path]:
    """Train (or, with --reuse, keep) one run per model; class-conditional ones with --conditional."""
    dataset, data_sets = DATASETS[label]
    runs = []
    for m in models:
        run_dir = runs_root / f"{label}-{m}{'-conditional' if a.conditional else ''}"
        if a.reuse and finished(run_dir, steps):
            print(f"{label} {m}: reusing {run_dir.relative_to(ROOT)}", flush=True)
            runs.append(run_dir)
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        sets = data_sets + overrides_for(m, steps, a.quick) + (["model.conditional=true"] if a.conditional else [])
        sets += [f"train.eval_max_windows={a.val_limit}"] if a.val_limit else []
        api.train(dataset, m, overrides=sets, run_dir=run_dir)
        print(f"{label} {m}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        runs.append(run_dir)
    return runs


def scored_row(dataset: str, run: Path, samples: int, grids: Path, a: argparse.Namespace) -> dict:
    """The run's leaderboard row, kept in the run directory: with --reuse a row scored earlier with the same
    samples and test subset is read back, so finished runs can be scored while others still train."""
    cache, key = run / "families_row.json", {"samples": samples, "test_limit": a.test_limit}
    if a.reuse and not a.rescore and cache.is_file() and json.loads(cache.read_text())["key"] == key:
        print(f"{run.name}: reusing its scored row", flush=True)
        return json.loads(cache.read_text())["row"]
    (row,) = relative_grids(leaderboard(dataset, [run], samples=samples, grids=grids, test_limit=a.test_limit))
    cache.write_text(json.dumps({"key": key, "row": row}, indent=2) + "\n")
    return row


def relative_grids(rows: list[dict]) -> list[dict]:
    for r in rows:
        if "grid" in r:
            r["grid"] = Path(r["grid"]).resolve().relative_to(ROOT).as_posix()
    return rows


def save_samplers(stem: Path, tables: dict[str, list[dict]], setting: dict) -> None:
    """Write the DDPM / DDIM tables (``stem``.json and .md), keeping the datasets this run did not touch."""
    out = stem.with_suffix(".json")
    old = json.loads(out.read_text()) if out.exists() else {"settings": {}, "samplers": {}}
    old["samplers"].update(tables)
    old["settings"].update({label: setting for label in tables})
    out.write_text(json.dumps(old, indent=2) + "\n")
    md = "\n\n".join(f"### {label}\n\n{format_sampler_table(rows)}" for label, rows in old["samplers"].items())
    stem.with_suffix(".md").write_text(md + "\n")
    print(f"wrote {out.relative_to(ROOT)}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DEFAULT_DATASETS), help=f"any of {', '.join(DATASETS)}")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=2000, help="training steps for every model (default 2000)")
    p.add_argument("--samples", type=int, default=1000, help="samples per model for the quality figures")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--test-limit", type=int, default=None, metavar="N",
                   help="NLL on the first N test images only (the same for every model; default: the whole split)")
    p.add_argument("--val-limit", type=int, default=None, metavar="N",
                   help="the trainer's final validation on a fixed seeded N of the validation split "
                        "(train.eval_max_windows; the leaderboard's NLL is on the test split either way)")
    p.add_argument("--conditional", action="store_true",
                   help="train the models that accept class labels with them (runs named *-conditional) and "
                        "report the class accuracy of their samples; the others are skipped")
    p.add_argument("--ddim-steps", default="50,10",
                   help="DDIM step counts for the DDPM sampler table (empty: no table)")
    p.add_argument("--ddim-only", action="store_true",
                   help="only the DDPM sampler table: train (or with --reuse keep) the ddpm run, sample it")
    p.add_argument("--quick", action="store_true", help="tiny models, 5 steps, digits, 64 samples")
    p.add_argument("--train-only", action="store_true",
                   help="train (or reuse) the runs and stop: split the training over processes, then --reuse")
    p.add_argument("--reuse", action="store_true",
                   help="keep a model's finished run from an earlier invocation (same steps) instead of retraining "
                        "it, and its scored row when the samples and test subset are the same")
    p.add_argument("--rescore", action="store_true",
                   help="with --reuse: keep the trained runs but score them again (to re-time sampling)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    datasets, models = a.datasets.split(","), a.models.split(",")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        p.error(f"--datasets: unknown {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    ddim_steps = tuple(int(k) for k in a.ddim_steps.split(",") if k.strip())
    if a.ddim_only:
        models = ["ddpm"]
    if a.conditional:
        refused = [m for m in models if not accepts_labels(m)]
        if refused:
            print(f"--conditional: skipping {', '.join(refused)} (unconditional)", flush=True)
        models = [m for m in models if m not in refused]
    steps, samples, suffix = a.steps, a.samples, ""
    if a.quick:
        datasets, steps, samples, suffix = ["digits"], 5, 64, "-quick"
        ddim_steps = ddim_steps and (2,)  # the tiny DDPM has 4 steps
    runs_root = HERE / "runs" / f"families{suffix}"
    grids = HERE / "results" / f"families{suffix}"
    setting = {"steps": steps, "batch_size": "the image default (64)", "samples": samples, "threads": a.threads,
               "speed": "measured under load unless stated otherwise"}
    for label in datasets:
        runs = train_runs(label, models, runs_root, steps, a)
        if a.train_only:
            continue
        dataset = DATASETS[label][0]
        if not a.ddim_only:
            rows = [scored_row(dataset, run, samples, grids, a) for run in runs]
            table = f"{label}-conditional" if a.conditional else label
            print(f"\n## {table}\n\n{format_table(rows)}{ceiling(rows)}\n", flush=True)
            extra = {"test_images": rows[0]["test_images"], "classifier_accuracy": rows[0]["classifier_accuracy"]}
            save(HERE / "results" / f"families{suffix}", {table: rows}, {table: {**setting, **extra}})
        if "ddpm" in models and ddim_steps and not a.conditional:
            ddpm_run = runs[models.index("ddpm")]
            rows = relative_grids(diffusion_samplers(dataset, ddpm_run, ddim_steps, samples=samples, grids=grids))
            print(f"\n## {label}: DDPM and DDIM sampling\n\n{format_sampler_table(rows)}\n", flush=True)
            save_samplers(HERE / "results" / f"families_ddim{suffix}", {label: rows}, setting)


if __name__ == "__main__":
    main()
