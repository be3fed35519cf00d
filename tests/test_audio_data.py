"""Audio data: quantisation, resampling, deterministic crops inside recordings, fixed splits, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from audio_helpers import tone, write_folder

from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.audio.data.files import read_audio
from chainrule.modalities.audio.data.quantize import Quantizer
from chainrule.modalities.audio.data.sources import SPEECH_ROOTS
from chainrule.modalities.datasets import load_dataset, load_splits


@pytest.mark.parametrize("kind", ["mulaw8", "linear16"])
def test_quantisation_round_trips_and_stays_in_range(kind):
    q = Quantizer(kind)
    levels = np.arange(q.levels)
    assert np.array_equal(q.to_levels(q.to_wave(levels)), levels)
    edges = q.to_levels(np.array([-1.0, -0.999, 0.0, 0.999, 1.0, 5.0, -5.0]))
    assert edges.min() >= 0 and edges[4] == edges[5] == q.levels - 1 and edges[-1] == 0  # +1: the top, no wrap


def test_mulaw_spends_levels_on_quiet_sounds():
    q = Quantizer("mulaw8")
    quiet = q.to_levels(np.linspace(-0.01, 0.01, 1000))
    assert len(np.unique(quiet)) > 20  # linear 8-bit would give about 3 levels here


def test_resampling_keeps_the_pitch(tmp_path):
    soundfile.write(str(tmp_path / "a.wav"), tone(440.0, 0.5, 16000), 16000, subtype="PCM_16")
    wave = read_audio(tmp_path / "a.wav", 8000)
    assert len(wave) == 4000
    peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 8000 / len(wave)
    assert abs(peak_hz - 440.0) < 5.0


def test_folder_splits_levels_and_classes(tmp_path):
    root = write_folder(tmp_path / "a", files=12, classes=True)
    splits = load_splits(f"audiofolder:{root}", crop=256)
    assert {k: len(v.segments) for k, v in splits.items()} == {"train": 10, "val": 1, "test": 1}
    train = splits["train"]
    assert train.event_shape == (1, 256) and train.levels == 256 and train.class_names == ["high", "low"]
    x, y = train.get(torch.arange(len(train)))
    assert x.shape == (len(train), 1, 256) and 0 <= int(x.min()) and int(x.max()) < 256
    assert y is not None and set(y.tolist()) == {0, 1}
    assert "8-bit mu-law" in train.describe()


def test_crops_are_deterministic_per_epoch_and_inside_one_recording(tmp_path):
    root = write_folder(tmp_path / "a", files=3, seconds=0.2)
    a = load_dataset(f"audiofolder:{root}", "train", crop=300)
    b = load_dataset(f"audiofolder:{root}", "train", crop=300)
    idx = torch.arange(len(a))
    a.set_epoch(3), b.set_epoch(3)
    assert torch.equal(a.get(idx)[0], b.get(idx)[0])  # a resumed run sees the same audio
    first = a.get(idx)[0]
    a.set_epoch(4)
    assert not torch.equal(a.get(idx)[0], first)  # and each epoch new crops
    bounds = [(int(o), int(o + n)) for o, n, _ in a.segments]
    starts = a._starts.tolist()
    assert all(any(lo <= s and s + 300 <= hi for lo, hi in bounds) for s in starts)


def test_held_out_windows_are_fixed_and_cover_each_recording(tmp_path):
    root = write_folder(tmp_path / "a", files=2, seconds=0.5)
    val = load_dataset(f"audiofolder:{root}", "val", crop=100)
    assert len(val) == 2 * (400 // 100)  # by time: each file's 80..90% is 400 samples -> 4 windows of 100
    x1, _ = val.get(torch.arange(len(val)))
    for rec, (offset, _length, _) in enumerate(val.segments):  # consecutive windows tile each recording from its start
        assert torch.equal(x1[4 * rec:4 * rec + 4].flatten(), val.levels_stream[offset:offset + 400].long())
    val.set_epoch(7)
    assert torch.equal(val.get(torch.arange(len(val)))[0], x1)


def _one_line(err: Exception, *names: str) -> None:
    msg = str(err)
    assert "\n" not in msg and all(n in msg for n in names), msg


def test_bad_audio_input_is_one_line_naming_the_problem(tmp_path):
    root = write_folder(tmp_path / "a", files=2)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(DataError) as e:
        load_dataset(f"audiofolder:{root}", "train")
    _one_line(e.value, "broken.wav")

    fine = write_folder(tmp_path / "b", files=2)
    with pytest.raises(DataError) as e:
        load_dataset(f"audiofolder:{fine}", "train", rate=16000)
    _one_line(e.value, "clip0.wav", "8000 Hz")
    with pytest.raises(ConfigError) as e:
        load_dataset(f"audiofolder:{fine}", "train", rate=0)
    _one_line(e.value, "rate")

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load_dataset(f"audiofolder:{tmp_path / 'empty'}", "train")
    _one_line(e.value, "empty", "no audio files")

    (fine / "transcripts.txt").write_text("clip0: hello\nclip9: a prompt with no recording\n")
    with pytest.raises(DataError) as e:
        load_dataset(f"audiofolder:{fine}", "train")
    _one_line(e.value, "transcripts.txt:2", "clip9")


def test_transcripts_are_kept_by_recording(tmp_path):
    root = write_folder(tmp_path / "a", files=2)
    (root / "transcripts.txt").write_text("; comment\nclip0: hello there\nclip1: goodbye\n")
    train = load_dataset(f"audiofolder:{root}", "train", crop=256)
    assert train.transcripts == {"clip0": "hello there", "clip1": "goodbye"}


@pytest.mark.skipif(not any(Path(p).is_dir() for p in SPEECH_ROOTS),
                    reason="Debian package asterisk-core-sounds-en-wav is not installed")
def test_speech_split_is_by_prompt():
    from chainrule.modalities.audio.data.sources import load_speech

    splits = {s: load_speech(s) for s in ("train", "val", "test")}
    counts = {s: len(d.segments) for s, d in splits.items()}
    assert counts == {"train": 483, "val": 28, "test": 57}
    streams = {s: d.levels_stream for s, d in splits.items()}
    assert sum(len(s) for s in streams.values()) == sum(int(d.segments[:, 1].sum()) for d in splits.values())
    assert 20 < splits["train"].minutes < 23 and 1 < splits["test"].minutes < 3
