"""One table for every family on one dataset: likelihood (exact or a bound), sample quality, speed and size.

Sample quality is measured on the features of a small classifier (an MLP, not Inception) trained once per dataset
on its training split and cached beside the datasets (``classifiers/``), so every model is judged by the same
features: the Frechet distance between the Gaussians fitted to real (test split) and generated features, and
precision / recall as the share of generated (real) features inside the k-nearest-neighbour balls of the real
(generated) ones (Kynkaanniemi et al. 2019). A class-conditional run samples balanced labels and is also scored by
the share of its samples the classifier puts in the class asked for (its own test accuracy is the ceiling).
``chainrule leaderboard`` and ``bench/families.py`` print it; :func:`diffusion_samplers` compares DDPM's
ancestral sampler with DDIM over fewer steps.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
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


def class_accuracy(clf: FeatureClassifier, x: Tensor, labels: Tensor, levels: int) -> float:
    """Share of images ``x`` the classifier puts in class ``labels`` (one label per image)."""
    return float((clf(_intensities(x, levels)).argmax(1) == labels).float().mean())


def class_labels(n: int, classes: int) -> Tensor:
    """The labels class-conditional samples are drawn with: 0, 1, ..., classes-1, 0, 1, ... (balanced)."""
    return torch.arange(n) % classes


@dataclass
class Reference:
    """What every run of one data configuration is judged against: its evaluation split, the feature
    classifier, the features of up to ``samples`` real images and the classifier's accuracy on the split."""

    split: Any
    classifier: FeatureClassifier
    real: Tensor
    levels: int
    classifier_accuracy: float


def reference(run: Run, samples: int, split: str = "test") -> Reference:
    """The :class:`Reference` of ``run``'s data configuration (the classifier is trained once and cached)."""
    from chainrule.api import load_data

    data_cfg = run.config["data"]
    splits = load_data(data_cfg, run.path)
    (tx, ty), (ex, ey) = splits["train"].all(), splits[split].all()
    levels = int(run.spec["levels"])
    clf = feature_classifier(json.dumps(data_cfg, sort_keys=True), tx, ty, levels)
    return Reference(splits[split], clf, clf.features(_intensities(ex[:samples], levels)), levels,
                     class_accuracy(clf, ex, ey, levels))


def score_samples(model: nn.Module, ref: Reference, samples: int) -> tuple[dict[str, Any], Tensor]:
    """Draw ``samples`` images (seed 0; a class-conditional model gets balanced labels) and score them: samples
    per second, Frechet distance, precision, recall and, for a class-conditional model, ``class_accuracy``
    (the share the classifier assigns to the class asked for; ``classifier_accuracy`` is its ceiling)."""
    classes = int(getattr(model, "num_classes", 0))
    labels = class_labels(samples, classes) if classes else None
    start = time.perf_counter()
    x = model.sample(samples, cond=None if labels is None else labels.to(model.device),
                     generator=torch.Generator(device=model.device).manual_seed(0))
    seconds = max(time.perf_counter() - start, 1e-9)
    x = x.cpu()
    fake = ref.classifier.features(_intensities(x, ref.levels))
    scores: dict[str, Any] = {"samples_per_s": samples / seconds, "sample_seconds": seconds,
                              "frechet": frechet_distance(ref.real, fake)}
    scores["precision"], scores["recall"] = precision_recall(ref.real, fake)
    scores["class_accuracy"] = None if labels is None else class_accuracy(ref.classifier, x, labels, ref.levels)
    scores["classifier_accuracy"] = ref.classifier_accuracy
    return scores, x


def _checked_runs(dataset: str, runs: list[str | Path | Run]) -> list[Run]:
    opened = [r if isinstance(r, Run) else open_run(r) for r in runs]
    if not opened:
        raise ConfigError(f"no runs for {dataset!r}: train some (chainrule train {dataset} vae) or pass --runs")
    for run in opened:
        if run.config["data"].get("name") != dataset:
            raise ConfigError(f"{run.path}: trained on {run.config['data'].get('name')!r}, not {dataset!r}")
    return opened


