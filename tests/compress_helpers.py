"""Tiny runs and files for the compression tests: text, image and count-series runs with random weights, built
without training so every registered model can be coded in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from chainrule import api
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.image.codec import Picture
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer
from chainrule.runs import Run

#: a char vocabulary that misses most of SAMPLE_TEXT's characters, so escapes are exercised
CHARS = "abcdehilnorstw ,.\n"
SAMPLE_TEXT = ("hello world, this is a test.\n" * 6).encode() + "wörld ☃ 𝄞 ünïcode\n".encode() + b"\xff\xfe\x80 raw\x00"
#: (label, channels, levels, head, PIL mode): the image kinds an image run codes
IMAGE_KINDS = [("binary", 1, 2, None, "1"), ("grey", 1, 256, None, "L"), ("rgb", 3, 256, "logistic_mixture", "RGB")]


# ----------------------------------------------------------------------------------------------- run helpers
def make_tokenizer(kind: str):
    if kind == "char":
        return CharTokenizer.fit(CHARS)
    if kind == "byte":
        return ByteTokenizer()
    return BPETokenizer.train([SAMPLE_TEXT.decode("utf-8", "replace") * 3], 280)


def write_run(path: Path, model, spec: dict, model_cfg: dict, tokenizer=None) -> Path:
    path.mkdir(parents=True)
    Run(path=path, config={"spec": spec, "model": model_cfg}).save_config()
    save_weights(model, path / "best.safetensors")
    if tokenizer is not None:
        tokenizer.save(path / api.TOKENIZER_FILE)
    return path


def text_run(path: Path, name: str, tokenizer_kind: str, max_len: int = 24, seed: int = 0) -> Path:
    """A tiny text run with random weights (sharpened a little, so probabilities are far from uniform)."""
    tok = make_tokenizer(tokenizer_kind)
    tiny = model_class(name, "text").TINY
    torch.manual_seed(seed)
    model = build_model(name, (1, max_len), tok.vocab_size, head="categorical", modality="text", **tiny)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    spec = {"kind": "text", "event_shape": [1, max_len], "levels": tok.vocab_size, "num_classes": 0, "data": "t"}
    return write_run(path, model, spec, {"name": name, "head": "categorical", **tiny}, tok)


def image_run(path: Path, name: str, channels: int, levels: int, head: str | None, num_classes: int = 0,
              size: int = 6, seed: int = 0) -> Path:
    tiny = model_class(name, "image").TINY
    torch.manual_seed(seed)
    model = build_model(name, (channels, size, size), levels, num_classes=num_classes, head=head, modality="image",
                        **tiny)
    spec = {"kind": "image", "event_shape": [channels, size, size], "levels": levels, "num_classes": num_classes,
            "class_names": [f"c{i}" for i in range(num_classes)], "data": "t"}
    cfg = {"name": name, **({"head": head} if head else {}), **tiny}
    return write_run(path, model, spec, cfg)


def random_picture(mode: str, height: int, width: int, seed: int, name: str = "x.png") -> Picture:
    rng = np.random.default_rng(seed)
    if mode == "1":
        pixels = (rng.random((height, width)) < 0.3).astype(np.uint8) * 255
    elif mode == "L":
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    else:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Picture(name=name, mode=mode, pixels=pixels)


def save_picture(picture: Picture, path: Path, fmt: str = "PNG") -> Path:
    im = Image.fromarray(picture.pixels, "RGB" if picture.mode == "RGB" else "L")
    if picture.mode == "1":
        im = im.convert("1", dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def read_back(path: Path) -> tuple[str, tuple[int, int], np.ndarray]:
    with Image.open(path) as im:
        return im.mode, im.size, np.asarray(im.convert("L") if im.mode == "1" else im)


def daily_counts(n: int = 40, seed: int = 0) -> np.ndarray:
    """A weekly-seasonal series of counts around 10."""
    rng = np.random.default_rng(seed)
    return np.round(np.abs(10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(size=n)))


def series_run(path: Path, name: str, head: str = "negative_binomial", seed: int = 0) -> Path:
    """A tiny forecaster run (daily data: calendar features) with random weights."""
    from chainrule.modalities.series import api as ts_api
    from chainrule.modalities.series.neural import NeuralForecaster
    from chainrule.modalities.series.table import SeriesSet

    values = daily_counts()
    times = pd.date_range("2021-03-01", periods=len(values))
    ss = SeriesSet(name="toy.csv", ids=["s0"], values=[values], times=[times], freq="D", season=7, horizon=7)
    f = NeuralForecaster(name, context=8, horizon=7, seed=seed, head=head, **model_class(name, "series").TINY)
    f.spec = f.make_spec(ss)
    f.model = f.fresh_model(f.spec)
    ts_api.save_forecast_run(path, f, ss, {"source": "toy.csv", "time": "date", "target": "y"})
    save_weights(f.model, path / "best.safetensors")
    return path


def values_text(values: list[int | None], header: str | None = "count", final_newline: bool = True) -> bytes:
    """A values file as the series codec reads it: one count per line, empty = missing."""
    lines = ([header] if header is not None else []) + ["" if v is None else str(v) for v in values]
    return ("\n".join(lines) + ("\n" if final_newline and lines else "")).encode()
