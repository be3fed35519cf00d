"""``chainrule score`` / ``api.score``: the per-position surprisal is the model's own ``-log_prob_positions`` on the
run's discretisation of the input, the example NLL is the model's ``log_prob``, and heat maps and the CSV are
written for each modality."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from chainrule import api, cli
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.series import api as series_api
from chainrule.modalities.text.data.tokenizers import CharTokenizer
from chainrule.runs import Run, open_run

IMAGE_MODELS = ["histogram", "made", "pixelcnn", "gated_pixelcnn", "pixel_lstm", "image_gpt"]
TEXT_MODELS = ["rnn_lm", "transformer", "hybrid"]
CHARS = "abcdefghijklmnopqrstuvwxyz ,."


def write_run(path: Path, model, spec: dict, model_cfg: dict, data: dict | None = None, tokenizer=None) -> Path:
    """A run directory holding ``model``'s (random) weights, as training would leave it."""
    path.mkdir(parents=True)
    Run(path=path, config={"spec": spec, "model": model_cfg, "data": data or {"name": "t"}}).save_config()
    save_weights(model, path / "best.safetensors")
    if tokenizer is not None:
        tokenizer.save(path / api.TOKENIZER_FILE)
    return path


def image_run(path: Path, name: str, levels: int = 4, size: int = 5, num_classes: int = 0,
              data: dict | None = None) -> Path:
    tiny = model_class(name, "image").TINY
    torch.manual_seed(0)
    model = build_model(name, (1, size, size), levels, num_classes=num_classes, modality="image", **tiny)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # far from uniform, so a wrong position would show
    spec = {"kind": "image", "event_shape": [1, size, size], "levels": levels, "num_classes": num_classes,
            "class_names": [f"c{i}" for i in range(num_classes)], "data": "t"}
    return write_run(path, model, spec, {"name": name, **tiny}, data)


def text_run(path: Path, name: str, max_len: int = 8) -> Path:
    tok = CharTokenizer.fit(CHARS)
    tiny = model_class(name, "text").TINY
    torch.manual_seed(0)
    model = build_model(name, (1, max_len), tok.vocab_size, head="categorical", modality="text", **tiny)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    spec = {"kind": "text", "event_shape": [1, max_len], "levels": tok.vocab_size, "num_classes": 0, "data": "t"}
    return write_run(path, model, spec, {"name": name, "head": "categorical", **tiny}, tokenizer=tok)


