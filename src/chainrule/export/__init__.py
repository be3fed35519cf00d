"""Export trained runs: ``chainrule export RUN --format onnx|hf|pretrained --out PATH``.

``onnx`` is one self-contained file for deployment without PyTorch: the graph (the incremental step of a text
model or forecaster, the forward pass of an image model, the sampler of a VAE or RealNVP) plus JSON metadata
with the tokenizer or feature spec, head and shapes, read by :mod:`chainrule.edge`. ``hf`` is a Hugging Face GPT-2
directory (:mod:`.hf`); ``pretrained`` is ``config.json`` + ``model.safetensors`` for any run
(:mod:`chainrule.pretrained`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind

FORMATS = ("onnx", "hf", "pretrained")


def export_run(run: Any, out: str | os.PathLike, fmt: str = "onnx", max_context: int | None = None) -> dict[str, Any]:
    """Export a run directory (or :class:`chainrule.runs.Run`) to ``out``; returns the embedded metadata."""
    from chainrule.runs import Run, open_run

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; available: {', '.join(FORMATS)}")
    run = run if isinstance(run, Run) else open_run(run)
    if max_context is not None and fmt != "onnx":
        raise ConfigError(f"--max-context applies to --format onnx, not {fmt}")
    if fmt == "hf":
        from chainrule.export.hf import export_hf_run

        return export_hf_run(run, out)
    if fmt == "pretrained":
        from chainrule.pretrained import save_pretrained

        return save_pretrained(run, out)
    extra: dict[str, Any] = {"spec": run.spec, "run_model": run.config.get("model", {})}
    if run.kind is RunKind.SERIES:
        from chainrule.export.forecast import export_forecast_run

        return export_forecast_run(run, Path(out), max_context, extra)
    if run.kind is RunKind.TEXT:
        extra["tokenizer"] = run_tokenizer(run.path).to_dict()
    from chainrule.export.onnx import export_model

    model = run.load_model()
    return export_model(model, Path(out), max_context=max_context, extra_metadata=extra)


def run_tokenizer(run_path: Path) -> Any:  # -> Tokenizer
    """A text run's tokenizer; :class:`CheckpointError` when the run has none."""
    from chainrule.modalities.text.data.tokenizers import load_tokenizer

    path = run_path / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_path}: text run without {TOKENIZER_FILE}")
    return load_tokenizer(path)


__all__ = ["FORMATS", "export_run", "run_tokenizer"]
