"""Queued-generation engines: how one Fast WaveNet step runs (the audio side of the text decode engines).

- ``eager``: the model's own ``step`` (per-layer ring buffers, one kernel-2 product per layer) and the head's
  ``sample``: about a dozen small PyTorch operators per layer, so at batch 1 dispatch, not arithmetic, is the cost.
- ``static``: one step as a pure function of fixed-shape tensors (:func:`static_step`): every layer's queue is a
  slice of one buffer ``(B, Σ dilations, R)`` read and written at ``offset + position % dilation`` (computed on
  tensors, the position a 0-d tensor), each kernel-2 convolution is one product on its concatenated
  ``[older, newer]`` columns with the conditioning gates and bias as the product's addend, residual and skip 1x1s
  are one product, and a categorical head's draw runs inside the step from the exponential variates
  ``torch.multinomial`` would draw (so the generator's stream, and the samples, are the eager ones).
- ``compiled``: the ``static`` step through ``torch.compile`` (inductor): at batch 1 the whole step becomes one
  C++ kernel. Compiled once per process and shape (tens of seconds, paid by the first generation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core import engines
from chainrule.core.engines import ENGINES
from chainrule.core.heads.categorical import Categorical, sample_given_noise

__all__ = ["ENGINES", "QueuedSampler", "check_engine", "static_step", "step_tensors"]

#: at batch 1 inductor turns each one-row product into its own loops instead of a BLAS call, so the whole step is
#: one C++ kernel, and a C++ wrapper (not Python) allocates its buffers and calls it: together about 3x fewer
#: microseconds per step than library calls from a Python wrapper, for ~10 s more compilation
COMPILE_OPTIONS = {"cpp_wrapper": True, "post_grad_fusion_options": {"decompose_mm_pass": {}}}


def check_engine(model: Any, engine: str) -> None:
    """:class:`~chainrule.core.errors.ConfigError` unless ``engine`` is known and ``model`` can run it."""
    engines.check_engine(engine, model, getattr(model, "static_decoding", False),
                         "a WaveNet-style model (gated dilated kernel-2 convolutions with Fast WaveNet queues)")


def _pair(conv: nn.Conv1d) -> Tensor:
    """A kernel-2 convolution as one ``(C_out, 2 C_in)`` matrix acting on the columns ``[older, newer]``."""
    w = conv.weight.detach()
    return torch.cat([w[:, :, 0], w[:, :, 1]], dim=1).contiguous()


def _one_by_one(conv: nn.Conv1d) -> tuple[Tensor, Tensor]:
    return conv.weight.detach()[:, :, 0].contiguous(), conv.bias.detach()


def step_tensors(model: Any) -> dict[str, Tensor]:
    """Every weight a static step reads, gathered and fused once per generation (detached, ``(out, in)`` so each
    output is a reduction over contiguous inputs). The compiled step takes these rather than the module, so its
    guards check a few tensors, not every submodule."""
    dilations = torch.tensor(model.dilations, device=model.device)
    levels = torch.arange(model.head.levels, device=model.device).view(1, 1, -1)
    out1, out1_b = _one_by_one(model.out1)
    out2, out2_b = _one_by_one(model.out2)
    mix = [_one_by_one(m) for m in model.mix]
    return {"encode": model.encode(levels).reshape(-1),  # level -> network input, as the eager step encodes it
            "front": _pair(model.front), "front_b": model.front.bias.detach(),
            "dilated": torch.stack([_pair(c) for c in model.dilated]),  # (layers, 2R, 2R)
            "mix": torch.stack([w for w, _ in mix]), "mix_b": torch.stack([b for _, b in mix]),  # (layers, R+S, R)
            "out1": out1, "out1_b": out1_b, "out2": out2, "out2_b": out2_b,
            "offsets": torch.cumsum(dilations, 0) - dilations, "dilations": dilations}


def gate_rows(model: Any, gates: Tensor | None) -> tuple[Tensor, int]:
    """The dilated convolutions' addends ``(B or 1, rows, layers, 2R)``: bias plus conditioning gates, one row per
    local frame (the model repeats a frame's gates for ``local_hop`` samples) or one row for a label alone; and the
    samples per row."""
    bias = torch.stack([c.bias.detach() for c in model.dilated])  # (layers, 2R)
    if gates is None:
        return bias[None, None], 1
    hop = model.local_hop if gates.shape[-1] > 1 else 1
    return (gates.detach()[..., ::hop].permute(0, 3, 1, 2) + bias).contiguous(), hop


def static_step(t: dict[str, Tensor], hop: int, draw: str, level: Tensor, position: Tensor, prev: Tensor,
                queues: Tensor, gates: Tensor, noise: Tensor | None, temperature: Tensor
                ) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor]:
    """One queued step at ``position`` (0-d long tensor) after the sample ``level (B, C)`` (ignored at 0: the
    sample before the first is silence, as in the teacher-forced pass's padding).

    ``prev (B, C)`` is the front's previous input, ``queues (B, Σ dilations, R)`` every layer's ring buffer of its
    last ``dilation`` inputs (layer i at rows ``offsets[i] ...``), ``gates`` from :func:`gate_rows`. ``draw`` is
    ``"categorical"`` (draw with ``noise`` at ``temperature``), ``"greedy"`` (argmax) or ``"none"`` (the caller
    draws from the params). Returns the params ``(B, P)``, the draw or None, the new ``prev``, each layer's input
    ``(B, layers, R)`` and the rows to write it to: the buffers are only read here, so the step is pure."""
    where = position.reshape(1)  # a 0-d index would become a data-dependent integer under torch.compile
    cur = t["encode"].index_select(0, level.reshape(-1)).view_as(prev) * (where > 0)
    h = F.linear(torch.cat([prev, cur], dim=1), t["front"], t["front_b"])
    slots = t["offsets"] + where % t["dilations"]
    older = queues.index_select(1, slots)  # each layer's input from `dilation` samples ago
    row = torch.clamp(where // hop, max=gates.shape[1] - 1)
    addend = gates.index_select(1, row)[:, 0]  # (B or 1, layers, 2R)
    res = h.shape[1]
    inputs, skips = [], None
    for i in range(t["dilated"].shape[0]):
        inputs.append(h)
        z = F.linear(torch.cat([older[:, i], h], dim=1), t["dilated"][i]) + addend[:, i]
        mixed = F.linear(torch.tanh(z[:, :res]) * torch.sigmoid(z[:, res:]), t["mix"][i], t["mix_b"][i])
        h = h + mixed[:, :res]
        skips = mixed[:, res:] if skips is None else skips + mixed[:, res:]
    assert skips is not None
    hidden = F.relu(F.linear(F.relu(skips), t["out1"], t["out1_b"]))
    params = F.linear(hidden, t["out2"], t["out2_b"])
    b, levels = params.shape[0], t["encode"].shape[0]
    drawn = None
    if draw == "categorical":
        assert noise is not None
        drawn = sample_given_noise(params.view(b, -1, levels), temperature, noise)
    elif draw == "greedy":
        drawn = params.view(b, -1, levels).argmax(2)
    return params, drawn, cur, torch.stack(inputs, dim=1), slots


class QueuedSampler:
    """Draws one waveform sample after another with one engine. Every engine draws the same random numbers in the
    same order as the model's ``step`` followed by ``head.sample``, so a seed gives the same audio."""

    def __init__(self, model: Any, engine: str, n: int, length: int, cond: Any = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        check_engine(model, engine)
        self.model, self.engine, self.temperature, self.generator = model, engine, temperature, generator
        if engine == "eager":
            self.cache = model.init_cache(n, cond, length=length)
            self.prev_draw: Tensor | None = None
            return
        dev = model.device
        self.fn = engines.compile_once(static_step, COMPILE_OPTIONS) if engine == "compiled" else static_step
        self.tensors = step_tensors(model)
        self.gates, self.hop = gate_rows(model, model.condition_gates(cond, n, length))
        self.queues = torch.zeros(n, sum(model.dilations), model.res, device=dev)
        self.prev = torch.zeros(n, model.channels, device=dev)
        self.level = torch.zeros(n, model.channels, dtype=torch.long, device=dev)
        self.position = torch.zeros((), dtype=torch.long, device=dev)
        categorical = isinstance(model.head, Categorical)
        self.draw = "none" if not categorical else "greedy" if temperature <= 0 else "categorical"
        self.t_tensor = torch.tensor(float(temperature) if temperature > 0 else 1.0, device=dev)

    def next(self, given: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The next position's params ``(B, P)`` and its draw ``(B, C)`` (long levels); with ``given`` levels the
        following steps condition on those instead of the draw (teacher forcing, to read the conditionals)."""
        if self.engine == "eager":
            params, self.cache = self.model.step(self.prev_draw, self.cache)
            draw = self.model.head.sample(params.unsqueeze(-1), temperature=self.temperature,
                                          generator=self.generator)[..., 0]
            self.prev_draw = draw if given is None else given
            return params, draw
        noise = None
        if self.draw == "categorical":
            noise = self.model.head.exponential_noise(self.level.numel(), self.generator, self.level.device)
        params, draw, self.prev, inputs, slots = self.fn(self.tensors, self.hop, self.draw, self.level,
                                                         self.position, self.prev, self.queues, self.gates, noise,
                                                         self.t_tensor)
        self.queues.index_copy_(1, slots, inputs)
        self.position += 1
        if draw is None:
            draw = self.model.head.sample(params.unsqueeze(-1), temperature=self.temperature,
                                          generator=self.generator)[..., 0]
        self.level = draw if given is None else given
        return params, draw
