"""Run directories: ``config.yaml`` (everything to rebuild model and data), weights, metrics, samples, plots."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.modalities.registry import build_model

CONFIG_FILE = "config.yaml"
BEST_WEIGHTS = "best.safetensors"
SUMMARY_FILE = "summary.json"


def default_run_dir(dataset: str, model: str, root: str | Path = "runs") -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in Path(dataset).name or dataset)
    return Path(root) / f"{safe}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass
class Run:
    """A trained (or training) run on disk."""

    path: Path
    config: dict[str, Any]

    @property
    def spec(self) -> dict[str, Any]:
        return self.config["spec"]

    def build_model(self) -> AutoregressiveModel:
        spec, m = self.spec, dict(self.config["model"])
        if spec.get("kind") == "timeseries":
            raise ConfigError(f"{self.path} is a time-series run: use chainrule.modalities.series.api"
                              ".load_forecast_run")
        name = m.pop("name")
        head = m.pop("head", None)
        head_options = m.pop("head_options", None)
        m.pop("conditional", None)
        return build_model(name, spec["event_shape"], spec["levels"], num_classes=spec.get("num_classes", 0),
                           head=head, head_options=head_options, **m)

    def weights_path(self) -> Path:
        """Best weights if written, else the newest step checkpoint."""
        best = self.path / BEST_WEIGHTS
        if best.is_file():
            return best
        ckpts = sorted((self.path / "checkpoints").glob("step-*.safetensors"))
        if not ckpts:
            raise CheckpointError(f"{self.path}: no weights found (no {BEST_WEIGHTS} and no checkpoints/)")
        return ckpts[-1]

    def load_model(self, device: str | None = None) -> AutoregressiveModel:
        from chainrule.core.training.checkpoint import load_weights

        model = self.build_model()
        load_weights(model, self.weights_path())
        model.eval()
        if device:
            model.to(device)
        return model

    def save_config(self) -> None:
        atomic_write_text(self.path / CONFIG_FILE, yaml.safe_dump(self.config, sort_keys=False))

    def write_summary(self, updates: dict[str, Any]) -> dict[str, Any]:
        path = self.path / SUMMARY_FILE
        summary = json.loads(path.read_text()) if path.is_file() else {}
        summary.update(updates)
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        return summary


def open_run(path: str | Path) -> Run:
    """Open an existing run directory, with clear errors for a missing or damaged one."""
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
    if not isinstance(cfg, dict) or "spec" not in cfg or "model" not in cfg:
        raise CheckpointError(f"{cfg_path}: corrupt run config (missing model or spec section)")
    return Run(path=p, config=cfg)
