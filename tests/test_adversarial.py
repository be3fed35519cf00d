"""Adversarial (SeqGAN-style) fine-tuning: the policy gradient points the right way, the discriminator learns, and
the command writes a new usable run without touching the source run; bad options are one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from chainrule import api
from chainrule.adversarial import adversarial_finetune
from chainrule.cli import main
from chainrule.core.errors import ConfigError
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.adversarial import (
    MovingBaseline,
    TokenDiscriminator,
    discriminator_loss,
    reinforce_loss,
    sample_sequences,
)

CONTEXT = 16


def tiny_lm(levels: int = 5, length: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("transformer", (1, length), levels, modality="text", **model_class("transformer", "text").TINY)


def log_likelihood(model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(model.log_prob(x))


def test_policy_gradient_raises_the_probability_of_the_rewarded_token():
    """Reward = share of token 3 in a sample; a few REINFORCE updates must make an all-3 sequence more likely
    (a flipped sign in the surrogate makes it less likely)."""
    model, favoured = tiny_lm(), 3
    target = torch.full((1, 1, 6), favoured)
    before = log_likelihood(model, target)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    baseline, gen = MovingBaseline(0.5), torch.Generator().manual_seed(0)
    for _ in range(8):
        fake = sample_sequences(model, 32, 6, generator=gen)
        rewards = (fake == favoured).float().mean(dim=(1, 2))
        loss = reinforce_loss(model, fake, rewards, baseline.current(rewards))
        opt.zero_grad()
        loss.backward()
        opt.step()
        baseline.update(rewards)
    assert log_likelihood(model, target) > before + 1.0


def test_discriminator_separates_a_trivially_distinguishable_pair():
    torch.manual_seed(0)
    disc = TokenDiscriminator(5)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    real, fake = torch.zeros(16, 1, 8, dtype=torch.long), torch.ones(16, 1, 8, dtype=torch.long)
    for _ in range(30):
        loss, stats = discriminator_loss(disc, real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        loss, stats = discriminator_loss(disc, real, fake)
    assert stats == {"d_real_acc": 1.0, "d_fake_acc": 1.0}
    assert float(loss) < 0.1


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adv")
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    corpus = root / "corpus.txt"
    corpus.write_text("".join(w + (" " if rng.random() > 0.1 else "\n") for w in rng.choice(words, 1500)))
    return api.train(f"textfile:{corpus}", "transformer", run_dir=root / "src", overrides=[
        f"data.context={CONTEXT}", f"data.root={root}", "model.embed_dim=16", "model.num_layers=1",
        "model.num_heads=2", "train.steps=10", "train.batch_size=16", "train.lr=0.01", "train.warmup_steps=0",
        "train.progress=false", "train.eval_every=0", "train.checkpoint_every=0", "output.samples=0"])


def tree_digest(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_fine_tuning_writes_a_new_usable_run_and_leaves_the_source_alone(source_run, tmp_path):
    before = tree_digest(source_run.path)
    new = adversarial_finetune(source_run.path, tmp_path / "adv", steps=3, batch_size=4, seq_len=8, lr=1e-2,
                               d_pretrain=2, log_every=1)
    assert tree_digest(source_run.path) == before
    res = api.evaluate(new)
    assert np.isfinite(res["nats_per_token"]) and res["examples"] > 0
    assert len(api.generate_texts(new, "to", max_new_tokens=5, seed=0)[0]) > 0
    old_w, new_w = source_run.load_model().state_dict(), new.load_model().state_dict()
    assert any(not torch.equal(old_w[k], new_w[k]) for k in old_w), "fine-tuning changed no weight"
    summary = (new.path / "summary.json").read_text()
    assert '"adversarial"' in summary and (new.path / "metrics.jsonl").read_text().count("\n") == 3


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "'steps' must be a whole number >= 1"),
    (["--mle-weight", "-1"], "'mle_weight' must be >= 0"),
    (["--temperature", "0"], "'temperature' must be > 0"),
    (["--seq-len", "999"], f"'seq_len' must be at most {CONTEXT}"),
    (["--device", "nope"], "device must be a torch device"),
    (["--out", "SOURCE"], "not the source run"),
    (["--out", "EXISTING"], "already exists and is not empty"),
])
def test_bad_arguments_are_one_line_errors(source_run, tmp_path, capsys, args, message):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "x").write_text("x")
    args = [{"SOURCE": str(source_run.path), "EXISTING": str(existing)}.get(a, a) for a in args]
    out = tmp_path / "out"
    code = main(["adversarial", str(source_run.path), "--out", str(out), "--steps", "1", *args])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_the_api_checks_options_before_loading_anything(tmp_path):
    with pytest.raises(ConfigError, match="baseline_decay"):
        adversarial_finetune(tmp_path / "missing", tmp_path / "out", baseline_decay=1.0)
