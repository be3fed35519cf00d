"""An exported model: an onnxruntime session plus the chainrule metadata embedded in the ONNX file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from chainrule.edge.errors import EdgeError

METADATA_KEY = "chainrule"
FORMAT = "chainrule-onnx"
SUPPORTED_VERSIONS = (1,)
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class EdgeModel:
    """Load ``path`` (an ONNX file written by ``chainrule export``); :class:`EdgeError` when it is missing,
    unreadable or not a chainrule export.

    Args:
        path: the ONNX file.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise EdgeError(f"{self.path}: model file not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise EdgeError(f"{self.path}: not a valid ONNX model ({_first_line(e)})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise EdgeError(f"{self.path}: no chainrule metadata; export the model with 'chainrule export'")
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as e:
            raise EdgeError(f"{self.path}: corrupt chainrule metadata ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise EdgeError(f"{self.path}: metadata is not in the {FORMAT} format")
        if meta.get("version") not in SUPPORTED_VERSIONS:
            raise EdgeError(f"{self.path}: metadata version {meta.get('version')!r} is not supported by this "
                            "runtime; upgrade chainrule")
        self.metadata: dict[str, Any] = meta
        self.input_dtypes = {i.name: _DTYPES.get(i.type, np.float32) for i in self.session.get_inputs()}

    @property
    def kind(self) -> str:
        """``text``, ``image``, ``timeseries`` or ``audio``."""
        return str(self.metadata.get("kind"))

    @property
    def graph(self) -> str:
        """``step`` (incremental step with a cache) or ``forward`` (teacher-forced pass)."""
        return str(self.metadata.get("graph"))

    def require(self, kind: str, command: str) -> None:
        """:class:`EdgeError` unless this is a ``kind`` model."""
        if self.kind != kind:
            raise EdgeError(f"{self.path}: '{command}' works on {kind} models; this is a {self.kind} model "
                            f"({self.metadata.get('model')})")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph on ``feeds`` (cast to the input dtypes; names the graph does not take are left out);
        outputs in the exported order."""
        cast = {k: np.asarray(v, dtype=self.input_dtypes[k]) for k, v in feeds.items() if k in self.input_dtypes}
        return self.session.run(None, cast)

    def describe(self) -> str:
        m = self.metadata
        head = m.get("head", {})
        parts = [f"{m.get('model')} ({m.get('kind')}, {m.get('graph')} graph)",
                 f"event shape {tuple(m.get('event_shape', ()))}", f"{head.get('type')} head"]
        if m.get("kind") == "timeseries":
            parts = [f"{m.get('model')} (timeseries, {m.get('graph')} graph)", f"{head.get('type')} head",
                     f"history {m.get('history')}", f"horizon {m.get('horizon')} "
                     f"(at most {int(m.get('max_context', 0)) - int(m.get('history', 0))})", f"lags {m.get('lags')}"]
        if m.get("kind") == "audio":
            spec = m.get("spec") or {}
            parts += [f"{spec.get('sample_rate')} Hz {spec.get('quantization')}",
                      f"receptive field {m.get('receptive_field')} samples",
                      f"{len(m.get('dilations', []))} queued layers"]
        if m.get("kind") == "text":
            parts += [f"vocabulary {m.get('vocab_size')}", f"context {m.get('max_context')}",
                      f"{(m.get('tokenizer') or {}).get('kind')} tokenizer"]
        return ", ".join(parts)
