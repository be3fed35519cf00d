"""A small language model trained briefly on Shakespeare reaches a stated bits per character."""

from __future__ import annotations

import pytest
import torch

from chainrule.core.training import TrainConfig, Trainer
from chainrule.modalities.datasets import load_splits
from chainrule.modalities.registry import build_model

#: on this corpus (5.06 M characters) character frequencies alone give 4.80 bits/char and the previous
#: character 3.61 bits/char (empirical entropies of the whole text); reaching 3.0 after 1,000 small steps
#: shows the model uses longer context than one character.
TARGET_BITS_PER_CHAR = 3.0


@pytest.mark.parametrize("name,options", [
    ("transformer", {"embed_dim": 64, "num_layers": 2, "num_heads": 4}),
    ("rnn_lm", {"embed_dim": 32, "hidden_size": 128, "num_layers": 1}),
])
def test_brief_training_on_shakespeare(name, options, tmp_path):
    splits = load_splits("shakespeare", tokenizer="char", context=64, root=str(tmp_path / "cache"))
    train, val = splits["train"], splits["val"]
    torch.manual_seed(0)
    model = build_model(name, train.event_shape, train.levels, head="categorical", **options)
    cfg = TrainConfig(steps=1000, batch_size=32, lr=3e-3, warmup_steps=50, eval_every=0, checkpoint_every=0,
                      progress=False)
    Trainer(model, train, val, cfg, tmp_path / "run").fit()
    model.eval()
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(val), generator=g)[:200]
    x, _ = val.get(idx)
    with torch.no_grad():
        nats_per_token = -model.log_prob_positions(x).double()[:, 1:].mean().item()
    bits_per_char = nats_per_token / torch.log(torch.tensor(2.0)).item() / val.chars_per_token
    assert bits_per_char < TARGET_BITS_PER_CHAR, f"{name}: {bits_per_char:.3f} bits/char"
