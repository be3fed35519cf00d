"""Pieces out: standard MIDI files (pretty_midi) and WAV renderings (the ``fluidsynth`` program with the General
MIDI soundfont that pretty_midi ships, so rendering works offline)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from chainrule.core.errors import ConfigError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.modalities.music.data.piece import DURATION, PITCH, START, VOICE, Piece

DEFAULT_TEMPO = 90.0  # quarter notes per minute when writing (tempo is not modelled)
SAMPLE_RATE = 22050


def piece_to_midi(piece: Piece, tempo: float = DEFAULT_TEMPO, program: int = 19):  # noqa: ANN201
    """A ``pretty_midi.PrettyMIDI`` of the piece, one instrument per voice (General MIDI program 19: organ)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    seconds = 60.0 / tempo
    voices: dict[int, pretty_midi.Instrument] = {}
    for start, dur, pitch, voice in piece.notes[:, [START, DURATION, PITCH, VOICE]].tolist():
        inst = voices.setdefault(int(voice), pretty_midi.Instrument(program=program, name=f"voice {int(voice)}"))
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=int(pitch), start=start * seconds,
                                           end=(start + dur) * seconds))
    pm.instruments.extend(voices[v] for v in sorted(voices))
    return pm


def write_midi(piece: Piece, path: str | Path, tempo: float = DEFAULT_TEMPO) -> Path:
    """Write ``piece`` as a standard MIDI file (atomically)."""
    import io

    buf = io.BytesIO()
    piece_to_midi(piece, tempo).write(buf)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    return out


def soundfont() -> Path:
    """pretty_midi's bundled General MIDI soundfont (TimGM6mb)."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def render_wav(midi_path: str | Path, wav_path: str | Path, rate: int = SAMPLE_RATE) -> Path:
    """Render a MIDI file to WAV with the ``fluidsynth`` program; :class:`ConfigError` when it is missing."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise ConfigError("--wav needs the 'fluidsynth' program (Debian/Ubuntu: apt install fluidsynth)")
    out = Path(wav_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_wav = Path(tmp) / "render.wav"
        cmd = [exe, "-ni", "-q", "-g", "0.8", "-r", str(rate), "-F", str(tmp_wav), "-T", "wav", str(soundfont()),
               str(midi_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0 or not tmp_wav.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise ConfigError(f"fluidsynth could not render {midi_path}: {detail[-1] if detail else 'no output'}")
        tmp_wav.replace(out)
    return out
