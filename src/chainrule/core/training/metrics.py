"""``metrics.jsonl``: one JSON object per line (train logs and validation results), mirrored to any sinks (e.g.
TensorBoard, :mod:`chainrule.core.training.tensorboard`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from chainrule.core.training.checkpoint import atomic_write_bytes


def finite_or_none(v: Any) -> Any:
    """Non-finite floats become null (strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsSink(Protocol):
    """Another destination of the same records: ``start(step)`` when the log starts afresh (0) or is cut back to
    ``step - 1`` for a resume, then ``write`` per record."""

    def start(self, step: int = 0) -> None: ...

    def write(self, record: dict[str, Any]) -> None: ...


class MetricsLog:
    """Appends records to ``path`` and hands them to ``sinks``; inactive (writes nothing) on non-zero ranks and
    without a path (in-memory fits)."""

    def __init__(self, path: Path | None, active: bool = True, sinks: Sequence[MetricsSink] = ()) -> None:
        self.path = Path(path) if path is not None else None
        self.active = active and self.path is not None
        self.sinks = list(sinks) if self.active else []

    def truncate_after(self, step: int) -> None:
        """Drop records newer than ``step`` (written by a run that was killed after its last checkpoint)."""
        for sink in self.sinks:
            sink.start(step + 1)
        if not self.active or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except (json.JSONDecodeError, AttributeError):
                continue  # a half-written last line
        atomic_write_bytes(self.path, "".join(f"{ln}\n" for ln in kept).encode())

    def reset(self) -> None:
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
        for sink in self.sinks:
            sink.start(0)

    def write(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({k: finite_or_none(v) for k, v in record.items()}) + "\n")
        for sink in self.sinks:
            sink.write(record)
