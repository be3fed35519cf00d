"""GPT-2 import: a tiny random Hugging Face GPT-2 converts to a run whose logits equal transformers'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from chainrule.cli import main  # noqa: E402
from chainrule.convert.gpt2 import import_gpt2  # noqa: E402
from chainrule.core.errors import ChainruleError  # noqa: E402
from chainrule.modalities.text.data.tokenizers import load_tokenizer  # noqa: E402

EOS = "<|endoftext|>"
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "A chain rule factorises a joint distribution.",
             "Autoregressive models predict the next token from the previous ones.", "héllo wörld, naïve café! 123"]
TEXT = "The lazy fox predicts a naïve token: 42!"


def _hf_tokenizer():
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(SENTENCES * 4, vocab_size=300, min_frequency=1, special_tokens=[EOS],
                            show_progress=False)
    return tok


def _hf_model(vocab_size: int, eos_id: int, **extra):
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=vocab_size,
                                  eos_token_id=eos_id, bos_token_id=eos_id, **extra)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # larger-than-default random weights, so a wrong mapping shows in the logits
        for name, p in model.named_parameters():
            is_gain = ".ln_" in f".{name}" and name.endswith("weight")
            p.normal_(1.0 if is_gain else 0.0, 0.2 if is_gain else 0.3)
    return model


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """config.json + model.safetensors + HF tokenizer.json."""
    d = tmp_path_factory.mktemp("hf-gpt2")
    tok = _hf_tokenizer()
    model = _hf_model(tok.get_vocab_size(), tok.token_to_id(EOS))
    model.save_pretrained(d)
    tok.save(str(d / "tokenizer.json"))
    return d


@pytest.fixture(scope="module")
def converted(hf_dir, tmp_path_factory):
    run = import_gpt2(hf_dir, tmp_path_factory.mktemp("runs") / "gpt2")
    return run, run.load_model()


def _reference(hf_dir: Path):
    return transformers.GPT2LMHeadModel.from_pretrained(str(hf_dir), local_files_only=True).eval()


def _tokens(vocab: int, b: int = 3, t: int = 20) -> torch.Tensor:
    return torch.randint(0, vocab, (b, 1, t), generator=torch.Generator().manual_seed(1))


def _hf_logits(ref, x: torch.Tensor, eos_id: int) -> torch.Tensor:
    """GPT-2 logits for [eos] + x[:-1], as (B, V, T) like ours."""
    ids = torch.cat([torch.full((x.shape[0], 1), eos_id), x[:, 0, :-1]], dim=1)
    with torch.no_grad():
        return ref(input_ids=ids).logits.transpose(1, 2)


def test_run_config(converted):
    run, model = converted
    m, spec = run.config["model"], run.spec
    assert (m["name"], m["embed_dim"], m["num_layers"], m["num_heads"], m["mlp_ratio"]) == ("transformer", 32, 2, 2, 4)
    assert m["positions"] == "learned" and m["tie_embeddings"] and m["bias"] and m["dropout"] == 0
    assert spec["kind"] == "text" and spec["event_shape"] == [1, 64] and spec["levels"] == model.vocab_size
    assert run.config["data"]["name"] is None and run.config["train"] == {}
    assert model.lm_head.weight is model.token_embedding.weight


def test_logits_match_transformers(hf_dir, converted):
    _, model = converted
    ref = _reference(hf_dir)
    eos = ref.config.eos_token_id
    for t in (1, 20, 64):
        x = _tokens(model.vocab_size, t=t)
        with torch.no_grad():
            ours = model(x)
        theirs = _hf_logits(ref, x, eos)
        assert theirs.abs().max() > 1.0  # logits far from uniform: a wrong mapping could not hide
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # log-likelihood of x = sum over positions of GPT-2's log-softmax at the [eos] + x[:-1] alignment
    x = _tokens(model.vocab_size)
    ref_lp = torch.log_softmax(_hf_logits(ref, x, eos), 1).gather(1, x).sum((1, 2))
    torch.testing.assert_close(model.log_prob(x), ref_lp, atol=1e-4, rtol=1e-5)


def test_cached_step_matches_forward(converted):
    _, model = converted
    x = _tokens(model.vocab_size, t=64)
    with torch.no_grad():
        full = model(x)
        cache, prev, steps = model.init_cache(x.shape[0]), None, []
        for t in range(x.shape[2]):
            logits, cache = model.step(prev, cache)
            steps.append(logits)
            prev = x[:, :, t]
    torch.testing.assert_close(torch.stack(steps, dim=2), full, atol=1e-5, rtol=1e-5)


def test_tokenizer_round_trip_and_matches_hf(hf_dir, converted):
    run, _ = converted
    ours = load_tokenizer(run.path / "tokenizer.json")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json"))
    for text in (TEXT, SENTENCES[3], "", " leading space\nand newline"):
        ids = ours.encode(text)
        assert ours.decode(ids) == text
        assert ids == hf(text)["input_ids"]
    assert ours.vocab_size == run.spec["levels"]


def test_pytorch_bin_and_vocab_merges(hf_dir, converted, tmp_path):
    """Legacy layout: pytorch_model.bin (with lm_head and the transformer. prefix) + vocab.json/merges.txt."""
    run, model = converted
    d = tmp_path / "legacy"
    d.mkdir()
    (d / "config.json").write_text((hf_dir / "config.json").read_text())
    torch.save(_reference(hf_dir).state_dict(), d / "pytorch_model.bin")
    _hf_tokenizer().save_model(str(d))
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "merges.txt", "pytorch_model.bin", "vocab.json"]
    run2 = import_gpt2(d, tmp_path / "run")
    model2 = run2.load_model()
    x = _tokens(model.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(model2(x), model(x), atol=0, rtol=0)
    tok1, tok2 = (load_tokenizer(r.path / "tokenizer.json") for r in (run, run2))
    for text in (TEXT, SENTENCES[3], f"one{EOS}two"):
        assert tok2.encode(text) == tok1.encode(text)
        assert tok2.decode(tok2.encode(text)) == text


def test_cli_import(hf_dir, tmp_path, capsys):
    out = tmp_path / "cli-run"
    assert main(["import", "gpt2", str(hf_dir), "--run", str(out)]) == 0
    assert {"config.yaml", "best.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert str(out) in capsys.readouterr().out
    assert main(["import", "gpt2", str(hf_dir), "--run", str(out)]) == 1  # not empty: refuse to overwrite
    assert "not empty" in capsys.readouterr().err
    assert main(["import", "gpt2", str(tmp_path / "missing"), "--run", str(tmp_path / "r")]) == 1
    assert "not found" in capsys.readouterr().err


def _copy(hf_dir: Path, dst: Path, drop: str | None = None, **config_changes) -> Path:
    dst.mkdir()
    for p in hf_dir.iterdir():
        if p.name != drop:
            (dst / p.name).write_bytes(p.read_bytes())
    if config_changes:
        cfg = json.loads((dst / "config.json").read_text())
        (dst / "config.json").write_text(json.dumps({**cfg, **config_changes}))
    return dst


@pytest.mark.parametrize("drop, changes, message", [
    ("config.json", {}, "no config.json"),
    ("model.safetensors", {}, "no GPT-2 weights"),
    ("tokenizer.json", {}, "no tokenizer"),
    (None, {"model_type": "gpt_neo"}, "model_type"),
    (None, {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    (None, {"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn"),
    (None, {"activation_function": "relu"}, "activation_function"),
    (None, {"n_layer": 3}, "lack 'h.2.ln_1.weight'"),
    (None, {"n_embd": 48}, "do not fit its config.json"),
])
def test_clear_errors(hf_dir, tmp_path, drop, changes, message):
    src = _copy(hf_dir, tmp_path / "src", drop, **changes)
    with pytest.raises(ChainruleError, match=message):
        import_gpt2(src, tmp_path / "run")
    assert not (tmp_path / "run" / "config.yaml").exists()
