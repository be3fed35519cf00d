"""Run configuration: one YAML document with ``data``, ``model``, ``train`` and ``output`` sections, for every
kind of run (image, text and forecasting runs differ only in their defaults and the keys each section takes).

``--set section.key=value`` overrides parse ``value`` as YAML (so ``3``, ``1e-3``, ``true``, ``[64, 64]``
have their natural types). Everything needed to rebuild the model and data pipeline is saved with a run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from chainrule.core.errors import ConfigError

SECTIONS = ("data", "model", "train", "output")


def default_config() -> dict[str, Any]:
    return {"data": {}, "model": {"head": "auto"}, "train": {}, "output": {"samples": 64, "temperature": 1.0}}


#: example configs shipped with the package, usable by name: ``--config digits-gated-pixelcnn``
SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (a file, or the name of a shipped example config), with errors that name the file."""
    p = Path(path)
    if not p.is_file() and p.suffix == "" and (SHIPPED_CONFIGS / f"{p.name}.yaml").is_file():
        p = SHIPPED_CONFIGS / f"{p.name}.yaml"
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found (shipped examples: {', '.join(shipped_configs())})")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a mapping with sections {', '.join(SECTIONS)}")
    return doc


def merge(base: dict[str, Any], extra: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``; unknown top-level sections are errors."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if where == "config" and key not in SECTIONS:
            raise ConfigError(f"unknown config section {key!r}; sections are {', '.join(SECTIONS)}")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, where=key)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["model.channels=32", "train.lr=1e-3"]`` -> nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.lr=1e-3")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or parts[0] not in SECTIONS or not all(parts):
            raise ConfigError(f"--set {item!r}: the key must be section.name with section one of "
                              f"{', '.join(SECTIONS)}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: cannot parse the value {raw!r}") from None
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return out


def without_none(flags: dict[str, Any]) -> dict[str, Any]:
    """Command-line flags as a config layer: options left unset (None) are dropped, section by section."""
    return {k: without_none(v) if isinstance(v, dict) else v for k, v in flags.items() if v is not None}


def resolve_config(defaults: dict[str, Any], config_file: str | Path | None = None,
                   flags: dict[str, Any] | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The one merge order of every kind of run: ``defaults`` <- config file <- flags (None = not given) <-
    ``--set`` overrides; every section must end up a mapping."""
    cfg = merge(defaults, read_yaml(config_file)) if config_file else copy.deepcopy(defaults)
    cfg = merge(cfg, without_none(flags or {}))
    cfg = merge(cfg, parse_set(overrides))
    for section in SECTIONS:
        if not isinstance(cfg.get(section), dict):
            raise ConfigError(f"config section {section!r} must be a mapping")
    return cfg


def build_config(dataset: str | None, model: str | None, config_file: str | Path | None = None,
                 overrides: Iterable[str] = ()) -> dict[str, Any]:
    """An image/text run's config: defaults <- config file <- positional dataset/model <- ``--set`` overrides."""
    cfg = resolve_config(default_config(), config_file, {"data": {"name": dataset}, "model": {"name": model}},
                         overrides)
    if not cfg["data"].get("name"):
        raise ConfigError("no dataset given (positional DATASET or data.name in the config)")
    if not cfg["model"].get("name"):
        raise ConfigError("no model given (positional MODEL or model.name in the config)")
    return cfg
