"""What to export for a model: the wrapper module, example inputs, names, dynamic axes and metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.runs.kind import RunKind
from chainrule.export.forward import ForwardPass
from chainrule.export.metadata import build_metadata
from chainrule.export.sampler import DecoderSampler, FlowSampler
from chainrule.export.steps import STEPS, zero_cache

#: registered models that cannot be exported, with the reason (none today; the tests check this list)
NOT_EXPORTABLE: dict[str, str] = {
    "conditional_pixelcnn": "the exported forward pass takes no conditioning image (Condition.image)",
}
#: model family -> its sampler as one exportable pass from noise (image models)
SAMPLERS: dict[str, type[DecoderSampler] | type[FlowSampler]] = {"vae": DecoderSampler, "flow": FlowSampler}
#: non-autoregressive image models whose sampler cannot be exported (it is not one pass from noise), with the reason
SAMPLER_NOT_EXPORTABLE: dict[str, str] = {
    "maf": "its inverse is sequential over the dimensions (one MADE pass per dimension and layer), which a graph "
           "would hold unrolled",
    "pixel_vae": "its decoder is autoregressive, so the sampler is a loop over pixels, not a function of noise",
}
#: models exported with the TorchScript exporter instead of torch.export, with the reason (none: every model,
#: forecasters included, exports with torch.export and matches PyTorch; a model torch.export cannot capture
#: falls back to TorchScript at export time and its metadata says ``exporter: torchscript``)
TORCHSCRIPT_EXPORT: dict[str, str] = {}

#: example batch for tracing (> 1, so the batch axis is never specialised to a constant)
EXAMPLE_BATCH = 2


@dataclass
class ExportPlan:
    """A module to trace with its example inputs, and how its graph is described."""

    module: nn.Module
    args: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    #: name -> batch axis, for every input and output
    batch_axes: dict[str, int]
    metadata: dict[str, Any] = field(default_factory=dict)


def plan_export(model: AutoregressiveModel, max_context: int | None = None) -> ExportPlan:
    """The export plan of ``model`` (in eval mode): the incremental step for text models, the teacher-forced
    forward pass for image models, the sampler (noise -> image values) for VAEs and flows. :class:`ConfigError`
    for a model that cannot be exported."""
    if model.name in NOT_EXPORTABLE:
        raise ConfigError(f"model {model.name!r} cannot be exported: {NOT_EXPORTABLE[model.name]}")
    if model.family != "autoregressive":
        return _sampler_plan(model, max_context)
    if model.modality == "text":
        return _step_plan(model, max_context)
    if model.modality == "audio":  # the Fast WaveNet step (the runtime keeps the queues)
        from chainrule.export.audio import queued_step_plan

        return queued_step_plan(model, max_context)
    if max_context is not None:
        raise ConfigError(f"--max-context applies to text models; {model.name!r} is an image model")
    return _forward_plan(model)


def _step_plan(model: AutoregressiveModel, max_context: int | None) -> ExportPlan:
    if model.name not in STEPS:
        raise ConfigError(f"model {model.name!r} cannot be exported: no exportable incremental step")
    n = model.max_len if max_context is None else int(max_context)
    if not 2 <= n <= model.max_len:
        raise ConfigError(f"max context must be between 2 and the model's {model.max_len} positions, got {n}")
    wrapper = STEPS[model.name](model, n).eval()
    like = model.token_embedding.weight
    token = torch.zeros(EXAMPLE_BATCH, dtype=torch.long, device=like.device)
    position = torch.tensor(0, dtype=torch.long, device=like.device)
    cache = zero_cache(wrapper.cache_specs, EXAMPLE_BATCH, like)
    past = [s[0] for s in wrapper.cache_specs]
    present = [s[1] for s in wrapper.cache_specs]
    axes = {"token": 0, "logits": 0}
    for name_in, name_out, shape in wrapper.cache_specs:
        axes[name_in] = axes[name_out] = shape.index("batch")
    cache_meta = [{"input": i, "output": o, "shape": s} for i, o, s in wrapper.cache_specs]
    meta = build_metadata(model, RunKind.TEXT.value, "step", ["token", "position", *past], ["logits", *present],
                          vocab_size=model.vocab_size, max_context=n, cache=cache_meta)
    return ExportPlan(wrapper, (token, position, *cache), ["token", "position", *past], ["logits", *present],
                      axes, meta)


def _forward_plan(model: AutoregressiveModel) -> ExportPlan:
    wrapper = ForwardPass(model).eval()
    device = model.device
    x = torch.zeros(EXAMPLE_BATCH, *model.event_shape, dtype=torch.long, device=device)
    args: tuple[Tensor, ...] = (x,)
    names = ["x"]
    if wrapper.conditional:
        args += (torch.zeros(EXAMPLE_BATCH, dtype=torch.long, device=device),)
        names.append("cond")
    meta = build_metadata(model, RunKind.IMAGE.value, "forward", names, ["params"],
                          ordering=[int(i) for i in model.ordering().tolist()],
                          row_causal=bool(model.row_causal))
    return ExportPlan(wrapper, args, names, ["params"], {n: 0 for n in [*names, "params"]}, meta)


def _sampler_plan(model: AutoregressiveModel, max_context: int | None) -> ExportPlan:
    """A VAE's or flow's sampler as one graph from noise (see :mod:`chainrule.export.sampler`)."""
    if model.name in SAMPLER_NOT_EXPORTABLE:
        raise ConfigError(f"model {model.name!r} cannot be exported: {SAMPLER_NOT_EXPORTABLE[model.name]}")
    if model.family not in SAMPLERS or model.modality != "image":
        raise ConfigError(f"model {model.name!r} cannot be exported: ONNX export covers autoregressive models and "
                          f"the image VAE and flow samplers; the {model.family} sampler of this {model.modality} model "
                          "is not exported yet")
    if max_context is not None:
        raise ConfigError(f"--max-context applies to text models; {model.name!r} is an image model")
    wrapper = SAMPLERS[model.family](model).eval()
    param = next(model.parameters())
    gen = torch.Generator().manual_seed(0)  # normal noise, so the post-export check sees typical inputs
    z = torch.randn(EXAMPLE_BATCH, *wrapper.noise_shape, generator=gen).to(param)
    meta = build_metadata(model, RunKind.IMAGE.value, "sampler", ["z"], [wrapper.output], sampler=wrapper.kind,
                          noise_shape=wrapper.noise_shape)
    return ExportPlan(wrapper, (z,), ["z"], [wrapper.output], {"z": 0, wrapper.output: 0}, meta)
