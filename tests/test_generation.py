"""Text generation: cached == recomputed for every text model, sliding window, stop strings, UTF-8 streaming,
the Python API and the ``generate`` command."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule import api, cli
from chainrule.core.errors import ConfigError
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.registry import build_model, model_class, model_names
from chainrule.modalities.text.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer
from chainrule.modalities.text.generation import (
    GenerationConfig,
    TextStream,
    TokenContext,
    decode_stream,
    generate_tokens,
)
from chainrule.runs import Run

TEXT_MODELS = [n for n in model_names("text") if model_class(n, "text").family == "autoregressive"]  # token loop
VOCAB = 40


def tiny(name: str, max_len: int = 256, vocab: int = VOCAB, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, (1, max_len), vocab, head="categorical", **model_class(name, "text").TINY).eval()


def replay_logits(model, prompt: list[int], tokens: torch.Tensor, use_cache: bool) -> torch.Tensor:
    """Logits ``(steps, B, V)`` of every step along given tokens ``(steps, B)``."""
    out = []
    with torch.no_grad():
        ctx = TokenContext(model, torch.tensor(prompt).repeat(tokens.shape[1], 1), use_cache=use_cache)
        for t in tokens:
            out.append(ctx.logits())
            ctx.push(t)
    return torch.stack(out)


def test_registry_has_text_models():
    assert {"transformer", "rnn_lm", "hybrid"} <= set(TEXT_MODELS)


# ------------------------------------------------------------------ cached == recomputed
@pytest.mark.parametrize("name", TEXT_MODELS)
def test_cached_equals_uncached_200_tokens(name):
    model = tiny(name)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    cfg = GenerationConfig(max_new_tokens=200, num_samples=2, seed=123, top_k=30, top_p=0.95,
                           repetition_penalty=1.1, no_repeat_ngram_size=4)
    cached = torch.stack(list(generate_tokens(model, prompt, cfg, use_cache=True)))
    plain = torch.stack(list(generate_tokens(model, prompt, cfg, use_cache=False)))
    assert cached.shape == (200, 2)
    assert torch.equal(cached, plain)
    assert not torch.equal(cached[:, 0], cached[:, 1])  # the samples are independent draws
    other = GenerationConfig(**{**cfg.__dict__, "seed": 7, "max_new_tokens": 20})
    assert not torch.equal(cached[:20], torch.stack(list(generate_tokens(model, prompt, other))))  # seed matters
    step_logits = replay_logits(model, prompt, cached, use_cache=True)  # (200, B, V)
    seq = torch.cat([torch.tensor(prompt).repeat(2, 1), cached.T], dim=1)  # 208 tokens <= max_len
    with torch.no_grad():  # one teacher-forced pass: params at t depend on tokens < t
        full_logits = model(seq.unsqueeze(1))[:, :, len(prompt):].permute(2, 0, 1)
    assert (step_logits - full_logits).abs().max() < 1e-4


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_sliding_window_beyond_max_len(name):
    max_len = 12
    model = tiny(name, max_len=max_len)
    prompt = list(range(1, 16))  # longer than the window of max_len - 1 = 11 tokens
    cfg = GenerationConfig(max_new_tokens=30, num_samples=2, seed=5)
    cached = torch.stack(list(generate_tokens(model, prompt[-6:], cfg, use_cache=True)))
    plain = torch.stack(list(generate_tokens(model, prompt[-6:], cfg, use_cache=False)))
    assert torch.equal(cached, plain)  # 6 + 30 tokens: the window slides during generation
    assert (replay_logits(model, prompt[-6:], cached, True) - replay_logits(model, prompt[-6:], cached, False)
            ).abs().max() < 1e-4
    # a long prompt: the window jumps to the most recent (max_len - 1) // 2 tokens and sees nothing older
    keep = (max_len - 1) // 2
    long_ctx = TokenContext(model, torch.tensor([prompt]), use_cache=True)
    changed = TokenContext(model, torch.tensor([[30, 31, 32, 33] + prompt[4:]]), use_cache=True)
    window = TokenContext(model, torch.tensor([prompt[-keep:]]), use_cache=True)
    assert torch.allclose(long_ctx.logits(), changed.logits(), atol=1e-5)
    assert torch.allclose(long_ctx.logits(), window.logits(), atol=1e-5)
    longer = TokenContext(model, torch.tensor([prompt[-(keep + 1):]]), use_cache=True)
    assert not torch.allclose(long_ctx.logits(), longer.logits(), atol=1e-5)  # exactly `keep` tokens seen
    # during generation the window fills up to max_len - 1 tokens before it jumps again
    ctx = TokenContext(model, torch.tensor([prompt[-keep:]]), use_cache=True)
    for t in range(max_len - 1 - keep):
        ctx.push(torch.tensor([t % 7]))
        assert ctx.context().shape[1] == keep + t + 1
    ctx.push(torch.tensor([3]))
    assert ctx.context().shape[1] == keep


def test_greedy_is_deterministic_and_restores_training_mode():
    model = tiny("transformer").train()
    cfg = GenerationConfig(max_new_tokens=20, temperature=0.0, seed=None, num_samples=3)
    a = torch.stack(list(generate_tokens(model, [1, 2], cfg)))
    b = torch.stack(list(generate_tokens(model, [1, 2], cfg, use_cache=False)))
    assert torch.equal(a, b) and torch.equal(a[:, 0], a[:, 1])
    assert model.training


def test_bad_prompt_ids_rejected():
    with pytest.raises(ConfigError, match="vocabulary"):
        next(generate_tokens(tiny("rnn_lm"), [VOCAB], GenerationConfig(max_new_tokens=1)))


# ------------------------------------------------------------------ stop strings and UTF-8 streaming
class Scripted:
    """A stand-in tokenizer: id i stands for the bytes given at position i."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def token_bytes(self, i: int) -> bytes:
        return self.pieces[i]


