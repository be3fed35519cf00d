"""Image sampling from an exported forward pass: one pass per position in the model's ordering.

The forward graph maps integer levels ``(B, C, *S)`` (and class labels) to head parameters ``(B, P, *S)``;
params at a position depend only on earlier positions, so filling positions in order is exact ancestral
sampling. Results are written as ``.npy`` (levels) or as a PNG grid (standard library ``zlib``).
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from chainrule.core.limits import check_count, check_temperature
from chainrule.edge.errors import EdgeError
from chainrule.edge.families import sample_from_sampler
from chainrule.edge.heads import sample_position
from chainrule.edge.model import EdgeModel


def sample_images(model: EdgeModel, n: int, temperature: float = 1.0, seed: int | None = 0,
                  cls: int | None = None) -> np.ndarray:
    """``n`` samples, int64 levels ``(n, C, *S)``; a VAE's or flow's exported sampler draws them in one pass."""
    model.require("image", "sample")
    if model.graph == "sampler":
        return sample_from_sampler(model, n, temperature, seed, cls)
    meta = model.metadata
    n = check_count(n, "the number of samples", EdgeError)
    temperature = check_temperature(temperature, EdgeError, greedy=False)
    shape = [int(s) for s in meta["event_shape"]]
    feeds = {"x": np.zeros([n, *shape], dtype=np.int64)}
    num_classes = int(meta.get("num_classes", 0))
    if num_classes > 0:
        labels = np.arange(n) % num_classes if cls is None else np.full(n, cls)
        if cls is not None and not 0 <= cls < num_classes:
            raise EdgeError(f"class {cls} out of range 0..{num_classes - 1}")
        feeds["cond"] = labels.astype(np.int64)
    elif cls is not None:
        raise EdgeError("this model is not class-conditional")
    rng = np.random.default_rng(seed)
    x = feeds["x"].reshape(n, shape[0], -1)
    for pos in meta["ordering"]:
        params = model.run(feeds)[0].reshape(n, -1, x.shape[2])
        x[:, :, pos] = sample_position(params[:, :, pos], shape[0], meta["head"], temperature, rng)
    return feeds["x"]


def grid(x: np.ndarray, levels: int) -> np.ndarray:
    """Levels ``(n, C, H, W)`` -> one uint8 image ``(rows*(H+1)-1, cols*(W+1)-1, C)`` with 1-pixel gaps."""
    n, c, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    img = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1, c), dtype=np.uint8)
    scaled = np.round(x.astype(np.float64) * (255.0 / max(levels - 1, 1))).astype(np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        img[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = scaled[i].transpose(1, 2, 0)
    return img


def write_png(path: Path, img: np.ndarray) -> None:
    """An 8-bit grey (1 channel) or RGB (3 channels) PNG."""
    h, w, c = img.shape
    if c not in (1, 3):
        raise EdgeError(f"PNG output needs 1 or 3 channels, got {c}; write .npy instead")
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def save_samples(x: np.ndarray, levels: int, out: str) -> Path:
    """Write samples to ``out``: ``.npy`` keeps the levels, ``.png`` draws a grid of 2-D images."""
    path = Path(out)
    if path.suffix.lower() == ".npy":
        np.save(path, x)
    elif path.suffix.lower() == ".png":
        if x.ndim != 4:
            raise EdgeError(f"PNG output needs images (C, H, W), got event shape {x.shape[1:]}; use .npy")
        write_png(path, grid(x, levels))
    else:
        raise EdgeError(f"{path}: output must end in .png or .npy")
    return path
