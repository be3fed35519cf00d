"""Audio through the CLI: train a tiny WaveNet on a folder the test writes, evaluate (bits per sample, split and
quantisation named), sample seconds of audio to a WAV; bad audio input fails in one line and writes nothing."""

from __future__ import annotations

import json

import soundfile
from audio_helpers import write_folder

from chainrule.cli import main

TINY = ["--set", "train.steps=3", "--set", "train.batch_size=4", "--set", "train.eval_every=3",
        "--set", "model.channels=4", "--set", "model.skip_channels=4", "--set", "model.layers_per_stack=2",
        "--set", "data.crop=128", "--set", "output.seconds=0.01"]


def test_train_eval_sample_an_audio_run(tmp_path, capsys):
    data = write_folder(tmp_path / "clips", files=3, seconds=0.3)
    run = tmp_path / "run"
    assert main(["train", f"audiofolder:{data}", "wavenet", "--run", str(run), *TINY]) == 0
    assert soundfile.info(str(run / "samples" / "final.wav")).samplerate == 8000
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["quantization"] == "mulaw8" and res["split"] == "test" and "8-bit mu-law" in res["data"]
    assert 0 < res["bits_per_sample"] < 9  # 8 bits is the uniform code over 256 levels; barely trained
    assert main(["eval", str(run)]) == 0
    assert "bits/sample (mulaw8, test split" in capsys.readouterr().out
    out = tmp_path / "x.wav"
    assert main(["sample", str(run), "--seconds", "0.02", "-n", "2", "--out", str(out)]) == 0
    wave, rate = soundfile.read(str(out))
    assert rate == 8000 and len(wave) == 2 * 160 + 2000  # two waveforms and a quarter second between them
    eager = tmp_path / "eager.wav"
    assert main(["sample", str(run), "--seconds", "0.02", "-n", "2", "--engine", "eager", "--out", str(eager)]) == 0
    assert eager.read_bytes() == out.read_bytes()  # the default (static) engine draws the eager step's audio
    capsys.readouterr()
    assert main(["sample", str(run), "--no-cache", "--engine", "static", "--out", str(tmp_path / "n.wav")]) == 1
    assert "naive generation" in capsys.readouterr().err and not (tmp_path / "n.wav").exists()


def test_sixteen_bit_run_uses_the_logistic_mixture(tmp_path, capsys):
    data = write_folder(tmp_path / "clips", files=2, seconds=0.3)
    run = tmp_path / "run16"
    assert main(["train", f"audiofolder:{data}", "wavenet", "--run", str(run), *TINY,
                 "--set", "data.quantization=linear16"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["quantization"] == "linear16" and "16-bit linear" in res["data"]
    assert res["bits_per_sample"] > 0
    from chainrule.runs import open_run

    assert open_run(run).load_model().head.name == "logistic_mixture"


def test_bad_audio_input_fails_in_one_line_and_writes_nothing(tmp_path, capsys):
    data = write_folder(tmp_path / "clips", files=2)
    (data / "bad.wav").write_bytes(b"not audio at all")
    run = tmp_path / "run"
    assert main(["train", f"audiofolder:{data}", "wavenet", "--run", str(run), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.wav" in err
    assert not run.exists()
    (tmp_path / "empty").mkdir()
    assert main(["train", f"audiofolder:{tmp_path / 'empty'}", "wavenet", "--run", str(run)]) == 1
    assert "no audio files" in capsys.readouterr().err and not run.exists()
    assert main(["sample", str(tmp_path / "nowhere"), "--seconds", "1"]) == 1
