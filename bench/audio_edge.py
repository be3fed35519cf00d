"""Audio generation speed of an exported WaveNet step in the torch-free edge runtime, beside PyTorch's queued step.

The same WaveNet (random weights: speed does not depend on them; 32 channels, 2 stacks, as bench/audio.py) is
exported with ``chainrule export`` (the Fast WaveNet step; the runtime keeps the queues as ring buffers) and
sampled at batch 1, one thread, by ``chainrule.edge.sample_audio`` (onnxruntime + numpy) and by
``chainrule.api.sample_audio`` (the model's queued ``step``), at receptive fields 256, 1024 and 4096.

    .venv/bin/python bench/audio_edge.py            # writes bench/results/audio_edge.json
    .venv/bin/python bench/audio_edge.py --quick    # tiny sizes: a check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from peers import PRESSURE_LIMIT, cpu_pressure, under_pressure  # noqa: E402  (the shared pressure helper of bench/peers.py)

from chainrule import api, cli  # noqa: E402
from chainrule.core.training.checkpoint import save_weights  # noqa: E402
from chainrule.edge import EdgeModel, sample_audio  # noqa: E402
from chainrule.modalities.registry import build_model  # noqa: E402
from chainrule.runs import Run, open_run  # noqa: E402

RESULTS = Path("bench/results")
RATE = 8000


def make_run(path: Path, layers: int, channels: int) -> Path:
    """A WaveNet run of ``2 x layers`` layers over 8 kHz mu-law audio (random weights)."""
    torch.manual_seed(0)
    opts = {"channels": channels, "skip_channels": 2 * channels, "stacks": 2, "layers_per_stack": layers}
    model = build_model("wavenet", (1, 1024), 256, modality="audio", **opts)
    spec = {"kind": "audio", "event_shape": [1, 1024], "levels": 256, "num_classes": 0, "sample_rate": RATE,
            "quantization": "mulaw8", "data": "speed only"}
    path.mkdir(parents=True)
    Run(path=path, config={"spec": spec, "model": {"name": "wavenet", **opts}}).save_config()
    save_weights(model, path / "best.safetensors")
    return path


def measure(root: Path, layers: int, channels: int, samples: int) -> dict:
    run = make_run(root / f"wavenet-{layers}", layers, channels)
    onnx_path = root / f"wavenet-{layers}.onnx"
    start = time.perf_counter()
    assert cli.main(["export", str(run), "--format", "onnx", "--out", str(onnx_path)]) == 0
    export_s = time.perf_counter() - start
    edge = EdgeModel(onnx_path, threads=1)
    pressure_before = cpu_pressure()
    seconds = samples / RATE
    sample_audio(edge, 16 / RATE, seed=0)  # warm-up
    start = time.perf_counter()
    sample_audio(edge, seconds, seed=0)
    edge_rate = samples / (time.perf_counter() - start)
    model = open_run(run).load_model()
    start = time.perf_counter()
    api.sample_audio(run, seconds, seed=0, model=model)
    torch_rate = samples / (time.perf_counter() - start)
    return {"receptive_field": model.receptive_field, "layers": 2 * layers, "export_s": round(export_s, 1),
            "pressure_before": pressure_before, "pressure_after": cpu_pressure(),
            "edge_samples_per_s": round(edge_rate, 1), "torch_queued_samples_per_s": round(torch_rate, 1),
            "edge_speedup": round(edge_rate / torch_rate, 2), "edge_real_time_factor_8khz": round(edge_rate / RATE, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: check that the benchmark runs")
    a = p.parse_args()
    torch.set_num_threads(1)
    configs = [(2, 4, 200)] if a.quick else [(7, 32, 4000), (9, 32, 4000), (11, 32, 4000)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(Path(tmp), layers, channels, samples) for layers, channels, samples in configs]
    for r in rows:
        print(r, flush=True)
    out = RESULTS / ("audio_edge-quick.json" if a.quick else "audio_edge.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    readings = [r[k] for r in rows for k in ("pressure_before", "pressure_after")]
    out.write_text(json.dumps({"command": " ".join(["python", "bench/audio_edge.py", *sys.argv[1:]]),
                               "batch": 1, "threads": 1, "pressure_limit": PRESSURE_LIMIT,
                               "measured_under_load": under_pressure(*readings), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
