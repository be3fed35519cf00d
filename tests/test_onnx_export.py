"""ONNX export: every registered model exports (or is listed as not exportable, with the reason), and the
exported graph matches PyTorch — step by step with the cache for text models, the forward pass for images."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

from chainrule import cli
from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError
from chainrule.core.training.checkpoint import save_weights
from chainrule.export.metadata import METADATA_KEY
from chainrule.export.onnx import export_model
from chainrule.export.plan import NOT_EXPORTABLE, TORCHSCRIPT_EXPORT
from chainrule.export.verify import session
from chainrule.modalities.registry import MODELS, build_model, model_class
from chainrule.runs import Run

#: registered models that cannot be exported, and why (must equal chainrule.export.plan.NOT_EXPORTABLE)
EXPECTED_NOT_EXPORTABLE: dict[str, str] = {
    "conditional_pixelcnn": "the exported forward pass takes no conditioning image (Condition.image)",
}
#: registered models exported with the TorchScript exporter rather than torch.export (must equal TORCHSCRIPT_EXPORT)
EXPECTED_TORCHSCRIPT: dict[str, str] = {}
TOL = 1e-4
MAX_LEN, VOCAB = 12, 7
IMAGE_SHAPE, LEVELS = (3, 4, 4), 4

#: case id -> (model name, extra options, head, num_classes, event shape, levels)
CASES: dict[str, tuple] = {}
MOD = {n: m for m, n in MODELS if m != "series" and model_class(n, m).family == "autoregressive"}  # chain rule
#: audio models export their queued step, tested in tests/test_audio_export.py
AUDIO = {n for n, m in MOD.items() if model_class(n, m).modality == "audio"}
for _name in sorted(MOD):
    if _name in EXPECTED_NOT_EXPORTABLE or _name in AUDIO:
        continue
    if model_class(_name, MOD[_name]).modality == "text":
        CASES[_name] = (_name, {}, "categorical", 0, (1, MAX_LEN), VOCAB)
    else:
        CASES[_name] = (_name, {}, None, 0, IMAGE_SHAPE, LEVELS)
        CASES[f"{_name}-conditional"] = (_name, {}, None, 3, IMAGE_SHAPE, LEVELS)
CASES["rnn_lm-gru"] = ("rnn_lm", {"cell": "gru", "num_layers": 2}, "categorical", 0, (1, MAX_LEN), VOCAB)
CASES["rnn_lm-rnn"] = ("rnn_lm", {"cell": "rnn"}, "categorical", 0, (1, MAX_LEN), VOCAB)
CASES["transformer-rotary"] = ("transformer", {"positions": "rotary"}, "categorical", 0, (1, MAX_LEN), VOCAB)
CASES["histogram-binary"] = ("histogram", {}, None, 0, (1, 4, 4), 2)
CASES["made-multimask"] = ("made", {"num_masks": 3}, None, 0, (1, 4, 4), 2)
STEP_CASES = [c for c, v in CASES.items() if model_class(v[0], MOD[v[0]]).modality == "text"]
FORWARD_CASES = [c for c in CASES if c not in STEP_CASES]


def tiny(case: str, seed: int = 0) -> torch.nn.Module:
    name, extra, head, num_classes, shape, levels = CASES[case]
    torch.manual_seed(seed)
    model = build_model(name, shape, levels, num_classes=num_classes, head=head,
                        **{**model_class(name, MOD[name]).TINY, **extra})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    if case == "made-multimask":
        model.use_mask(2)  # a non-raster ordering: the export follows the current mask
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """case -> (model, ONNX session, metadata, ONNX proto); each model exported once."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for case in CASES:
        model = tiny(case)
        meta = export_model(model, root / f"{case}.onnx")
        data = (root / f"{case}.onnx").read_bytes()
        out[case] = (model, session(data), meta, onnx.load_from_string(data))
    return out


def test_every_registered_model_is_exported_or_listed():
    assert NOT_EXPORTABLE == EXPECTED_NOT_EXPORTABLE
    covered = {v[0] for v in CASES.values()} | AUDIO
    assert covered | set(NOT_EXPORTABLE) == set(MOD)
    assert not covered & set(NOT_EXPORTABLE)


