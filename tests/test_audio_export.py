"""ONNX export of WaveNet's queued step and audio in the torch-free edge runtime: the exported step equals the
model's own queued step over a sequence (and the export-time check catches a mismatch), the edge runtime's
conditionals along a torch-sampled waveform equal the model's, its near-greedy samples follow its conditionals,
a seed reproduces its audio, its WAV equals chainrule's for the same levels, and it never imports torch."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
from audio_runs import RATE, make_audio_run

from chainrule import api, cli
from chainrule.core.errors import ConfigError
from chainrule.edge import EdgeError, EdgeModel, sample_audio
from chainrule.edge.__main__ import main as edge_main
from chainrule.edge.audio import QueuedStep, wav_bytes
from chainrule.export.audio import check_queued_step
from chainrule.export.onnx import export_model
from chainrule.export.plan import plan_export
from chainrule.export.verify import session
from chainrule.modalities.audio.wav import wav_bytes as chainrule_wav_bytes
from chainrule.modalities.registry import build_model, model_class
from chainrule.runs import open_run

TOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A class-conditional WaveNet run (dilations 1, 2, 4 twice) exported with ``chainrule export``."""
    root = tmp_path_factory.mktemp("audio-export")
    run = make_audio_run(root / "speech", num_classes=2, layers_per_stack=3)
    out = root / "speech.onnx"
    assert cli.main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    return run, out, open_run(run).load_model()


def test_exported_step_equals_the_queued_torch_step(exported):
    run, path, model = exported
    sess = session(path.read_bytes())
    edge = EdgeModel(path)
    assert edge.kind == "audio" and edge.metadata["exporter"] == "dynamo"
    assert edge.metadata["spec"]["sample_rate"] == RATE and edge.metadata["receptive_field"] == model.receptive_field
    steps, b = 3 * model.receptive_field, 3
    g = torch.Generator().manual_seed(1)
    levels = torch.randint(256, (steps, b, 1), generator=g)
    labels = torch.tensor([1, 0, 1])
    cache = model.init_cache(b, labels, length=steps)
    (spec,) = edge.metadata["cache"]
    front = np.zeros([b, *spec["shape"][1:]], np.float32)
    assert edge.metadata["queues"]["shape"] == [len(model.dilations), "batch", model.res]
    # the queues by hand, as shift registers (oldest first), not the runtime's ring buffers
    queues = [np.zeros((b, model.res, d), np.float32) for d in model.dilations]
    worst = 0.0
    with torch.no_grad():
        for t in range(steps):
            ref, cache = model.step(levels[t - 1] if t else None, cache)
            feeds = {"level": levels[t - 1 if t else 0].numpy(), "position": np.array(t, np.int64),
                     "past_front": front, "oldest": np.stack([q[:, :, 0] for q in queues]),
                     "label": labels.numpy()}
            params, front, newest = sess.run(None, feeds)
            queues = [np.concatenate([q[:, :, 1:], newest[i, :, :, None]], 2) for i, q in enumerate(queues)]
            worst = max(worst, float(np.abs(params - ref.numpy()).max()))
    assert worst <= TOL
    plan = plan_export(model)  # the export-time check compares with the model itself: a changed model fails it
    assert check_queued_step(plan, sess, TOL) <= TOL
    with torch.no_grad():
        model.dilated[3].weight.add_(0.01)
    try:
        with pytest.raises(ConfigError, match="does not reproduce its queued step"):
            check_queued_step(plan, sess, TOL)
    finally:
        with torch.no_grad():
            model.dilated[3].weight.sub_(0.01)


def test_edge_conditionals_equal_chainrule_along_a_sampled_waveform(exported):
    run, path, model = exported
    x = api.sample_audio(run, 0.01, n=2, seed=3, model=model)  # (2, 1, 80), classes 0 and 1
    step = QueuedStep(EdgeModel(path), 2, np.array([0, 1]))
    edge = np.stack([step.params(None if t == 0 else x[:, :, t - 1].numpy()) for t in range(x.shape[-1])], -1)
    with torch.no_grad():
        ref = model.network(model.encode(x), torch.tensor([0, 1])).numpy()  # any length, not the crop's
    assert edge.shape == ref.shape and np.abs(edge - ref).max() <= TOL


