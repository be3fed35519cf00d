"""Model work for audio runs: waveforms drawn with the Fast WaveNet queues, returned as one 16-bit WAV.

The WAV is the bytes ``chainrule sample RUN --seconds S --out x.wav`` writes for the same seed: both draw through
:func:`chainrule.api.sample_audio` and encode with :func:`chainrule.modalities.audio.wav.wav_bytes`.
"""

from __future__ import annotations

from chainrule import api
from chainrule.modalities.audio.wav import wav_bytes
from chainrule.serve.registry import ServedModel

#: seconds per waveform when a request names none
DEFAULT_SECONDS = 1.0


def num_samples_of(served: ServedModel, seconds: float) -> int:
    """Audio samples in ``seconds`` at the run's rate (as :func:`chainrule.api.sample_audio` rounds them)."""
    return max(1, round(seconds * int(served.run.spec["sample_rate"])))


def sample_wav(served: ServedModel, n: int, seconds: float, cls: int | str | None, temperature: float,
               seed: int) -> bytes:
    """``n`` waveforms of ``seconds`` each, drawn with their own generator, as one WAV at the run's rate."""
    with served.guard():
        x = api.sample_audio(served.run, seconds, n=n, cls=cls, temperature=temperature, seed=seed,
                             model=served.model)
    spec = served.run.spec
    return wav_bytes(x, spec["quantization"], int(spec["sample_rate"]))
