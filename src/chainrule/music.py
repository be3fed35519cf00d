"""Music runs: MIDI (plus a piano roll and, on request, a WAV) drawn from a trained run, and the latent
interpolation of a sequence VAE between two MIDI files.

A music run is a token model (a text language model or the sequence VAE) on a music vocabulary; its
``tokenizer.json`` turns tokens back into notes (:mod:`chainrule.modalities.music.tokenizer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import CheckpointError, ConfigError
from chainrule.core.limits import check_count, check_temperature
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.modalities.music.midi import render_wav, write_midi
from chainrule.modalities.music.pianoroll import save_piano_rolls
from chainrule.modalities.music.tokenizer import MusicTokenizer, load_music_tokenizer
from chainrule.runs import Run, open_run


def load_music_run(run: Run | str | Path, device: str | None = None
                   ) -> tuple[Run, AutoregressiveModel, MusicTokenizer]:
    """The run, its model (eval mode) and its music tokenizer; :class:`ConfigError` for another kind of run."""
    run = run if isinstance(run, Run) else open_run(run)
    if run.kind is not RunKind.MUSIC:
        raise ConfigError(f"{run.path}: not a music run (train one with e.g. 'chainrule train chorales transformer')")
    path = run.path / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{run.path}: music run without {TOKENIZER_FILE}")
    return run, run.load_model(device), load_music_tokenizer(path)


def draw_tokens(model: AutoregressiveModel, tokenizer: MusicTokenizer, n: int, temperature: float, seed: int
                ) -> torch.Tensor:
    """``n`` token windows ``(n, T)`` from the model; REMI windows start with the piece-start token."""
    check_count(n, "n", ConfigError)
    check_temperature(temperature, ConfigError)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    given = known = None
    if tokenizer.kind == "remi":
        given = torch.zeros(n, *model.event_shape, dtype=torch.long, device=model.device)
        given[..., 0] = tokenizer.bos_id
        known = torch.zeros(n, *model.positions, dtype=torch.bool, device=model.device)
        known[..., 0] = True
    x = model.sample(n, x_given=given, known=known, temperature=temperature, generator=gen)
    return x.reshape(n, -1)


def output_paths(out: str | Path, n: int) -> list[Path]:
    """``song.mid`` for one sample, ``song-1.mid .. song-N.mid`` for several."""
    out = Path(out)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise ConfigError(f"--out {out}: give a .mid file name")
    return [out] if n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, n + 1)]


def generate_music(run: Run | str | Path, out: str | Path, *, n: int = 1, temperature: float = 1.0, seed: int = 0,
                   wav: bool = False, loaded: tuple[Any, AutoregressiveModel, MusicTokenizer] | None = None
                   ) -> list[Path]:
    """Sample ``n`` pieces from a music run and write each as MIDI, a piano-roll PNG beside it and, with
    ``wav``, a WAV rendering; returns the files written."""
    paths = output_paths(out, n)
    _, model, tokenizer = loaded or load_music_run(run)
    tokens = draw_tokens(model, tokenizer, n, temperature, seed)
    written: list[Path] = []
    for i, path in enumerate(paths):
        piece = tokenizer.decode(tokens[i].cpu().numpy(), name=path.stem)
        written.append(write_midi(piece, path))
        written.append(save_piano_rolls([piece], path.with_suffix(".png"), [path.name]))
        if wav:
            written.append(render_wav(path, path.with_suffix(".wav")))
    return written


def piece_tokens(path: str | Path, tokenizer: MusicTokenizer, length: int) -> torch.Tensor:
    """The first ``length`` tokens of a MIDI file, padded with token 0 (a rest / padding), ``(1, 1, length)``."""
    from chainrule.modalities.music.data.sources import midi_to_piece

    ids = tokenizer.encode(midi_to_piece(Path(path)))[:length]
    x = torch.zeros(1, 1, length, dtype=torch.long)
    x[0, 0, :len(ids)] = torch.as_tensor(ids)
    return x


def slerp(a: torch.Tensor, b: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents ``a`` and ``b`` ``(D,)`` at each alpha: ``(len(alphas), D)``
    (linear when they are parallel); as MusicVAE does, since prior samples lie near a sphere."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < 1e-4:
        return a + alphas[:, None] * (b - a)
    return (torch.sin((1 - alphas) * omega)[:, None] * a + torch.sin(alphas * omega)[:, None] * b) / torch.sin(omega)


def notes_changed(a: Any, b: Any) -> float:
    """Fraction of notes (onset, pitch) in either piece that are not in both: 0 = the same notes."""
    from chainrule.modalities.music.data.piece import PITCH, START

    def notes(p: Any) -> set[tuple[int, int]]:
        return set(map(tuple, torch.as_tensor(p.notes[:, [START, PITCH]] * [4, 1]).round().long().tolist()))

    sa, sb = notes(a), notes(b)
    union = sa | sb
    return len(sa ^ sb) / len(union) if union else 0.0


def interpolate(run: Run | str | Path, first: str | Path, second: str | Path, out_dir: str | Path, *,
                steps: int = 7, temperature: float = 0.0, seed: int = 0,
                loaded: tuple[Any, AutoregressiveModel, MusicTokenizer] | None = None) -> dict[str, Any]:
    """Decode ``steps`` points on the path between the posterior means of two MIDI files (their first window)
    with a sequence-VAE run: ``step-1.mid .. step-N.mid`` and ``interpolation.png`` in ``out_dir``. Returns the
    files and the fraction of notes changed between consecutive steps."""
    check_count(steps, "steps", ConfigError)
    if steps < 2:
        raise ConfigError("--steps must be at least 2 (the two ends)")
    check_temperature(temperature, ConfigError)
    _, model, tokenizer = loaded or load_music_run(run)
    if not hasattr(model, "decode_latents") or not hasattr(model, "posterior"):  # a latent-variable model
        raise ConfigError(f"interpolate needs a sequence-VAE run (e.g. 'chainrule train chorales sequence_vae'); "
                          f"this run's model is {model.name!r}")
    length = model.event_shape[-1]
    with torch.no_grad():
        x = torch.cat([piece_tokens(first, tokenizer, length), piece_tokens(second, tokenizer, length)])
        mean, _ = model.posterior(x.to(model.device))
        z = slerp(mean[0], mean[1], torch.linspace(0, 1, steps, device=mean.device))
        gen = torch.Generator(device=model.device).manual_seed(seed)
        tokens = model.decode_latents(z, temperature=temperature, generator=gen).reshape(steps, -1).cpu()
    out = Path(out_dir)
    pieces = [tokenizer.decode(tokens[i].numpy(), name=f"step-{i + 1}") for i in range(steps)]
    files = [write_midi(p, out / f"{p.name}.mid") for p in pieces]
    titles = [f"step {i + 1}/{steps}" + (f"  ({Path(f).name})" if f else "")
              for i, f in enumerate([first] + [""] * (steps - 2) + [second])]
    files.append(save_piano_rolls(pieces, out / "interpolation.png", titles))
    changed = [notes_changed(a, b) for a, b in zip(pieces, pieces[1:], strict=False)]
    return {"files": files, "notes_changed": changed}