@torch.no_grad()
def leaderboard(dataset: str, runs: list[str | Path | Run], samples: int = 1000, grids: str | Path | None = None,
                split: str = "test", test_limit: int | None = None) -> list[dict[str, Any]]:
    """One row per run: NLL (nats, bits/dim; ``likelihood`` says exact / bound / none), Frechet distance,
    precision, recall, class accuracy of class-conditional samples (None for an unconditional run), samples per
    second, parameters and training seconds; a PNG grid per run in ``grids``.

    ``test_limit`` scores the NLL on the first N images of the split (the same N for every run; ``test_images``
    in each row says how many): the bounds cost a hundred or a thousand network passes per image."""
    if test_limit is not None and test_limit < 1:
        raise ConfigError(f"test_limit must be a positive number of images, got {test_limit}")
    rows: list[dict[str, Any]] = []
    refs: dict[str, Reference] = {}
    for run in _checked_runs(dataset, runs):
        key = json.dumps(run.config["data"], sort_keys=True)
        if key not in refs:
            refs[key] = reference(run, samples, split)
        ref = refs[key]
        model = run.load_model().eval()
        row: dict[str, Any] = {"model": run.config["model"]["name"], "run": run.path.name, "family": model.family,
                               "likelihood": model.likelihood, "conditional": model.num_classes > 0,
                               "params": sum(p.numel() for p in model.parameters())}
        summary = run.path / "summary.json"
        row["train_seconds"] = json.loads(summary.read_text()).get("wall_time") if summary.is_file() else None
        row["test_images"] = min(len(ref.split), test_limit or len(ref.split))
        if model.likelihood != "none":
            res = dataset_nll(model, ref.split, limit=row["test_images"])
            row.update(nll_nats=res["nll"], bpd=res["bpd"])
        scores, x = score_samples(model, ref, samples)
        row.update(scores)
        if grids is not None:
            row["grid"] = str(save_grid(x[:64], ref.levels, Path(grids) / f"{dataset}-{run.path.name}.png"))
        rows.append(row)
    return rows


@torch.no_grad()
def diffusion_samplers(dataset: str, run: str | Path | Run, sample_steps: tuple[int, ...] = (50, 10),
                       samples: int = 1000, grids: str | Path | None = None) -> list[dict[str, Any]]:
    """One diffusion run sampled ancestrally over all its steps and with DDIM over each of ``sample_steps``:
    samples per second, seconds for the whole batch and the sample-quality figures of :func:`leaderboard`."""
    (run,) = _checked_runs(dataset, [run])
    model = run.load_model().eval()
    if not hasattr(model, "sample_steps"):
        raise ConfigError(f"{run.path}: {run.config['model']['name']} is not a diffusion model (no sample_steps)")
    ref = reference(run, samples)
    rows = []
    for sampler, steps in [("ddpm", model.steps), *[("ddim", int(k)) for k in sample_steps]]:
        if not 1 <= steps <= model.steps:
            raise ConfigError(f"DDIM steps must be in 1..{model.steps}, got {steps}")
        model.sampler, model.sample_steps = sampler, steps
        scores, x = score_samples(model, ref, samples)
        row = {"model": run.config["model"]["name"], "run": run.path.name, "sampler": sampler, "steps": steps,
               **scores}
        if grids is not None:
            name = f"{dataset}-{run.path.name}-{sampler}{steps}.png"
            row["grid"] = str(save_grid(x[:64], ref.levels, Path(grids) / name))
        rows.append(row)
    return rows


def format_sampler_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`diffusion_samplers` as a Markdown table."""
    lines = ["| sampler | network passes | samples/s | seconds | Frechet | precision | recall |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['sampler'].upper()} | {r['steps']} | {r['samples_per_s']:.1f} | "
                     f"{r['sample_seconds']:.1f} | {r['frechet']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} |")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table; bound NLLs carry "<=", models without a likelihood "none"; "class acc" is blank ("-")
    for an unconditional run."""
    def nll(r: dict[str, Any], key: str) -> str:
        if r["likelihood"] == "none":
            return "none"
        return ("<= " if r["likelihood"] == "bound" else "") + f"{r[key]:.3f}"

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = ["| model | family | NLL nats | bits/dim | Frechet | precision | recall | class acc | samples/s | params "
             "| train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["model"] + (" (class-conditional)" if r.get("conditional") else "")
        lines.append(f"| {name} | {r['family']} | {nll(r, 'nll_nats')} | {nll(r, 'bpd')} | "
                     f"{r['frechet']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} | "
                     f"{num(r.get('class_accuracy'), '.2f')} | {r['samples_per_s']:.0f} | "
                     f"{r['params']:,} | {num(r['train_seconds'], '.0f')} |")
    return "\n".join(lines)
