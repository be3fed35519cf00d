"""The served models: every run is loaded once at start-up into a dict keyed by name.

Requests name a model; the name is only ever looked up in this dict, never joined into a path, so a
request cannot reach a file outside the served runs. Names come from the run directories' names,
de-duplicated with ``-2``, ``-3`` ... in the order the runs were given.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.core.errors import ConfigError
from chainrule.core.runs.kind import RunKind
from chainrule.runs import Run, open_run


@dataclass
class ServedModel:
    """One loaded run: ``model``/``tokenizer`` for text, image and audio runs, ``forecaster`` (the trained network)
    for time series, whose requests go through ``chainrule.modalities.series.api.forecast_from_history``."""

    name: str
    kind: RunKind
    run: Run
    model: Any = None
    tokenizer: Any = None
    forecaster: Any = None
    #: held around model calls when the model keeps mutable state between calls (MADE's current mask)
    lock: threading.Lock | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def guard(self) -> contextlib.AbstractContextManager:
        return self.lock if self.lock is not None else contextlib.nullcontext()

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/models`` reports about this model."""
        spec = self.run.spec
        out: dict[str, Any] = {"name": self.name, "kind": self.kind,
                               "architecture": self.run.config["model"].get("name"), "data": spec.get("data")}
        net = self.model if self.model is not None else self.forecaster
        if net is not None:
            out["params"] = sum(p.numel() for p in net.parameters())
        if self.model is not None:
            out["num_classes"] = self.model.num_classes
            out["class_names"] = list(spec.get("class_names", []))[: self.model.num_classes]
        if self.kind is RunKind.TEXT:
            out["context"] = int(self.model.max_len)
            out["vocab_size"] = int(self.model.vocab_size)
        elif self.kind is RunKind.IMAGE:
            out["event_shape"] = list(self.model.event_shape)
            out["levels"] = int(spec["levels"])
        out.update(self.extra)
        return out


def unique_names(paths: Iterable[Path]) -> list[str]:
    """Directory names, with ``-2``, ``-3`` ... appended to repeats."""
    names: list[str] = []
    for p in paths:
        base = p.resolve().name or "run"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _stateful(model: Any) -> bool:
    return int(getattr(model, "num_masks", 1)) > 1 and hasattr(model, "use_mask")


def load_one(name: str, path: Path, device: str | None) -> ServedModel:
    """Load one run; :class:`CheckpointError`/:class:`ConfigError` name the run and the problem."""
    run = open_run(path)
    kind = run.kind
    if kind is RunKind.TEXT:
        from chainrule.api import load_text_run

        model, tokenizer = load_text_run(run, device)
        return ServedModel(name, kind, run, model=model.eval(), tokenizer=tokenizer)
    if kind is RunKind.IMAGE:
        model = run.load_model(device).eval()
        return ServedModel(name, kind, run, model=model, lock=threading.Lock() if _stateful(model) else None)
    if kind is RunKind.AUDIO:  # /v1/sample answers with a WAV at the run's rate
        model = run.load_model(device).eval()
        spec = run.spec
        return ServedModel(name, kind, run, model=model, extra={
            "sample_rate": int(spec["sample_rate"]), "quantization": spec["quantization"],
            "receptive_field": getattr(model, "receptive_field", None)})
    try:
        from chainrule.modalities.series.api import load_forecast_run
    except ImportError as e:
        raise ConfigError(f"{path}: a time-series run needs the timeseries extra "
                          f"(pip install 'chainrule[timeseries]'): {e}") from None
    model, spec = load_forecast_run(run, device or "auto")  # loads and checks the weights now, not per request
    extra = {k: spec.get(k) for k in ("horizon", "context", "freq", "target", "series", "last_timestamp")}
    return ServedModel(name, kind, run, forecaster=model, extra={**extra, "architecture": spec.get("model"),
                                                                 "data": spec.get("data")})


def load_registry(paths: Iterable[str | Path], device: str | None = None) -> dict[str, ServedModel]:
    """Load every run once; the dict is the only way requests reach a model."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("serve needs at least one run directory")
    return {name: load_one(name, p, device) for name, p in zip(unique_names(paths), paths, strict=True)}
