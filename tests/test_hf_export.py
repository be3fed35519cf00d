"""``--format hf``: transformers loads the exported directory, its tokenizer gives our ids behind a BOS token, and
its logits equal chainrule's on every ordinary token; models GPT-2 cannot express are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from chainrule import cli  # noqa: E402
from chainrule.convert.gpt2 import import_gpt2  # noqa: E402
from chainrule.core.errors import ConfigError  # noqa: E402
from chainrule.core.training.checkpoint import save_weights  # noqa: E402
from chainrule.export.hf import export_hf  # noqa: E402
from chainrule.modalities.registry import build_model  # noqa: E402
from chainrule.modalities.text.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer  # noqa: E402
from chainrule.runs import Run  # noqa: E402

CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer — naïve café!\n"
TEXT = "to be naïve, or not: the question"
MAX_LEN = 48
TOKENIZERS = {"char": lambda: CharTokenizer.fit(CORPUS), "byte": ByteTokenizer,
              "bpe": lambda: BPETokenizer.train([CORPUS * 4], 280)}


def tiny(vocab: int, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("transformer", (1, MAX_LEN), vocab, head="categorical",
                        **{"embed_dim": 16, "num_layers": 2, "num_heads": 2, **options})
    with torch.no_grad():  # larger-than-default random weights, so a wrong mapping shows in the logits
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def load(directory: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True).eval()
    return model, transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)


def max_logit_gap(model, hf_model, hf_tok, tokenizer, text: str) -> float:
    """|ours - transformers'| over the logits of every position of ``text`` and every ordinary token."""
    enc = hf_tok(text, return_tensors="pt")
    ids = torch.tensor(tokenizer.encode(text))
    assert enc["input_ids"][0, 0].item() == hf_model.config.bos_token_id
    assert enc["input_ids"][0, 1:].tolist() == ids.tolist()  # the same ids, behind the BOS
    with torch.no_grad():
        ours = model(ids[None, None]).transpose(1, 2)[0]
        theirs = hf_model(**enc).logits[0, :-1, :model.vocab_size]
    return float((ours - theirs).abs().max())


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
def test_transformers_loads_the_export_with_matching_logits(kind, tmp_path):
    tokenizer = TOKENIZERS[kind]()
    model = tiny(tokenizer.vocab_size)
    export_hf(model, tokenizer, tmp_path)
    hf_model, hf_tok = load(tmp_path)
    assert type(hf_model).__name__ == "GPT2LMHeadModel"
    assert hf_model.config.vocab_size == tokenizer.vocab_size + 1  # + the BOS
    assert max_logit_gap(model, hf_model, hf_tok, tokenizer, TEXT) < 1e-4
    assert hf_tok.decode(hf_tok(TEXT)["input_ids"], skip_special_tokens=True) == TEXT


def test_bpe_tokenizer_json_is_a_plain_hf_tokenizer(tmp_path):
    from tokenizers import Tokenizer

    tokenizer = TOKENIZERS["bpe"]()
    export_hf(tiny(tokenizer.vocab_size), tokenizer, tmp_path)
    plain = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert plain.encode(TEXT, add_special_tokens=False).ids == tokenizer.encode(TEXT)


def test_char_unknown_characters_keep_the_unknown_id(tmp_path):
    tokenizer = TOKENIZERS["char"]()
    export_hf(tiny(tokenizer.vocab_size), tokenizer, tmp_path)
    _, hf_tok = load(tmp_path)
    text = "tXo €"  # X and € are not in the corpus
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == tokenizer.encode(text)


@pytest.mark.parametrize("options", [{"tie_embeddings": False}, {"bias": False, "mlp_ratio": 2.5, "norm_eps": 1e-3}])
def test_options_gpt2_can_express(options, tmp_path):
    tokenizer = TOKENIZERS["char"]()
    model = tiny(tokenizer.vocab_size, seed=1, **options)
    export_hf(model, tokenizer, tmp_path)
    hf_model, hf_tok = load(tmp_path)
    assert max_logit_gap(model, hf_model, hf_tok, tokenizer, TEXT) < 1e-4


