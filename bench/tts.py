"""Text-to-speech benchmark: mel-cepstral distortion (MCD) of held-out ``speech`` prompts against the recordings.

For every test prompt (57 held out by the ``speech`` split; those with a spoken transcript of at most 6 s):

- ``griffin_lim``: the prompt's own (ground-truth) log-mel frames, inverted by Griffin-Lim (32 iterations);
- ``tts``: the prompt's *text* (never seen in training) through the text-to-mel run, then Griffin-Lim;
- ``wavenet`` (with ``--vocoder RUN``, the first ``--vocoder-prompts``): the true frames vocoded by a WaveNet trained
  on ``speech-mel`` (queued sampling at temperature 1);
- ``mean_frame``: every frame set to the training mean (a flat average spectrum of the prompt's length), the
  floor a model that ignored the text entirely would sit near.

MCD: MFCCs 1..12 (librosa, 40 mel bands, 50 ms windows every 12.5 ms; the 0th, energy, is left out) of both
signals after trimming leading and trailing silence (40 dB below the peak, librosa.effects.trim), converted from
librosa's dB scale to natural-log amplitude (times ln(10)/20), aligned by dynamic time
warping (librosa.sequence.dtw, Euclidean cost), then ``MCD = 10/ln(10) * sqrt(2 * sum_d (c_d - c'_d)^2)`` dB
averaged over the warping path; reported as the mean over prompts. Lower is better; MCDs from MFCCs are not
directly comparable with SPTK mel-cepstra figures in papers. With a post-net, also the MCD of the decoder's own
frames before it (``tts_from_text_before_postnet``). ``detail``: the mean absolute change of the normalised log-mel
values from frame to frame (``time``) and from band to band (``bands``) of the recordings and of the synthesised
frames (and the decoder's, before the post-net): a smeared spectrogram sits well below the recordings. Also: the
text-to-mel model's teacher-forced test NLL in nats per frame (Laplace frames + Bernoulli stop flags), the share of
prompts whose stop flag fired, the duration ratio synthesised / recorded, seconds of compute per second of speech
(text -> frames -> waveform), and how well the model aligns the unseen texts
(:func:`chainrule.modalities.audio.alignment.alignment_figures`, mean over prompts, both when synthesising and under
teacher forcing): ``max_weight``, the mean over decoder steps of the largest attention weight (1 = one character at
a time, 1/characters = uniform); ``forward``, the share of steps whose most attended character does not move back;
``reaches_end``, the share of prompts whose last step attends to one of the last 3 characters.
Synthesis stops at the stop flag or at 1.5 x the recording's length +
0.5 s (``--window W``: with the forward attention constraint of ``Tacotron.synthesise``). The spectrogram and
alignment PNGs of the first two test prompts (and the spectrogram of their recordings) go to
bench/results/tts-unseen-{1,2}.{spectrogram,alignment,recorded}.png, with a post-net also ``decoder`` (its input)
(without ``--window``; named after ``--out``).

    .venv/bin/python bench/tts.py --run bench/runs/tts/speech-tacotron   # a trained run (chainrule tts-train)
    .venv/bin/python bench/tts.py --quick     # trains a tiny run for a few steps, 3 prompts: a check that it runs

Writes bench/results/tts.json (``--quick``: tts-quick.json; ``--window W``: tts-windowW.json). Speed figures
depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from pathlib import Path

import librosa
import numpy as np
import torch
from peers import cpu_pressure, under_pressure  # the shared pressure helper of bench/peers.py (bench/ is on the path)

from chainrule.core.training.checkpoint import load_weights
from chainrule.modalities.audio.alignment import alignment_figures
from chainrule.modalities.audio.data.prompts import prompt_dataset
from chainrule.modalities.audio.mel import MelFeatures
from chainrule.modalities.audio.tts_plots import save_alignment, save_spectrogram
from chainrule.tts import load_tts, load_vocoder, synthesise, train_tts, vocode_wavenet

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def mfcc_ln(wave: np.ndarray, mel: MelFeatures) -> np.ndarray:
    """MFCCs 1..12 in natural-log amplitude units, ``(frames, 12)``."""
    c = librosa.feature.mfcc(y=wave, sr=mel.rate, n_mfcc=13, n_fft=mel.n_fft, hop_length=mel.hop,
                             win_length=mel.win, n_mels=40, fmax=mel.rate / 2)
    return (c[1:] * math.log(10) / 20).T


def mcd(reference: np.ndarray, estimate: np.ndarray, mel: MelFeatures) -> float:
    """Mel-cepstral distortion in dB along the DTW path between the two signals' MFCCs, leading and trailing
    silence (40 dB below each signal's peak) trimmed from both first."""
    a = mfcc_ln(librosa.effects.trim(reference, top_db=40)[0], mel)
    b = mfcc_ln(librosa.effects.trim(estimate, top_db=40)[0], mel)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    diff = a[path[:, 0]] - b[path[:, 1]]
    return float(np.mean(10 / math.log(10) * np.sqrt(2 * (diff ** 2).sum(axis=1))))


def detail(frames: np.ndarray) -> dict[str, float]:
    """How much fine structure a normalised log-mel spectrogram ``(T, bands)`` holds: the mean absolute change from
    one frame to the next (``time``: onsets, bursts, gaps) and from one band to the next (``bands``: harmonics,
    formant edges). A smeared spectrogram scores low on both; the recordings set the level to reach."""
    return {"time": float(np.abs(np.diff(frames, axis=0)).mean()),
            "bands": float(np.abs(np.diff(frames, axis=1)).mean())}


def test_nll_per_frame(model: torch.nn.Module, data: object) -> float:
    total, frames = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data), 16):
            x, cond = data.get(torch.arange(start, min(start + 16, len(data))))
            total += float(-model.log_prob(x, cond).sum())
            frames += int(cond.observed.sum())
    return total / frames


