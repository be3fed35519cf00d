"""Checks on a run's ``config.yaml`` before anything is built from it: a damaged or hand-edited file is a
one-line :class:`CheckpointError`, never a traceback nor a model sized by a corrupt number (an event shape of
[1, 100000, 100000] would ask for tens of gigabytes before failing)."""

from __future__ import annotations

import math
from typing import Any

from chainrule.core.errors import CheckpointError
from chainrule.core.runs.config import SECTIONS
from chainrule.core.runs.kind import RunKind, run_kind

#: bounds far above any real run (3 x 1024 x 1024 images, 1M-token contexts and vocabularies) and far below
#: what would exhaust memory when a model is sized by them
MAX_EVENT_DIMS = 1 << 22
MAX_LEVELS = 1 << 20
MAX_CLASSES = 1 << 16
#: a forecaster's context, horizon and lags, in steps
MAX_SERIES_STEPS = 1 << 20


def _count(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_run_config(cfg: Any, where: str) -> None:
    """:class:`CheckpointError` naming ``where`` (the config file) unless ``cfg`` is a usable run config."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{where}: corrupt run config ({why})")

    if not isinstance(cfg, dict) or "spec" not in cfg or "model" not in cfg:
        raise bad("missing model or spec section")
    for section in (*SECTIONS, "spec"):
        if section in cfg and not isinstance(cfg[section], dict):
            raise bad(f"{section} must be a mapping, not {cfg[section]!r:.40}")
    if not isinstance(cfg["model"].get("name"), str):
        raise bad("model.name must be a model name")
    spec = cfg["spec"]
    if run_kind(spec, where) is RunKind.SERIES:
        for key in ("context", "horizon"):
            if not _count(spec.get(key), 1, MAX_SERIES_STEPS):
                raise bad(f"spec.{key} must be a whole number from 1 to {MAX_SERIES_STEPS}, not {spec.get(key)!r:.40}")
        lags = spec.get("lags")
        if not isinstance(lags, list) or not lags or not all(_count(v, 1, MAX_SERIES_STEPS) for v in lags):
            raise bad(f"spec.lags must be a list of whole numbers from 1 to {MAX_SERIES_STEPS}")
        return
    shape = spec.get("event_shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 4 or not all(_count(d, 1, MAX_EVENT_DIMS) for d in shape)
            or math.prod(shape) > MAX_EVENT_DIMS):
        raise bad(f"spec.event_shape must list 1 to 4 positive sizes with at most {MAX_EVENT_DIMS} values in "
                  f"all, not {shape!r:.60}")
    if not _count(spec.get("levels"), 2, MAX_LEVELS):
        raise bad(f"spec.levels must be a whole number from 2 to {MAX_LEVELS}, not {spec.get('levels')!r:.40}")
    if not _count(spec.get("num_classes", 0), 0, MAX_CLASSES):
        raise bad(f"spec.num_classes must be a whole number from 0 to {MAX_CLASSES}")
    if not isinstance(spec.get("class_names", []), list):
        raise bad("spec.class_names must be a list")
