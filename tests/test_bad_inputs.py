"""Every bad value through every entry point that takes it: the CLI, the Python API, the HTTP server, the edge
runtime and the models themselves answer with one line naming the value — exit 1 / a ``ChainruleError`` / a 4xx
``detail`` / an ``EdgeError`` / an ``InputError`` — and write nothing.

The rules live once in :mod:`chainrule.core.limits` (options, series values), the heads' support and the model
contract's ``check_input``/``check_sample``; this table is the proof that every layer applies them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from serve_helpers import make_text_run

from chainrule import api, cli
from chainrule.core.errors import ChainruleError, InputError
from chainrule.edge import EdgeError, EdgeModel
from chainrule.edge import forecast as edge_forecast
from chainrule.edge.__main__ import main as edge_main
from chainrule.export.onnx import export_model
from chainrule.modalities.registry import MODELS, build_model, model_class
from chainrule.modalities.series import api as ts_api
from chainrule.modalities.series.neural import NeuralForecaster
from chainrule.modalities.series.table import SeriesSet
from chainrule.serve.app import create_app
from chainrule.serve.registry import load_registry

NAN, INF = math.nan, math.inf
HISTORY = [10.0, 12.0, 9.0, None, 11.0, 13.0, 12.0, 10.0, 14.0, 12.0]


def _daily(counts: bool) -> SeriesSet:
    rng = np.random.default_rng(0)
    t = np.arange(60)
    values = 10 + 5 * np.sin(t * 2 * np.pi / 7) + rng.normal(size=60)
    values = np.round(np.abs(values)) if counts else values
    return SeriesSet(name="toy.csv", ids=["s0"], values=[values], times=[pd.date_range("2021-03-01", periods=60)],
                     freq="D", season=7, horizon=7)


def _forecaster(path: Path, counts: bool) -> Path:
    """A tiny DeepAR run on a daily series (gaussian, or negative-binomial counts), exported for the edge."""
    head = "negative_binomial" if counts else "gaussian"
    f = NeuralForecaster("deepar", context=14, horizon=7, steps=3, seed=1, head=head,
                         **model_class("deepar", "series").TINY)
    f.fit(_daily(counts), run_dir=path)
    ts_api.save_forecast_run(path, f, _daily(counts), {"source": "toy.csv", "time": "date", "target": "y"})
    assert cli.main(["export", str(path), "--out", str(path / "model.onnx")]) == 0
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("bad-inputs")
    image = api.train("digits", "histogram", overrides=["model.conditional=true", "output.samples=0"],
                      run_dir=root / "image").path  # class-conditional: 10 classes
    text = make_text_run(root / "text")
    series, counts = _forecaster(root / "series", False), _forecaster(root / "counts", True)
    onnx = root / "onnx"
    onnx.mkdir()
    torch.manual_seed(0)
    export_model(build_model("gated_pixelcnn", (1, 4, 4), 2, num_classes=3, **model_class("gated_pixelcnn", "image")
                             .TINY).eval(), onnx / "image.onnx")
    assert cli.main(["export", str(text), "--format", "onnx", "--out", str(onnx / "text.onnx")]) == 0
    client = TestClient(create_app(load_registry([image, text, series, counts])))
    return SimpleNamespace(image=image, text=text, series=series, counts=counts, client=client,
                           image_onnx=onnx / "image.onnx", text_onnx=onnx / "text.onnx",
                           series_onnx=series / "model.onnx", counts_onnx=counts / "model.onnx")


@dataclass
class Bad:
    """One bad value at one entry point: ``how`` is ``cli``/``edge`` (argv), ``http`` (path and body: a dict, or raw
    JSON for NaN and Infinity), or ``api``/``model`` (a call); ``needle`` is in the one-line message."""

    how: str
    what: Any
    needle: str
    status: int = 0


def tiny(name: str, modality: str, num_classes: int = 0, **options: Any) -> torch.nn.Module:
    shape, levels = ((1, 8), 5) if modality == "text" else ((1, 4, 4), 2)
    opts = {**model_class(name, modality).TINY, **options}
    return build_model(name, shape, levels, num_classes=num_classes, **opts).eval()


def _levels(value: int, shape: tuple[int, ...] = (1, 1, 4, 4)) -> torch.Tensor:
    return torch.full(shape, value, dtype=torch.long)


def _series_sample(n: int) -> Callable[[SimpleNamespace], Any]:
    def call(e: SimpleNamespace) -> Any:
        from chainrule.core.contract import Condition

        model = build_model("deepar", modality="series", lags=[1], num_time_features=0,
                            **model_class("deepar", "series").TINY)
        cond = Condition(time_features=torch.zeros(1, 6, 0), scale=torch.ones(1))
        return model.sample(n, cond, x_given=torch.ones(1, 3), horizon=3)
    return call


#: model.sample(0) is an error for every registered model (image, text, series alike)
SAMPLE_ZERO = [(f"sample(0)-{name}", Bad("model", (lambda e, n=name, m=modality: tiny(n, m).sample(0)), "got 0"))
               for modality, name in sorted(MODELS) if modality != "series"] + [
    ("sample(0)-deepar", Bad("model", _series_sample(0), "got 0"))]

CASES: list[tuple[str, Bad]] = [
    # ---- temperature nan / inf / out of range
    ("sample-T-nan-cli", Bad("cli", ["sample", "{image}", "--temperature", "nan", "--out", "{out}"], "got nan")),
    ("sample-T-inf-cli", Bad("cli", ["sample", "{image}", "--temperature", "inf", "--out", "{out}"], "got inf")),
    ("sample-T-nan-api", Bad("api", lambda e: api.sample(e.image, 2, temperature=NAN), "got nan")),
    ("sample-T-inf-api", Bad("api", lambda e: api.sample(e.image, 2, temperature=INF), "got inf")),
    ("sample-T-nan-http", Bad("http", ("/v1/sample", '{"model": "image", "temperature": NaN}'), "temperature", 422)),
    ("sample-T-inf-http", Bad("http", ("/v1/sample", '{"model": "image", "temperature": Infinity}'), "temperature",
                              422)),
    ("sample-T-tiny-http", Bad("http", ("/v1/sample", {"model": "image", "temperature": 1e-300}), "1e-300", 422)),
    ("sample-T-nan-edge", Bad("edge", ["sample", "{image_onnx}", "--temperature", "nan", "--out", "{out}"],
                              "got nan")),
    ("sample-T-inf-edge", Bad("edge", ["sample", "{image_onnx}", "--temperature", "inf", "--out", "{out}"],
                              "got inf")),
    ("sample-T-nan-model", Bad("model", lambda e: tiny("histogram", "image").sample(2, temperature=NAN), "got nan")),
    ("generate-T-nan-cli", Bad("cli", ["generate", "{text}", "--temperature", "nan"], "got nan")),
    ("generate-T-nan-api", Bad("api", lambda e: api.generate(e.text, "ab", temperature=NAN), "got nan")),
    ("generate-T-tiny-api", Bad("api", lambda e: api.generate(e.text, "ab", temperature=1e-300), "got 1e-300")),
    ("generate-T-tiny-http", Bad("http", ("/v1/generate", {"model": "text", "temperature": 1e-300}), "1e-300", 422)),
    ("generate-T-nan-edge", Bad("edge", ["generate", "{text_onnx}", "--temperature", "nan"], "got nan")),
    ("generate-penalty-tiny-api", Bad("api", lambda e: api.generate_texts(e.text, "ab", repetition_penalty=1e-300),
                                      "got 1e-300")),
    ("generate-penalty-tiny-http", Bad("http", ("/v1/generate", {"model": "text", "repetition_penalty": 1e-300}),
                                       "1e-300", 422)),
    # ---- sample counts; complete's counts and temperature agree with sample's
    ("sample-n0-cli", Bad("cli", ["sample", "{image}", "-n", "0", "--out", "{out}"], "got 0")),
    ("sample-n0-api", Bad("api", lambda e: api.sample(e.image, 0), "got 0")),
    ("sample-n0-http", Bad("http", ("/v1/sample", {"model": "image", "num_samples": 0}), "num_samples", 422)),
    ("sample-n0-edge", Bad("edge", ["sample", "{image_onnx}", "-n", "0", "--out", "{out}"], "got 0")),
    ("complete-n-3-cli", Bad("cli", ["complete", "{image}", "-n", "-3", "--out", "{out}"], "got -3")),
    ("complete-n0-cli", Bad("cli", ["complete", "{image}", "-n", "0", "--out", "{out}"], "got 0")),
    ("complete-n0-api", Bad("api", lambda e: api.complete(e.image, n=0), "got 0")),
    ("complete-T-1-cli", Bad("cli", ["complete", "{image}", "--temperature", "-1", "--out", "{out}"], "got -1")),
    ("complete-T0-cli", Bad("cli", ["complete", "{image}", "--temperature", "0", "--out", "{out}"], "got 0")),
    ("complete-T0-api", Bad("api", lambda e: api.complete(e.image, n=2, temperature=0), "got 0")),
    ("complete-T-nan-api", Bad("api", lambda e: api.complete(e.image, n=2, temperature=NAN), "got nan")),
    *SAMPLE_ZERO,
    # ---- horizons: 0 is an error, never "the default"
    ("predict-h-1-cli", Bad("cli", ["forecast", "predict", "{series}", "--horizon", "-1", "--out", "{out}"],
                            "got -1")),
    ("predict-h0-cli", Bad("cli", ["forecast", "predict", "{series}", "--horizon", "0", "--out", "{out}"], "got 0")),
    ("predict-n0-cli", Bad("cli", ["forecast", "predict", "{series}", "-n", "0", "--out", "{out}"], "got 0")),
    ("predict-h0-api", Bad("api", lambda e: ts_api.predict(e.series, horizon=0, out=e.out), "got 0")),
    ("history-h0-api", Bad("api", lambda e: ts_api.forecast_from_history(e.series, HISTORY, horizon=0), "got 0")),
    ("history-h-1-api", Bad("api", lambda e: ts_api.forecast_from_history(e.series, HISTORY, horizon=-1), "got -1")),
    ("forecast-h0-http", Bad("http", ("/v1/forecast", {"model": "series", "history": HISTORY, "horizon": 0}),
                             "horizon", 422)),
    ("forecast-h0-edge", Bad("edge", ["forecast", "{series_onnx}", "--history", "1,2,3", "--horizon", "0"],
                             "got 0")),
    ("forecast-h0-edge-api", Bad("edge", lambda e: edge_forecast(EdgeModel(e.series_onnx), [1.0, 2.0], 0),
                                 "got 0")),
    # ---- class labels out of range, or given to an unconditional model
    ("class-10-cli", Bad("cli", ["sample", "{image}", "--class", "10", "--out", "{out}"], "class 10")),
    ("class--1-cli", Bad("cli", ["sample", "{image}", "--class", "-1", "--out", "{out}"], "class -1")),
    ("class-10-api", Bad("api", lambda e: api.sample(e.image, 2, cls=10), "class 10")),
    ("class-sup2-api", Bad("api", lambda e: api.sample(e.image, 2, cls="²"), "'²'")),
    ("class-10-http", Bad("http", ("/v1/sample", {"model": "image", "class": 10}), "class 10", 400)),
    ("class--1-http", Bad("http", ("/v1/sample", {"model": "image", "class": -1}), "class -1", 400)),
    ("class-sup2-http", Bad("http", ("/v1/sample", {"model": "image", "class": "²"}), "'²'", 400)),
    ("class-10-logprob-http", Bad("http", ("/v1/log_prob", {"model": "image", "images": [[[0] * 8] * 8],
                                                             "class": 10}), "class 10", 400)),
    ("class-3-edge", Bad("edge", ["sample", "{image_onnx}", "--class", "3", "--out", "{out}"], "class 3")),
    ("class--1-histogram", Bad("model", lambda e: tiny("histogram", "image", 3).sample(2, cond=torch.tensor([-1, 0])),
                               "class -1")),
    ("class--1-histogram-log_prob", Bad("model", lambda e: tiny("histogram", "image", 3).log_prob(
        _levels(0), torch.tensor([-1])), "class -1")),
    ("class-3-histogram", Bad("model", lambda e: tiny("histogram", "image", 3).sample(1, cond=torch.tensor([3])),
                              "class 3")),
    ("class-3-gated", Bad("model", lambda e: tiny("gated_pixelcnn", "image", 3).log_prob(_levels(0),
                                                                                        torch.tensor([3])), "class 3")),
    ("class-3-transformer", Bad("model", lambda e: tiny("transformer", "text", 3).sample(1, cond=torch.tensor([3])),
                                "class 3")),
    ("cond-unconditional-gated", Bad("model", lambda e: tiny("gated_pixelcnn", "image").sample(
        1, cond=torch.tensor([0])), "without class conditioning")),
    # ---- levels outside the head's alphabet
    ("level-2-made", Bad("model", lambda e: tiny("made", "image", num_masks=3).log_prob(_levels(2)),
                         "2 is outside the bernoulli")),
    ("level--1-made", Bad("model", lambda e: tiny("made", "image", num_masks=3).log_prob(_levels(-1)),
                          "-1 is outside the bernoulli")),
    ("level-256-logistic", Bad("model", lambda e: build_model("pixelcnn_pp", (1, 4, 4), 256, head="logistic_mixture",
                                                              **model_class("pixelcnn_pp", "image").TINY).eval()
                               .log_prob(_levels(256)), "256 is outside the logistic_mixture")),
    ("level-given-histogram", Bad("model", lambda e: tiny("histogram", "image").sample(
        1, x_given=_levels(5), known=torch.ones(1, 4, 4, dtype=torch.bool)), "5 is outside")),
    ("token-99-transformer", Bad("model", lambda e: tiny("transformer", "text").log_prob(_levels(99, (1, 1, 8))),
                                 "99 is outside the categorical")),
    ("level-99-http", Bad("http", ("/v1/log_prob", {"model": "image", "images": [[[99] * 8] * 8], "class": 1}),
                         "levels", 400)),
    # ---- series values: infinity and impossible counts are errors, never missing values
    ("history-inf-api", Bad("api", lambda e: ts_api.forecast_from_history(e.series, [1.0, INF, 2.0]), "history[1]")),
    ("history-inf-surprisal-api", Bad("api", lambda e: ts_api.surprisal_from_history(e.series, [1.0, -INF]),
                                      "history[1]: -inf")),
    ("history-inf-http", Bad("http", ("/v1/forecast", '{"model": "series", "history": [1.0, Infinity]}'), "history",
                             422)),
    ("history-inf-edge", Bad("edge", ["forecast", "{series_onnx}", "--history", "1,inf,2"], "history[1]: inf")),
    ("history-1e40-api", Bad("api", lambda e: ts_api.forecast_from_history(e.series, [1.0, 1e40]), "1e+40")),
    ("history-1e40-http", Bad("http", ("/v1/forecast", {"model": "series", "history": [1.0, 1e40]}), "1e+40", 422)),
    ("series-1e40-http", Bad("http", ("/v1/log_prob", {"model": "series", "series": [[1.0, 1e40]]}), "1e+40", 422)),
    ("history-1e40-edge", Bad("edge", ["forecast", "{series_onnx}", "--history", "1,1e40"], "1e+40")),
    ("count-negative-surprisal-api", Bad("api", lambda e: ts_api.surprisal_from_history(e.counts, [3, 4, -1, 5]),
                                         "history[2]: -1.0")),
    ("count-fraction-surprisal-api", Bad("api", lambda e: ts_api.surprisal_from_history(e.counts, [3, 4.5]),
                                         "history[1]: 4.5")),
    ("count-negative-forecast-api", Bad("api", lambda e: ts_api.forecast_from_history(e.counts, [3, -2, 4]),
                                        "history[1]: -2.0")),
    ("count-negative-log_prob-http", Bad("http", ("/v1/log_prob", {"model": "counts", "series": [[3, 4, -1, 5]]}),
                                         "-1.0 is outside the negative_binomial", 400)),
    ("count-fraction-forecast-http", Bad("http", ("/v1/forecast", {"model": "counts", "history": [3, 4.5]}),
                                         "4.5 is outside the negative_binomial", 400)),
    ("count-negative-edge", Bad("edge", ["forecast", "{counts_onnx}", "--history=3,-2,4"], "history[1]: -2")),
    ("count-negative-model", Bad("model", lambda e: _score(e.counts, [3.0, -1.0]), "-1.0 is outside the "
                                                                                    "negative_binomial")),
    # ---- timestamps past pandas' range
    ("start-3000-http", Bad("http", ("/v1/forecast", {"model": "series", "history": HISTORY, "start": "3000-01-01"}),
                            "start", 422)),
    ("horizon-past-2262-http", Bad("http", ("/v1/forecast", {"model": "series", "history": HISTORY,
                                                             "start": "2262-01-01", "horizon": 400}),
                                   "pandas' range", 400)),
    ("horizon-past-2262-api", Bad("api", lambda e: ts_api.forecast_from_history(e.series, HISTORY, start="2262-01-01",
                                                                                horizon=400), "pandas' range")),
    # ---- lax coercions: wrong JSON types are refused, not converted
    ("true-as-temperature-http", Bad("http", ("/v1/generate", {"model": "text", "temperature": True}), "temperature",
                                     422)),
    ("string-as-count-http", Bad("http", ("/v1/sample", {"model": "image", "num_samples": "4"}), "num_samples", 422)),
    ("string-as-seed-http", Bad("http", ("/v1/generate", {"model": "text", "seed": "1"}), "seed", 422)),
    ("true-as-class-http", Bad("http", ("/v1/sample", {"model": "image", "class": True}), "class", 422)),
    ("true-as-level-http", Bad("http", ("/v1/log_prob", {"model": "image", "images": [[[True] * 8] * 8],
                                                          "class": 1}), "True is not a level", 422)),
    ("string-in-history-http", Bad("http", ("/v1/forecast", {"model": "series", "history": ["1", 2]}), "history",
                                   422)),
    ("string-as-stream-http", Bad("http", ("/v1/generate", {"model": "text", "stream": "true"}), "stream", 422)),
]


def _score(run: Path, values: list[float]) -> torch.Tensor:
    """The forecaster's own teacher-forced scoring of one series, below the API."""
    from chainrule.core.contract import Condition

    model = ts_api.forecaster_from_run(run).model
    cond = Condition(time_features=torch.zeros(1, len(values), model.num_time_features), scale=torch.ones(1))
    return model.log_prob_positions(torch.tensor([values]), cond)