def speed_note(start: float | None, end: float | None) -> str:
    """Whether the speeds were measured on a quiet machine, from the CPU pressure before and after the bench."""
    where = "under load" if under_pressure(start, end) else "on a quiet machine"
    return f"measured {where} (CPU pressure avg10 {start} / {end}%)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a text-to-speech run directory (default with --quick: a tiny run trained here)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--weights", type=Path, help="score these weights (e.g. RUN/checkpoints/step-N.safetensors) "
                                                 "instead of the run's best by validation NLL")
    p.add_argument("--prompts", type=int, default=0, help="test prompts to use (0 = all)")
    p.add_argument("--vocoder", help="a WaveNet run trained on speech-mel: also vocode the true mels with it")
    p.add_argument("--vocoder-prompts", type=int, default=3, help="prompts to vocode with the WaveNet (slow)")
    p.add_argument("--window", type=int, default=0, help="forward attention window at synthesis (0 = off)")
    p.add_argument("--out", type=Path, help="the JSON to write (default bench/results/tts.json, tts-windowW.json "
                                            "with --window); the PNGs are named after it")
    a = p.parse_args()
    pressure_start = cpu_pressure()
    torch.set_num_threads(1)
    run_dir = Path(a.run) if a.run else None
    if a.quick and run_dir is None:
        run_dir = HERE / "runs" / "tts" / "quick"
        shutil.rmtree(run_dir, ignore_errors=True)
        train_tts(overrides=["train.steps=2", "train.batch_size=4", "train.eval_every=2", "train.progress=false",
                             "model.embed=16", "model.encoder=16", "model.prenet=16", "model.attention_rnn=32",
                             "model.decoder_rnn=32", "model.postnet=16"], run_dir=run_dir)
    if run_dir is None:
        p.error("give --run RUN (or --quick)")
    run, model, mel = load_tts(run_dir)
    if a.weights:
        load_weights(model, a.weights)
    out = a.out or HERE / "results" / ("tts-quick.json" if a.quick else f"tts-window{a.window}.json" if a.window
                                       else "tts.json")
    test = prompt_dataset("test", mel, float(run.config["data"].get("max_seconds", 6.0)))
    count = a.prompts or (3 if a.quick else len(test))
    wavenet = load_vocoder(a.vocoder, mel) if a.vocoder else None
    rows = []
    for i, prompt in enumerate(test.prompts[:count]):
        torch.manual_seed(i)
        frames = mel.features(prompt.wave)
        gl = mel.griffin_lim(frames)
        flat = mel.griffin_lim(np.zeros_like(frames))  # normalised zeros = the training mean in every band
        t0 = time.perf_counter()
        said, _ = synthesise(model, prompt.text, 1.5 * len(prompt.wave) / mel.rate + 0.5, mel, window=a.window)
        spoken = mel.griffin_lim(said.frames.numpy())
        compute = time.perf_counter() - t0
        refined = model.postnet is not None
        x, cond = test.get(torch.tensor([i]))
        with torch.no_grad():
            forced = model.network(x, cond.labels)[2][0, : -(-x.shape[1] // model.reduction)].numpy()
        if i < 2 and not a.quick and not a.window:
            stem = out.parent / f"{out.stem}-unseen-{i + 1}"
            save_alignment(said.alignment.numpy(), prompt.text, stem.with_suffix(".alignment.png"))
            save_spectrogram(mel.denormalise(said.frames.numpy()), mel.rate, mel.hop,
                             stem.with_suffix(".spectrogram.png"))
            save_spectrogram(mel.denormalise(frames), mel.rate, mel.hop, stem.with_suffix(".recorded.png"))
            if refined:
                save_spectrogram(mel.denormalise(said.decoder_frames.numpy()), mel.rate, mel.hop,
                                 stem.with_suffix(".decoder.png"))
        rows.append({"name": prompt.name, "text": prompt.text, "seconds": len(prompt.wave) / mel.rate,
                     "mcd_griffin_lim": mcd(prompt.wave, gl, mel), "mcd_tts": mcd(prompt.wave, spoken, mel),
                     "mcd_mean_frame": mcd(prompt.wave, flat, mel), "stopped": said.stopped,
                     "duration_ratio": len(spoken) / len(prompt.wave),
                     "compute_seconds_per_second": compute / max(len(spoken) / mel.rate, 1e-9),
                     "alignment_synthesised": alignment_figures(said.alignment.numpy()),
                     "alignment_teacher_forced": alignment_figures(forced),
                     "detail_recorded": detail(frames), "detail_synthesised": detail(said.frames.numpy())})
        if refined:
            rows[-1]["mcd_tts_decoder"] = mcd(prompt.wave, mel.griffin_lim(said.decoder_frames.numpy()), mel)
            rows[-1]["detail_decoder"] = detail(said.decoder_frames.numpy())
        if wavenet is not None and i < a.vocoder_prompts:
            t0 = time.perf_counter()
            voiced = vocode_wavenet(wavenet, frames, mel, seed=i)
            rows[-1]["mcd_wavenet"] = mcd(prompt.wave, voiced, mel)
            rows[-1]["wavenet_compute_seconds_per_second"] = (time.perf_counter() - t0) / (len(voiced) / mel.rate)
        print(f"{prompt.name}: GL {rows[-1]['mcd_griffin_lim']:.2f}  TTS {rows[-1]['mcd_tts']:.2f}  "
              f"mean-frame {rows[-1]['mcd_mean_frame']:.2f} dB", flush=True)

    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if key in r]
        return float(np.mean(values)) if values else None

    summary = json.loads((run.path / "summary.json").read_text())
    pressure_end = cpu_pressure()
    result = {
        "run": run.path.resolve().relative_to(ROOT).as_posix() if run.path.resolve().is_relative_to(ROOT)
        else run.path.name,
        "weights": a.weights.name if a.weights else "best.safetensors",
        "model": run.config["model"], "train_steps": summary.get("steps"), "train_wall_seconds": summary.get(
            "wall_time"), "train_stop_reason": summary.get("reason"), "best_step": summary.get("best_step"),
        "parameters": summary.get("parameters"),
        "mel": {k: v for k, v in mel.to_dict().items() if k not in ("mean", "std")},
        "test_prompts": len(rows), "test_nll_nats_per_frame": test_nll_per_frame(model, test),
        "mcd_db": {"griffin_lim_from_true_mels": mean("mcd_griffin_lim"), "tts_from_text": mean("mcd_tts"),
                   "mean_frame_floor": mean("mcd_mean_frame"), "wavenet_from_true_mels": mean("mcd_wavenet"),
                   "tts_from_text_before_postnet": mean("mcd_tts_decoder")},
        "detail": {kind: {k: float(np.mean([r[f"detail_{kind}"][k] for r in rows])) for k in ("time", "bands")}
                   for kind in ("recorded", "synthesised", "decoder") if f"detail_{kind}" in rows[0]},
        "wavenet_vocoder": a.vocoder and Path(a.vocoder).name,
        "wavenet_prompts": sum("mcd_wavenet" in r for r in rows),
        "wavenet_compute_seconds_per_second_of_speech": mean("wavenet_compute_seconds_per_second"),
        "stop_flag_fired": float(np.mean([r["stopped"] for r in rows])),
        "synthesis_window": a.window,
        "alignment": {kind: {k: float(np.mean([r[f"alignment_{kind}"][k] for r in rows]))
                             for k in ("max_weight", "forward", "reaches_end", "diagonal")}
                      for kind in ("synthesised", "teacher_forced")},
        "duration_ratio": mean("duration_ratio"),
        "tts_compute_seconds_per_second_of_speech": mean("compute_seconds_per_second"),
        "cpu_pressure_start": pressure_start, "cpu_pressure_end": pressure_end,
        "speed_note": speed_note(pressure_start, pressure_end), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "prompts": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "prompts"}, indent=2))


if __name__ == "__main__":
    main()
