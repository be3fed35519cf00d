"""A music run end to end: train a text language model on MIDI tokens, then ``generate`` writes a playable
MIDI, its piano roll and a WAV; ``sample`` does the same; ``eval`` reports nats per event."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile

from chainrule import api, cli
from chainrule.core.runs.kind import RunKind
from chainrule.modalities.music.data.piece import Piece
from chainrule.modalities.music.data.sources import midi_to_piece
from chainrule.modalities.music.midi import write_midi

TINY = ["train.steps=2", "train.batch_size=4", "data.context=48", "model.embed_dim=16", "model.num_layers=1",
        "model.num_heads=2", "output.samples=1"]


@pytest.fixture(scope="module")
def music_run(tmp_path_factory) -> Path:
    from music21 import corpus

    from chainrule.modalities.music.data.sources import score_to_piece

    root = tmp_path_factory.mktemp("music")
    piece = score_to_piece(corpus.parse("bach/bwv347"), "bwv347")
    for shift in range(-2, 3):
        write_midi(piece.transposed(shift), root / "midi" / f"bwv347{shift:+d}.mid")
    run = api.train(f"midifolder:{root / 'midi'}", "transformer", overrides=TINY, run_dir=root / "run")
    return run.path


def test_the_run_is_a_music_run_of_a_text_model(music_run):
    run = api.open_run(music_run)
    assert run.kind is RunKind.MUSIC and run.kind.modality == "text"
    assert (music_run / "tokenizer.json").is_file()
    assert (music_run / "samples" / "final.mid").read_bytes()[:4] == b"MThd"  # a standard MIDI file
    assert (music_run / "samples" / "final.png").is_file()


def test_generate_writes_midi_piano_roll_and_wav(music_run, tmp_path, capsys):
    import pretty_midi

    if shutil.which("fluidsynth") is None:
        pytest.skip("the fluidsynth program is not installed")
    out = tmp_path / "song.mid"
    rc = cli.main(["generate", str(music_run), "--out", str(out), "--wav", "--seed", "1"])
    assert rc == 0, capsys.readouterr().err
    midi = pretty_midi.PrettyMIDI(str(out))  # a valid standard MIDI file
    assert midi.resolution > 0
    assert out.with_suffix(".png").stat().st_size > 1000
    wav, rate = soundfile.read(out.with_suffix(".wav"))
    notes = sum(len(i.notes) for i in midi.instruments)
    assert rate == 22050 and len(wav) > 0
    if notes:
        assert abs(wav).max() > 0  # notes were rendered as sound


def test_generated_notes_survive_the_midi_file(music_run, tmp_path):
    from chainrule.music import draw_tokens, load_music_run

    run, model, tok = load_music_run(music_run)
    tokens = draw_tokens(model, tok, 1, 1.0, seed=3)
    assert int(tokens[0, 0]) == tok.bos_id  # REMI windows start a piece
    piece: Piece = tok.decode(tokens[0].numpy())
    back = midi_to_piece(write_midi(piece, tmp_path / "x.mid")) if len(piece.notes) else piece
    assert len(back.notes) == len(piece.notes)


def test_sample_and_eval_and_wrong_kind_errors(music_run, tmp_path, capsys):
    rc = cli.main(["sample", str(music_run), "-n", "2", "--out", str(tmp_path / "s.mid")])
    assert rc == 0 and (tmp_path / "s-1.mid").is_file() and (tmp_path / "s-2.png").is_file()
    result = api.evaluate(music_run, out=tmp_path / "eval.json")
    assert result["nats_per_event"] > 0 and result["likelihood"] == "exact"
    capsys.readouterr()
    rc = cli.main(["generate", str(music_run), "--out", str(tmp_path / "song.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and ".mid" in err[0]
