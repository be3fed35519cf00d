"""The torch-free edge runtime: the same greedy text as chainrule's own generation (context window included),
no torch import in the edge process, tokenizers that agree with chainrule's, correct image sampling, the same
forecasts as chainrule's forecasters, and one-line errors for bad model files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import chisquare, ks_2samp

from chainrule import api, cli
from chainrule.core.heads import build_head
from chainrule.core.training.checkpoint import save_weights
from chainrule.edge import EdgeError, EdgeModel, generate_text, generate_tokens, sample_images
from chainrule.edge.__main__ import main as edge_main
from chainrule.edge.forecast import forecast, sample_head
from chainrule.edge.heads import sample_position
from chainrule.edge.text import TokenWindow
from chainrule.edge.tokenizer import EdgeTokenizer
from chainrule.export.onnx import export_model
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer
from chainrule.modalities.text.generation import GenerationConfig, TokenContext
from chainrule.modalities.text.generation import generate_tokens as torch_generate_tokens
from chainrule.runs import Run

MAX_LEN = 16
TOKENIZER = CharTokenizer.fit("abcdefghij")
#: (model, options, seed, weight scale): chosen so greedy decoding is not a constant sequence
TEXT_RUNS = {"transformer": ("transformer", {}, 2, 1.0), "lstm": ("rnn_lm", {"cell": "lstm"}, 2, 0.5)}


def text_model(key: str) -> torch.nn.Module:
    name, extra, seed, scale = TEXT_RUNS[key]
    torch.manual_seed(seed)
    model = build_model(name, (1, MAX_LEN), TOKENIZER.vocab_size, head="categorical",
                        **{**model_class(name, "text").TINY, **extra})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """key -> (run directory, exported model path); each exported once with ``chainrule export``."""
    out = {}
    for key, (name, extra, _, _) in TEXT_RUNS.items():
        path = tmp_path_factory.mktemp(key) / "run"
        path.mkdir()
        cfg = {"spec": {"kind": "text", "event_shape": [1, MAX_LEN], "levels": TOKENIZER.vocab_size,
                        "num_classes": 0},
               "model": {"name": name, "head": "categorical", **model_class(name, "text").TINY, **extra}}
        Run(path=path, config=cfg).save_config()
        save_weights(text_model(key), path / "best.safetensors")
        TOKENIZER.save(path / api.TOKENIZER_FILE)
        assert cli.main(["export", str(path), "--format", "onnx", "--out", str(path / "model.onnx")]) == 0
        out[key] = (path, path / "model.onnx")
    return out


@pytest.mark.parametrize("key", list(TEXT_RUNS))
def test_greedy_tokens_equal_chainrule_generation_past_the_context_window(key, runs):
    run, onnx_path = runs[key]
    prompt = TOKENIZER.encode("abcab")
    n = 3 * MAX_LEN  # the window jumps forward several times
    cfg = GenerationConfig(max_new_tokens=n, temperature=0)
    expected = [int(t) for t in torch_generate_tokens(text_model(key), prompt, cfg)]
    got = [int(t[0]) for t in generate_tokens(EdgeModel(onnx_path), prompt, max_new_tokens=n, temperature=0)]
    assert got == expected
    assert len(set(expected)) >= 3  # a non-trivial sequence, so equality means something
    text = "".join(generate_text(EdgeModel(onnx_path), "abcab", max_new_tokens=n, temperature=0))
    assert text == "".join(api.generate(run, "abcab", max_new_tokens=n, temperature=0))


@pytest.mark.parametrize("key", list(TEXT_RUNS))
def test_logits_follow_chainrule_along_a_long_sequence(key, runs):
    """Edge logits equal the cached PyTorch logits at every step, across window jumps (re-prefills)."""
    model = text_model(key)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, TOKENIZER.vocab_size, (2, 4), generator=g)
    tokens = torch.randint(0, TOKENIZER.vocab_size, (2 * MAX_LEN, 2), generator=g)
    ctx = TokenContext(model, prompt, use_cache=True)
    edge = TokenWindow(EdgeModel(runs[key][1]), prompt.numpy())
    with torch.no_grad():
        for t in tokens:
            assert np.abs(edge.next_logits - ctx.logits().numpy()).max() <= 1e-4
            ctx.push(t)
            edge.push(t.numpy())


def test_edge_process_never_imports_torch(runs):
    run, onnx_path = runs["transformer"]
    code = ("import sys\nfrom chainrule.edge.__main__ import main\n"
            f"rc = main(['generate', {str(onnx_path)!r}, '--prompt', 'abc', '--max-new-tokens', '40', "
            "'--temperature', '0'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\nsys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    text, modules = res.stdout.rsplit("\n", 2)[:2]
    assert modules == "[]"
    assert text == "abc" + "".join(api.generate(run, "abc", max_new_tokens=40, temperature=0))


def test_sampling_options_and_reproducibility(runs):
    model = EdgeModel(runs["lstm"][1])
    opts = {"max_new_tokens": 30, "temperature": 0.9, "top_k": 3, "seed": 7}
    a = np.stack(list(generate_tokens(model, [1, 2], num_samples=4, **opts)))
    assert np.array_equal(a, np.stack(list(generate_tokens(model, [1, 2], num_samples=4, **opts))))
    assert not np.array_equal(a, np.stack(list(generate_tokens(model, [1, 2], num_samples=4,
                                                              **{**opts, "seed": 8}))))
    assert len({tuple(col) for col in a.T}) > 1  # the samples of one batch differ
    # top-k 1 is greedy
    greedy = list(generate_tokens(model, [1, 2], max_new_tokens=30, temperature=0))
    top1 = list(generate_tokens(model, [1, 2], max_new_tokens=30, temperature=1.5, top_k=1, seed=3))
    assert np.array_equal(np.stack(greedy), np.stack(top1))


# ------------------------------------------------------------------ tokenizers
TEXTS = ["hello, world", "abc\u00e9\u4e2d\U0001F600 z", "", "line one\nline two\n\n  spaced  ", "x\ud800y"]


@pytest.mark.parametrize("tok", [CharTokenizer.fit("abc\u00e9 lo"), ByteTokenizer(),
                                 BPETokenizer.train(["hello world, hello there " * 20, "abc\u00e9\u4e2d"] * 5, 300)],
                         ids=["char", "byte", "bpe"])
def test_edge_tokenizer_agrees_with_chainrule(tok):
    edge = EdgeTokenizer(tok.to_dict())
    assert edge.vocab_size == tok.vocab_size
    for text in TEXTS:
        assert edge.encode(text) == tok.encode(text)
    assert [edge.token_bytes(i) for i in range(tok.vocab_size)] == [tok.token_bytes(i) for i in range(tok.vocab_size)]
    ids = tok.encode(TEXTS[1])
    assert edge.decode(ids) == tok.decode(ids)


# ------------------------------------------------------------------ images
def image_model(name: str, shape, levels: int, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, shape, levels, **{**model_class(name, "image").TINY, **options})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.8)
    return model.eval()


@pytest.mark.parametrize("name,levels,options", [("made", 2, {"num_masks": 2}), ("pixelcnn", 3, {})])
def test_image_samples_follow_the_model_distribution(name, levels, options, tmp_path):
    """Edge ancestral samples over all outcomes of a 2x2 image pass a chi-square test against exact p(x)
    (MADE uses its second, non-raster ordering)."""
    model = image_model(name, (1, 2, 2), levels, **options)
    if name == "made":
        model.use_mask(1)
        assert model.ordering().tolist() != [0, 1, 2, 3]
    export_model(model, tmp_path / "m.onnx")
    x = sample_images(EdgeModel(tmp_path / "m.onnx"), 3000, seed=0).reshape(3000, 4)
    outcomes = torch.tensor(np.stack(np.unravel_index(np.arange(levels ** 4), (levels,) * 4), 1)).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        probs = model.log_prob_positions(outcomes).flatten(1).sum(1).exp().double().numpy()
    assert abs(probs.sum() - 1) < 1e-4
    counts = np.bincount(np.ravel_multi_index(x.T, (levels,) * 4), minlength=levels ** 4)
    expected = probs / probs.sum() * 3000
    rare = expected < 5  # pooled, so the chi-square approximation holds
    counts = np.append(counts[~rare], counts[rare].sum())
    expected = np.append(expected[~rare], expected[rare].sum())
    assert chisquare(counts, expected).pvalue > 1e-3


@pytest.mark.parametrize("head,levels,channels,kwargs", [("categorical", 5, 3, {}), ("bernoulli", 2, 2, {}),
                                                         ("logistic_mixture", 16, 3, {"num_mix": 3})])
def test_edge_heads_agree_with_torch_heads(head, levels, channels, kwargs):
    """Greedy (temperature 0) choices are deterministic, so edge and torch heads must agree exactly;
    at temperature 1 the edge draws keep every value in range."""
    h = build_head(head, levels, **kwargs)
    params = torch.randn(200, h.num_params(channels), generator=torch.Generator().manual_seed(0)) * 2
    info = {"type": head, "levels": levels, **kwargs}
    rng = np.random.default_rng(0)
    if head != "bernoulli":  # torch's Bernoulli head has no deterministic mode
        edge = sample_position(params.numpy(), channels, info, 0.0, rng)
        assert np.array_equal(edge, h.sample(params[:, :, None], temperature=0)[:, :, 0].numpy())
    drawn = sample_position(params.numpy(), channels, info, 1.0, rng)
    assert drawn.shape == (200, channels) and drawn.min() >= 0 and drawn.max() < levels


def test_cli_sample_writes_png_and_npy(tmp_path, capsys):
    model = image_model("gated_pixelcnn", (3, 4, 4), 4, num_classes=2)
    export_model(model, tmp_path / "m.onnx")
    assert edge_main(["sample", str(tmp_path / "m.onnx"), "-n", "5", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (3 * 5 - 1, 2 * 5 - 1)  # 3 columns, 2 rows, 1-pixel gaps
    assert edge_main(["sample", str(tmp_path / "m.onnx"), "-n", "3", "--class", "1",
                      "--out", str(tmp_path / "s.npy")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (3, 3, 4, 4) and x.min() >= 0 and x.max() < 4
    assert edge_main(["info", str(tmp_path / "m.onnx")]) == 0
    assert "gated_pixelcnn (image, forward graph)" in capsys.readouterr().out


# ------------------------------------------------------------------ errors
def bad_files(tmp_path: Path) -> dict[str, Path]:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    plain = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["a"], ["b"])], "g",
                                   [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), plain)
    return {"missing": tmp_path / "nope.onnx", "corrupt": corrupt, "plain": plain}


@pytest.mark.parametrize("which,needle", [("missing", "model file not found"),
                                          ("corrupt", "not a valid ONNX model"),
                                          ("plain", "no chainrule metadata")])
def test_bad_model_files_give_one_line_errors(which, needle, tmp_path, capsys):
    path = bad_files(tmp_path)[which]
    assert edge_main(["generate", str(path), "--prompt", "a"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule-edge: error: ") and needle in err and err.count("\n") == 1
    with pytest.raises(EdgeError, match=needle):
        EdgeModel(path)


@pytest.mark.parametrize("args,needle", [(["--temperature", "-1"], "temperature"), (["--top-p", "0"], "top-p"),
                                         (["--max-new-tokens", "-2"], "max-new-tokens")])
def test_bad_generation_options_fail_before_any_output(args, needle, runs, capsys):
    assert edge_main(["generate", str(runs["lstm"][1]), "--prompt", "abc", *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and needle in err and err.count("\n") == 1


def test_wrong_kind_of_model(runs, tmp_path, capsys):
    assert edge_main(["sample", str(runs["lstm"][1]), "--out", str(tmp_path / "s.png")]) == 1
    assert "'sample' works on image models; this is a text model" in capsys.readouterr().err


# ------------------------------------------------------------------ forecasting
#: run key -> (model, head): two deterministic (point) forecasters and a probabilistic one
TS_RUNS = {"lstm": ("lstm", None), "transformer": ("transformer", "squared_error"), "deepar": ("deepar", None)}


def daily_series(t: int = 70):
    from chainrule.modalities.series.table import SeriesSet

    rng = np.random.default_rng(0)
    values = 10 + 5 * np.sin(np.arange(t) * 2 * np.pi / 7) + rng.normal(size=t)
    return SeriesSet(name="toy.csv", ids=["s0"], values=[values], times=[pd.date_range("2021-03-01", periods=t)],
                     freq="D", season=7, horizon=7)


@pytest.fixture(scope="module")
def ts_runs(tmp_path_factory):
    """key -> (run directory, exported model); tiny forecasters trained for a few steps on a daily series."""
    from chainrule.modalities.registry import model_class as registered
    from chainrule.modalities.series import api as ts_api
    from chainrule.modalities.series.neural import NeuralForecaster

    ss, out = daily_series(), {}
    for key, (name, head) in TS_RUNS.items():
        path = tmp_path_factory.mktemp(f"ts-{key}") / "run"
        options = {**registered(name, "series").TINY, **({"head": head} if head else {})}
        f = NeuralForecaster(name, context=14, horizon=7, steps=5, seed=1, **options)
        f.fit(ss, run_dir=path)
        ts_api.save_forecast_run(path, f, ss, {"source": "toy.csv", "time": "date", "target": "y"})
        assert cli.main(["export", str(path), "--out", str(path / "model.onnx")]) == 0
        out[key] = (path, path / "model.onnx")
    return out


HISTORY = [float(v) for v in daily_series().values[0][-30:]]  # shorter than the model's 42-point history
HISTORY[20] = None


@pytest.mark.parametrize("key", ["lstm", "transformer"])
def test_point_forecasts_equal_chainrule(key, ts_runs):
    """Deterministic roll-outs (calendar features, a missing value, a horizon past the trained one)."""
    from chainrule.modalities.series import api as ts_api

    run, onnx_path = ts_runs[key]
    ref = ts_api.forecast_from_history(run, HISTORY, horizon=12, num_samples=3)
    got = forecast(EdgeModel(onnx_path), HISTORY, horizon=12, num_samples=3)
    assert got["horizon"] == 12 and EdgeModel(onnx_path).metadata["time_features"]
    np.testing.assert_allclose(got["mean"], ref["mean"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["quantiles"]["0.95"], ref["quantiles"]["0.95"], rtol=1e-4, atol=1e-4)


def test_probabilistic_forecasts_follow_the_same_distribution(ts_runs):
    from chainrule.modalities.series import api as ts_api

    run, onnx_path = ts_runs["deepar"]
    n = len(HISTORY)
    ss = daily_series().subset([0])
    ss.values[0] = np.array([np.nan if v is None else v for v in HISTORY])
    ss.times[0] = pd.date_range(end=pd.Timestamp(ts_api.open_run(run).spec["last_timestamp"]), periods=n)
    torch_paths = ts_api.forecaster_from_run(run).predict(ss, 5, 2000, seed=0)[0]
    from chainrule.edge.forecast import sample_paths

    edge_paths = sample_paths(EdgeModel(onnx_path), HISTORY, 5, 2000, seed=0)
    for h in (0, 2, 4):
        assert ks_2samp(torch_paths[:, h], edge_paths[:, h]).pvalue > 1e-3


@pytest.mark.parametrize("head", ["gaussian", "student_t", "negative_binomial"])
def test_forecast_head_samplers_match_torch(head):
    from chainrule.core.heads import build_head

    h = build_head(head)
    raw = torch.tensor([[0.8, -0.3, 0.5][: h.num_params()]]).repeat(4000, 1)
    torch.manual_seed(0)
    ref = h.sample(raw, scale=torch.full((4000,), 7.0)).numpy()
    got = sample_head(head, raw.numpy(), 7.0, np.random.default_rng(0))
    assert ks_2samp(ref, got).pvalue > 1e-3


def test_cli_forecast_json_and_table(ts_runs, capsys):
    import json

    path = str(ts_runs["lstm"][1])
    history = ",".join("" if v is None else repr(v) for v in HISTORY)
    assert edge_main(["forecast", path, "--history", history, "--horizon", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res == json.loads(json.dumps(forecast(EdgeModel(path), HISTORY, horizon=4)))
    assert edge_main(["forecast", path, "--history", history, "--quantiles", "0.1,0.9"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["step", "mean", "median", "q0.1", "q0.9"] and len(lines) == 1 + 7


@pytest.mark.parametrize("args,needle", [(["--horizon", "40"], "forecasts at most 28 steps"),
                                         (["--quantiles", "0.5,2"], "quantiles"),
                                         (["--history", "1,x,3"], "'x' is not a number"),
                                         (["--history", ",,"], "at least one observed value")])
def test_cli_forecast_errors_are_one_line(args, needle, ts_runs, capsys):
    base = ["forecast", str(ts_runs["lstm"][1]), "--history", "1,2,3"]
    assert edge_main(base + args) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_forecast_needs_a_forecaster(runs, ts_runs, capsys):
    assert edge_main(["forecast", str(runs["lstm"][1]), "--history", "1,2"]) == 1
    assert "'forecast' works on timeseries models; this is a text model" in capsys.readouterr().err
    assert edge_main(["generate", str(ts_runs["lstm"][1])]) == 1
    assert "'generate' works on text models; this is a timeseries model" in capsys.readouterr().err
