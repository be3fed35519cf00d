"""ImageGPT's batched prefill (the generic model tests cover causality, normalisation and the cached step)."""

from __future__ import annotations

import torch

from chainrule.core.contract import AutoregressiveModel
from chainrule.modalities.registry import build_model, model_class


def test_prefill_matches_step_by_step():
    """One batched pass over the first pixels gives the next pixel's parameters and a cache that continues exactly
    as feeding the pixels one by one does (class-conditional, several channels)."""
    torch.manual_seed(0)
    model = build_model("image_gpt", (3, 4, 5), 4, num_classes=3, **model_class("image_gpt", "image").TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    g = torch.Generator().manual_seed(1)
    pixels, labels = torch.randint(0, 4, (3, 3, 7), generator=g), torch.tensor([0, 2, 1])
    nxt = torch.randint(0, 4, (3, 3), generator=g)
    with torch.no_grad():
        fast, fast_cache = model.prefill(pixels, labels)
        slow, slow_cache = AutoregressiveModel.prefill(model, pixels, labels)
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.step(nxt, fast_cache)[0], model.step(nxt, slow_cache)[0], rtol=1e-5,
                                   atol=1e-5)
