"""One table for every family on one dataset: likelihood (exact or a bound), sample quality, speed and size.

Sample quality is measured on the features of a small classifier (an MLP, not Inception) trained once per dataset
on its training split and cached beside the datasets (``classifiers/``), so every model is judged by the same
features: the Frechet distance between the Gaussians fitted to real (test split) and generated features, and
precision / recall as the share of generated (real) features inside the k-nearest-neighbour balls of the real
(generated) ones (Kynkaanniemi et al. 2019). ``chainrule leaderboard`` and ``bench/families.py`` print it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from chainrule.core.data.download import cache_root
from chainrule.core.errors import ConfigError
from chainrule.core.evaluation.metrics import dataset_nll
from chainrule.modalities.image.grids import save_grid
from chainrule.runs import Run, open_run

FEATURES = 64
CLASSIFIER_STEPS = 400


class FeatureClassifier(nn.Module):
    """An MLP on intensities in [0, 1]; :meth:`features` is its last hidden layer."""

    def __init__(self, dims: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(dims, 256), nn.ReLU(), nn.Linear(256, FEATURES), nn.ReLU())
        self.out = nn.Linear(FEATURES, classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


def _intensities(x: Tensor, levels: int) -> Tensor:
    return x.float() / max(levels - 1, 1)


def feature_classifier(key: str, train_x: Tensor, train_y: Tensor, levels: int) -> FeatureClassifier:
    """The dataset's classifier: loaded from the cache, or trained (seeded, 400 Adam steps) and cached."""
    from safetensors.torch import load_file, save_file

    classes = int(train_y.max()) + 1
    model = FeatureClassifier(int(np.prod(train_x.shape[1:])), classes)
    digest = hashlib.sha256(f"{key}|{tuple(train_x.shape)}|{levels}|{CLASSIFIER_STEPS}".encode()).hexdigest()[:16]
    path = cache_root() / "classifiers" / f"{key.replace(':', '_').replace('/', '_')}-{digest}.safetensors"
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _intensities(train_x, levels)
    with torch.enable_grad():  # the leaderboard itself runs without gradients
        for _ in range(CLASSIFIER_STEPS):
            idx = torch.randint(0, len(x), (128,), generator=gen)
            loss = nn.functional.cross_entropy(model(x[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(model.state_dict(), str(tmp))
    tmp.replace(path)
    return model.eval()


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to feature rows."""
    a64, b64 = a.double().numpy(), b.double().numpy()
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    cov_a, cov_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    # tr (S_a S_b)^(1/2) = sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric, PSD)
    w, v = np.linalg.eigh(cov_a)
    half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(half @ cov_b @ half), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Share of fakes inside some real k-NN ball (precision) and of reals inside some fake one (recall)."""
    def radii(x: Tensor) -> Tensor:
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # the 0th neighbour is the point itself

    def covered(points: Tensor, centres: Tensor) -> float:
        return float((torch.cdist(points, centres) <= radii(centres)[None]).any(1).float().mean())

    return covered(fake, real), covered(real, fake)


def runs_for(dataset: str, root: str | Path = "runs") -> list[Run]:
    """Every run under ``root`` trained on ``dataset``."""
    found = []
    for d in sorted(Path(root).glob("*")):
        if (d / "config.yaml").is_file() and (d / "best.safetensors").is_file():
            run = open_run(d)
            if run.config.get("data", {}).get("name") == dataset:
                found.append(run)
    return found


@torch.no_grad()
def leaderboard(dataset: str, runs: list[str | Path | Run], samples: int = 1000, grids: str | Path | None = None,
                split: str = "test") -> list[dict[str, Any]]:
    """One row per run: NLL (nats, bits/dim; ``likelihood`` says exact / bound / none), Frechet distance,
    precision, recall, samples per second, parameters and training seconds; a PNG grid per run in ``grids``."""
    from chainrule.api import load_data

    runs = [r if isinstance(r, Run) else open_run(r) for r in runs]
    if not runs:
        raise ConfigError(f"no runs for {dataset!r}: train some (chainrule train {dataset} vae) or pass --runs")
    rows: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    for run in runs:
        data_cfg = run.config["data"]
        if data_cfg.get("name") != dataset:
            raise ConfigError(f"{run.path}: trained on {data_cfg.get('name')!r}, not {dataset!r}")
        key = json.dumps(data_cfg, sort_keys=True)
        if key not in cache:
            splits = load_data(data_cfg, run.path)
            (tx, ty), (ex, _) = splits["train"].all(), splits[split].all()
            levels = int(run.spec["levels"])
            clf = feature_classifier(key, tx, ty, levels)
            cache[key] = (splits[split], clf, clf.features(_intensities(ex[:samples], levels)), levels)
        test, clf, real, levels = cache[key]
        model = run.load_model().eval()
        row: dict[str, Any] = {"model": run.config["model"]["name"], "run": run.path.name, "family": model.family,
                               "likelihood": model.likelihood,
                               "params": sum(p.numel() for p in model.parameters())}
        summary = run.path / "summary.json"
        row["train_seconds"] = json.loads(summary.read_text()).get("wall_time") if summary.is_file() else None
        if model.likelihood != "none":
            res = dataset_nll(model, test)
            row.update(nll_nats=res["nll"], bpd=res["bpd"])
        start = time.perf_counter()
        x = model.sample(samples, generator=torch.Generator(device=model.device).manual_seed(0))
        row["samples_per_s"] = samples / max(time.perf_counter() - start, 1e-9)
        fake = clf.features(_intensities(x.cpu(), levels))
        row["frechet"] = frechet_distance(real, fake)
        row["precision"], row["recall"] = precision_recall(real, fake)
        if grids is not None:
            row["grid"] = str(save_grid(x[:64].cpu(), levels, Path(grids) / f"{dataset}-{run.path.name}.png"))
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table; bound NLLs carry "<=", models without a likelihood "none"."""
    def nll(r: dict[str, Any], key: str) -> str:
        if r["likelihood"] == "none":
            return "none"
        return ("<= " if r["likelihood"] == "bound" else "") + f"{r[key]:.3f}"

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = ["| model | family | NLL nats | bits/dim | Frechet | precision | recall | samples/s | params | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['family']} | {nll(r, 'nll_nats')} | {nll(r, 'bpd')} | "
                     f"{r['frechet']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} | {r['samples_per_s']:.0f} | "
                     f"{r['params']:,} | {num(r['train_seconds'], '.0f')} |")
    return "\n".join(lines)
