"""A VAE whose decoder is a small PixelCNN conditioned on the latent (PixelVAE, Gulrajani et al. 2017).

The two families combined: ``z ~ N(0, I)`` carries the global shape, and given ``z`` the pixels follow the chain
rule, ``p(x | z) = prod_i p(x_i | x_<i, z)``. The decoder is the plain PixelCNN (mask-A input convolution,
residual blocks with masked 'B' convolutions) with ``z`` projected to a feature map and added to every layer, as
a conditional PixelCNN adds its condition. Encoder, ELBO and IWAE bound are the plain VAE's, so ``log_prob`` is a
lower bound on ``log p(x)`` (an ELBO while training, the IWAE bound in eval mode).

A strong autoregressive decoder can model the data without ``z`` (posterior collapse: the KL term goes to zero);
the decoder is kept small (a few blocks, a 5x5 first kernel) so the latent keeps the global structure. Sampling
draws ``z``, then the pixels one at a time from the convolution input caches of :mod:`chainrule.core.nn.conv_cache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.nn.conv_cache import ConvInputCache, pointwise
from chainrule.core.nn.masked import MaskedConv2d
from chainrule.core.sampling import check_stop
from chainrule.modalities.image.models.pixelcnn import _ResidualBlock
from chainrule.modalities.image.models.vae import VAE


class PixelVAE(VAE):
    """VAE with a masked PixelCNN decoder conditioned on ``z``.

    Options (besides the VAE's ``latent``, ``hidden``, ``iwae_samples``, ``chunk``):
        pixel_channels: feature maps of the PixelCNN decoder.
        pixel_blocks: its residual blocks after the mask-A layer.
        first_kernel_size: kernel of the mask-A input convolution (odd; small keeps the decoder weak).
        kernel_size: kernel of the masked convolution in each block (odd).
    """

    name: ClassVar[str] = "pixel_vae"
    TINY: ClassVar[dict] = {"latent": 2, "hidden": 4, "iwae_samples": 8, "pixel_channels": 8, "pixel_blocks": 1}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, latent: int = 16,
                 hidden: int = 32, iwae_samples: int = 100, chunk: int = 1024, pixel_channels: int = 32,
                 pixel_blocks: int = 2, first_kernel_size: int = 5, kernel_size: int = 3) -> None:
        super().__init__(event_shape, head, num_classes, latent, hidden, iwae_samples, chunk)
        del self.decoder  # the plain VAE's unmasked decoder; ``decoder_in`` stays as the latent's feature map
        h, self.pixel_blocks = int(pixel_channels), int(pixel_blocks)
        self.input_conv = MaskedConv2d(self.channels, h, first_kernel_size, "A")
        self.blocks = nn.ModuleList(_ResidualBlock(h, kernel_size) for _ in range(self.pixel_blocks))
        self.latent_bias = nn.Conv2d(2 * self.hidden, h * (self.pixel_blocks + 1), 1)  # z's map, one per layer
        self.out_hidden = nn.Conv2d(h, 2 * h, 1)
        self.out = nn.Conv2d(2 * h, self.num_params_out, 1)

    # ------------------------------------------------------------------ the decoder
    def latent_maps(self, z: Tensor) -> list[Tensor]:
        """Per-layer conditioning maps ``(N, h, H, W)`` from latents ``(N, latent)`` (they read ``z`` only)."""
        maps = self.decoder_in(z).reshape(-1, 2 * self.hidden, *self.reduced)
        maps = F.interpolate(maps, size=self.positions, mode="nearest")
        return list(self.latent_bias(maps).chunk(self.pixel_blocks + 1, dim=1))

    def pixel_params(self, inputs: Tensor, z: Tensor) -> Tensor:
        """Head parameters ``(N, P, H, W)`` of ``p(x_i | x_<i, z)`` for encoded images and latents, all at once."""
        biases = self.latent_maps(z)
        h = self.input_conv(inputs) + biases[0]
        for block, bias in zip(self.blocks, biases[1:], strict=True):
            h = block(h + bias)
        return self.out(F.relu(self.out_hidden(F.relu(h))))

    def decode(self, z: Tensor) -> Tensor:
        raise InputError(f"{self.name}: the decoder is autoregressive; its parameters need the pixels too")

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """Reconstruction parameters at the posterior mean (teacher-forced: the pixels are the inputs)."""
        mean, _ = self.encoder(inputs).chunk(2, dim=-1)
        return self.pixel_params(inputs, mean)

    def decoder_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) for ``x`` ``(B, C, H, W)`` and latents ``(S, B, latent)`` -> ``(S, B)``."""
        s, b = z.shape[:2]
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        params = self.pixel_params(self.encode(xs).to(z.dtype), z.reshape(s * b, -1))
        return self.head.log_prob(params, xs).reshape(s, b, -1).sum(-1)

    def kl(self, x: Tensor) -> Tensor:
        """KL(q(z | x) || p(z)) in nats ``(B,)``: near zero for every image means the posterior has collapsed."""
        mean, log_var = self.posterior(x)
        return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)

    # ------------------------------------------------------------------ sampling
    def _step(self, caches: dict[str, Any], biases: list[Tensor], i: int, j: int) -> Tensor:
        """Every decoder layer at pixel ``(i, j)`` from the cached inputs of the pixels before it."""
        h = caches["image"].at(i, j) + biases[0][:, :, i, j]
        for block, conv, bias in zip(self.blocks, caches["blocks"], biases[1:], strict=True):
            h = h + bias[:, :, i, j]
            conv.put(i, j, F.relu(pointwise(block.reduce, F.relu(h))))
            h = h + pointwise(block.expand, F.relu(conv.at(i, j)))
        return pointwise(self.out, F.relu(pointwise(self.out_hidden, F.relu(h))))

    @torch.no_grad()
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """z from the prior, then the pixels in raster order; cached and uncached draw the same numbers."""
        if x_given is not None:
            raise InputError(f"{self.name}: completion given z is not supported; the model samples whole images")
        z = torch.randn((n, self.latent), generator=generator, device=self.device,
                        dtype=self.decoder_in[0].weight.dtype)
        height, width = self.positions
        x = torch.zeros(n, self.channels, height, width, dtype=torch.long, device=self.device)

        def cache_of(conv: MaskedConv2d) -> ConvInputCache:
            p = conv.padding[0]
            return ConvInputCache(conv, n, height, width, (p, p, p, p), weight=conv.weight * conv.mask)

        caches = {"image": cache_of(self.input_conv), "blocks": [cache_of(b.conv) for b in self.blocks]}
        biases = self.latent_maps(z)
        for t in range(height * width):
            check_stop()
            i, j = divmod(t, width)
            if use_cache:
                params = self._step(caches, biases, i, j)
            else:
                params = self.pixel_params(self.encode(x).to(z.dtype), z)[:, :, i, j]
            draw = self.head.sample(params.unsqueeze(-1), temperature=temperature, generator=generator)[..., 0]
            x[:, :, i, j] = draw
            if use_cache:
                caches["image"].put(i, j, self.encode(draw))
        return x
