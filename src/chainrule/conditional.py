"""Super-resolution and colorization with a run trained on ``upscale:SPEC`` or ``colorize:SPEC`` data.

A picture is either the *original* (the run's full size; for colorization in colour): its condition is derived
exactly as in training and the original is shown beside the samples; or the *input* itself (for upscaling the
low-resolution picture, for colorization a grey one), with no original to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError, DataError
from chainrule.core.limits import check_count, check_temperature
from chainrule.modalities.image.codec import read_picture
from chainrule.modalities.image.conditioning import ImageTask, task_from_spec
from chainrule.modalities.image.grids import save_grid
from chainrule.runs import Run, open_run

#: display levels of the side-by-side PNG
SHOWN = 256


@dataclass(frozen=True)
class Result:
    """The written PNG, the samples (levels ``(n, C, H, W)``) and whether the original was known."""

    path: Path
    samples: Tensor
    original_known: bool


def _intensities(path: Path, channels: int) -> Tensor:
    """A picture as intensities ``(C, H, W)`` in [0, 1], ``C`` = 1 (grey) or 3 (colour) as stored."""
    pixels = read_picture(path, path.name).pixels
    pixels = pixels[..., :3] if pixels.ndim == 3 else pixels[..., None]
    if channels == 1 and pixels.shape[-1] == 3:
        pixels = pixels.mean(-1, keepdims=True)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float() / 255


def condition_for(task: ImageTask, picture: Tensor, event_shape: tuple[int, ...], levels: int,
                  where: str) -> tuple[Tensor, Tensor | None]:
    """(conditioning image ``(C, H, W)`` in [-1, 1], original levels or ``None``) for a picture of intensities."""
    c, h, w = event_shape
    size = tuple(picture.shape[1:])
    colour = picture.shape[0] == 3
    if size == (h, w) and (task.task == "upscale" or colour):
        if picture.shape[0] != c:
            picture = picture.mean(0, keepdim=True).expand(c, h, w) if c == 1 else picture.expand(c, h, w)
        original = torch.round(picture * (levels - 1)).long()
        return task.condition(original[None], levels)[0], original
    if task.task == "upscale" and size == (h // task.factor, w // task.factor):
        small = picture.mean(0, keepdim=True) if c == 1 else picture.expand(c, *size)
        return F.interpolate(small[None], scale_factor=task.factor, mode="nearest")[0] * 2 - 1, None
    if task.task == "colorize" and size == (h, w):  # a grey picture: the condition itself
        return picture.mean(0, keepdim=True).expand(c, h, w) * 2 - 1, None
    want = f"{w}x{h}" + (f" (the original) or {w // task.factor}x{h // task.factor}" if task.task == "upscale" else "")
    raise DataError(f"{where}: a {size[1]}x{size[0]} picture; this run takes {want} pixels")


def _task(run: Run, wanted: str) -> ImageTask:
    task = task_from_spec(run.spec)
    if task is None or task.task != wanted:
        trained = "an unconditioned run" if task is None else f"trained to {task.describe()}"
        raise ConfigError(f"{run.path}: {trained}; '{wanted}' needs a run trained on {wanted}:DATASET data")
    return task


def restore(run: Run | str | Path, picture: str | Path, wanted: str, samples: int = 4,
            out: str | Path = "out.png", temperature: float = 1.0, seed: int = 0,
            device: str | None = None) -> Result:
    """Sample ``samples`` completions of ``picture`` (``wanted``: ``upscale`` or ``colorize``) and write a PNG
    row: the input (the conditioning image), the samples, and the original when the picture was one."""
    check_count(samples, "samples", ConfigError)
    check_temperature(temperature, ConfigError)
    run = run if isinstance(run, Run) else open_run(run)
    task = _task(run, wanted)
    model = run.load_model(device)
    levels = int(run.spec["levels"])
    image, original = condition_for(task, _intensities(Path(picture), model.channels), model.event_shape, levels,
                                    str(picture))
    cond = Condition(image=image[None].expand(samples, *image.shape).to(model.device).contiguous())
    gen = torch.Generator(device=model.device).manual_seed(int(seed))
    x = model.sample(samples, cond, temperature=temperature, generator=gen).cpu()
    shown = [((image + 1) / 2 * (SHOWN - 1)).round().long()[None], x * (SHOWN - 1) // max(levels - 1, 1)]
    if original is not None:
        shown.append(original[None] * (SHOWN - 1) // max(levels - 1, 1))
    rows = torch.cat(shown)
    path = save_grid(rows, SHOWN, out, nrow=len(rows))
    return Result(path, x, original is not None)
