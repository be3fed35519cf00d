"""Audio benchmark: held-out likelihood on ``speech`` (8-bit mu-law) and Fast WaveNet generation speed.

Likelihood (bits per sample on the test split's fixed windows, ``data.crop`` samples each): a WaveNet, an LSTM over
samples (the ``rnn_lm`` language model over the 256 mu-law levels) and the mu-law histogram (train-split level
frequencies, add-one smoothed: what a memoryless code achieves), each network trained for the same number of steps
and batch on CPU; beside them lossless codecs on the same test audio: FLAC on the mu-law bytes (8-bit PCM), xz -9e on
the mu-law bytes, and FLAC on the mu-law samples expanded back to 16-bit PCM (16 bits per sample raw).

Generation: samples per second of queued generation (per-layer queues, O(layers) per sample) with each engine of
``modalities/audio/engine.py`` (eager = the model's own step, static = the fused fixed-shape step, compiled = that
through torch.compile) against naive (the network re-run on the receptive field for every sample), for WaveNets
with receptive fields 256, 1024 and 4096 (2 stacks of dilations 1..64, 1..256, 1..1024), 32 channels, batch 1, one
thread; the real-time factor is samples/s over 8,000 Hz. The compiled engine's compilation is timed apart (its
first call). Every engine draws the same samples for a seed (checked and recorded). Wall and process CPU time are
both reported (CPU time is the steadier on a busy machine) with the CPU pressure before and after each model.
Speed depends on the machine and its load; likelihood does not.

    .venv/bin/python bench/audio.py               # the stated budget
    .venv/bin/python bench/audio.py --speed-only  # generation speed only -> bench/results/audio-speed.json
    .venv/bin/python bench/audio.py --quick       # tiny sizes: a check that it runs (seconds)

Writes bench/results/audio.json (``--quick``: audio-quick.json; ``--speed-only``: audio-speed.json).
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from peers import cpu_pressure, under_pressure  # the shared pressure helper of bench/peers.py (bench/ is on the path)

from chainrule.core.evaluation.metrics import dataset_nll
from chainrule.core.training import TrainConfig, Trainer
from chainrule.modalities.audio.engine import ENGINES
from chainrule.modalities.audio.generation import generate, window_params
from chainrule.modalities.datasets import load_splits
from chainrule.modalities.registry import build_model

HERE = Path(__file__).resolve().parent


def histogram_bits(train_levels: np.ndarray, test_levels: np.ndarray, levels: int = 256) -> float:
    counts = np.bincount(train_levels, minlength=levels) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[test_levels].mean())


def codec_bits(test_levels: np.ndarray, test_wave16: np.ndarray, rate: int) -> dict[str, float]:
    n = len(test_levels)
    flac_mu, flac_16 = io.BytesIO(), io.BytesIO()
    soundfile.write(flac_mu, (test_levels.astype(np.int16) - 128).astype(np.int8).astype(np.int16) * 256, rate,
                    format="FLAC", subtype="PCM_S8")
    soundfile.write(flac_16, test_wave16, rate, format="FLAC", subtype="PCM_16")
    xz = lzma.compress(test_levels.astype(np.uint8).tobytes(), preset=9 | lzma.PRESET_EXTREME)
    return {"flac_mulaw_bytes": 8 * len(flac_mu.getvalue()) / n, "xz_mulaw_bytes": 8 * len(xz) / n,
            "flac_mulaw_expanded_to_16bit": 8 * len(flac_16.getvalue()) / n}


def train_and_score(name: str, modality: str, options: dict, splits: dict, steps: int, batch: int) -> dict:
    torch.manual_seed(0)
    train = splits["train"]
    model = build_model(name, train.event_shape, train.levels, modality=modality, **options)
    cfg = TrainConfig.from_dict({"steps": steps, "batch_size": batch, "lr": 2e-3, "warmup_steps": min(50, steps),
                                 "eval_every": steps, "checkpoint_every": 0, "log_every": max(1, steps // 5)})
    start = time.perf_counter()
    Trainer(model, train, splits["val"], cfg, None, resume=False).fit()
    seconds = time.perf_counter() - start
    model.eval()
    res = dataset_nll(model, splits["test"], batch_size=32)
    return {"bits_per_sample": res["bpd"], "params": sum(p.numel() for p in model.parameters()),
            "train_seconds_under_load": round(seconds, 1), "options": options}


def timed(fn: object, samples: int) -> tuple[dict, object]:
    """Samples per second of ``fn()`` by wall and by process CPU time, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"samples_per_s": round(samples / wall, 1), "cpu_samples_per_s": round(samples / max(cpu, 1e-9), 1)}, out