def test_every_model_exports_with_torch_export(exported):
    """The supported exporter (``dynamo=True``) captures every model; none silently fell back to TorchScript."""
    assert TORCHSCRIPT_EXPORT == EXPECTED_TORCHSCRIPT
    used = {case: meta["exporter"] for case, (_, _, meta, _) in exported.items()}
    assert used == {c: "torchscript" if CASES[c][0] in TORCHSCRIPT_EXPORT else "dynamo" for c in CASES}


def test_torchscript_fallback_still_matches_pytorch(tmp_path, monkeypatch):
    """A model torch.export cannot capture is exported by the TorchScript exporter, says so, and is verified."""
    import chainrule.export.onnx as onnx_export

    def fail(plan, path):
        raise RuntimeError("cannot capture")

    monkeypatch.setattr(onnx_export, "_export_dynamo", fail)
    model = tiny("transformer")
    with pytest.warns(UserWarning, match="using the TorchScript exporter"):
        meta = export_model(model, tmp_path / "m.onnx")
    assert meta["exporter"] == "torchscript"
    tokens = torch.randint(0, VOCAB, (4, 2), generator=torch.Generator().manual_seed(3))
    assert run_steps(model, session((tmp_path / "m.onnx").read_bytes()), meta, tokens) <= TOL
    monkeypatch.undo()
    monkeypatch.setitem(TORCHSCRIPT_EXPORT, "pixelcnn", "a reason")
    assert export_model(tiny("pixelcnn"), tmp_path / "p.onnx")["exporter"] == "torchscript"


def test_exporter_log_lines_are_silenced(caplog):
    """torch.onnx logs notices the user cannot act on (e.g. torchvision operators skipped); export hides them."""
    from chainrule.export.onnx import _quiet_exporter

    exporter_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    with caplog.at_level(logging.WARNING), _quiet_exporter():
        exporter_log.warning("torchvision is not installed")
    assert not caplog.records
    exporter_log.warning("after the export")  # the level is restored
    assert [r.getMessage() for r in caplog.records] == ["after the export"]


def torch_cache(model, cache: dict) -> list[torch.Tensor]:
    """The model's own cache as the exported graph's cache tensors, in order."""
    state = cache.get("state")
    rnn = [] if "state" not in cache else list(state) if isinstance(state, tuple) else [state]
    kv = [torch.stack(cache["k"]), torch.stack(cache["v"])] if "k" in cache else []
    return rnn + kv


def run_steps(model, sess, meta, tokens: torch.Tensor) -> float:
    """Largest |ONNX - PyTorch| over logits and cache after each step along ``tokens`` (steps, B)."""
    b = tokens.shape[1]
    cache_t = model.init_cache(b)
    cache_o = [np.zeros([b if d == "batch" else d for d in s["shape"]], np.float32) for s in meta["cache"]]
    worst = 0.0
    with torch.no_grad():
        for t in range(tokens.shape[0] + 1):
            prev = None if t == 0 else tokens[t - 1].unsqueeze(1)
            ref, cache_t = model.step(prev, cache_t)
            feed = {"token": np.zeros(b, np.int64) if t == 0 else tokens[t - 1].numpy(),
                    "position": np.array(t, np.int64)}
            feed.update({s["input"]: c for s, c in zip(meta["cache"], cache_o, strict=True)})
            logits, *cache_o = sess.run(None, feed)
            worst = max(worst, float(np.abs(logits - ref.numpy()).max()))
            if t > 0:  # before the first step the model's recurrent state is None (zeros)
                for o, r in zip(cache_o, torch_cache(model, cache_t), strict=True):
                    r = r[:, :, :, :o.shape[3]] if r.ndim == 5 else r  # a smaller exported KV buffer
                    worst = max(worst, float(np.abs(o - r.numpy()).max()))
    return worst


