"""A run directory on disk, whatever its kind: ``config.yaml`` (the ``data``/``model``/``train``/``output``
sections + ``spec``), the weights to use, the summary. Rebuilding a model is the caller's business (the model
registry of :mod:`chainrule.runs` for images and text, :mod:`chainrule.modalities.series.api` for forecasters)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.core.runs.checks import check_run_config
from chainrule.core.runs.files import BEST_WEIGHTS, CHECKPOINTS_DIR, CONFIG_FILE, LOCK_FILE, SUMMARY_FILE
from chainrule.core.runs.kind import RunKind, run_kind


def default_run_dir(dataset: str, model: str, root: str | Path = "runs") -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in Path(dataset).name or dataset)
    return Path(root) / f"{safe}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_new_run_dir(path: Path, hint: str = "use --resume to continue it or choose another --run") -> None:
    """:class:`ConfigError` unless ``path`` is missing or empty but for its lock: a new run never overwrites one."""
    if path.exists() and (not path.is_dir() or any(p.name != LOCK_FILE for p in path.iterdir())):
        raise ConfigError(f"{path}: run directory already exists and is not empty; {hint}")


@dataclass
class Run:
    """A trained (or training) run on disk."""

    path: Path
    config: dict[str, Any]

    @property
    def spec(self) -> dict[str, Any]:
        return self.config["spec"]

    @property
    def kind(self) -> RunKind:
        return run_kind(self.spec, str(self.path))

    def weights_path(self) -> Path:
        """Best weights if written, else the newest step checkpoint."""
        best = self.path / BEST_WEIGHTS
        if best.is_file():
            return best
        ckpts = sorted((self.path / CHECKPOINTS_DIR).glob("step-*.safetensors"))
        if not ckpts:
            raise CheckpointError(f"{self.path}: no weights found (no {BEST_WEIGHTS} and no {CHECKPOINTS_DIR}/)")
        return ckpts[-1]

    def save_config(self) -> None:
        atomic_write_text(self.path / CONFIG_FILE, yaml.safe_dump(self.config, sort_keys=False))

    def write_summary(self, updates: dict[str, Any]) -> dict[str, Any]:
        """Merge ``updates`` into ``summary.json`` (the caller holds the run's lock)."""
        path = self.path / SUMMARY_FILE
        try:
            summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            summary = None
        if not isinstance(summary, dict):
            raise CheckpointError(f"{path}: corrupt summary (not a JSON object); remove it to record new results")
        summary.update(updates)
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        return summary


def read_run_config(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The directory and parsed ``config.yaml`` of an existing run, with clear errors for a missing or damaged one."""
    p = Path(path)
    if not p.is_dir():
        raise CheckpointError(f"{p}: run directory not found")
    cfg_path = p / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{p}: not a chainrule run (no {CONFIG_FILE})")
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: corrupt run config ({str(e).splitlines()[0]})") from None
    check_run_config(cfg, str(cfg_path))
    return p, cfg


def open_run(path: str | Path) -> Run:
    """Open an existing run directory (any kind)."""
    return Run(*read_run_config(path))
