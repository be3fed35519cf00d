"""Export of WaveNet's Fast WaveNet step: one sample per call, the layers' queues held by the runtime.

The graph maps ``(level (B, C), position (), past_front (B, C), oldest (L, B, R), [label (B,)])`` to
``(params (B, P), present_front (B, C), newest (L, B, R))`` for L layers of R residual channels. ``position`` 0
feeds silence (the model's ``step(None)`` before the first sample); later positions feed ``level`` = the sample
at ``t - 1``. ``oldest[i]`` is layer ``i``'s input from ``d_i`` samples ago and ``newest[i]`` its input now: the
queues themselves stay outside the graph, as ring buffers of the runtime
(:class:`chainrule.edge.audio.RingQueues`, laid out from the metadata's ``dilations``). So a step moves
``2 x L x B x R`` values in and out of the graph whatever the receptive field, and the graph has static shapes and
a fixed number of inputs for any depth. A class-conditional run takes ``label``; a locally conditioned one
(mel frames) is refused. The check before writing runs the graph against the model's own queued ``step`` for
longer than the receptive field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.runs.kind import RunKind
from chainrule.edge.audio import RingQueues
from chainrule.export.metadata import build_metadata
from chainrule.export.plan import EXAMPLE_BATCH, ExportPlan
from chainrule.export.steps import CacheSpec, zero_cache

#: samples the post-export check steps through: at least this many, and past the receptive field
MIN_STEPS_CHECKED = 300


def _tap(conv: nn.Conv1d, older: Tensor, newer: Tensor) -> Tensor:
    """One output column of a kernel-2 convolution from its two input columns ``(B, C_in)``."""
    return F.linear(older, conv.weight[:, :, 0], conv.bias) + F.linear(newer, conv.weight[:, :, 1])


class QueuedWaveNetStep(nn.Module):
    """WaveNet's step with shift-register queues, as pure tensor functions of explicit state."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if getattr(model, "local_channels", 0):
            raise ConfigError(f"model {model.name!r} cannot be exported: it is locally conditioned (frames per "
                              "sample), which the exported step does not take; export an unconditioned or "
                              "class-conditioned run")
        self.model = model
        self.conditional = model.num_classes > 0
        #: the front convolution's previous input, fed back as it comes out
        self.cache_specs: list[CacheSpec] = [("past_front", "present_front", ["batch", model.channels])]
        #: the queue columns the runtime gathers from and scatters into its ring buffers
        self.columns = ("oldest", "newest", [len(model.dilations), "batch", model.res])

    def forward(self, level: Tensor, position: Tensor, front: Tensor, oldest: Tensor,
                label: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        m = self.model
        cur = torch.where(position == 0, torch.zeros_like(front), m.encode(level))
        h = _tap(m.front, front, cur)
        n = len(m.dilations)
        gates = None if label is None else m.label_gates(label).view(label.shape[0], n, 2 * m.res)
        skips = torch.zeros(h.shape[0], m.skip, dtype=h.dtype, device=h.device)
        newest = []
        for i, (conv, mix) in enumerate(zip(m.dilated, m.mix, strict=True)):
            z = _tap(conv, oldest[i], h)  # this layer's input from d_i samples ago
            newest.append(h)
            if gates is not None:
                z = z + gates[:, i]
            h3, s3 = m._residual(z[:, :, None], mix, h[:, :, None], skips[:, :, None])
            h, skips = h3[:, :, 0], s3[:, :, 0]
        return m._output(skips[:, :, None])[:, :, 0], cur, torch.stack(newest)


def queued_step_plan(model: AutoregressiveModel, max_context: int | None = None) -> ExportPlan:
    """The export plan of an audio model's queued step; :class:`ConfigError` for options it does not take."""
    if max_context is not None:
        raise ConfigError(f"--max-context applies to text models; {model.name!r} is an audio model (its queues "
                          "hold the receptive field, whatever the length generated)")
    if not hasattr(model, "dilations"):
        raise ConfigError(f"model {model.name!r} cannot be exported: no queued step")
    wrapper = QueuedWaveNetStep(model).eval()
    like = next(model.parameters())
    level = torch.zeros(EXAMPLE_BATCH, model.channels, dtype=torch.long, device=like.device)
    position = torch.tensor(0, dtype=torch.long, device=like.device)
    label = [torch.zeros(EXAMPLE_BATCH, dtype=torch.long, device=like.device)] if wrapper.conditional else []
    cache = zero_cache([*wrapper.cache_specs, wrapper.columns], EXAMPLE_BATCH, like)
    past, present = [s[0] for s in wrapper.cache_specs], [s[1] for s in wrapper.cache_specs]
    col_in, col_out, col_shape = wrapper.columns
    inputs = ["level", "position", *past, col_in, *(["label"] if label else [])]
    outputs = ["params", *present, col_out]
    axes = {"level": 0, "params": 0, "label": 0, col_in: 1, col_out: 1, **{n: 0 for n in [*past, *present]}}
    meta = build_metadata(model, RunKind.AUDIO.value, "step", inputs, outputs,
                          cache=[{"input": i, "output": o, "shape": s} for i, o, s in wrapper.cache_specs],
                          queues={"input": col_in, "output": col_out, "shape": col_shape},
                          receptive_field=int(model.receptive_field), dilations=list(model.dilations))
    return ExportPlan(wrapper, (level, position, *cache, *label), inputs, outputs, axes, meta)


def check_queued_step(plan: ExportPlan, sess: Any, tol: float) -> float:
    """Largest |ONNX - PyTorch| of the conditionals over ``MIN_STEPS_CHECKED`` samples or more (past the
    receptive field), the graph's state fed back in, against the model's own queued ``step`` on random levels."""
    model = plan.module.model
    steps = max(MIN_STEPS_CHECKED, model.receptive_field + 16)
    gen = torch.Generator().manual_seed(0)
    b, device = EXAMPLE_BATCH + 1, model.device  # not the traced batch size: the batch axis is dynamic
    levels = torch.randint(model.head.levels, (steps, b, model.channels), generator=gen).to(device)
    labels = torch.randint(model.num_classes, (b,), generator=gen).to(device) if model.num_classes else None
    cache = model.init_cache(b, labels, length=steps)
    specs = plan.module.cache_specs
    state = [np.zeros([b if d == "batch" else d for d in s[2]], np.float32) for s in specs]
    queues = RingQueues(plan.metadata, b)
    worst = 0.0
    with torch.no_grad():
        for t in range(steps):
            prev = levels[t - 1] if t else None
            expected, cache = model.step(prev, cache)
            slots = queues.slots(t)
            feeds = {"level": (levels[t - 1] if t else levels[0]).cpu().numpy(), "position": np.array(t, np.int64),
                     queues.input: queues.oldest(slots), **{s[0]: v for s, v in zip(specs, state, strict=True)}}
            if labels is not None:
                feeds["label"] = labels.cpu().numpy()
            names = plan.output_names
            out = dict(zip(names, sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()}), strict=True))
            state = [out[s[1]] for s in specs]
            queues.store(slots, out[queues.output])
            worst = max(worst, float(np.abs(out["params"] - expected.cpu().numpy()).max()))
    if not worst <= tol:
        raise ConfigError(f"ONNX export of {model.name!r} does not reproduce its queued step over {steps} samples "
                          f"(max difference {worst:.3g} > {tol:g})")
    return worst