@pytest.mark.parametrize("case", STEP_CASES)
def test_step_matches_pytorch_over_the_whole_context(case, exported):
    model, sess, meta, _ = exported[case]
    tokens = torch.randint(0, VOCAB, (MAX_LEN - 1, 3), generator=torch.Generator().manual_seed(1))
    assert run_steps(model, sess, meta, tokens) <= TOL  # batch 3 (traced with 2): the batch axis is dynamic


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_forward_matches_pytorch(case, exported):
    model, sess, meta, _ = exported[case]
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, model.head.levels, (5, *model.event_shape), generator=g)
    feed = {"x": x.numpy()}
    cond = None
    if model.num_classes:
        cond = torch.randint(0, model.num_classes, (5,), generator=g)
        feed["cond"] = cond.numpy()
    with torch.no_grad():
        ref = model(x, cond).numpy()
    (params,) = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})
    assert params.shape == ref.shape
    assert np.abs(params - ref).max() <= TOL
    assert meta["ordering"] == model.ordering().tolist()


@pytest.mark.parametrize("case", ["transformer", "hybrid", "rnn_lm", "pixelcnn_pp", "histogram-binary"])
def test_metadata_describes_the_graph(case, exported):
    model, sess, meta, proto = exported[case]
    stored = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert stored == json.loads(json.dumps(meta))
    assert [i.name for i in sess.get_inputs()] == meta["inputs"]
    assert [o.name for o in sess.get_outputs()] == meta["outputs"]
    assert meta["event_shape"] == list(model.event_shape)
    expected_head = {"categorical": "categorical", "pixelcnn_pp": "logistic_mixture", "histogram-binary": "bernoulli"}
    assert meta["head"]["type"] == expected_head.get(case, "categorical")
    if meta["kind"] == "text":
        assert meta["inputs"][2:] == [c["input"] for c in meta["cache"]]
        assert meta["outputs"][1:] == [c["output"] for c in meta["cache"]]
        assert meta["vocab_size"] == VOCAB and meta["max_context"] == MAX_LEN


def test_smaller_max_context_shrinks_the_cache_and_keeps_parity(tmp_path):
    model = tiny("transformer")
    meta = export_model(model, tmp_path / "m.onnx", max_context=5)
    assert meta["max_context"] == 5 and meta["cache"][0]["shape"][3] == 5
    sess = session((tmp_path / "m.onnx").read_bytes())
    tokens = torch.randint(0, VOCAB, (4, 2), generator=torch.Generator().manual_seed(3))
    assert run_steps(model, sess, meta, tokens) <= TOL


