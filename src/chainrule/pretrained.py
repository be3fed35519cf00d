"""Any run as a Hub-style directory: ``config.json`` + ``model.safetensors`` (+ the tokenizer of a token run).

``save_pretrained(run, DIR)`` writes the run's ``model`` section and ``spec`` (what rebuilds the model through
the registry, for every modality) as ``config.json`` and its best weights as ``model.safetensors``, the two files
the Hugging Face Hub hosts and ``huggingface_hub`` downloads. ``from_pretrained(DIR)`` rebuilds the model from
them; a name ``owner/repo`` that is not a local directory is downloaded with ``huggingface_hub`` first. The
directory opens as a run (:func:`open_pretrained`), so the API's run helpers (tokenizer, spec) work on it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.runs.atomic import atomic_write_bytes, atomic_write_text
from chainrule.core.runs.checks import check_run_config
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.core.training.checkpoint import read_weights, save_weights
from chainrule.runs import Run, open_run

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: version of the config.json layout written here
FORMAT_VERSION = 1
#: the sections of a run config that rebuild its model (``data``/``train`` describe how it was trained)
SECTIONS = ("model", "spec", "data", "train")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class PretrainedRun(Run):
    """A run whose weights are ``model.safetensors`` (a directory written by :func:`save_pretrained`)."""

    def weights_path(self) -> Path:
        path = self.path / WEIGHTS_FILE
        if not path.is_file():
            raise CheckpointError(f"{self.path}: no {WEIGHTS_FILE}")
        return path


def save_pretrained(run: Run | str | os.PathLike, directory: str | os.PathLike) -> dict[str, Any]:
    """Write ``config.json`` and ``model.safetensors`` (and the run's ``tokenizer.json``, if any) of ``run`` into
    ``directory`` (created; files replaced atomically). Returns the config written."""
    run = run if isinstance(run, Run) else open_run(run)
    weights, _ = read_weights(run.weights_path())
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    config = {"chainrule_format": FORMAT_VERSION, "kind": run.kind.value,
              **{k: run.config[k] for k in SECTIONS if k in run.config}}
    save_weights(weights, out / WEIGHTS_FILE, {"format": "pt"})
    tokenizer = run.path / TOKENIZER_FILE
    if tokenizer.is_file():  # text and music runs: ids mean nothing without it
        atomic_write_bytes(out / TOKENIZER_FILE, tokenizer.read_bytes())
    elif run.kind is RunKind.TEXT:
        raise CheckpointError(f"{run.path}: text run without {TOKENIZER_FILE}")
    atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")  # last: the directory is complete
    return config


def open_pretrained(source: str | os.PathLike) -> PretrainedRun:
    """The run held in a directory written by :func:`save_pretrained`, or in a Hub repository ``owner/name``."""
    path = Path(source)
    if not path.is_dir() and isinstance(source, str) and _REPO_ID.match(source):
        path = _download(source)
    if not path.is_dir():
        raise CheckpointError(f"{path}: directory not found")
    file = path / CONFIG_FILE
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no {CONFIG_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("chainrule_format") != FORMAT_VERSION:
        raise CheckpointError(f"{file}: not a chainrule config (chainrule_format {FORMAT_VERSION} expected; "
                              "a transformers directory opens with transformers)")
    run_config = {k: config[k] for k in SECTIONS if k in config}
    check_run_config(run_config, str(file))
    return PretrainedRun(path=path, config=run_config)


def from_pretrained(source: str | os.PathLike, device: str | None = None) -> AutoregressiveModel:
    """The model (eval mode) saved by :func:`save_pretrained` in ``source`` (a directory or a Hub ``owner/name``)."""
    run = open_pretrained(source)
    if run.kind is RunKind.SERIES:
        from chainrule.modalities.series.api import load_forecast_run

        model, _ = load_forecast_run(run, device or "cpu")
        return model
    return run.load_model(device)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(f"{repo_id}: not a local directory, and downloading from the Hub needs huggingface_hub "
                          "(pip install 'chainrule[hub]')") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]))
    except Exception as e:  # network, authentication or missing repository: huggingface_hub's own types
        raise CheckpointError(f"{repo_id}: download from the Hugging Face Hub failed ({type(e).__name__}: {e})"
                              ) from None
