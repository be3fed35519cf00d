"""``train.compile=true``: the compiled training step trains the same weights as the eager one (to 1e-4) and
reports its compilation time; a non-boolean value is a one-line config error."""

from __future__ import annotations

import pytest
import torch
from training_helpers import TinyAR, digits_sets

from chainrule.core.errors import ConfigError, InputError
from chainrule.core.training import TrainConfig, Trainer


def fit(compile_step: bool) -> tuple[dict, dict]:
    train, _ = digits_sets()
    cfg = TrainConfig(steps=4, batch_size=16, lr=3e-3, warmup_steps=1, eval_every=0, checkpoint_every=0,
                      log_every=2, progress=False, device="cpu", seed=3, num_threads=1, compile=compile_step)
    torch.manual_seed(0)
    trainer = Trainer(TinyAR(hidden=8), train, None, cfg, None)
    summary = trainer.fit()
    return summary, {k: v.detach().clone() for k, v in trainer.eval_model.state_dict().items()}


def test_compiled_step_trains_the_eager_weights_and_reports_compile_time() -> None:
    threads = torch.get_num_threads()
    try:
        eager_summary, eager = fit(False)
        compiled_summary, compiled = fit(True)
    finally:
        torch.set_num_threads(threads)
    assert "compile_seconds" not in eager_summary and compiled_summary["compile_seconds"] > 0
    assert eager.keys() == compiled.keys()
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], atol=1e-4, rtol=1e-4)


def test_compile_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="train.compile must be true or false"):
        TrainConfig(compile="yes")


def test_the_compiled_loss_is_one_graph() -> None:
    """The contract's value checks are data-dependent branches; inside the compiled step they would split the
    graph and wait for the device every step. Only the shape check may remain in the trace."""
    torch._dynamo.reset()
    model = TinyAR(hidden=8)
    x = torch.randint(0, 2, (4, 1, 8, 8))
    explanation = torch._dynamo.explain(model.loss)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_the_compiled_step_still_refuses_values_outside_the_support() -> None:
    """The trainer checks each batch eagerly before the compiled step, so a bad value is still one clear error."""
    train, _ = digits_sets()
    train._levels[0, 0, 0, 0] = 7  # a binary head's support is {0, 1}
    cfg = TrainConfig(steps=2, batch_size=len(train), lr=3e-3, warmup_steps=0, eval_every=0, checkpoint_every=0,
                      log_every=1, progress=False, device="cpu", seed=3, num_threads=1, compile=True)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(InputError, match="outside the bernoulli head's support"):
            Trainer(TinyAR(hidden=8), train, None, cfg, None).fit()
    finally:
        torch.set_num_threads(threads)