def test_generation_never_emits_the_bos(tmp_path):
    tokenizer = TOKENIZERS["byte"]()
    model = tiny(tokenizer.vocab_size)
    with torch.no_grad():  # the final norm outputs v everywhere and the start vector is 10 v: with tied weights
        v = torch.nn.functional.normalize(torch.randn(16), dim=0)  # the BOS logit (10) beats every other (< 2)
        model.ln_f.weight.zero_()
        model.ln_f.bias.copy_(v)
        model.start.copy_(10 * v)
    export_hf(model, tokenizer, tmp_path)
    hf_model, hf_tok = load(tmp_path)
    out = hf_model.generate(**hf_tok("to be", return_tensors="pt"), max_new_tokens=20, do_sample=False)
    assert hf_model.config.bos_token_id not in out[0, 1:].tolist()


@pytest.mark.parametrize("name,options,needle", [
    ("transformer", {"positions": "rotary"}, "rotary positions"),
    ("rnn_lm", {}, "only the text 'transformer'"),
    ("hybrid", {}, "only the text 'transformer'"),
])
def test_models_gpt2_cannot_express_are_refused(name, options, needle, tmp_path):
    from chainrule.modalities.registry import model_class

    model = build_model(name, (1, MAX_LEN), 30, head="categorical", **{**model_class(name, "text").TINY, **options})
    with pytest.raises(ConfigError, match=needle):
        export_hf(model, CharTokenizer(list("abcdefghijklmnopqrstuvwxyz012")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_class_conditional_is_refused(tmp_path):
    model = build_model("transformer", (1, MAX_LEN), 30, head="categorical", num_classes=2, embed_dim=8,
                        num_layers=1, num_heads=2)
    with pytest.raises(ConfigError, match="class-conditional"):
        export_hf(model, CharTokenizer(list("abcdefghijklmnopqrstuvwxyz012")), tmp_path / "out")


# ------------------------------------------------------------------ through runs and the command line
def text_run(path: Path, tokenizer, model) -> Path:
    path.mkdir(parents=True)
    cfg = {"spec": {"kind": "text", "event_shape": [1, MAX_LEN], "levels": tokenizer.vocab_size, "num_classes": 0},
           "model": {"name": "transformer", "head": "categorical", "embed_dim": 16, "num_layers": 2, "num_heads": 2}}
    Run(path=path, config=cfg).save_config()
    save_weights(model, path / "best.safetensors")
    tokenizer.save(path / "tokenizer.json")
    return path


def test_cli_export_hf(tmp_path, capsys):
    tokenizer = TOKENIZERS["bpe"]()
    model = tiny(tokenizer.vocab_size)
    run = text_run(tmp_path / "run", tokenizer, model)
    out = tmp_path / "gpt2"
    assert cli.main(["export", str(run), "--format", "hf", "--out", str(out)]) == 0
    assert f"BOS id {tokenizer.vocab_size}" in capsys.readouterr().out
    hf_model, hf_tok = load(out)
    assert max_logit_gap(model, hf_model, hf_tok, tokenizer, TEXT) < 1e-4
    assert json.loads((out / "generation_config.json").read_text())["suppress_tokens"] == [tokenizer.vocab_size]


def test_cli_export_hf_refuses_image_runs_in_one_line(tmp_path, capsys):
    path = tmp_path / "img"
    path.mkdir()
    cfg = {"spec": {"kind": "image", "event_shape": [1, 4, 4], "levels": 2, "num_classes": 0},
           "model": {"name": "made", "hidden_dims": [8]}}
    Run(path=path, config=cfg).save_config()
    assert cli.main(["export", str(path), "--format", "hf", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "text models only" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_an_imported_gpt2_exports_back_without_a_new_token(tmp_path):
    """A run imported from GPT-2 has its start vector = the <|endoftext|> embedding: that token is reused as BOS."""
    from tokenizers import ByteLevelBPETokenizer

    eos = "<|endoftext|>"
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator([CORPUS] * 4, vocab_size=290, min_frequency=1, special_tokens=[eos], show_progress=False)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=MAX_LEN, vocab_size=tok.get_vocab_size(),
                                  eos_token_id=tok.token_to_id(eos))
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "src")
    tok.save(str(tmp_path / "src" / "tokenizer.json"))
    run = import_gpt2(tmp_path / "src", tmp_path / "run")
    assert cli.main(["export", str(run.path), "--format", "hf", "--out", str(tmp_path / "back")]) == 0
    hf_model, hf_tok = load(tmp_path / "back")
    assert hf_model.config.vocab_size == cfg.vocab_size and hf_model.config.bos_token_id == cfg.eos_token_id
    from chainrule.modalities.text.data.tokenizers import load_tokenizer

    gap = max_logit_gap(run.load_model(), hf_model, hf_tok, load_tokenizer(run.path / "tokenizer.json"), TEXT)
    assert gap < 1e-4
