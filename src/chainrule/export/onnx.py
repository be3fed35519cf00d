"""Export a model to ONNX: trace its export plan, embed the metadata, check the graph against PyTorch."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.export.metadata import to_props
from chainrule.export.plan import ExportPlan, plan_export

OPSET = 18
#: largest |ONNX - PyTorch| accepted by the post-export check
TOLERANCE = 1e-4


def _require_onnx() -> Any:
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"ONNX export needs onnx and onnxruntime ({e.name} is missing); "
                          "install them with: pip install 'chainrule[export]'") from None
    return onnx


def _trace(plan: ExportPlan, path: Path) -> None:
    """Write the plan's graph to ``path`` with a dynamic batch axis.

    Uses the TorchScript-based exporter (``dynamo=False``): on these models it matches PyTorch exactly and
    exports in well under a second, where the torch.export-based exporter takes several seconds per model.
    """
    axes = {n: {a: "batch"} for n, a in plan.batch_axes.items()}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices are not the user's concern
        torch.onnx.export(plan.module, plan.args, str(path), dynamo=False, dynamic_axes=axes,
                          input_names=plan.input_names, output_names=plan.output_names, opset_version=OPSET)


def export_model(model: AutoregressiveModel, path: str | os.PathLike, *, max_context: int | None = None,
                 extra_metadata: dict[str, Any] | None = None, verify: bool = True) -> dict[str, Any]:
    """Export ``model`` to the ONNX file ``path`` (written atomically) and return its metadata.

    Text models export their incremental step (see :mod:`chainrule.export.steps`), with a KV cache of
    ``max_context`` positions (default: the model's length); image models export the teacher-forced
    forward pass. ``extra_metadata`` (e.g. the tokenizer and run spec) is added to the embedded JSON.
    With ``verify``, the exported graph is run with onnxruntime on example inputs and must match PyTorch.
    """
    was_training = model.training
    model.eval()
    try:
        return export_plan(plan_export(model, max_context), path, extra_metadata, verify)
    finally:
        model.train(was_training)


def export_plan(plan: ExportPlan, path: str | os.PathLike, extra_metadata: dict[str, Any] | None = None,
                verify: bool = True) -> dict[str, Any]:
    """Trace ``plan`` (its module in eval mode), embed its metadata, check it and write ``path``."""
    onnx = _require_onnx()
    plan.metadata.update(extra_metadata or {})
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "graph.onnx"
        _trace(plan, raw)
        proto = onnx.load(str(raw))
    # the tracer drops inputs the graph never reads (e.g. the image of a class-conditional histogram)
    initializers = {i.name for i in proto.graph.initializer}
    plan.metadata["inputs"] = [i.name for i in proto.graph.input if i.name not in initializers]
    for key, value in to_props(plan.metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "chainrule"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if verify:
        from chainrule.export.verify import check_parity

        check_parity(plan, data, TOLERANCE)
    atomic_write_bytes(path, data)
    return plan.metadata