def test_a_file_with_the_queues_inside_the_graph_is_refused_in_one_line(exported):
    run, path, model = exported
    edge = EdgeModel(path)
    del edge.metadata["queues"]  # what a file exported before the queues moved to the runtime lacks
    with pytest.raises(EdgeError, match="export the run again"):
        QueuedStep(edge, 1)


def test_edge_samples_are_reproducible_and_follow_the_conditionals(exported):
    run, path, model = exported
    edge = EdgeModel(path)
    a = sample_audio(edge, 0.01, n=2, seed=5)
    assert a.shape == (2, 1, 80) and np.array_equal(a, sample_audio(edge, 0.01, n=2, seed=5))
    assert not np.array_equal(a, sample_audio(edge, 0.01, n=2, seed=6))
    assert len(np.unique(a)) > 10
    cold = sample_audio(edge, 0.01, n=2, seed=5, temperature=1e-4, cls=1)  # near-greedy: the argmax of each step
    with torch.no_grad():
        logits = model.network(model.encode(torch.from_numpy(cold)), torch.tensor([1, 1]))
    assert np.array_equal(logits.argmax(1).numpy(), cold[:, 0])


@pytest.mark.parametrize("quantization, levels", [("mulaw8", 256), ("linear16", 65536)])
def test_edge_wav_equals_chainrule_wav_for_the_same_levels(quantization, levels):
    x = np.random.default_rng(0).integers(0, levels, (2, 1, 3000))
    x[0, 0, :levels] = np.arange(min(levels, 3000))  # every mu-law level
    ours, theirs = (soundfile.read(io.BytesIO(data), dtype="int16")
                    for data in (wav_bytes(x, quantization, RATE), chainrule_wav_bytes(torch.from_numpy(x),
                                                                                         quantization, RATE)))
    assert ours[1] == theirs[1] == RATE and np.array_equal(ours[0], theirs[0])


def test_edge_cli_writes_a_wav_and_never_imports_torch(exported, tmp_path):
    run, path, model = exported
    out = tmp_path / "x.wav"
    code = ("import sys\nfrom chainrule.edge.__main__ import main\n"
            f"rc = main(['sample', {str(path)!r}, '--seconds', '0.02', '-n', '2', '--seed', '4', '--out', "
            f"{str(out)!r}])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\nsys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "[]"
    wave, rate = soundfile.read(str(out), dtype="int16")
    assert rate == RATE and wave.shape == (2 * 160 + RATE // 4,)
    levels = sample_audio(EdgeModel(path), 0.02, n=2, seed=4)
    expected, _ = soundfile.read(io.BytesIO(chainrule_wav_bytes(torch.from_numpy(levels), "mulaw8", RATE)),
                                 dtype="int16")
    assert np.array_equal(wave, expected)


def test_bad_edge_options_and_unexportable_runs_fail_in_one_line(exported, tmp_path, capsys):
    run, path, model = exported
    edge = EdgeModel(path)
    for bad in (0, -1, math.nan, math.inf, 1e9, True):
        with pytest.raises(EdgeError, match="seconds"):
            sample_audio(edge, bad)
    with pytest.raises(EdgeError, match="class 2 out of range"):
        sample_audio(edge, 0.01, cls=2)
    assert edge_main(["sample", str(path), "--seconds", "0.01", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".wav or .npy" in err
    assert edge_main(["info", str(path)]) == 0
    assert "wavenet (audio, step graph)" in (info := capsys.readouterr().out) and "8000 Hz mulaw8" in info
    local = build_model("wavenet", (1, 64), 256, **{**model_class("wavenet", "audio").TINY, "local_channels": 3,
                                                   "local_hop": 4})
    with pytest.raises(ConfigError, match="locally conditioned"):
        export_model(local, tmp_path / "local.onnx")
    with pytest.raises(ConfigError, match="--max-context applies to text models"):
        export_model(model, tmp_path / "m.onnx", max_context=8)
    assert not (tmp_path / "local.onnx").exists() and not (tmp_path / "m.onnx").exists()
