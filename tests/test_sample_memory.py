"""The server's memory estimate for image sampling covers what a cached model really holds: the convolution
caches keep every layer's padded input map for every image, far more than the widths-based formula sees."""

from __future__ import annotations

import pytest
import torch

from chainrule.core.runs.kind import RunKind
from chainrule.modalities.registry import MODELS, build_model, model_class
from chainrule.serve.memory import sample_bytes
from chainrule.serve.registry import ServedModel

CACHED = [n for (m, n) in MODELS if m == "image" and model_class(n, "image").supports_cache]
BATCH = 64
SHAPE = (1, 16, 16)


def batch_bytes(cache: object, batch: int) -> int:
    """Bytes of the distinct tensors in ``cache`` with one row per image (weights shared by the batch excluded)."""
    seen: dict[int, int] = {}
    stack = [cache]
    while stack:
        o = stack.pop()
        if isinstance(o, torch.Tensor):
            if o.dim() and o.shape[0] == batch:
                seen[o.untyped_storage().data_ptr()] = o.untyped_storage().nbytes()
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list | tuple):
            stack.extend(o)
        elif hasattr(o, "__dict__") and not isinstance(o, torch.nn.Module):
            stack.extend(vars(o).values())
    return sum(seen.values())


@pytest.mark.parametrize("name", CACHED)
def test_sampling_estimate_covers_the_cache(name: str) -> None:
    """At the default (benchmark) widths, 64 images: the estimate is at least the cache's bytes after the first row
    and a pixel of the second (when row caches have been filled)."""
    model = build_model(name, SHAPE, 2).eval()
    with torch.no_grad():
        cache = model.init_cache(BATCH)
        x = torch.zeros(BATCH, 1, dtype=torch.long)
        _, cache = model.step(None, cache)
        for _ in range(SHAPE[2] + 1):
            _, cache = model.step(x, cache)
    measured = batch_bytes(cache, BATCH)
    served = ServedModel(name, RunKind.IMAGE, run=None, model=model)
    assert sample_bytes(served, BATCH) >= measured, (sample_bytes(served, BATCH), measured)
