"""Audio from an exported WaveNet step (``chainrule export`` of an audio run): queued sampling and WAV files.

The graph is one Fast WaveNet step (:mod:`chainrule.export.audio`) that takes each layer's oldest queued input and
returns its newest; the queues are ring buffers here, so a sample costs one run of the graph and a gather and a
scatter of one column per layer, whatever the receptive field. Levels become a 16-bit WAV as chainrule writes
them (``modalities/audio/wav.py``): mu-law levels are expanded with librosa's formula, and float samples become
PCM as libsndfile converts them (``floor(x * 32768)``, clipped), so the same levels give the same bytes.
The standard library's ``wave`` writes the file.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.core.limits import check_count, check_temperature
from chainrule.edge.errors import EdgeError
from chainrule.edge.heads import sample_position
from chainrule.edge.model import EdgeModel

#: longest waveform one call may ask for, as ``chainrule sample --seconds``
MAX_SECONDS = 600.0
MU = 255


class RingQueues:
    """Every layer's queue as a ring buffer in one ``(sum(d), B, R)`` array, layers first (layer ``i`` at the rows
    from ``d_0 + .. + d_{i-1}``, ``d_i`` of them, so each slot is one contiguous block): at position ``t`` layer
    ``i`` reads and then overwrites its slot ``offset_i + t % d_i``, which holds its input from ``d_i`` samples ago
    (zeros before that). Built from an exported step's metadata (``dilations`` and ``queues``)."""

    def __init__(self, metadata: dict[str, Any], n: int) -> None:
        spec = metadata["queues"]
        self.input, self.output = str(spec["input"]), str(spec["output"])
        self.dilations = np.asarray(metadata["dilations"], np.int64)
        self.offsets = np.cumsum(self.dilations) - self.dilations
        self.buffer = np.zeros((int(self.dilations.sum()), n, int(spec["shape"][2])), np.float32)

    def slots(self, position: int) -> np.ndarray:
        """Each layer's row at ``position``."""
        return self.offsets + position % self.dilations

    def oldest(self, slots: np.ndarray) -> np.ndarray:
        """``(L, B, R)``: each layer's input from ``d_i`` samples before the position of ``slots``."""
        return self.buffer[slots]

    def store(self, slots: np.ndarray, newest: np.ndarray) -> None:
        """Overwrite the rows :meth:`oldest` read with each layer's input now."""
        self.buffer[slots] = newest


class QueuedStep:
    """The exported step with its state: :meth:`params` feeds the previous sample and returns the conditionals
    of the next one, ``(B, P)``; the first call feeds silence, as the model's ``step(None)``. States named in the
    metadata's ``cache`` are fed back as they come out; the queues are kept in :class:`RingQueues`."""

    def __init__(self, model: EdgeModel, n: int, labels: np.ndarray | None = None) -> None:
        model.require("audio", "sample")
        self.model, self.n, self.position = model, n, 0
        self.state = {c["input"]: np.zeros([n if d == "batch" else int(d) for d in c["shape"]], np.float32)
                      for c in model.metadata["cache"]}
        self.fed_back = {c["output"]: c["input"] for c in model.metadata["cache"]}
        if "queues" not in model.metadata:
            raise EdgeError(f"{model.path}: exported by an older chainrule (queues inside the graph); export the run "
                            "again with 'chainrule export RUN'")
        self.queues = RingQueues(model.metadata, n)
        self.labels = labels
        self.channels = int(model.metadata["event_shape"][0])

    def params(self, previous: np.ndarray | None) -> np.ndarray:
        level = np.zeros((self.n, self.channels), np.int64) if previous is None else previous.reshape(self.n, -1)
        feeds = {"level": level, "position": np.array(self.position, np.int64), **self.state}
        if self.labels is not None:
            feeds["label"] = self.labels
        slots = self.queues.slots(self.position)
        feeds[self.queues.input] = self.queues.oldest(slots)
        out = dict(zip(self.model.metadata["outputs"], self.model.run(feeds), strict=True))
        self.state = {self.fed_back[name]: value for name, value in out.items() if name in self.fed_back}
        self.queues.store(slots, out[self.queues.output])
        self.position += 1
        return out["params"]


