"""Image files out: sample grids as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from chainrule.core.runs.atomic import atomic_write


def to_uint8(x: Tensor, levels: int) -> np.ndarray:
    """Levels ``(N, C, H, W)`` -> uint8 ``(N, H, W, C)`` scaled to 0..255."""
    arr = x.detach().cpu().double().numpy() * (255.0 / max(levels - 1, 1))
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(x: Tensor, levels: int, nrow: int | None = None, pad: int = 1, scale: int = 1) -> Image.Image:
    """Tile images ``(N, C, H, W)`` (integer levels) into one PIL image, optionally upscaled."""
    imgs = to_uint8(x, levels)
    n, h, w, c = imgs.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 128, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = imgs[i]
    img = Image.fromarray(grid[..., 0] if c == 1 else grid, mode="L" if c == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_grid(x: Tensor, levels: int, path: str | Path, nrow: int | None = None, scale: int | None = None) -> Path:
    """Write a PNG sample grid atomically; small images are upscaled so they are visible."""
    path = Path(path)
    if scale is None:
        scale = max(1, 96 // max(x.shape[-1], 1)) if x.shape[-1] < 32 else 1
        scale = min(scale, 8)
    img = make_grid(x, levels, nrow=nrow, scale=scale)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
    return path