def run_stream(pieces: list[bytes], stop: list[str]) -> list[str]:
    steps = [torch.tensor([i]) for i in range(len(pieces))]
    return [p[0] for p in decode_stream(steps, Scripted(pieces), 1, stop)]


def test_stop_string_truncates_and_is_never_streamed():
    out = run_stream([b"ab", b"\n", b"c", b"\n", b"\n", b"zz"], ["\n\n"])
    assert "".join(out) == "ab\nc"
    assert out[:4] == ["ab", "", "\nc", ""]  # a lone "\n" is held back until it is clearly not the stop
    out = run_stream([b"one tw", b"o thr", b"ee"], ["three", "two"])  # the earliest occurrence wins
    assert "".join(out) == "one "
    assert "".join(run_stream([b"ab", b"\n"], ["\n\n"])) == "ab\n"  # no stop: held text flushed at the end


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet="ab\nc", max_size=30), cuts=st.lists(st.integers(0, 30), max_size=8),
       stop=st.lists(st.text(alphabet="ab\nc", min_size=1, max_size=3), max_size=3))
def test_stop_strings_any_split(text, cuts, stop):
    data = text.encode()
    bounds = sorted({0, len(data), *[min(c, len(data)) for c in cuts]})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    expected = text[:min(hits)] if hits else text
    assert "".join(run_stream(pieces, stop)) == expected


def longest_complete_prefix(data: bytes) -> str:
    for end in range(len(data), -1, -1):
        try:
            return data[:end].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""