def test_bad_max_context_and_unexportable_models_raise(tmp_path, monkeypatch):
    for n in (1, MAX_LEN + 1):
        with pytest.raises(ConfigError, match="max context"):
            export_model(tiny("transformer"), tmp_path / "m.onnx", max_context=n)
    with pytest.raises(ConfigError, match="text models"):
        export_model(tiny("pixelcnn"), tmp_path / "m.onnx", max_context=4)
    monkeypatch.setitem(NOT_EXPORTABLE, "pixelcnn", "a reason")
    with pytest.raises(ConfigError, match="'pixelcnn' cannot be exported: a reason"):
        export_model(tiny("pixelcnn"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------ the export command
@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "run"
    model = tiny("gated_pixelcnn")
    cfg = {"spec": {"kind": "image", "event_shape": list(IMAGE_SHAPE), "levels": LEVELS, "num_classes": 0},
           "model": {"name": "gated_pixelcnn", **model_class("gated_pixelcnn", "image").TINY}}
    path.mkdir()
    Run(path=path, config=cfg).save_config()
    save_weights(model, path / "best.safetensors")
    return path, model


def test_cli_export_writes_a_model_with_the_run_spec(image_run, tmp_path, capsys):
    path, model = image_run
    out = tmp_path / "sub" / "m.onnx"
    assert cli.main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 0
    assert "gated_pixelcnn forward pass" in capsys.readouterr().out
    proto = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["spec"]["levels"] == LEVELS and meta["kind"] == "image" and meta["graph"] == "forward"
    x = torch.randint(0, LEVELS, (2, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(session(out.read_bytes()).run(None, {"x": x.numpy()})[0] - ref).max() <= TOL


@pytest.mark.parametrize("args,needle", [
    (["--format", "tflite"], "unknown export format 'tflite'"),
    (["--max-context", "3"], "--max-context applies to text models"),
])
def test_cli_export_errors_are_one_line(image_run, tmp_path, capsys, args, needle):
    assert cli.main(["export", str(image_run[0]), "--out", str(tmp_path / "m.onnx"), *args]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_missing_run(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "run directory not found" in err and err.count("\n") == 1


# ------------------------------------------------------------------ forecasters
def tiny_forecaster(name: str, head: str | None = None):
    torch.manual_seed(0)
    model = build_model(name, modality="series", lags=[1, 3], num_time_features=2, head=head,
                        **model_class(name, "series").TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


FORECAST_SPEC = {"context": 6, "horizon": 3, "lags": [1, 3], "freq": "D", "season": 7, "calendar": ["day_of_week"],
                 "last_timestamp": "2021-04-30"}


def test_every_forecaster_is_exported_or_listed():
    from chainrule.export.forecast import FORECAST_STEPS, NOT_EXPORTABLE_FORECASTERS
    from chainrule.modalities.registry import model_names

    assert NOT_EXPORTABLE_FORECASTERS == {}
    # forecasters only: a latent series model (the sequence VAE) has no forecast step; its export is refused by
    # the family check in forecast_plan (test_a_latent_series_run_is_refused_in_one_line)
    forecasters = {n for n in model_names("series") if model_class(n, "series").family == "autoregressive"}
    assert forecasters < set(model_names("series"))
    assert set(FORECAST_STEPS) | set(NOT_EXPORTABLE_FORECASTERS) == forecasters


@pytest.mark.parametrize("name,head", [("lstm", None), ("deepar", "negative_binomial"), ("transformer", None)])
def test_forecaster_step_reproduces_teacher_forcing(name, head, tmp_path):
    """Fed the teacher-forced inputs one step at a time (cache carried), the exported step gives the params of
    the model's own full forward pass at every position."""
    from chainrule.export.forecast import forecast_plan
    from chainrule.export.onnx import export_plan

    model = tiny_forecaster(name, head)
    meta = export_plan(forecast_plan(model, FORECAST_SPEC), tmp_path / "f.onnx")
    assert meta["exporter"] == "dynamo"
    hist = 3 + 6
    assert meta["max_context"] == hist + 4 * 3 and len(meta["time_features"]) == meta["max_context"]
    g = torch.Generator().manual_seed(0)
    y = torch.rand(4, meta["max_context"], generator=g) * 20 + 1
    y[1, 5] = float("nan")
    tf = torch.randn(4, y.shape[1], 2, generator=g)
    scale = torch.tensor([1.0, 3.0, 10.0, 0.5])
    with torch.no_grad():
        cond = Condition(time_features=tf, scale=scale)
        ref = model(y, cond).transpose(1, 2).numpy()  # (B, T, P)
        inputs = model.encode(y, cond).numpy()
    sess = session((tmp_path / "f.onnx").read_bytes())
    cache = [np.zeros([4 if d == "batch" else d for d in c["shape"]], np.float32) for c in meta["cache"]]
    for t in range(y.shape[1]):
        feed = {"inputs": inputs[:, t], "position": np.array(t, np.int64),
                **{c["input"]: v for c, v in zip(meta["cache"], cache, strict=True)}}
        params, *cache = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})
        assert np.abs(params - ref[:, t]).max() <= TOL


def test_forecaster_export_rejects_covariates_and_short_context(tmp_path):
    from chainrule.export.forecast import forecast_plan

    model = tiny_forecaster("lstm")
    with pytest.raises(ConfigError, match="needs covariates"):
        forecast_plan(model, {**FORECAST_SPEC, "calendar": [], "covariates": ["a", "b"]})
    with pytest.raises(ConfigError, match="must exceed the model's 9 history points"):
        forecast_plan(model, FORECAST_SPEC, max_context=9)
