"""WaveNet's queued-generation engines: the static and compiled steps give the full network's conditionals (to
1e-5) along a waveform longer than the receptive field, and the same samples as the eager step and the naive loop
for a seed, with global and local (mel) conditioning at batch > 1; the categorical draw from exponential noise is
the head's own draw. The compiled tests compile a tiny model once per batch size (20-45 s each on a loaded CPU, a
few seconds from inductor's cache): they are the costly ones."""

from __future__ import annotations

import pytest
import torch

from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError
from chainrule.core.heads.categorical import Categorical, sample_given_noise
from chainrule.modalities.audio.engine import QueuedSampler
from chainrule.modalities.audio.generation import AUTO_COMPILED_SAMPLES, auto_engine, can_compile, generate
from chainrule.modalities.registry import build_model

HOP, LENGTH = 4, 40  # 40 samples: past the receptive field (16), so every ring buffer wraps


def wavenet(levels: int = 16, batch_shape: int = LENGTH, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    opts = {"channels": 6, "skip_channels": 5, "stacks": 2, "layers_per_stack": 3, "num_classes": 3,
            "local_channels": 2, "local_hop": HOP, **options}
    model = build_model("wavenet", (1, batch_shape), levels, modality="audio", **opts)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)  # random weights: every fused block and gate matters
        model.out2.weight.mul_(4.0)  # peaked conditionals: a wrong one changes the draws
    return model.eval()


def condition(batch: int, model: torch.nn.Module) -> Condition:
    gen = torch.Generator().manual_seed(7)
    frames = torch.randn(batch, LENGTH // HOP, model.local_channels, generator=gen) if model.local_channels else None
    return Condition(labels=torch.arange(batch) % 3, time_features=frames)


def conditionals(model: torch.nn.Module, engine: str, x: torch.Tensor, cond: Condition) -> torch.Tensor:
    """Params ``(B, P, T)`` of every position along the given levels ``x (B, 1, T)``."""
    sampler = QueuedSampler(model, engine, x.shape[0], x.shape[-1], cond)
    with torch.no_grad():
        return torch.stack([sampler.next(given=x[:, :, t])[0] for t in range(x.shape[-1])], dim=-1)


def draws(model: torch.nn.Module, engine: str | None, cond: Condition, temperature: float = 1.0,
          use_cache: bool = True) -> torch.Tensor:
    batch = cond.labels.shape[0]
    return generate(model, batch, LENGTH, cond, temperature, use_cache=use_cache, engine=engine,
                    generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("temperature", [1.0, 0.3, 2.0])
def test_draw_from_exponential_noise_is_the_heads_draw(temperature: float) -> None:
    head = Categorical(11)
    params = torch.randn(64, 3 * 11) * 2
    expected = head.sample(params, temperature, generator=torch.Generator().manual_seed(2))
    noise = head.exponential_noise(64 * 3, torch.Generator().manual_seed(2), params.device)
    assert torch.equal(sample_given_noise(head.logits(params), torch.tensor(temperature), noise), expected)


@pytest.mark.parametrize("local", [True, False])
def test_static_step_gives_the_full_networks_conditionals(local: bool) -> None:
    model = wavenet(**({} if local else {"local_channels": 0}))
    cond = condition(3, model)
    x = torch.randint(0, 16, (3, 1, LENGTH), generator=torch.Generator().manual_seed(1))
    full = model(x, cond)
    torch.testing.assert_close(conditionals(model, "static", x, cond), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conditionals(model, "eager", x, cond), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_static_engine_samples_what_the_eager_step_and_the_naive_loop_sample(temperature: float) -> None:
    model = wavenet()
    cond = condition(3, model)
    static = draws(model, "static", cond, temperature)
    assert torch.equal(static, draws(model, "eager", cond, temperature))
    assert torch.equal(static, draws(model, None, cond, temperature, use_cache=False))
    assert len(torch.unique(static)) > 3 or temperature == 0  # real samples, not a constant


def test_static_engine_with_the_logistic_mixture_head_draws_outside_the_step() -> None:
    model = wavenet(levels=1024, head="logistic_mixture", num_classes=2, local_channels=0)
    cond = Condition(labels=torch.zeros(2, dtype=torch.long))
    assert torch.equal(draws(model, "static", cond), draws(model, "eager", cond))


@pytest.mark.parametrize("batch", [1, 2])  # batch 1 compiles the products as inductor's own loops
def test_compiled_engine_gives_the_conditionals_and_samples_of_the_eager_step(batch: int) -> None:
    model = wavenet()
    cond = condition(batch, model)
    compiled = draws(model, "compiled", cond)  # compiles once: the tests below reuse the same shapes
    assert torch.equal(compiled, draws(model, "eager", cond))
    assert torch.equal(compiled, draws(model, None, cond, use_cache=False))
    torch.testing.assert_close(conditionals(model, "compiled", compiled, cond), model(compiled, cond),
                               rtol=1e-5, atol=1e-5)


def test_unknown_engine_and_an_engine_for_the_naive_loop_are_config_errors() -> None:
    model = wavenet(num_classes=0, local_channels=0)
    cond = Condition()
    with pytest.raises(ConfigError, match="engine must be one of"):
        generate(model, 1, 4, cond, engine="fast")
    with pytest.raises(ConfigError, match="naive generation"):
        generate(model, 1, 4, cond, use_cache=False, engine="static")


def test_auto_compiles_only_outputs_long_enough_to_pay_for_the_compilation() -> None:
    model = wavenet()
    assert auto_engine(model, AUTO_COMPILED_SAMPLES) == ("compiled" if can_compile(model) else "static")
    assert auto_engine(model, AUTO_COMPILED_SAMPLES - 1) == "static"
    assert auto_engine(object(), AUTO_COMPILED_SAMPLES) == "eager"  # a model without a static step
