"""How sharp and how monotone an attention alignment is: figures for a text-to-speech benchmark.

A good text-to-speech alignment is a rising staircase: each decoder step attends mostly to one character, and the
attended character never moves back. ``alignment_figures`` measures both on one alignment ``(steps, characters)``.
"""

from __future__ import annotations

import numpy as np
import torch

from chainrule.modalities.audio.models.tacotron import guided_attention_penalty


def alignment_figures(alignment: np.ndarray, tail: int = 3, width: float = 0.2) -> dict[str, float]:
    """``max_weight``: the mean over decoder steps of the largest attention weight (1 = one character per step;
    1/characters = uniform); ``forward``: the share of steps whose most attended character is not before the
    previous step's; ``reaches_end``: 1.0 when the last step attends to one of the last ``tail`` characters;
    ``diagonal``: the attention mass near the straight diagonal, 1 minus the guided-attention penalty of width
    ``width`` (an alignment stuck on one character, which passes ``forward``, scores low here)."""
    alignment = np.asarray(alignment, dtype=np.float64)
    if alignment.ndim != 2 or alignment.shape[0] < 1 or alignment.shape[1] < 1:
        raise ValueError(f"an alignment is (steps, characters) with both >= 1; got {alignment.shape}")
    best = alignment.argmax(1)
    forward = float(np.mean(best[1:] >= best[:-1])) if len(best) > 1 else 1.0
    chars = alignment.shape[1]
    a = torch.from_numpy(np.ascontiguousarray(alignment))[None]
    every = torch.ones(a.shape[:2], dtype=torch.bool), torch.ones(1, chars, dtype=torch.bool)
    off_diagonal = float(guided_attention_penalty(a, *every, width=width))  # the mass the training penalty counts
    return {"max_weight": float(alignment.max(1).mean()), "forward": forward,
            "reaches_end": float(best[-1] >= chars - tail), "diagonal": float(alignment.sum(1).mean()) - off_diagonal}
