"""Export trained runs for deployment without PyTorch: ``chainrule export RUN --format onnx --out model.onnx``.

The exported file is self-contained: the graph (the incremental step of a text model or forecaster, the
forward pass of an image model) plus JSON metadata with the tokenizer or feature spec, head and shapes,
read by :mod:`chainrule.edge`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind

FORMATS = ("onnx",)


def export_run(run: Any, out: str | os.PathLike, fmt: str = "onnx", max_context: int | None = None) -> dict[str, Any]:
    """Export a run directory (or :class:`chainrule.runs.Run`) to ``out``; returns the embedded metadata."""
    from chainrule.runs import Run, open_run

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; available: {', '.join(FORMATS)}")
    run = run if isinstance(run, Run) else open_run(run)
    extra: dict[str, Any] = {"spec": run.spec, "run_model": run.config.get("model", {})}
    if run.kind is RunKind.SERIES:
        from chainrule.export.forecast import export_forecast_run

        return export_forecast_run(run, Path(out), max_context, extra)
    if run.kind is RunKind.TEXT:
        extra["tokenizer"] = _tokenizer_dict(run.path)
    from chainrule.export.onnx import export_model

    model = run.load_model()
    return export_model(model, Path(out), max_context=max_context, extra_metadata=extra)


def _tokenizer_dict(run_path: Path) -> dict[str, Any]:
    """The run's tokenizer as its JSON dictionary (validated by loading it)."""
    from chainrule.modalities.text.data.tokenizers import load_tokenizer

    path = run_path / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_path}: text run without {TOKENIZER_FILE}")
    return load_tokenizer(path).to_dict()


__all__ = ["FORMATS", "export_run"]
