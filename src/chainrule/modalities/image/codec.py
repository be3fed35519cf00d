"""Image files as an image model's symbols and back, for lossless compression.

A PNG (or any file Pillow reads) or a folder of them (``.png``/``.jpg``/``.jpeg``, recursively) is coded pixel for
pixel; what comes back are PNG files with the **same pixels, mode and size** (not the same file bytes: PNG
encoders differ in filters and zlib settings). Modes ``1`` (bilevel), ``L`` (grey) and ``RGB`` are supported;
others (palette, alpha, 16-bit) are refused with a clear error rather than silently converted.

* Values: an 8-bit value ``v`` is the level ``round(v * (K - 1) / 255)`` of a ``K``-level run, the mapping the
  training data went through; an image that uses a value the run's levels cannot give back exactly (e.g. grey
  values under a binary run) is refused, naming the value.
* Channels: a grey image under a 3-channel run is coded as three equal channels; a colour image whose channels
  are all equal can be coded by a 1-channel run; each comes back in its own mode.
* Size: images are cut into tiles of the run's event shape (``H x W``); the padding beyond the right and bottom
  edges is 0, known to both sides and never coded. Tiles are coded ``batch`` at a time in lockstep.
* Class-conditional runs: each tile is coded under the class that gives it the highest likelihood, and the class
  is coded first (uniformly, ``log2(classes)`` bits per tile).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chainrule.core.compression.coder import Decoder, Encoder
from chainrule.core.compression.loop import decode_steps, encode_steps, progress_bar
from chainrule.core.compression.positions import PositionConditionals, coding_steps, events_from_steps
from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError, DataError
from chainrule.modalities.image.data.imagefolder import IMAGE_SUFFIXES

#: image modes coded losslessly: bilevel, grey, colour
MODES = ("1", "L", "RGB")


@dataclass(frozen=True)
class Picture:
    """One image: its name (relative to the folder compressed), mode and 8-bit pixels, ``(H, W)`` for modes ``1``
    (0 or 255) and ``L``, ``(H, W, 3)`` for ``RGB``."""

    name: str
    mode: str
    pixels: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow says it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def dims(self) -> int:
        return int(self.pixels.size)


@dataclass(frozen=True)
class Pictures:
    """What one ``.cr`` file of an image run holds: one image, or the images of a folder."""

    items: tuple[Picture, ...]
    folder: bool


def read_picture(path: Path, name: str) -> Picture:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if getattr(im, "n_frames", 1) > 1:
                raise DataError(f"{path}: an animation ({im.n_frames} frames); only single images are supported")
            if mode not in MODES:
                raise DataError(f"{path}: mode {mode} images are not supported (only {', '.join(MODES)}); convert it "
                                "first, e.g. to RGB or L")
            pixels = np.asarray(im.convert("L") if mode == "1" else im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return Picture(name=name, mode=mode, pixels=np.ascontiguousarray(pixels))


def picture_png(picture: Picture) -> bytes:
    """The picture as PNG file bytes, in its own mode."""
    import io

    from PIL import Image

    im = Image.fromarray(picture.pixels, "RGB" if picture.mode == "RGB" else "L")
    if picture.mode == "1":
        im = im.convert("1", dither=Image.Dither.NONE)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def to_levels(values: np.ndarray, levels: int, where: str) -> np.ndarray:
    """8-bit values -> the run's levels, ``round(v (K-1) / 255)``; :class:`DataError` unless exactly invertible."""
    k = levels - 1
    lv = (values.astype(np.int64) * (2 * k) + 255) // 510
    bad = to_values(lv, levels) != values
    if bad.any():
        v = int(values[bad].flat[0])
        raise DataError(f"{where}: pixel value {v} has no exact level among this run's {levels} levels, so it cannot "
                        "be coded losslessly; use a run trained on 256 levels")
    return lv


