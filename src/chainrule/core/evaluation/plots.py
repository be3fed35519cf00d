"""Training-curve plot from a run's metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chainrule.core.runs.atomic import atomic_write


def read_metrics(path: str | Path) -> list[dict]:
    """Read metrics.jsonl, skipping a torn last line (a killed run may leave one)."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_training_curve(metrics_path: str | Path, out: str | Path, title: str = "") -> Path | None:
    """Plot train and validation bits/dim against step; returns the PNG path (None if no metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [(r["step"], r["train_bpd"]) for r in rows if "train_bpd" in r]
    val = [(r["step"], r["val_bpd"]) for r in rows if "val_bpd" in r]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train", alpha=0.7)
    if val:
        ax.plot(*zip(*val, strict=True), marker="o", label=validation_label(rows))
    ax.set_xlabel("step")
    ax.set_ylabel("bits / dim")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, out)


def validation_label(rows: list[dict]) -> str:
    """"validation", or "validation (subset: N of M)" when the run scored a fixed subset (train.eval_max_windows)."""
    scoped = [r for r in rows if r.get("val_subset")]
    if not scoped:
        return "validation"
    return f"validation (subset: {scoped[-1]['val_examples']:,} of {scoped[-1]['val_split_examples']:,})"


def save_png(fig: Any, out: str | Path) -> Path:
    """Write a matplotlib figure to ``out`` as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    try:
        atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
    return out