def check_utf8_stream(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    pieces = list(decode_stream([torch.tensor([i]) for i in ids], tokenizer, 1))
    so_far, data = "", b""
    for i, p in zip(ids, pieces, strict=False):
        data += tokenizer.token_bytes(i)
        so_far += p[0]
        assert "\ufffd" not in p[0]
        assert so_far == longest_complete_prefix(data)  # everything complete is out, nothing half
    assert so_far + pieces[-1][0] == text


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffd"), max_size=20))
def test_incremental_utf8_over_byte_tokens(text):
    check_utf8_stream(ByteTokenizer(), text)


def test_incremental_utf8_over_bpe_tokens():
    corpus = ["naïve café — déjà vu 🙂 " * 3, "über straße ñandú 漢字 " * 3]
    tok = BPETokenizer.train(corpus, vocab_size=300)
    text = "café 🙂 漢字 Ωmega ŝ 𝄞"
    assert any(b"\xf0" in tok.token_bytes(i) and len(tok.token_bytes(i)) < 4 for i in tok.encode(text))
    check_utf8_stream(tok, text)


def test_invalid_bytes_become_replacement():
    stream = TextStream()
    assert stream.push(b"a\xe2\x82") == "a"
    assert stream.finish() == "\ufffd"


def test_finished_samples_stop_and_generation_ends_early():
    consumed = []

    def steps():
        for i in range(100):
            consumed.append(i)
            yield torch.tensor([i % 3, 2])

    tok = Scripted([b"x", b"y", b"!"])
    pieces = list(decode_stream(steps(), tok, 2, stop=["!"]))
    texts = ["".join(p[i] for p in pieces) for i in range(2)]
    assert texts == ["xy", ""]
    assert len(consumed) == 3  # both samples finished after 3 steps: no more tokens are generated


# ------------------------------------------------------------------ Python API and CLI on a saved run
@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "run"
    path.mkdir()
    tok = CharTokenizer.fit("abcdefgh \n")
    model = tiny("transformer", max_len=64, vocab=tok.vocab_size, seed=1)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # peakier than the random init, so the text has structure
    cfg = {"spec": {"kind": "text", "event_shape": [1, 64], "levels": tok.vocab_size, "num_classes": 0},
           "model": {"name": "transformer", "head": "categorical", **model_class("transformer", "text").TINY}}
    Run(path=path, config=cfg).save_config()
    save_weights(model, path / "best.safetensors")
    tok.save(path / api.TOKENIZER_FILE)
    return path


def test_api_stream_matches_texts_and_stop_truncates(text_run):
    opts = {"max_new_tokens": 80, "seed": 4, "temperature": 0.9}
    streamed = "".join(api.generate(text_run, "abc", **opts))
    texts = api.generate_texts(text_run, "abc", num_samples=3, **opts)
    assert streamed == api.generate_texts(text_run, "abc", **opts)[0]
    assert len(set(texts)) == 3
    assert texts == api.generate_texts(text_run, "abc", num_samples=3, use_cache=False, **opts)
    stop = texts[0][20:22]
    stopped = api.generate_texts(text_run, "abc", num_samples=3, stop=[stop], **opts)
    for full, cut in zip(texts, stopped, strict=True):
        assert cut == (full[:full.find(stop)] if stop in full else full)
    stop = streamed[30:33]
    assert "".join(api.generate(text_run, "abc", stop=[stop], **opts)) == streamed[:streamed.find(stop)]


def test_api_rejects_bad_options_before_generating(text_run, tmp_path):
    with pytest.raises(ConfigError, match="top_p"):
        api.generate(text_run, "a", top_p=2.0)
    with pytest.raises(ConfigError, match="unknown generation option"):
        api.generate(text_run, "a", top_q=0.5)
    with pytest.raises(ConfigError, match="generate_texts"):
        api.generate(text_run, "a", num_samples=2)
    image = tmp_path / "image"
    image.mkdir()
    Run(path=image, config={"spec": {"kind": "image", "event_shape": [1, 8, 8], "levels": 2},
                            "model": {"name": "histogram"}}).save_config()
    with pytest.raises(ConfigError, match="not a text run"):
        api.generate_texts(image, "a")


def test_cli_generate_streams_one_sample(text_run, capsys):
    assert cli.main(["generate", str(text_run), "--prompt", "ab", "--max-new-tokens", "40", "--seed", "2",
                     "--top-k", "5", "--stop", r"\n\n"]) == 0
    out = capsys.readouterr().out
    expected = api.generate_texts(text_run, "ab", max_new_tokens=40, seed=2, top_k=5, stop=["\n\n"])[0]
    assert out == "ab" + expected + "\n"


def test_cli_generate_several_samples(text_run, capsys):
    assert cli.main(["generate", str(text_run), "--max-new-tokens", "10", "--num-samples", "3", "--no-echo",
                     "--prompt", "hh", "--no-cache"]) == 0
    out = capsys.readouterr().out
    texts = api.generate_texts(text_run, "hh", num_samples=3, max_new_tokens=10)
    assert out == "".join(f"=== sample {i}/3 ===\n{t}\n" for i, t in enumerate(texts, 1))


@pytest.mark.parametrize("args,needle", [
    (["--temperature", "-1"], "temperature"), (["--top-p", "0"], "top_p"), (["--top-k", "-2"], "top_k"),
    (["--max-new-tokens", "-5"], "max_new_tokens"), (["--num-samples", "0"], "num_samples"),
    (["--repetition-penalty", "0"], "repetition_penalty"), (["--stop", ""], "stop"),
])
def test_cli_generate_invalid_values_one_line(text_run, capsys, args, needle):
    assert cli.main(["generate", str(text_run), *args]) == 1
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("chainrule: error:") and needle in lines[0]
    assert captured.out == ""


def test_cli_generate_missing_run_and_help(tmp_path, capsys):
    assert cli.main(["generate", str(tmp_path / "nope")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--help"])
    assert e.value.code == 0 and "example" in capsys.readouterr().out