def to_values(lv: np.ndarray, levels: int) -> np.ndarray:
    """Levels -> 8-bit values, ``round(level * 255 / (K-1))``."""
    k = levels - 1
    return ((lv.astype(np.int64) * 510 + k) // (2 * k)).astype(np.uint8)


def tiles(planes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(C, h, w)`` -> tiles ``(T, C, height, width)`` in raster order of the tile grid (0 beyond the image) and the
    mask ``(T, height, width)`` of the pixels that belong to the image."""
    c, h, w = planes.shape
    th, tw = -(-h // height), -(-w // width)
    padded = np.zeros((c, th * height, tw * width), dtype=np.int64)
    padded[:, :h, :w] = planes
    known = np.zeros((th * height, tw * width), dtype=bool)
    known[:h, :w] = True
    events = padded.reshape(c, th, height, tw, width).transpose(1, 3, 0, 2, 4).reshape(-1, c, height, width)
    return events, known.reshape(th, height, tw, width).transpose(0, 2, 1, 3).reshape(-1, height, width)


def untile(events: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of :func:`tiles`: ``(T, C, height, width)`` -> ``(C, h, w)``."""
    _, c, height, width = events.shape
    th, tw = -(-h // height), -(-w // width)
    full = events.reshape(th, tw, c, height, width).transpose(2, 0, 3, 1, 4).reshape(c, th * height, tw * width)
    return full[:, :h, :w]


class ImageCodec:
    """Image files <-> an image model's levels (see the module docstring)."""

    kind = "image"

    def __init__(self, model: AutoregressiveModel, levels: int) -> None:
        if len(model.positions) != 2:
            raise ConfigError(f"{model.name}: image compression needs a model of (C, H, W) images, not "
                              f"{model.event_shape}")
        self.model, self.levels = model, int(levels)

    # -------------------------------------------------------------- files
    def read(self, path: Path) -> Pictures:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise DataError(f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
            return Pictures(tuple(read_picture(p, p.relative_to(path).as_posix()) for p in files), folder=True)
        if not path.is_file():
            raise DataError(f"{path}: no such file or folder")
        return Pictures((read_picture(path, path.name),), folder=False)

    def checksum(self, content: Pictures) -> bytes:
        """sha256 over every image's name, mode, size and pixels: what decompression promises to give back."""
        h = hashlib.sha256()
        for p in content.items:
            h.update(json.dumps([p.name, p.mode, p.size]).encode() + b"\0")
            h.update(p.pixels.tobytes())
        return h.digest()

    def units(self, content: Pictures) -> tuple[int, str]:
        """Sub-pixels (one per channel of each pixel): rates are bits per dimension, as evaluation reports."""
        return sum(p.dims for p in content.items), "dim"

    def output_names(self, metadata: dict[str, Any]) -> list[str]:
        return [png_name(p["name"]) for p in metadata["pictures"]]

    def write_plan(self, content: Pictures) -> list[tuple[str, bytes]]:
        return [(png_name(p.name), picture_png(p)) for p in content.items]

    # -------------------------------------------------------------- symbols
    def events(self, picture: Picture) -> tuple[np.ndarray, np.ndarray]:
        """The picture's tiles of levels ``(T, C, H, W)`` and their masks of real pixels ``(T, H, W)``."""
        c, height, width = self.model.event_shape
        planes = picture.pixels[None] if picture.pixels.ndim == 2 else picture.pixels.transpose(2, 0, 1)
        if planes.shape[0] == 1 and c == 3:
            planes = np.repeat(planes, 3, axis=0)
        elif planes.shape[0] == 3 and c == 1 and (planes == planes[:1]).all():
            planes = planes[:1]
        elif planes.shape[0] != c:
            raise DataError(f"{picture.name}: a colour image; this run models {c}-channel (grey) images")
        return tiles(to_levels(planes, self.levels, picture.name), height, width)

    def picture(self, name: str, mode: str, events: np.ndarray, size: tuple[int, int]) -> Picture:
        """Inverse of :meth:`events`."""
        planes = to_values(untile(events, size[1], size[0]), self.levels)
        if mode == "RGB":
            pixels = np.repeat(planes, 3, axis=0) if planes.shape[0] == 1 else planes
            pixels = pixels.transpose(1, 2, 0)
        else:
            pixels = planes[0]
        return Picture(name=name, mode=mode, pixels=np.ascontiguousarray(pixels))

    def tile_count(self, size: tuple[int, int]) -> int:
        _, height, width = self.model.event_shape
        return -(-size[1] // height) * -(-size[0] // width)

    # -------------------------------------------------------------- coding
    def encode(self, content: Pictures, encoder: Encoder, batch: int, progress: str | None = None) -> dict[str, Any]:
        parts = [self.events(p) for p in content.items]
        events = np.concatenate([e for e, _ in parts])
        known = np.concatenate([k for _, k in parts])
        with progress_bar(progress, self._steps(len(events), batch)) as bar:
            for start in range(0, len(events), batch):
                ev = torch.from_numpy(events[start:start + batch])
                cond = self._labels(ev)
                if cond is not None:
                    encoder.uniform(cond.numpy(), self.model.num_classes)
                symbols, active = coding_steps(self.model, ev, torch.from_numpy(known[start:start + batch]))
                encode_steps(encoder, PositionConditionals(self.model, len(ev), cond), symbols, active, bar)
        return {"codec": self.kind, "folder": content.folder, "batch": int(batch),
                "pictures": [{"name": p.name, "mode": p.mode, "size": list(p.size)} for p in content.items]}

    def decode(self, metadata: dict[str, Any], decoder: Decoder, progress: str | None = None) -> Pictures:
        batch, specs = int(metadata["batch"]), metadata["pictures"]
        known = np.concatenate([tiles(np.zeros((1, s["size"][1], s["size"][0]), dtype=np.int64),
                                      *self.model.event_shape[1:])[1] for s in specs])
        decoded = []
        with progress_bar(progress, self._steps(len(known), batch)) as bar:
            for start in range(0, len(known), batch):
                kn = torch.from_numpy(known[start:start + batch])
                cond = None
                if self.model.num_classes > 0:
                    cond = torch.from_numpy(decoder.uniform(len(kn), self.model.num_classes))
                _, active = coding_steps(self.model, torch.zeros(len(kn), *self.model.event_shape, dtype=torch.long),
                                         kn)
                symbols = decode_steps(decoder, PositionConditionals(self.model, len(kn), cond), active, bar)
                decoded.append(events_from_steps(self.model, symbols).numpy())
        events = np.concatenate(decoded)
        pictures, at = [], 0
        for s in specs:
            n = self.tile_count(tuple(s["size"]))
            pictures.append(self.picture(str(s["name"]), str(s["mode"]), events[at:at + n], tuple(s["size"])))
            at += n
        return Pictures(tuple(pictures), folder=bool(metadata["folder"]))

    def _steps(self, tiles_total: int, batch: int) -> int:
        return math.ceil(tiles_total / batch) * self.model.num_positions * self.model.channels

    def _labels(self, events: torch.Tensor) -> torch.Tensor | None:
        """For a class-conditional model, each tile's most likely class (lowest index among ties)."""
        k = self.model.num_classes
        if k == 0:
            return None
        scores = torch.stack([self.model.log_prob(events, torch.full((len(events),), c, dtype=torch.long))
                              for c in range(k)], dim=1)
        return scores.argmax(1)


def png_name(name: str) -> str:
    """Where an image comes back: its name, with ``.png`` appended unless it already ends so."""
    return name if name.lower().endswith(".png") else f"{name}.png"

