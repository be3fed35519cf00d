"""Training loop of the neural forecasters: random windows, AdamW, warm-up + cosine, clipping, time budget.

The image/text :class:`chainrule.core.training.Trainer` iterates epochs over a fixed dataset of integer tensors;
forecasters draw fresh random windows (``WindowSampler``) with masks and per-window scales every step, so
this is a small focused loop instead. It keeps the run-directory files: ``best.safetensors`` (the final
weights — there is no validation split, every window of the series is training data), ``metrics.jsonl``
and ``summary.json``, all written atomically.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from chainrule.core.errors import ConfigError, TrainingDiverged
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.core.training.checkpoint import save_weights
from chainrule.core.training.config import as_float, as_int
from chainrule.core.training.metrics import MetricsLog, finite_or_none
from chainrule.core.training.schedule import lr_factor
from chainrule.modalities.series.features import WindowSampler
from chainrule.modalities.series.models.base import ForecastModel

BEST_WEIGHTS = "best.safetensors"


@dataclass
class ForecastTrainConfig:
    """Options of one forecaster training run (``max_seconds`` 0 = no time budget; ``grad_clip`` 0 = off)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 10.0
    max_seconds: float = 0.0
    seed: int = 0
    log_every: int = 50
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "warmup_steps", "seed", "log_every"):
            setattr(self, name, as_int(name, getattr(self, name)))
        for name in ("lr", "weight_decay", "min_lr_ratio", "grad_clip", "max_seconds"):
            setattr(self, name, as_float(name, getattr(self, name)))
        for name in ("steps", "batch_size", "lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "weight_decay", "min_lr_ratio", "grad_clip", "max_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForecastTrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device {name!r} is not a torch device (auto, cpu, cuda, cuda:1, ...)") from None


def train_forecast_model(model: ForecastModel, sampler: WindowSampler, cfg: ForecastTrainConfig,
                         run_dir: str | Path | None = None) -> dict[str, Any]:
    """Fit ``model`` on random windows from ``sampler``; returns (and, with ``run_dir``, writes) a summary."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [g for g in ({"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                          {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}) if g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    log = MetricsLog(Path(run_dir or ".") / "metrics.jsonl", active=run_dir is not None)
    log.reset()
    warmup = min(cfg.warmup_steps, cfg.steps // 10)
    t0, step, window, reason, last_loss = time.perf_counter(), 0, [], None, float("nan")
    bar = tqdm(total=cfg.steps, desc=f"train {model.name}", unit="step", dynamic_ncols=True, disable=not cfg.progress)
    try:
        while step < cfg.steps:
            lr = cfg.lr * lr_factor(step, cfg.steps, warmup, cfg.min_lr_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = sampler.sample(cfg.batch_size, rng).to(device)
            opt.zero_grad(set_to_none=True)
            loss = model.loss(batch)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            last_loss = float(loss.detach())
            if not (math.isfinite(last_loss) and math.isfinite(float(gnorm))):
                raise TrainingDiverged(f"training {model.name} diverged at step {step + 1}: loss {last_loss}, "
                                       f"gradient norm {float(gnorm)}; try a lower train.lr")
            opt.step()
            step += 1
            window.append(last_loss)
            bar.update(1)
            bar.set_postfix({"nll": f"{last_loss:.3f}"}, refresh=False)
            if step % cfg.log_every == 0 or step == cfg.steps:
                log.write({"step": step, "lr": lr, "train_nll": float(np.mean(window)), "split": "train",
                           "grad_norm": float(gnorm)})
                window = []
            if cfg.max_seconds > 0 and time.perf_counter() - t0 >= cfg.max_seconds and step < cfg.steps:
                reason = f"time budget of {cfg.max_seconds:g} s reached at step {step}"
                break
    finally:
        bar.close()
    model.eval()
    summary = {"model": model.name, "head": model.head.name, "steps": step, "final_train_nll": last_loss,
               "reason": reason or f"completed {cfg.steps} steps", "wall_time": round(time.perf_counter() - t0, 3),
               "windows": sampler.num_windows, "parameters": sum(p.numel() for p in params)}
    if run_dir is not None:
        run_dir = Path(run_dir)
        save_weights(model, run_dir / BEST_WEIGHTS, {"step": str(step), "kind": "timeseries"})
        summary["best_weights"] = str(run_dir / BEST_WEIGHTS)
        summary["run_dir"] = str(run_dir)
        summary = {k: finite_or_none(v) for k, v in summary.items()}
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
