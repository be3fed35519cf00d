"""Music data: tokenise -> detokenise on real chorales, the fixed split by piece, transposition, MIDI folders,
and one-line errors for damaged or missing MIDI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chainrule import cli
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.music.data.loaders import chorale_split, load_midifolder
from chainrule.modalities.music.data.piece import DURATION, PITCH, START, VOICE, Piece
from chainrule.modalities.music.data.sources import midi_to_piece, score_to_piece
from chainrule.modalities.music.midi import write_midi
from chainrule.modalities.music.tokenizer import MusicTokenizer, load_music_tokenizer

CHORALES = ["bach/bwv269", "bach/bwv347", "bach/bwv153.1"]  # a 3/4 piece with a pickup and two in 4/4
BLUPI = Path("/usr/share/planetblupi/music")  # Debian planetblupi-music-midi


@pytest.fixture(scope="module")
def chorales() -> list[Piece]:
    from music21 import corpus

    return [score_to_piece(corpus.parse(name), name) for name in CHORALES]


def note_set(piece: Piece, steps_per_quarter: int = 4) -> list[tuple[int, int]]:
    """(onset on the 16th grid, pitch) of every note, sorted."""
    grid = np.c_[np.rint(piece.notes[:, START] * steps_per_quarter), piece.notes[:, PITCH]].astype(int)
    return sorted(map(tuple, grid.tolist()))


def test_remi_round_trip_keeps_every_note(chorales):
    tok = MusicTokenizer("remi")
    for piece in chorales:
        assert len(piece.notes) > 100
        back = tok.decode(tok.encode(piece))
        assert note_set(back) == note_set(piece), piece.name
        onsets = np.sort(piece.notes[:, START])
        assert np.abs(np.sort(back.notes[:, START]) - onsets).max() <= 1 / 8  # within half a 16th
        order_in, order_out = np.lexsort((piece.notes[:, PITCH], piece.notes[:, START])), \
            np.lexsort((back.notes[:, PITCH], back.notes[:, START]))
        durations_in, durations_out = piece.notes[order_in, DURATION], back.notes[order_out, DURATION]
        assert np.abs(durations_out - durations_in).max() <= 0.25  # the duration grid (1/4 beat up to 4 beats)


def test_melody_round_trip_of_the_soprano(chorales):
    tok = MusicTokenizer("melody")
    for piece in chorales:
        soprano = Piece(piece.name, piece.notes[piece.notes[:, VOICE] == 0], piece.bar_quarters)
        ids = tok.encode(soprano)
        assert len(ids) % tok.bar_steps == 0 and ids.max() < tok.vocab_size
        back = tok.decode(ids)
        assert note_set(back) == note_set(soprano), piece.name
        np.testing.assert_allclose(back.notes[:, DURATION], soprano.notes[:, DURATION])


def test_a_pickup_is_shifted_onto_the_bar_grid(chorales):
    bwv269 = chorales[0]  # 3/4 with a one-beat pickup: the first note sits on beat 3 of bar 0
    assert bwv269.bar_quarters == 3.0
    assert bwv269.notes[:, START].min() == 2.0


def test_tokenizer_saved_and_loaded(tmp_path):
    for kind in ("remi", "melody"):
        tok = MusicTokenizer(kind)
        tok.save(tmp_path / f"{kind}.json")
        assert load_music_tokenizer(tmp_path / f"{kind}.json") == tok
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(Exception, match="bad.json"):
        load_music_tokenizer(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="encoding"):
        MusicTokenizer("abc")


def test_chorale_split_is_fixed_and_by_piece():
    a, b = chorale_split(371), chorale_split(371)
    assert {k: len(v) for k, v in a.items()} == {"train": 297, "val": 37, "test": 37}
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(set(np.concatenate(list(a.values())).tolist())) == 371


@pytest.fixture()
def midi_folder(tmp_path, chorales) -> Path:
    """Ten MIDI files written from real chorales (two transpositions of each of the three, plus originals)."""
    folder = tmp_path / "midi"
    for piece in chorales:
        for shift in (0, 2, 5):
            write_midi(piece.transposed(shift), folder / f"{Path(piece.name).name}{shift:+d}.mid")
    write_midi(chorales[0].transposed(-3), folder / "sub" / "extra.MID")
    return folder


def test_midifolder_splits_by_file_and_transposes_only_training(midi_folder):
    train = load_midifolder(str(midi_folder), "train", encoding="melody", context=32)
    val = load_midifolder(str(midi_folder), "val", encoding="melody", context=32)
    test = load_midifolder(str(midi_folder), "test", encoding="melody", context=32)
    assert (train.n_pieces, val.n_pieces, test.n_pieces) == (8, 1, 1)
    augmented = load_midifolder(str(midi_folder), "train", encoding="melody", context=32, transpose=2)
    assert augmented.n_pieces == 8 * 5
    assert load_midifolder(str(midi_folder), "val", encoding="melody", context=32, transpose=2).n_pieces == 1
    x, _ = train.get([0, 1])
    assert tuple(x.shape) == (2, 1, 32) and int(x.max()) < train.levels
    for epoch in range(5):  # melody windows start on a bar line in every epoch
        train.set_epoch(epoch)
        starts = train.starts(np.arange(len(train)))
        assert (starts % 16 == 0).all() and len(set((starts - np.arange(len(train)) * 32).tolist())) > 1
    with pytest.raises(ConfigError, match="context"):
        load_midifolder(str(midi_folder), "train", encoding="melody", context=40)
    with pytest.raises(ConfigError, match="transpose"):
        load_midifolder(str(midi_folder), "train", transpose=13)


def test_midi_written_reads_back_with_the_same_notes(chorales, tmp_path):
    piece = chorales[1]
    back = midi_to_piece(write_midi(piece, tmp_path / "x.mid"))
    assert note_set(back) == note_set(piece)


@pytest.mark.skipif(not BLUPI.is_dir(), reason="Debian package planetblupi-music-midi not installed")
def test_a_real_midi_collection_loads():
    train = load_midifolder(str(BLUPI), "train", encoding="melody", context=64)
    assert train.n_pieces == 8 and len(train) > 10 and train.levels == MusicTokenizer("melody").vocab_size


def test_damaged_midi_and_empty_folder_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02garbage")
    with pytest.raises(DataError, match="broken.mid"):
        midi_to_piece(bad / "broken.mid")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not music")
    for folder, needle in ((bad, "broken.mid"), (empty, "no MIDI files"), (tmp_path / "missing", "missing")):
        rc = cli.main(["train", f"midifolder:{folder}", "transformer", "--run", str(tmp_path / "run")])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert rc == 1 and len(err) == 1 and needle in err[0], err
        assert not (tmp_path / "run").exists()
