"""The samplers of the non-autoregressive image families as exportable modules: noise in, image values out.

A VAE decodes ``z ~ N(0, I)`` into its decoder's head parameters; given ``z`` the pixels are independent, so the
runtime draws them all at once from uniform noise (temperature divides the logits, as the head does). A flow pulls
``z ~ N(0, T^2 I)`` back through its inverse to dequantized values in ``[0, K)``; the runtime floors them to
levels. Both graphs are one pass with no loop, which is what a sampler must be to export: a family whose sampler
is sequential (MAF's inverse, an autoregressive decoder) is refused in :mod:`chainrule.export.plan`.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel


class DecoderSampler(nn.Module):
    """``z`` ``(B, latent)`` -> the decoder's head parameters ``(B, P, *S)`` (the model's ``decode``)."""

    output: ClassVar[str] = "params"
    kind: ClassVar[str] = "decoder"

    def __init__(self, model: AutoregressiveModel) -> None:
        super().__init__()
        self.model = model
        self.noise_shape = [int(model.latent)]

    def forward(self, z: Tensor) -> Tensor:
        return self.model.decode(z)


class FlowSampler(nn.Module):
    """``z`` ``(B, C, *S)`` (already scaled by the temperature) -> dequantized values in ``[0, K)``."""

    output: ClassVar[str] = "value"
    kind: ClassVar[str] = "flow"

    def __init__(self, model: AutoregressiveModel) -> None:
        super().__init__()
        self.model = model
        self.noise_shape = [int(s) for s in model.event_shape]

    def forward(self, z: Tensor) -> Tensor:
        return self.model.from_logit(self.model.inverse(z))

