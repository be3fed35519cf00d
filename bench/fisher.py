"""Fisher-score probe benchmark: how much class information a likelihood model's features hold.

For digits, the MNIST subset and Fashion-MNIST an unconditional PixelCNN is trained for a fixed CPU budget
(never seeing a label); a logistic-regression probe (scikit-learn, standardised inputs) is then fitted on the
labelled training examples and scored on the test examples with four kinds of features: raw pixels, PCA of the
pixels with as many components as the Fisher features have (capped by the pixel count and the training set),
Fisher scores (``chainrule features --kind fisher``: the gradient of log p(x) with respect to the output layer,
over the root of the diagonal empirical Fisher) and hidden features (``--kind hidden``).
Writes bench/results/fisher.json and fisher.md.

    .venv/bin/python bench/fisher.py               # 60 s of training per data set
    .venv/bin/python bench/fisher.py --quick       # a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from results_files import write_results  # bench/ is on the path
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from chainrule import api
from chainrule.features import FISHER_EPS, fisher_diagonal, grads, hidden_features, output_layer, selected_params
from chainrule.runs import Run, open_run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATASETS = {"digits": [], "mnist-subset": ["data.levels=16"], "fashion-mnist": ["data.levels=16"]}


def train(name: str, seconds: float, fresh: bool) -> Run:
    run_dir = HERE / "runs" / f"fisher-{name}"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if (run_dir / "best.safetensors").exists():
        return open_run(run_dir)
    overrides = DATASETS[name] + ["train.batch_size=32", "train.lr=2e-3", f"train.max_seconds={seconds}",
                                  "train.steps=1000000", "train.eval_every=1000000", "train.checkpoint_every=1000000",
                                  "train.warmup_steps=50", "train.progress=false", "output.samples=0"]
    return api.train(name, "pixelcnn", overrides=overrides, run_dir=run_dir)


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
          pca: int | None = None) -> float:
    steps = [StandardScaler()] + ([PCA(pca, random_state=0)] if pca else []) + [LogisticRegression(max_iter=2000)]
    model = make_pipeline(*steps).fit(train_x, train_y)
    return float(model.score(test_x, test_y))


def bench_dataset(name: str, seconds: float, n_train: int, n_test: int, fisher_examples: int, fresh: bool) -> dict:
    run = train(name, seconds, fresh)
    splits = api.load_data(run.config["data"])
    tr_x, tr_y = splits["train"].get(torch.arange(min(n_train, len(splits["train"]))))
    te_x, te_y = splits["test"].get(torch.arange(min(n_test, len(splits["test"]))))
    model = run.load_model("cpu").eval()
    layer = output_layer(model, tr_x)
    params = selected_params(model, f"{layer}.")
    t0 = time.perf_counter()
    fisher = fisher_diagonal(model, params, splits["train"].get(torch.arange(fisher_examples))[0], None)
    feats = {}
    for split, x in (("train", tr_x), ("test", te_x)):
        g = grads(model, params, x, None) / (fisher + FISHER_EPS).sqrt()
        h = torch.cat([hidden_features(model, layer, x[i:i + 250], None) for i in range(0, len(x), 250)])
        feats[split] = {"pixels": x.flatten(1).float().numpy(), "fisher": g.numpy(), "hidden": h.numpy()}
    feature_seconds = time.perf_counter() - t0
    ytr, yte = tr_y.numpy(), te_y.numpy()
    dims = {k: feats["train"][k].shape[1] for k in ("pixels", "fisher", "hidden")}
    pca_dim = min(dims["fisher"], dims["pixels"], len(ytr))
    acc = {k: probe(feats["train"][k], ytr, feats["test"][k], yte) for k in ("pixels", "fisher", "hidden")}
    acc["pca"] = probe(feats["train"]["pixels"], ytr, feats["test"]["pixels"], yte, pca=pca_dim)
    summary = json.loads((run.path / "summary.json").read_text())
    return {"dataset": name, "data": run.spec["data"], "train_examples": len(ytr), "test_examples": len(yte),
            "fisher_examples": fisher_examples, "train_seconds": seconds, "optimizer_steps": summary.get("steps"),
            "run": run.path.relative_to(ROOT).as_posix(), "output_layer": layer, "accuracy": acc,
            "dims": {**dims, "pca": pca_dim}, "feature_seconds_under_load": feature_seconds}


def table(rows: list[dict]) -> str:
    out = ["| data (probe train / test) | PixelCNN steps | pixels | PCA | Fisher | hidden |",
           "|---|---:|---|---|---|---|"]
    for r in rows:
        a, d = r["accuracy"], r["dims"]
        out.append(f"| {r['dataset']} ({r['train_examples']} / {r['test_examples']}) | {r['optimizer_steps']} | "
                   + " | ".join(f"{a[k]:.3f} ({d[k]:,})" for k in ("pixels", "pca", "fisher", "hidden")) + " |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--seconds", type=float, default=60.0, help="training budget per data set (s)")
    p.add_argument("--train-examples", type=int, default=1000, help="labelled examples the probe is fitted on")
    p.add_argument("--test-examples", type=int, default=500)
    p.add_argument("--fisher-examples", type=int, default=500)
    p.add_argument("--fresh", action="store_true", help="retrain even when the runs exist")
    p.add_argument("--quick", action="store_true", help="smoke run: digits, 5 s, 200 / 100 examples")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared machine more "
                                                          "threads mostly wait for each other)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.quick:
        rows = [bench_dataset("digits", 5.0, 200, 100, 50, True)]
    else:
        rows = [bench_dataset(n, a.seconds, a.train_examples, a.test_examples, a.fisher_examples, a.fresh)
                for n in a.datasets.split(",")]
    for r in rows:
        print(json.dumps(r, indent=2))
    write_results("fisher", a.quick, {"rows": rows}, table(rows))


if __name__ == "__main__":
    main()
