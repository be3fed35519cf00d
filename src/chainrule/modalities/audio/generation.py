"""Generating audio of any length from a WaveNet-like model: queued (Fast WaveNet) or naive.

The contract's ``sample`` draws one event of the trained crop length; audio is asked for in seconds, so this
loop runs for ``length`` samples. Queued generation runs one step per sample (O(layers)) with an engine of
:mod:`chainrule.modalities.audio.engine`: the model's own ``step`` (``eager``), its fixed-shape pure-function
form (``static``, the default: the fastest without a compilation) or that compiled (``compiled``: fastest per
sample, after tens of seconds of compilation once per process and shape). Naive generation re-runs the network
on the last ``receptive_field`` samples for every new one (the cost Fast WaveNet removes). All draw the same
random numbers in the same order, so one seed gives identical audio.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch
from torch import Tensor

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.sampling import check_stop
from chainrule.modalities.audio.engine import QueuedSampler, check_engine

#: the engine of queued generation unless one is named: no compilation, identical samples to ``eager``
DEFAULT_ENGINE = "static"
#: from this many samples in one call (waveforms x length) ``auto`` compiles the step: see :func:`auto_engine`
AUTO_COMPILED_SAMPLES = 80_000


@torch.no_grad()
def generate(model: AutoregressiveModel, n: int, length: int, cond: Any = None, temperature: float = 1.0,
             use_cache: bool = True, generator: torch.Generator | None = None, engine: str | None = None) -> Tensor:
    """``n`` waveforms of ``length`` samples as levels ``(n, C, length)``; ``cond`` as for ``model.sample``.
    ``engine`` runs the queued step (default :data:`DEFAULT_ENGINE`, ``eager`` for a model without a static
    form); ``use_cache=False`` is the naive loop, which takes no engine."""
    model.check_sample(n, cond, temperature=temperature)
    engine = pick_engine(model, engine, use_cache)
    device = model.device
    x = torch.zeros(n, model.channels, length, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        sampler = QueuedSampler(model, engine, n, length, cond, temperature, generator) if use_cache else None
        for t in range(length):
            check_stop()
            if sampler is not None:
                x[:, :, t] = sampler.next()[1]
                continue
            params = window_params(model, x, t, cond)
            x[:, :, t] = model.head.sample(params.unsqueeze(-1), temperature=temperature, generator=generator)[..., 0]
    finally:
        model.train(was_training)
    return x


def auto_engine(model: Any, samples: int) -> str:
    """``compiled`` when ``samples`` (waveforms x length) are enough for its one-off compilation to pay, else the
    default. At receptive field 1,024 the compiled step is ~5x the static one per sample; its compilation takes
    20-80 s on a loaded CPU the first time (the first shape in a process is the slowest) and a few seconds once
    inductor's on-disk cache holds it, so it is ahead from roughly 10,000 samples (cached) to 110,000 (first
    ever); 80,000 = 10 s at 8 kHz (BENCHMARKS.md, "Audio")."""
    if not getattr(model, "static_decoding", False):
        return "eager"
    return "compiled" if samples >= AUTO_COMPILED_SAMPLES and can_compile(model) else DEFAULT_ENGINE


def can_compile(model: Any) -> bool:
    """Whether ``torch.compile`` can build the step here: on a CPU inductor needs a C++ compiler."""
    if model.device.type != "cpu":
        return True
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "clang++", "c++") if c)


def pick_engine(model: Any, engine: str | None, use_cache: bool = True) -> str:
    """The engine a queued generation runs: ``engine`` checked, or the default the model supports."""
    if engine is None:
        return DEFAULT_ENGINE if getattr(model, "static_decoding", False) and use_cache else "eager"
    check_engine(model, engine)
    if not use_cache and engine != "eager":
        raise ConfigError(f"engine {engine!r} runs the queued step; naive generation (no cache) re-runs the "
                          f"network and takes no engine")
    return engine


def window_params(model: Any, x: Tensor, t: int, cond: Any = None) -> Tensor:
    """Parameters ``(B, P)`` at position ``t`` from the network run on the receptive field before it alone.

    A window that starts later than sample 0 sees zeros before its first sample where the full pass sees earlier
    samples, but that difference reaches only positions a receptive field into the window, never its last one.
    Local-conditioning frames are sliced to the window (hop-aligned), labels pass through."""
    start = max(0, t - model.receptive_field)
    hop = getattr(model, "local_hop", 0)
    if hop and getattr(cond, "time_features", None) is not None:
        start -= start % hop
        frames = cond.time_features[:, start // hop:]
        cond = type(cond)(labels=cond.labels, time_features=frames)
    window = x[:, :, start:t + 1]
    return model.network(model.encode(window), cond)[:, :, -1]
