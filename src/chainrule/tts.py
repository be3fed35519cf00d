"""Text-to-speech: train the Tacotron-style text-to-mel model on ``speech`` and speak with it.

A TTS run is an ordinary run directory (``spec.kind: tts``) trained by the one :class:`Trainer`: the model is not
in the model registry because its data are (text, frames) pairs rather than a fixed-shape event, so the generic
chain-rule tests over fixed events do not apply to it. The run's spec holds the mel analysis with the training
split's statistics, so synthesis undoes exactly the normalisation training used. Vocoders: Griffin-Lim, or a WaveNet
run trained on ``speech-mel`` (locally conditioned on the frames).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.core.errors import CheckpointError, ConfigError, InputError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.core.runs.config import resolve_config
from chainrule.core.runs.kind import RunKind
from chainrule.core.runs.run import Run, check_new_run_dir, default_run_dir, open_run
from chainrule.modalities.audio.data.libs import audio_library
from chainrule.modalities.audio.data.prompts import ALPHABET, encode_text, fitted_mel, prompt_dataset
from chainrule.modalities.audio.mel import MelFeatures
from chainrule.modalities.audio.models.tacotron import Synthesis, Tacotron
from chainrule.modalities.audio.tts_plots import save_alignment, save_spectrogram

log = logging.getLogger(__name__)

MEL_KEYS = ("rate", "n_mels", "hop", "win", "n_fft")
DEFAULTS: dict[str, Any] = {
    "data": {"name": "speech", "max_seconds": 6.0, "rate": 8000, "n_mels": 40, "hop": 100, "win": 400,
             "n_fft": 512},
    "model": {"name": "tacotron", "reduction": 5, "guided_attention": 1.0, "stop_weight": 5.0, "postnet": 256,
              "embed": 128, "encoder": 128, "prenet": 128, "attention_rnn": 256, "decoder_rnn": 256,
              "attention": 128, "location_filters": 32, "location_kernel": 31},
    # final weights: the validation NLL is teacher-forced and stops improving long before free-running synthesis
    # does (bench/tts.py: MCD 30.3 dB at the best-validation step 1,600 against 28.3 at step 3,400)
    "train": {"steps": 3400, "batch_size": 16, "lr": 2e-3, "warmup_steps": 50, "eval_every": 200,
              "eval_batch_size": 32, "checkpoint_every": 200, "log_every": 10, "keep_weights": "final"},
    "output": {},
}


def train_tts(config_file: str | Path | None = None, overrides: Iterable[str] = (),
              run_dir: str | Path | None = None) -> Run:
    """Fit mel statistics on the training prompts, then train the text-to-mel model into a run directory."""
    from chainrule.core.training import TrainConfig, Trainer

    cfg = resolve_config(DEFAULTS, config_file, overrides=overrides)
    data, model_opts = dict(cfg["data"]), dict(cfg["model"])
    if data.pop("name") != "speech" or model_opts.pop("name") != "tacotron":
        raise ConfigError("text-to-speech trains model 'tacotron' on dataset 'speech' only")
    max_seconds, path = float(data.pop("max_seconds")), data.pop("path", None)
    unknown = sorted(set(data) - set(MEL_KEYS))
    if unknown:
        raise ConfigError(f"unknown data option {unknown[0]!r} for text-to-speech; valid: max_seconds, path, "
                          f"{', '.join(MEL_KEYS)}")
    mel = fitted_mel(MelFeatures(**{k: int(v) for k, v in data.items()}), max_seconds, path)
    splits = {s: prompt_dataset(s, mel, max_seconds, path) for s in ("train", "val")}
    model = _build(mel, model_opts)
    run = new_tts_run(Path(run_dir) if run_dir else default_run_dir("speech", "tacotron"), cfg, mel,
                      {"train": splits["train"].describe(), "val": splits["val"].describe()})
    Trainer(model, splits["train"], splits["val"], TrainConfig.from_dict(cfg["train"]), run.path).fit()
    return run


def new_tts_run(path: Path, cfg: dict[str, Any], mel: MelFeatures, facts: dict[str, str] | None = None) -> Run:
    """Create the run directory and write its config; ``spec.levels`` is the size of the character vocabulary."""
    check_new_run_dir(path)
    run = Run(path, dict(cfg))
    run.config["spec"] = {"kind": RunKind.TTS.value, "data": "speech", "event_shape": [1, mel.n_mels],
                          "levels": len(ALPHABET) + 2, "alphabet": ALPHABET, "mel": mel.to_dict(), **(facts or {})}
    path.mkdir(parents=True, exist_ok=True)
    run.save_config()
    return run


def load_tts(run_dir: str | Path) -> tuple[Run, Tacotron, MelFeatures]:
    """A TTS run's model (eval mode, the weights its training kept: the final ones by default) and its mel
    analysis."""
    from chainrule.core.training.checkpoint import load_weights

    run = open_run(run_dir)
    if run.kind is not RunKind.TTS:
        raise CheckpointError(f"{run.path}: a {run.kind} run, not a text-to-speech run (train one with "
                              "'chainrule tts-train')")
    mel = MelFeatures(**run.spec["mel"])
    opts = {k: v for k, v in run.config["model"].items() if k != "name"}
    model = _build(mel, opts)
    load_weights(model, run.weights_path())
    return run, model.eval(), mel


def synthesise(model: Tacotron, text: str, max_seconds: float, mel: MelFeatures,
               window: int = 0) -> tuple[Synthesis, str]:
    """Frames for ``text``; characters outside the alphabet are dropped with a warning (returned too).
    ``window > 0``: the forward attention constraint of :meth:`Tacotron.synthesise`."""
    ids, dropped = encode_text(text)
    if dropped:
        log.warning("dropped characters the model cannot read: %r", dropped)
    if len(ids) < 2:
        raise InputError(f"text {text!r:.40}: nothing left to say after dropping characters outside "
                         f"{ALPHABET!r}")
    if not 0 < max_seconds <= 60:
        raise ConfigError(f"--max-seconds must be in (0, 60]; got {max_seconds}")
    steps = max(1, int(max_seconds * mel.rate / mel.hop / model.reduction))
    return model.synthesise(torch.tensor(ids), max_steps=steps, window=window), dropped


def load_vocoder(run_dir: str | Path, mel: MelFeatures) -> tuple[Any, MelFeatures, str]:
    """A WaveNet trained on ``speech-mel`` whose frames match ``mel``: (model, its mel analysis, quantisation)."""
    from chainrule.runs import open_run as open_model_run

    run = open_model_run(run_dir)
    if run.kind is not RunKind.AUDIO or "mel" not in run.spec:
        raise ConfigError(f"--vocoder {run.path}: not a WaveNet trained on speech-mel (its spec has no mel frames)")
    theirs = MelFeatures(**run.spec["mel"])
    if any(getattr(theirs, k) != getattr(mel, k) for k in MEL_KEYS):
        raise ConfigError(f"--vocoder {run.path}: its mel analysis {[getattr(theirs, k) for k in MEL_KEYS]} "
                          f"differs from the text-to-speech run's {[getattr(mel, k) for k in MEL_KEYS]} "
                          f"({', '.join(MEL_KEYS)})")
    return run.load_model(), theirs, str(run.spec["quantization"])


def vocode_wavenet(vocoder: tuple[Any, MelFeatures, str], frames: np.ndarray, mel: MelFeatures,
                   seed: int = 0) -> np.ndarray:
    """Frames normalised by ``mel`` -> samples, drawn from the WaveNet locally conditioned on them (queued)."""
    from chainrule.core.contract import Condition
    from chainrule.modalities.audio.data.quantize import Quantizer
    from chainrule.modalities.audio.generation import generate

    model, theirs, quantization = vocoder
    local = torch.from_numpy(theirs.normalise(mel.denormalise(frames)))[None].to(model.device)
    levels = generate(model, 1, len(frames) * mel.hop, cond=Condition(time_features=local),
                      generator=torch.Generator(device=model.device).manual_seed(seed))
    return Quantizer(quantization).to_wave(levels[0, 0].cpu().numpy()).astype(np.float32)


def speak(run_dir: str | Path, text: str, out: str | Path, max_seconds: float = 10.0, seed: int = 0,
          griffin_lim_iters: int = 32, vocoder: str | Path | None = None, window: int = 0) -> dict[str, Any]:
    """Write ``out`` (16-bit WAV at the run's rate) with ``OUT.alignment.png`` and ``OUT.spectrogram.png``;
    the vocoder is Griffin-Lim, or the WaveNet run ``vocoder`` (trained on ``speech-mel``); ``window > 0``: the
    forward attention constraint of :meth:`Tacotron.synthesise`."""
    out = Path(out)
    if out.suffix.lower() != ".wav":
        raise ConfigError(f"--out {out}: must name a .wav file")
    _, model, mel = load_tts(run_dir)
    wavenet = load_vocoder(vocoder, mel) if vocoder else None
    torch.manual_seed(seed)  # the prenet's dropout stays on at synthesis
    t0 = time.perf_counter()
    result, dropped = synthesise(model, text, max_seconds, mel, window)
    frames = result.frames.numpy()
    wave = (vocode_wavenet(wavenet, frames, mel, seed) if wavenet else
            mel.griffin_lim(frames, n_iter=griffin_lim_iters, seed=seed))
    compute = time.perf_counter() - t0
    buf = io.BytesIO()
    audio_library("soundfile").write(buf, wave, mel.rate, subtype="PCM_16", format="WAV")
    atomic_write_bytes(out, buf.getvalue())
    alignment = save_alignment(result.alignment.numpy(), text, out.with_suffix(".alignment.png"))
    spectrogram = save_spectrogram(mel.denormalise(frames), mel.rate, mel.hop, out.with_suffix(".spectrogram.png"))
    seconds = len(wave) / mel.rate
    return {"wav": out, "alignment": alignment, "spectrogram": spectrogram, "seconds": seconds,
            "stopped": result.stopped, "dropped": dropped, "compute_per_second": compute / max(seconds, 1e-9)}


def _build(mel: MelFeatures, options: dict[str, Any]) -> Tacotron:
    try:
        return Tacotron(mel.n_mels, len(ALPHABET) + 2, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model 'tacotron' with options {options}: {e}") from None

