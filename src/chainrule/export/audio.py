"""Export of WaveNet's Fast WaveNet step: one sample per call, with every layer's queue as explicit state.

The graph maps ``(level (B, C), position (), past_front (B, C), past_queues (B, R, sum(d)), [label (B,)])`` to
``(params (B, P), present_front, present_queues)``. ``position`` 0 feeds silence (the model's ``step(None)``
before the first sample); later positions feed ``level`` = the sample at ``t - 1``. ``queues`` holds every
layer's queue side by side (layer ``i`` at columns ``offsets[i] .. offsets[i] + d_i``, in the metadata): its
last ``d_i`` inputs, oldest first. A step reads the oldest column (the input from ``d_i`` samples ago) and
shifts the new input in at the end: the values of the model's ring buffer without its position-dependent
index, so the graph has static shapes (and one state tensor, so a fixed number of inputs for any depth). A
class-conditional run takes ``label``; a locally conditioned one (mel frames) is refused. The check before writing
runs the graph against the model's own queued ``step`` for longer than the receptive field.
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
        self.offsets = [sum(model.dilations[:i]) for i in range(len(model.dilations))]
        self.cache_specs: list[CacheSpec] = [("past_front", "present_front", ["batch", model.channels]),
                                             ("past_queues", "present_queues", ["batch", model.res,
                                                                                sum(model.dilations)])]

    def forward(self, level: Tensor, position: Tensor, front: Tensor, queues: Tensor,
                label: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        m = self.model
        cur = torch.where(position == 0, torch.zeros_like(front), m.encode(level))
        h = _tap(m.front, front, cur)
        n = len(m.dilations)
        gates = None if label is None else m.label_gates(label).view(label.shape[0], n, 2 * m.res)
        skips = torch.zeros(h.shape[0], m.skip, dtype=h.dtype, device=h.device)
        present = []
        for i, (conv, mix, start, d) in enumerate(zip(m.dilated, m.mix, self.offsets, m.dilations, strict=True)):
            z = _tap(conv, queues[:, :, start], h)  # this layer's input from d samples ago
            present += [queues[:, :, start + 1:start + d], h[:, :, None]] if d > 1 else [h[:, :, None]]
            if gates is not None:
                z = z + gates[:, i]
            h3, s3 = m._residual(z[:, :, None], mix, h[:, :, None], skips[:, :, None])
            h, skips = h3[:, :, 0], s3[:, :, 0]
        return m._output(skips[:, :, None])[:, :, 0], cur, torch.cat(present, dim=2)


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
    cache = zero_cache(wrapper.cache_specs, EXAMPLE_BATCH, like)
    past, present = [s[0] for s in wrapper.cache_specs], [s[1] for s in wrapper.cache_specs]
    inputs = ["level", "position", *past, *(["label"] if label else [])]
    axes = {"level": 0, "params": 0, "label": 0, **{n: 0 for n in past + present}}
    meta = build_metadata(model, RunKind.AUDIO.value, "step", inputs, ["params", *present],
                          cache=[{"input": i, "output": o, "shape": s} for i, o, s in wrapper.cache_specs],
                          receptive_field=int(model.receptive_field), dilations=list(model.dilations),
                          queue_offsets=wrapper.offsets)
    return ExportPlan(wrapper, (level, position, *cache, *label), inputs, ["params", *present], axes, meta)


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
    state = [np.zeros([b if d == "batch" else d for d in s[2]], np.float32) for s in plan.module.cache_specs]
    worst = 0.0
    with torch.no_grad():
        for t in range(steps):
            prev = levels[t - 1] if t else None
            expected, cache = model.step(prev, cache)
            feeds = {"level": (levels[t - 1] if t else levels[0]).cpu().numpy(), "position": np.array(t, np.int64)}
            if labels is not None:
                feeds["label"] = labels.cpu().numpy()
            feeds.update({s[0]: v for s, v in zip(plan.module.cache_specs, state, strict=True)})
            params, *state = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
            worst = max(worst, float(np.abs(params - expected.cpu().numpy()).max()))
    if not worst <= tol:
        raise ConfigError(f"ONNX export of {model.name!r} does not reproduce its queued step over {steps} samples "
                          f"(max difference {worst:.3g} > {tol:g})")
    return worst
