"""The JSON stored in an exported model's ``metadata_props`` under :data:`METADATA_KEY`.

It holds everything the torch-free edge runtime needs: what the graph computes (``graph``: ``step`` or
``forward``), its input/output and cache names, the head and its parameters, the event shape, and for
text the tokenizer itself, so the ONNX file is self-contained.
"""

from __future__ import annotations

import json
from typing import Any

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads.bernoulli import Bernoulli
from chainrule.core.heads.categorical import Categorical

METADATA_KEY = "chainrule"
FORMAT = "chainrule-onnx"
VERSION = 1


def head_info(model: AutoregressiveModel) -> dict[str, Any]:
    """Head type and parameters, e.g. ``{"type": "categorical", "levels": 256}``."""
    head = model.head
    if isinstance(head, Categorical):
        return {"type": "categorical", "levels": head.levels}
    if isinstance(head, Bernoulli):
        return {"type": "bernoulli", "levels": 2}
    num_mix = getattr(head, "num_mix", None)
    if num_mix is not None:
        return {"type": "logistic_mixture", "levels": head.levels, "num_mix": int(num_mix)}
    return {"type": type(head).__name__, "levels": int(head.levels)}


def build_metadata(model: AutoregressiveModel, kind: str, graph: str, inputs: list[str], outputs: list[str],
                   **extra: Any) -> dict[str, Any]:
    """The metadata dictionary common to every export; ``extra`` adds kind-specific fields."""
    return {
        "format": FORMAT, "version": VERSION, "kind": kind, "model": model.name, "graph": graph,
        "inputs": inputs, "outputs": outputs, "event_shape": list(model.event_shape),
        "num_classes": model.num_classes, "head": head_info(model), "config": model.config(), **extra,
    }


def to_props(meta: dict[str, Any]) -> dict[str, str]:
    """``metadata_props`` entries for ``meta``."""
    return {METADATA_KEY: json.dumps(meta, separators=(",", ":"))}
