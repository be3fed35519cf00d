"""Export a model to ONNX: trace its export plan, embed the metadata, check the graph against PyTorch."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.export.metadata import to_props
from chainrule.export.plan import TORCHSCRIPT_EXPORT, ExportPlan, plan_export

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


def _trace(plan: ExportPlan, path: Path) -> str:
    """Write the plan's graph to ``path`` with a dynamic batch axis; returns the exporter used.

    The ``torch.export``-based exporter (``dynamo=True``) is the supported one; the TorchScript exporter is kept
    for the models of :data:`TORCHSCRIPT_EXPORT` and as the fallback when ``torch.export`` cannot capture a model
    (the graph is checked against PyTorch either way).
    """
    if plan.metadata.get("model") not in TORCHSCRIPT_EXPORT:
        try:
            _export_dynamo(plan, path)
            return "dynamo"
        except Exception as e:  # torch.export raises many types (Unsupported, UserError, TorchExportError...)
            warnings.warn(f"torch.export could not capture {plan.metadata.get('model')!r} ({type(e).__name__}); "
                          "using the TorchScript exporter", stacklevel=3)
    _export_torchscript(plan, path)
    return "torchscript"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (e.g. about torchvision operators): not the user's concern."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_dynamo(plan: ExportPlan, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({plan.batch_axes[n]: batch} if n in plan.batch_axes else None for n in plan.input_names)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(plan.module, plan.args, dynamo=True, dynamic_shapes=shapes, verbose=False,
                                    input_names=plan.input_names, output_names=plan.output_names,
                                    opset_version=OPSET, report=False)
    program.save(str(path))


def _export_torchscript(plan: ExportPlan, path: Path) -> None:
    axes = {n: {a: "batch"} for n, a in plan.batch_axes.items()}
    with _quiet_exporter(), torch.no_grad():
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
        plan.metadata["exporter"] = _trace(plan, raw)
        proto = onnx.load(str(raw))
    # the TorchScript tracer drops inputs the graph never reads (e.g. the image of a class-conditional histogram)
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