def _fill(args: list[str], e: SimpleNamespace) -> list[str]:
    return [a.format(**{k: str(v) for k, v in vars(e).items() if isinstance(v, Path)}) for a in args]


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[name for name, _ in CASES])
def test_bad_value_is_a_one_line_error_and_nothing_is_written(case: Bad, env, tmp_path, capsys):
    env.out = tmp_path / "out.png"
    if case.how in ("cli", "edge"):
        if callable(case.what):
            with pytest.raises(EdgeError) as info:
                case.what(env)
            message = str(info.value)
        else:
            main = cli.main if case.how == "cli" else edge_main
            assert main(_fill(case.what, env)) == 1
            out, err = capsys.readouterr()
            prog = "chainrule" if case.how == "cli" else "chainrule-edge"
            assert len(err.strip().splitlines()) == 1 and err.startswith(f"{prog}: error:"), err
            message = err
    elif case.how == "http":
        path, body = case.what
        if isinstance(body, str):
            r = env.client.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = env.client.post(path, json=body)
        assert r.status_code == case.status, r.text
        message = r.json()["detail"]
        assert isinstance(message, str) and "\n" not in message
    else:
        error = InputError if case.how == "model" else ChainruleError
        with pytest.raises(error) as info:
            case.what(env)
        message = str(info.value)
        assert "\n" not in message
    assert case.needle in message, message
    assert list(tmp_path.iterdir()) == [], "a rejected request wrote a file"


def test_the_shared_rules_accept_what_they_should():
    """The good neighbours of the bad values still work, so the table above is not passing by refusing all."""
    from chainrule.core import limits

    assert limits.check_temperature(0) == 0.0 and limits.check_temperature(1e-3) == 1e-3
    assert limits.check_horizon(None) is None and limits.check_top_k(0) is None
    assert limits.check_series([1, None, NAN, -2.5])[2] != limits.check_series([1, None, NAN, -2.5])[2]
    assert limits.check_series([0, 3.0], counts=True) == [0.0, 3.0]
    for bad in (True, "1", 0.5):
        with pytest.raises(ValueError):
            limits.check_count(bad, "n")
    model = tiny("histogram", "image", 3)
    assert model.sample(2, cond=torch.tensor([2, 0]), temperature=0).shape == (2, 1, 4, 4)
    assert torch.isfinite(model.log_prob(_levels(1), torch.tensor([2]))).all()
