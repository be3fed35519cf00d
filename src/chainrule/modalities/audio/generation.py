"""Generating audio of any length from a WaveNet-like model: queued (Fast WaveNet) or naive.

The contract's ``sample`` draws one event of the trained crop length; audio is asked for in seconds, so this
loop runs for ``length`` samples. Queued generation calls the model's :meth:`step` (O(layers) per sample);
naive generation re-runs the network on the last ``receptive_field`` samples for every new one (the cost Fast
WaveNet removes). Both draw the same random numbers in the same order, so one seed gives identical audio.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.sampling import check_stop


@torch.no_grad()
def generate(model: AutoregressiveModel, n: int, length: int, cond: Any = None, temperature: float = 1.0,
             use_cache: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """``n`` waveforms of ``length`` samples as levels ``(n, C, length)``; ``cond`` as for ``model.sample``."""
    model.check_sample(n, cond, temperature=temperature)
    device = model.device
    x = torch.zeros(n, model.channels, length, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        cache = model.init_cache(n, cond, length=length) if use_cache else None
        prev = None
        for t in range(length):
            check_stop()
            if cache is not None:
                params, cache = model.step(prev, cache)
            else:
                params = window_params(model, x, t, cond)
            draw = model.head.sample(params.unsqueeze(-1), temperature=temperature, generator=generator)[..., 0]
            x[:, :, t] = draw
            prev = draw
    finally:
        model.train(was_training)
    return x


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
