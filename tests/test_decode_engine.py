"""Decode engines: the static and compiled steps give the recomputed logits (to 1e-4) and the same tokens,
across the window jump, at batch > 1, with learned and rotary positions; unsupported uses are one-line errors."""

from __future__ import annotations

import pytest
import torch

from chainrule.core.errors import ConfigError
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.generation import GenerationConfig, TokenContext, generate_tokens

VOCAB = 23


def tiny(max_len: int = 20, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    opts = {**model_class("transformer", "text").TINY, **options}
    return build_model("transformer", (1, max_len), VOCAB, head="categorical", **opts).eval()


def logits_along(model, prompt: torch.Tensor, tokens: torch.Tensor, use_cache: bool, engine: str) -> torch.Tensor:
    """Logits ``(steps, B, V)`` of every step along given tokens ``(steps, B)``."""
    out = []
    with torch.inference_mode():
        ctx = TokenContext(model, prompt, use_cache=use_cache, engine=engine)
        for t in tokens:
            out.append(ctx.logits())
            ctx.push(t)
    return torch.stack(out)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_static_step_gives_the_recomputed_logits_across_the_window_jump(positions: str) -> None:
    model = tiny(positions=positions)
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(VOCAB, (3, 4), generator=gen)
    tokens = torch.randint(VOCAB, (45, 3), generator=gen)  # 4 + 45 tokens: the 19-token window jumps
    static = logits_along(model, prompt, tokens, use_cache=True, engine="static")
    recomputed = logits_along(model, prompt, tokens, use_cache=False, engine="eager")
    torch.testing.assert_close(static, recomputed, atol=1e-4, rtol=1e-4)


def test_compiled_engine_samples_what_the_recomputed_loop_samples() -> None:
    model = tiny(max_len=12)
    cfg = GenerationConfig(max_new_tokens=25, seed=3, num_samples=2, top_k=5)
    compiled = torch.stack(list(generate_tokens(model, [1, 2, 3], cfg, engine="compiled")))
    recomputed = torch.stack(list(generate_tokens(model, [1, 2, 3], cfg, use_cache=False)))
    assert torch.equal(compiled, recomputed)
    prompt, tokens = torch.tensor([[1, 2, 3]]).repeat(2, 1), compiled[:-1]
    torch.testing.assert_close(logits_along(model, prompt, tokens, True, "compiled"),
                               logits_along(model, prompt, tokens, False, "eager"), atol=1e-4, rtol=1e-4)


def test_unknown_engine_and_unsupported_model_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="engine must be one of"):
        next(generate_tokens(tiny(), [1], GenerationConfig(max_new_tokens=2), engine="fast"))
    torch.manual_seed(0)
    rnn = build_model("rnn_lm", (1, 20), VOCAB, head="categorical", **model_class("rnn_lm", "text").TINY).eval()
    with pytest.raises(ConfigError, match="engine 'static' needs a model with a static key/value cache"):
        next(generate_tokens(rnn, [1], GenerationConfig(max_new_tokens=2), engine="static"))