def grey_png(path: Path, levels: int, height: int, width: int, seed: int) -> np.ndarray:
    """A grey PNG whose values are exactly the run's levels; returns those levels ``(height, width)``."""
    lv = np.random.default_rng(seed).integers(0, levels, size=(height, width))
    Image.fromarray((lv * 255 // (levels - 1)).astype(np.uint8), "L").save(path)
    return lv


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_surprisal_is_the_models_log_prob_positions(tmp_path, name):
    run = image_run(tmp_path / "run", name)
    levels = [grey_png(tmp_path / f"img{i}.png", 4, 5, 5, seed=i) for i in range(2)]
    frame = api.score(run, tmp_path)
    model = open_run(run).load_model("cpu").eval()
    x = torch.from_numpy(np.stack(levels))[:, None]
    with torch.no_grad():
        positions, whole = model.log_prob_positions(x).double(), model.log_prob(x).double()
    assert list(frame["example"]) == ["img0.png", "img1.png"]
    for i in range(2):
        np.testing.assert_allclose(np.array(frame["surprisal"][i]), -positions[i].numpy(), rtol=1e-6, atol=1e-6)
        assert frame["log_likelihood"][i] == pytest.approx(float(whole[i]), abs=1e-4)
        assert frame["bits_per_dim"][i] == pytest.approx(-float(whole[i]) / 25 / math.log(2), abs=1e-5)
    assert (frame["dims"] == 25).all()


def test_a_larger_image_is_scored_tile_by_tile_without_its_padding(tmp_path):
    run = image_run(tmp_path / "run", "pixelcnn", size=4)
    lv = grey_png(tmp_path / "big.png", 4, 6, 7, seed=3)
    frame = api.score(run, tmp_path / "big.png", heatmap=tmp_path / "heat")
    surprisal = np.array(frame["surprisal"][0])
    assert surprisal.shape == (6, 7) and frame["dims"][0] == 42
    model = open_run(run).load_model("cpu").eval()
    with torch.no_grad():  # the top-left tile is a whole event of the model
        top_left = -model.log_prob_positions(torch.from_numpy(lv[None, None, :4, :4])).double()[0].numpy()
    np.testing.assert_allclose(surprisal[:4, :4], top_left, rtol=1e-6, atol=1e-6)
    assert frame["nll_nats"][0] == pytest.approx(surprisal.sum(), rel=1e-9)
    heat = Image.open(tmp_path / "heat" / "big.surprisal.png")
    assert heat.size[0] > 0


def test_class_conditional_run_scores_under_the_most_likely_class(tmp_path):
    run = image_run(tmp_path / "run", "pixelcnn", num_classes=3)
    lv = grey_png(tmp_path / "a.png", 4, 5, 5, seed=1)
    frame = api.score(run, tmp_path / "a.png")
    model = open_run(run).load_model("cpu").eval()
    x = torch.from_numpy(lv[None, None])
    with torch.no_grad():
        best = max(float(model.log_prob(x, torch.tensor([c]))) for c in range(3))
    assert frame["log_likelihood"][0] == pytest.approx(best, abs=1e-4)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_surprisal_is_the_models_log_prob_positions_per_line(tmp_path, name):
    run = text_run(tmp_path / "run", name)
    lines = ["hello world", "", "abc", "a much longer line, in windows"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    frame = api.score(run, tmp_path / "in.txt", heatmap=tmp_path / "heat")
    assert list(frame["example"]) == ["line 1", "line 3", "line 4"]
    model = open_run(run).load_model("cpu").eval()
    tok = CharTokenizer.fit(CHARS)
    for row, line in zip(frame.itertuples(), [lines[0], lines[2], lines[3]], strict=True):
        ids = torch.tensor(tok.encode(line))
        with torch.no_grad():
            expected = torch.cat([-model.log_prob_positions(ids[lo:lo + 8][None, None])[0]
                                  for lo in range(0, len(ids), 8)]).double().numpy()
        np.testing.assert_allclose(np.array(row.surprisal), expected, rtol=1e-6, atol=1e-6)
        assert row.nll_nats == pytest.approx(expected.sum(), abs=1e-4) and row.dims == len(line)
    page = (tmp_path / "heat" / "surprisal.html").read_text()
    assert page.count("<span") == sum(len(line) for line in lines) and "line 4" in page


def test_series_run_scores_the_one_step_ahead_surprisal(tmp_path):
    rng = np.random.default_rng(0)
    values = 10 + np.sin(np.arange(60) / 3) + 0.1 * rng.standard_normal(60)
    csv = tmp_path / "s.csv"
    pd.DataFrame({"day": pd.date_range("2020-01-01", periods=60, freq="D"), "y": values}).to_csv(csv, index=False)
    run = series_api.train_forecaster(csv, "deepar", horizon=4, time="day", target="y", steps=3, progress=False,
                               run_dir=tmp_path / "run", hidden_size=4, num_layers=1)
    frame = api.score(run.path, csv)
    reference = series_api.surprisal_from_history(run, list(values))
    expected = np.array([np.nan if v is None else v for v in reference["surprisal"]])
    np.testing.assert_allclose(np.array(frame["surprisal"][0], dtype=float), expected, rtol=1e-6, atol=1e-6)
    assert frame["nll_nats"][0] == pytest.approx(reference["nll"], rel=1e-6)
    assert frame["dims"][0] == reference["scored"]


def test_cli_writes_one_csv_row_per_example(tmp_path, capsys):
    run = image_run(tmp_path / "run", "made")
    for i in range(3):
        grey_png(tmp_path / f"p{i}.png", 4, 5, 5, seed=i)
    out = tmp_path / "scores.csv"
    assert cli.main(["score", str(run), str(tmp_path), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 3 and "3 examples" in capsys.readouterr().out
    assert [len(json.loads(s)) for s in table["surprisal"]] == [5, 5, 5]  # rows of the (5, 5) map
