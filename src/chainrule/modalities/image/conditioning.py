"""The conditioning images of super-resolution and colorization, derived from full images of levels.

Training derives them on the fly from any image dataset (``upscale:SPEC``, ``colorize:SPEC``); the ``upscale`` and
``colorize`` commands derive them from a user's image the same way, so a model always sees the condition it was
trained on. A conditioning image has the shape of the output, floats in [-1, 1]: the low-resolution image (mean of
each ``factor`` x ``factor`` block) repeated back to full size, or the grey image (ITU-R BT.601 luma) repeated over
the colour channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.errors import ConfigError, DataError

TASKS = ("upscale", "colorize")
FACTORS = (2, 4)
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageTask:
    """``upscale`` (by ``factor``) or ``colorize``: what the conditioning image is."""

    task: str
    factor: int = 1

    def describe(self) -> str:
        return f"upscale x{self.factor}" if self.task == "upscale" else "colorize"

    def spec(self) -> dict[str, object]:
        return {"task": self.task, "factor": self.factor}

    def check(self, event_shape: tuple[int, ...], where: str) -> None:
        """The images a task can take: RGB for colorization, sides divisible by the factor for upscaling."""
        c, h, w = event_shape
        if self.task == "colorize" and c != 3:
            raise DataError(f"{where}: colorize needs RGB images; these have {c} channel(s)")
        if self.task == "upscale" and (h % self.factor or w % self.factor):
            raise DataError(f"{where}: upscale x{self.factor} needs sides divisible by {self.factor}; got {h}x{w}")

    def condition(self, x: Tensor, levels: int) -> Tensor:
        """The conditioning image ``(B, C, H, W)`` in [-1, 1] of images ``x`` of ``levels`` levels."""
        image = x.float() / max(levels - 1, 1)
        if self.task == "upscale":
            small = F.avg_pool2d(image, self.factor)
            image = F.interpolate(small, scale_factor=self.factor, mode="nearest")
        else:
            luma = torch.tensor(LUMA, device=x.device)[None, :, None, None]
            image = (image * luma).sum(1, keepdim=True).expand_as(image)
        return image * 2 - 1


def parse_task(spec: str) -> tuple[ImageTask, str] | None:
    """``upscale:SPEC`` (x2), ``upscale4:SPEC``, ``colorize:SPEC`` -> (task, SPEC); ``None`` for a plain dataset."""
    head, sep, rest = str(spec).strip().partition(":")
    name = head.lower()
    if not sep or not name.startswith(TASKS):
        return None
    if name == "colorize":
        task = ImageTask("colorize")
    elif name.startswith("upscale") and (name[7:] or "2").isdigit() and int(name[7:] or 2) in FACTORS:
        task = ImageTask("upscale", int(name[7:] or 2))
    else:
        raise ConfigError(f"dataset {spec!r}: use upscale:SPEC, upscale2:SPEC, upscale4:SPEC or colorize:SPEC")
    if not rest.strip():
        raise ConfigError(f"dataset {spec!r} needs the images to derive from, e.g. {head}:photos")
    return task, rest.strip()


def task_from_spec(spec: dict) -> ImageTask | None:
    """The task a run was trained for (its spec's ``condition``), ``None`` for an unconditioned run."""
    cond = spec.get("condition")
    return None if not cond else ImageTask(str(cond["task"]), int(cond.get("factor", 1)))
