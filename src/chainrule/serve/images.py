"""Model work for image models: PNG sample grids and per-pixel surprisal."""

from __future__ import annotations

import io
import math
from typing import Any

import torch
from torch import Tensor

from chainrule import api
from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.modalities.image.grids import make_grid
from chainrule.serve.registry import ServedModel

#: largest parameter tensor (elements) one log-prob chunk may build
PARAMS_BUDGET = 1 << 25


def grid_scale(width: int) -> int:
    """Upscale small images so they are visible (as ``save_grid`` does)."""
    return min(8, max(1, 96 // max(width, 1))) if width < 32 else 1


def sample_png(served: ServedModel, n: int, cls: int | str | None, temperature: float, seed: int,
               nrow: int | None) -> bytes:
    """Draw ``n`` images with their own generator and return one PNG grid."""
    with served.guard():
        x = api.sample(served.run, n, cls=cls, temperature=temperature, seed=seed, model=served.model)
    img = make_grid(x, int(served.run.spec["levels"]), nrow=nrow, scale=grid_scale(x.shape[-1]))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def class_index(served: ServedModel, cls: int | str | None) -> int | None:
    """The class of a log-prob request: required by class-conditional models, refused by the others."""
    model = served.model
    if model.num_classes == 0:
        if cls is not None:
            raise ConfigError(f"model {served.name!r} is not class-conditional; leave out 'class'")
        return None
    if cls is None:
        raise ConfigError(f"model {served.name!r} is class-conditional; give 'class' "
                          f"(0..{model.num_classes - 1} or a class name)")
    return int(api._resolve_class(served.run, model, cls, 1)[0])


def parse_images(served: ServedModel, images: list[Any]) -> list[Tensor]:
    """Nested lists -> long tensors ``(C, H, W)``; :class:`ConfigError` for a wrong shape or level."""
    shape = tuple(served.model.event_shape)
    levels = int(served.run.spec["levels"])
    out = []
    for i, img in enumerate(images):
        try:
            t = torch.tensor(img)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"images[{i}]: expected equal-length nested lists of integers") from None
        if t.dtype not in (torch.int64, torch.int32):
            raise ConfigError(f"images[{i}]: values must be integers (levels 0..{levels - 1}), got {t.dtype}")
        if t.ndim == len(shape) - 1 and shape[0] == 1:
            t = t.unsqueeze(0)
        if tuple(t.shape) != shape:
            raise ConfigError(f"images[{i}]: shape {tuple(t.shape)}, model {served.name!r} expects {shape}")
        t = t.long()
        if int(t.min()) < 0 or int(t.max()) >= levels:
            raise ConfigError(f"images[{i}]: values must be levels 0..{levels - 1}")
        out.append(t)
    return out


def image_log_prob(served: ServedModel, examples: list[tuple[Tensor, int | None]]) -> list[dict[str, Any]]:
    """NLL (nats), bits/dim and per-position surprisal ``(*S)`` of each ``(image, class)``."""
    model = served.model
    per_example = model.num_params_out * model.num_positions
    rows = max(1, PARAMS_BUDGET // max(per_example, 1))
    out: list[dict[str, Any]] = []
    for start in range(0, len(examples), rows):
        chunk = examples[start:start + rows]
        x = torch.stack([e[0] for e in chunk]).to(model.device)
        cond = None
        if chunk[0][1] is not None:
            cond = torch.tensor([e[1] for e in chunk], dtype=torch.long, device=model.device)
        with served.guard():
            lp = model.log_prob_positions(x, cond).double().cpu()  # (B, *S)
            if type(model).log_prob is AutoregressiveModel.log_prob:
                total = lp.flatten(1).sum(1)
            else:  # e.g. MADE's mask ensemble: the total is not the sum of one ordering's terms
                total = model.log_prob(x, cond).double().cpu()
        for i in range(len(chunk)):
            nll = -float(total[i])
            out.append({"nll": nll, "bits_per_dim": nll / model.num_dims / math.log(2.0),
                        "surprisal": (-lp[i]).tolist()})
    return out
