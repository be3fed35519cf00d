"""Activation caches for sampling convolutional models one position at a time (after Fast PixelCNN++,
Ramachandran et al. 2017).

In a causal convolution stack a layer's output at a pixel reads only pixels generated before it (or the pixel
itself, computed a moment earlier in the same step). So instead of re-running the network over the image for
every pixel, sampling keeps each convolution's zero-padded input map, writes into it the activations of the new
pixel (or row) as they are computed, and evaluates the convolution at that pixel alone: one small product per
layer per pixel, batched over the images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvInputCache:
    """The padded input map of one convolution, filled as sampling proceeds.

    ``padding`` is ``(left, right, top, bottom)`` as :func:`torch.nn.functional.pad` takes it: the output at
    ``(i, j)`` reads the padded map's window ``[i : i + kh, j : j + kw]``, exactly as the teacher-forced layer
    does. ``weight`` overrides the layer's kernel (a masked kernel). Values never written stay zero, which is
    what the teacher-forced padding holds at the border; positions not generated yet are never read with a
    non-zero weight by a causal layer.
    """

    def __init__(self, conv: nn.Conv2d, batch: int, height: int, width: int,
                 padding: tuple[int, int, int, int], weight: Tensor | None = None) -> None:
        kernel = (conv.weight if weight is None else weight).detach()
        self.weight, self.bias = kernel, None if conv.bias is None else conv.bias.detach()
        self.kh, self.kw = kernel.shape[-2:]
        self.left, self.top, self.width = padding[0], padding[2], width
        self.flat_weight = kernel.reshape(kernel.shape[0], -1).t().contiguous()  # (C * kh * kw, out)
        self.map = kernel.new_zeros(batch, kernel.shape[1], height + padding[2] + padding[3],
                                    width + padding[0] + padding[1])

    def put(self, i: int, j: int, value: Tensor) -> None:
        """Write the input ``(B, C)`` at pixel ``(i, j)``."""
        self.map[:, :, i + self.top, j + self.left] = value

    def put_row(self, i: int, value: Tensor) -> None:
        """Write the input ``(B, C, W)`` of row ``i``."""
        self.map[:, :, i + self.top, self.left : self.left + self.width] = value

    def at(self, i: int, j: int) -> Tensor:
        """The convolution's output ``(B, out)`` at pixel ``(i, j)``."""
        patch = self.map[:, :, i : i + self.kh, j : j + self.kw].reshape(self.map.shape[0], -1)
        out = patch @ self.flat_weight
        return out if self.bias is None else out + self.bias

    def row(self, i: int) -> Tensor:
        """The convolution's output ``(B, out, W)`` along row ``i``."""
        return F.conv2d(self.map[:, :, i : i + self.kh], self.weight, self.bias)[:, :, 0]


def pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 convolution applied to one pixel's features ``(B, C)`` (or a row's, ``(B, C, W)``)."""
    weight = conv.weight[:, :, 0, 0]
    if x.dim() == 2:
        return F.linear(x, weight, conv.bias)
    return torch.einsum("oc,bcw->bow", weight, x) + (0.0 if conv.bias is None else conv.bias[:, None])


def held_bytes(obj: object) -> int:
    """Bytes of the distinct tensor storages reachable from a cache (dicts, lists, tuples, cache objects)."""
    seen: dict[int, int] = {}

    def walk(o: object) -> None:
        if isinstance(o, Tensor):
            storage = o.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list | tuple):
            for v in o:
                walk(v)
        elif hasattr(o, "__dict__") and not isinstance(o, nn.Module):
            walk(vars(o))

    walk(obj)
    return sum(seen.values())


def cache_bytes_per_sample(model: nn.Module) -> int:
    """What one more sample adds to ``model.init_cache``: a cache for two samples minus a cache for one, so the
    weights a cache shares between samples are not counted per sample."""
    with torch.no_grad():
        return max(0, held_bytes(model.init_cache(2)) - held_bytes(model.init_cache(1)))
