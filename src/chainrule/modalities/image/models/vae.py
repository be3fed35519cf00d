"""Variational autoencoder (Kingma & Welling 2014) with the importance-weighted bound (Burda et al. 2016).

A latent ``z ~ N(0, I)`` and a convolutional decoder giving every pixel its own distribution from the same head
as the autoregressive models (Bernoulli or categorical), independent given ``z``. Training maximises the ELBO
(one reparameterised sample, analytic KL); evaluation reports ``log (1/k) sum_i p(x, z_i) / q(z_i | x)``, which
is a lower bound on ``log p(x)`` for every ``k`` and tightens as ``k`` grows, so the NLL is an upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.latent.bounds import ImportanceWeightedBound
from chainrule.core.nn.masked import require_image


class VAE(ImportanceWeightedBound, AutoregressiveModel):
    """Convolutional VAE; ``log_prob`` is the ELBO in training mode and the IWAE bound in eval mode.

    Options:
        latent: size of ``z``.
        hidden: channels of the first convolution (the second has twice as many).
        iwae_samples: ``k`` of the evaluation bound (up to 5000; more is tighter and slower).
        chunk: decoder evaluations per batch when computing the bound (memory, not the result).
    """

    name: ClassVar[str] = "vae"
    likelihood: ClassVar[str] = "bound"
    family: ClassVar[str] = "vae"
    TINY: ClassVar[dict] = {"latent": 2, "hidden": 4, "iwae_samples": 8}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, latent: int = 16,
                 hidden: int = 32, iwae_samples: int = 100, chunk: int = 8192) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, event_shape)
        if num_classes:
            raise ValueError("the VAE is unconditional; train it without class labels")
        if not 1 <= int(iwae_samples) <= 5000:
            raise ValueError(f"iwae_samples must be in 1..5000, got {iwae_samples}")
        self.latent, self.iwae_samples, self.chunk = int(latent), int(iwae_samples), max(int(chunk), 1)
        c, (h, w) = self.channels, self.positions
        self.reduced = ((h + 1) // 2, (w + 1) // 2)
        flat = 2 * hidden * self.reduced[0] * self.reduced[1]
        self.encoder = nn.Sequential(
            nn.Conv2d(c, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, 2 * self.latent))
        self.decoder_in = nn.Sequential(nn.Linear(self.latent, flat), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, self.num_params_out, 3, padding=1))
        self.hidden = int(hidden)

    # ------------------------------------------------------------------ the two networks
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x): mean and log-variance ``(B, latent)`` each."""
        inputs = self.encode(x).to(self.decoder_in[0].weight.dtype)
        mean, log_var = self.encoder(inputs).chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 8.0)

    def decode(self, z: Tensor) -> Tensor:
        """Head parameters ``(N, P, H, W)`` of p(x | z) for latents ``(N, latent)``."""
        maps = self.decoder_in(z).reshape(-1, 2 * self.hidden, *self.reduced)
        maps = F.interpolate(maps, size=self.positions, mode="nearest")
        return self.decoder(maps)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """Reconstruction parameters at the posterior mean (not causal: a VAE is not autoregressive)."""
        mean, _ = self.encoder(inputs).chunk(2, dim=-1)
        return self.decode(mean)

    def decoder_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) for ``x`` ``(B, C, H, W)`` and latents ``(S, B, latent)`` -> ``(S, B)``."""
        s, b = z.shape[:2]
        params = self.decode(z.reshape(s * b, -1))
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        return self.head.log_prob(params, xs).reshape(s, b, -1).sum(-1)

    # ------------------------------------------------------------------ bounds
    def elbo(self, x: Tensor, cond: Any = None) -> Tensor:
        """One-sample ELBO with the analytic KL, nats per example ``(B,)`` (the training objective)."""
        self.check_input(x, cond)
        mean, log_var = self.posterior(x)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
        return self.decoder_log_prob(x, z[None])[0] - kl

    def loss(self, x: Tensor, cond: Any = None) -> Tensor:
        return -self.elbo(x, cond).mean()

    # ------------------------------------------------------------------ sampling
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """z from the prior, then every pixel at once from p(x | z); ``temperature`` scales the decoder's logits."""
        if x_given is not None:
            raise InputError(f"{self.name}: completion needs an autoregressive model; a VAE samples whole images")
        z = torch.randn((n, self.latent), generator=generator, device=self.device,
                        dtype=self.decoder_in[0].weight.dtype)
        return self.head.sample(self.decode(z), temperature=temperature, generator=generator)
