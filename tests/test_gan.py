"""The GAN: each loss trains only its own network, seeded sampling, no likelihood, and the one Trainer fits it."""

from __future__ import annotations

import pytest
import torch
from training_helpers import digits_sets

from chainrule.core.errors import ConfigError
from chainrule.core.training.config import TrainConfig
from chainrule.core.training.trainer import Trainer
from chainrule.modalities.registry import build_model


def tiny_gan(**options):
    torch.manual_seed(0)
    return build_model("gan", (1, 8, 8), 2, latent=4, hidden=4, **options)


def grads(module: torch.nn.Module) -> list[float]:
    return [0.0 if p.grad is None else float(p.grad.abs().sum()) for p in module.parameters()]


def test_each_loss_moves_only_its_own_network():
    model = tiny_gan()
    real = torch.randint(0, 2, (6, 1, 8, 8))
    fake = model.generate(torch.randn(6, 4))
    model.generator_loss(fake).backward()
    assert not any(grads(model.discriminator)), "the generator's loss reached the discriminator"
    assert any(grads(model.generator))
    model.zero_grad()
    model.discriminator_loss(model.to_unit(real), model.generate(torch.randn(6, 4))).backward()
    assert not any(grads(model.generator)) and not any(grads(model.generator_in))
    assert any(grads(model.discriminator))


def test_r1_penalises_the_discriminators_gradient_on_real_images():
    """With r1 the loss grows by r1/2 |grad_x D(x)|^2, computed here directly by autograd."""
    plain, penalised = tiny_gan(r1=0.0), tiny_gan(r1=10.0)
    real = plain.to_unit(torch.randint(0, 2, (4, 1, 8, 8)))
    fake = plain.generate(torch.randn(4, 4))
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(plain.discriminator(x).sum(), x)
    expected = plain.discriminator_loss(real, fake) + 5.0 * g.pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(penalised.discriminator_loss(real, fake), expected)


def test_sampling_is_reproducible_and_there_is_no_likelihood():
    model = tiny_gan()
    a = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, model.sample(5, generator=torch.Generator().manual_seed(3)))
    assert a.shape == (5, 1, 8, 8) and int(a.max()) <= 1
    with pytest.raises(ConfigError, match="no likelihood"):
        model.log_prob(a)


def test_the_one_trainer_fits_it_without_a_validation_nll(tmp_path):
    train, val = digits_sets()
    model = tiny_gan()
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=3, batch_size=16, eval_every=1, progress=False, checkpoint_every=0, warmup_steps=0)
    summary = Trainer(model, train, val, cfg, tmp_path / "run").fit()
    assert summary["steps"] == 3 and (tmp_path / "run" / "best.safetensors").exists()
    assert summary.get("best_val_nll") is None
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(moved[: len(list(model.generator_in.parameters()))]) and moved[-1]


def test_from_the_cli_to_the_leaderboard_without_a_likelihood(tmp_path, monkeypatch, capsys):
    """`chainrule train digits gan` works, `chainrule eval` refuses in one line, the leaderboard says "none"."""
    from chainrule import api, cli
    from chainrule.export.plan import plan_export
    from chainrule.leaderboard import format_table, leaderboard

    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "cache"))  # the leaderboard's classifier is cached there
    run = tmp_path / "gan"
    api.train("digits", "gan", overrides=["train.steps=2", "train.batch_size=16", "train.progress=false",
                                          "model.latent=4", "model.hidden=4", "output.samples=4"], run_dir=run)
    assert cli.main(["eval", str(run)]) == 1 and "no likelihood" in capsys.readouterr().err
    rows = leaderboard("digits", [run], samples=16)
    assert rows[0]["likelihood"] == "none" and "nll_nats" not in rows[0] and rows[0]["recall"] >= 0
    assert "| none | none |" in format_table(rows)
    with pytest.raises(ConfigError, match="cannot be exported"):
        plan_export(api.open_run(run).load_model())
