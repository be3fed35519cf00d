"""The served models as OpenAI model objects, for ``GET /v1/models`` and ``GET /v1/models/{id}``.

The native ``GET /v1/models`` reply keeps its ``models`` and ``limits`` and also carries OpenAI's list fields
(``object: "list"``, ``data``), so one path serves both kinds of client. ``data`` lists the models
``/v1/completions`` can use: the text models.
"""

from __future__ import annotations

from typing import Any

from chainrule.core.runs.files import CONFIG_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.serve.registry import ServedModel


def model_object(served: ServedModel) -> dict[str, Any]:
    """One OpenAI model object; ``created`` is when the run's configuration was written (Unix seconds)."""
    try:
        created = int((served.run.path / CONFIG_FILE).stat().st_mtime)
    except OSError:
        created = 0
    return {"id": served.name, "object": "model", "created": created, "owned_by": "chainrule",
            "context_length": int(served.model.max_len)}


def model_list(models: dict[str, ServedModel]) -> dict[str, Any]:
    """OpenAI's list fields: every served text model."""
    return {"object": "list", "data": [model_object(m) for m in models.values() if m.kind is RunKind.TEXT]}
