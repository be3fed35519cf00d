"""A Gated PixelCNN conditioned on a whole image: super-resolution and colorization.

The conditioning image (``Condition.image``, the same shape as the output: the low-resolution image upsampled,
or the grey image repeated over the colour channels) goes through an unmasked convolution stack, whose output is
added inside every gated unit as a per-pixel bias (van den Oord et al. 2016's location-dependent conditioning).
Being unmasked is right: the condition is known in full before sampling starts, so every conditional may read all
of it, while the masked stacks still see only earlier pixels. What the condition is comes from the data
(``upscale:SPEC``, ``colorize:SPEC``); without one the model conditions on a zero image.

Sampling uses Gated PixelCNN's convolution caches; the conditioning network runs once per sample call over the
whole conditioning image, and each step reads its biases at the new pixel (the vertical stack's along the row just
finished). ``network`` crops the same biases to the rows it is given, so a pass over the rows so far is exact too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import Condition
from chainrule.core.heads.base import Head
from chainrule.modalities.image.models.gated_pixelcnn import GatedPixelCNN


class ConditionalPixelCNN(GatedPixelCNN):
    """Gated PixelCNN whose every layer reads a per-pixel bias computed from a conditioning image.

    Options (beyond Gated PixelCNN's): ``condition_channels``, the width of the conditioning network's hidden layers,
    and ``condition_layers``, its number of 3x3 convolutions (its receptive field grows by 2 pixels with each).
    """

    name: ClassVar[str] = "conditional_pixelcnn"
    takes_image: ClassVar[bool] = True
    TINY: ClassVar[dict] = {"hidden_channels": 8, "num_layers": 2, "output_channels": 16, "condition_channels": 8,
                            "condition_layers": 1}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, condition_channels: int = 32,
                 condition_layers: int = 2, **options: Any) -> None:
        super().__init__(event_shape, head, num_classes, **options)
        if condition_layers < 1:
            raise ValueError(f"condition_layers must be at least 1, got {condition_layers}")
        c, layers = self.out_hidden.in_channels, len(self.layers)
        convs: list[nn.Module] = []
        width = self.channels
        for _ in range(condition_layers):
            convs += [nn.Conv2d(width, condition_channels, 3, padding=1), nn.ReLU()]
            width = condition_channels
        self.condition_net = nn.Sequential(*convs, nn.Conv2d(width, 4 * c * layers, 1))

    def _biases(self, cond: Any, rows: int, like: Tensor) -> list[Tensor]:
        """Per layer the vertical and horizontal gate biases: class biases plus the image's, cropped to ``rows``."""
        n = len(self.layers)
        total: Tensor | int = 0
        labels = cond.labels if isinstance(cond, Condition) else cond
        if labels is not None and self.cond_bias is not None:
            total = total + self.cond_bias(labels, spatial_dims=2)
        image = cond.image if isinstance(cond, Condition) else None
        if image is None:
            image = like.new_zeros(like.shape[0], *self.event_shape)
        total = total + self.condition_net(image.to(like.dtype))[:, :, :rows]
        return list(total.chunk(2 * n, dim=1))

    def network(self, inputs: Tensor, cond: Any = None) -> Tensor:
        biases = self._biases(cond, inputs.shape[2], inputs)
        v = h = inputs
        skip: Tensor | int = 0
        for i, layer in enumerate(self.layers):
            v, h, s = layer(v, h, biases[2 * i], biases[2 * i + 1])
            skip = skip + s
        return self.out(F.relu(self.out_hidden(F.relu(skip))))

    # ------------------------------------------------------------------ incremental decoding
    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Any = None) -> dict[str, Any]:
        """Gated PixelCNN's cache with per-pixel gate biases: the class biases plus the conditioning network's output
        over the whole image ``(B, 2c, H, W)`` per gate, computed here once for the whole sampling run."""
        cache = super().init_cache(batch_size)
        like = self.out.weight.new_zeros(batch_size, 1)
        return {**cache, "biases": self._biases(cond, self.positions[0], like)}