def _labels(model: EdgeModel, n: int, cls: int | None) -> np.ndarray | None:
    """Class labels as ``chainrule sample`` picks them: cycling through the classes unless one is given."""
    num_classes = int(model.metadata.get("num_classes", 0))
    if num_classes == 0:
        if cls is not None:
            raise EdgeError("this model is not class-conditional")
        return None
    if cls is not None and not 0 <= cls < num_classes:
        raise EdgeError(f"class {cls} out of range 0..{num_classes - 1}")
    return (np.arange(n) % num_classes if cls is None else np.full(n, cls)).astype(np.int64)


def audio_spec(model: EdgeModel) -> tuple[int, str]:
    """The run's sample rate and quantisation, from the metadata ``chainrule export`` embeds."""
    spec = model.metadata.get("spec") or {}
    if "sample_rate" not in spec or "quantization" not in spec:
        raise EdgeError(f"{model.path}: no sample rate or quantisation in the metadata; export it from its run "
                        "with 'chainrule export RUN'")
    return int(spec["sample_rate"]), str(spec["quantization"])


def sample_audio(model: EdgeModel, seconds: float = 1.0, n: int = 1, temperature: float = 1.0,
                 seed: int | None = 0, cls: int | None = None) -> np.ndarray:
    """``n`` waveforms of ``seconds`` as int64 levels ``(n, C, T)``, one graph run per sample."""
    model.require("audio", "sample")
    n = check_count(n, "the number of samples", EdgeError)
    temperature = check_temperature(temperature, EdgeError, greedy=False)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_SECONDS:
        raise EdgeError(f"seconds must be a number in (0, {MAX_SECONDS:g}]; got {seconds!r}")
    rate, _ = audio_spec(model)
    length = max(1, round(seconds * rate))
    step = QueuedStep(model, n, _labels(model, n, cls))
    channels, head = step.channels, model.metadata["head"]
    rng = np.random.default_rng(seed)
    x = np.zeros((n, channels, length), np.int64)
    previous = None
    for t in range(length):
        x[:, :, t] = sample_position(step.params(previous), channels, head, temperature, rng)
        previous = x[:, :, t]
    return x


def to_pcm(levels: np.ndarray, quantization: str) -> np.ndarray:
    """Levels -> 16-bit PCM, as ``Quantizer.to_wave`` followed by libsndfile's float-to-PCM conversion."""
    levels = np.asarray(levels, dtype=np.int64)
    if quantization == "mulaw8":
        x = (levels - 128) * 2.0 / (1 + MU)
        wave_ = (np.sign(x) / MU * (np.power(1.0 + MU, np.abs(x)) - 1)).astype(np.float32)
    elif quantization == "linear16":
        wave_ = ((levels - 32768) / 32768.0).astype(np.float32)
    else:
        raise EdgeError(f"unknown quantisation {quantization!r}; expected mulaw8 or linear16")
    return np.clip(np.floor(wave_.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")


def wav_bytes(levels: np.ndarray, quantization: str, rate: int) -> bytes:
    """Levels ``(n, 1, T)`` -> one mono 16-bit WAV; several waveforms a quarter second apart, as chainrule's."""
    rows = np.asarray(levels).reshape(-1, np.asarray(levels).shape[-1])
    gap = np.zeros(rate // 4, dtype="<i2")
    parts: list[Any] = []
    for i, row in enumerate(rows):
        parts += ([gap] if i else []) + [to_pcm(row, quantization)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(parts).tobytes())
    return buf.getvalue()


def save_audio(model: EdgeModel, levels: np.ndarray, out: str) -> Path:
    """Write levels to ``out``: ``.wav`` at the run's rate, or ``.npy`` (the levels)."""
    path = Path(out)
    if path.suffix.lower() == ".npy":
        np.save(path, levels)
    elif path.suffix.lower() == ".wav":
        rate, quantization = audio_spec(model)
        path.write_bytes(wav_bytes(levels, quantization, rate))
    else:
        raise EdgeError(f"{path}: audio output must end in .wav or .npy")
    return path
