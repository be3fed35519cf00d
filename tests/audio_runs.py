"""A tiny WaveNet audio run written directly to disk (random weights), for the serving and export tests."""

from __future__ import annotations

from pathlib import Path

import torch

from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.registry import build_model, model_class
from chainrule.runs import Run

RATE = 8000


def make_audio_run(path: Path, quantization: str = "mulaw8", num_classes: int = 0, seed: int = 3,
                   **options: int) -> Path:
    """A WaveNet run over 8 kHz audio (``mulaw8``: 256 levels, categorical; ``linear16``: logistic mixture)."""
    path.mkdir(parents=True)
    levels = 256 if quantization == "mulaw8" else 65536
    opts = {**model_class("wavenet", "audio").TINY, **options}
    torch.manual_seed(seed)
    model = build_model("wavenet", (1, 256), levels, num_classes=num_classes, **opts)
    with torch.no_grad():
        for p in model.parameters():  # larger than the initialisation, so samples have structure
            p.normal_(0.0, 0.4)
    spec = {"kind": "audio", "event_shape": [1, 256], "levels": levels, "num_classes": num_classes,
            "class_names": [f"speaker{i}" for i in range(num_classes)], "sample_rate": RATE,
            "quantization": quantization, "data": "test tones"}
    model_cfg = {"name": "wavenet", "conditional": num_classes > 0, **opts}
    Run(path=path, config={"spec": spec, "model": model_cfg}).save_config()
    save_weights(model, path / "best.safetensors")
    return path