def speed(layers: int, channels: int, samples: dict[str, int], n_naive: int, engines: list[str]) -> dict:
    """One WaveNet: every engine's queued samples/s (``samples[engine]`` samples each), naive samples/s in the
    steady state (every window a full receptive field), speed-ups over naive and real-time factors."""
    torch.manual_seed(0)
    model = build_model("wavenet", (1, 1024), 256, modality="audio", channels=channels, skip_channels=channels,
                        stacks=2, layers_per_stack=layers).eval()
    rf = model.receptive_field
    row: dict = {"receptive_field": rf, "layers": 2 * layers, "pressure_before": cpu_pressure()}

    def run(engine: str, n: int) -> torch.Tensor:
        return generate(model, 1, n, engine=engine, generator=torch.Generator().manual_seed(0))

    draws = {}
    for engine in engines:
        if engine == "compiled":  # the first call compiles (once per process and shape): timed apart
            start = time.perf_counter()
            run(engine, 2)
            row["compile_seconds"] = round(time.perf_counter() - start, 1)
        row[engine], draws[engine] = timed(lambda e=engine, n=samples[engine]: run(e, n), samples[engine])
    x = torch.randint(0, 256, (1, 1, rf + n_naive))

    def naive() -> None:
        with torch.no_grad():
            for t in range(rf, rf + n_naive):
                model.head.sample(window_params(model, x, t).unsqueeze(-1))

    row["naive"], _ = timed(naive, n_naive)
    shortest = min(len(d[0, 0]) for d in draws.values())
    row["identical_samples"] = all(torch.equal(d[..., :shortest], draws[engines[0]][..., :shortest])
                                   for d in draws.values())
    for engine in engines:
        for clock, key in (("samples_per_s", "speedup_over_naive"), ("cpu_samples_per_s", "cpu_speedup_over_naive")):
            row[engine][key] = round(row[engine][clock] / row["naive"][clock], 1)
        row[engine]["real_time_factor_8khz"] = round(row[engine]["samples_per_s"] / 8000, 4)
    row["pressure_after"] = cpu_pressure()
    row["under_pressure"] = under_pressure(row["pressure_before"], row["pressure_after"])
    return row


def generation_speed(quick: bool, engines: list[str], warm_cache: bool = False) -> list[dict]:
    """The three receptive fields (one tiny model with ``quick``). Unless ``warm_cache``, inductor compiles into an
    empty cache directory, so ``compile_seconds`` is a first compilation, not a read of an earlier one."""
    samples = {"eager": 50, "static": 50, "compiled": 50} if quick else \
        {"eager": 1000, "static": 3000, "compiled": 8000}
    cold = None if warm_cache else tempfile.mkdtemp(prefix="inductor-")
    if cold:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold  # read when the first compilation starts
    try:
        return [speed(layers, 8 if quick else 32, samples, 5 if quick else 50, engines)
                for layers in ((7,) if quick else (7, 9, 11))]
    finally:
        if cold:
            shutil.rmtree(cold, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: check that the benchmark runs")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=1024)
    p.add_argument("--speed-only", action="store_true", help="only the generation speed (audio-speed.json)")
    p.add_argument("--engines", default=",".join(ENGINES), help="queued engines to time (default all)")
    p.add_argument("--warm-cache", action="store_true",
                   help="let the compiled engine reuse inductor's on-disk cache (default: compile from scratch)")
    a = p.parse_args()
    torch.set_num_threads(1)
    engines = a.engines.split(",")
    if a.speed_only:
        result = {"generation": generation_speed(a.quick, engines, a.warm_cache), "batch": 1, "threads": 1,
                  "machine": platform.processor() or platform.machine(), "torch": torch.__version__}
        write(result, "audio-speed-quick.json" if a.quick else "audio-speed.json")
        return
    steps, batch, crop = (4, 2, 256) if a.quick else (a.steps, a.batch, a.crop)
    splits = load_splits("speech", crop=crop)
    if a.quick:  # a few test windows only
        splits["test"]._n = splits["val"]._n = 8
    train_levels = splits["train"].levels_stream.numpy()
    test_levels = splits["test"].levels_stream.numpy()
    test_wave16 = np.round(splits["test"].quantizer.to_wave(test_levels) * 32767).astype(np.int16)
    wn = {"channels": 8, "skip_channels": 8, "stacks": 1, "layers_per_stack": 4} if a.quick else \
        {"channels": 32, "skip_channels": 64, "stacks": 2, "layers_per_stack": 8}
    lstm = {"cell": "lstm", "embed_dim": 8, "hidden_size": 8, "num_layers": 1} if a.quick else \
        {"cell": "lstm", "embed_dim": 32, "hidden_size": 128, "num_layers": 2}
    result = {
        "data": splits["test"].describe(), "quantization": "mulaw8", "split": "test",
        "budget": f"{steps} steps x batch {batch} x {crop} samples, AdamW lr 2e-3, 1 CPU thread",
        "likelihood_bits_per_sample": {
            "histogram": histogram_bits(train_levels, test_levels),
            "lstm_over_samples": train_and_score("rnn_lm", "text", lstm, splits, steps, batch),
            "wavenet": train_and_score("wavenet", "audio", wn, splits, steps, batch),
        },
        "codecs_bits_per_sample_whole_test_split": codec_bits(test_levels, test_wave16, 8000),
        "generation": generation_speed(a.quick, engines, a.warm_cache),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    write(result, "audio-quick.json" if a.quick else "audio.json")
    print(f"test windows scored: {math.floor(len(splits['test']))}")


def write(result: dict, name: str) -> None:
    out = HERE / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
