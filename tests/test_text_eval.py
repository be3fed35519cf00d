"""``api.evaluate`` on text runs: nats per token and bits per character equal a hand computation from the corpus,
the tokenizer and the model's ``log_prob``, for the char, byte and BPE tokenizers.

The hand computation restates the definitions without the dataset classes: the held-out text is the last 10% of
the characters; it is cut into whole windows of ``context`` tokens; nats/token is the summed NLL of those windows
over their tokens, and bits/char converts it with the held-out text's characters per token,
``bits/char = nats/token / ln 2 * tokens / characters``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from chainrule import api

CONTEXT = 16
WORDS = ["to", "be", "or", "not", "that", "is", "the", "question", "süffer", "slings", "arrows", "of", "fortune", "—",
         "ÆTHER"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, str]:
    """About 12,000 characters of words, some of them multi-byte in UTF-8 (so bytes per character exceed 1)."""
    rng = np.random.default_rng(0)
    text = "".join(w + (" " if rng.random() > 0.1 else "\n") for w in rng.choice(WORDS, size=2000))
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def hand_figures(run, text: str) -> tuple[float, float]:
    """(nats per token, bits per character) of the held-out text, from first principles."""
    tokenizer = api.load_text_run(run)[1]
    model = run.load_model().eval()
    held_out = text[int(len(text) * 0.9):]
    tokens = tokenizer.encode(held_out)
    windows = torch.tensor(tokens[: len(tokens) // CONTEXT * CONTEXT]).reshape(-1, 1, CONTEXT)
    with torch.no_grad():
        nats = -model.log_prob(windows).double().sum().item()
    nats_per_token = nats / windows.numel()
    return nats_per_token, nats_per_token / math.log(2) * len(tokens) / len(held_out)


@pytest.mark.parametrize("tokenizer", ["char", "byte", "bpe"])
def test_eval_reports_nats_per_token_and_bits_per_char(corpus, tmp_path, tokenizer: str) -> None:
    path, text = corpus
    run = api.train(f"textfile:{path}", "transformer", run_dir=tmp_path / "run", overrides=[
        f"data.context={CONTEXT}", f"data.tokenizer={tokenizer}", "data.vocab_size=300", f"data.root={tmp_path}",
        "model.embed_dim=16", "model.num_layers=1", "model.num_heads=2", "train.steps=20", "train.batch_size=16",
        "train.lr=0.01", "train.warmup_steps=0", "train.progress=false", "train.eval_every=0",
        "train.checkpoint_every=0", "output.samples=0"])
    res = api.evaluate(run)
    nats_per_token, bits_per_char = hand_figures(run, text)
    assert res["nats_per_token"] == pytest.approx(nats_per_token, rel=1e-5)
    assert res["bits_per_char"] == pytest.approx(bits_per_char, rel=1e-5)
    held_out = text[int(len(text) * 0.9):]
    chars_per_token = len(held_out) / len(api.load_text_run(run)[1].encode(held_out))
    # characters per token is 1 (char), below 1 (byte: multi-byte characters) and above 1 (BPE merges), so
    # multiplying by it instead of dividing would change both of the last two figures
    assert {"char": chars_per_token == 1.0, "byte": chars_per_token < 0.98, "bpe": chars_per_token > 1.5}[tokenizer]
