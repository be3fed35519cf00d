"""DCGAN-style GAN (Radford et al. 2016) with the non-saturating loss and an R1 penalty (Mescheder et al. 2018).

A GAN has no likelihood: :meth:`GAN.log_prob` raises, evaluation reports no NLL, and the leaderboard compares it
by sample quality only. It trains in the one Trainer through the ordinary ``loss``: the discriminator's loss
sees the fakes detached, the generator's loss sees the discriminator's weights detached, so one backward pass
gives each network only its own gradient and one optimizer step updates both at once (simultaneous gradient
descent; AdamW keeps separate moments per parameter, as two optimizers with one learning rate would).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError, InputError
from chainrule.core.heads.base import Head
from chainrule.core.nn.masked import require_image


class GAN(AutoregressiveModel):
    """Options: ``latent`` size, ``hidden`` channels, ``r1`` weight of the gradient penalty on real data."""

    name: ClassVar[str] = "gan"
    likelihood: ClassVar[str] = "none"
    family: ClassVar[str] = "gan"
    TINY: ClassVar[dict] = {"latent": 4, "hidden": 4}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, latent: int = 32,
                 hidden: int = 32, r1: float = 1.0) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, event_shape)
        if num_classes:
            raise ValueError("the GAN is unconditional; train it without class labels")
        self.latent, self.hidden, self.r1 = int(latent), int(hidden), float(r1)
        self.levels = int(head.levels)
        c, (h, w) = self.channels, self.positions
        self.reduced = ((h + 1) // 2, (w + 1) // 2)
        flat = 2 * hidden * self.reduced[0] * self.reduced[1]
        self.generator_in = nn.Sequential(nn.Linear(self.latent, flat), nn.ReLU())
        self.generator = nn.Sequential(
            nn.Conv2d(2 * hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, c, 3, padding=1), nn.Tanh())
        self.discriminator = nn.Sequential(
            nn.Conv2d(c, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(flat, 1))

    # ------------------------------------------------------------------ the two networks
    def to_unit(self, x: Tensor) -> Tensor:
        return x.to(self.generator_in[0].weight.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def generate(self, z: Tensor) -> Tensor:
        """Latents ``(N, latent)`` -> images in ``[-1, 1]``, ``(N, C, H, W)``."""
        maps = self.generator_in(z).reshape(-1, 2 * self.hidden, *self.reduced)
        return self.generator(F.interpolate(maps, size=self.positions, mode="nearest"))

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """The discriminator's logit per image (a GAN has no per-position conditionals)."""
        return self.discriminator(inputs)

    # ------------------------------------------------------------------ objectives
    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Non-saturating logistic loss on detached fakes plus ``r1 / 2 * |grad_x D(x)|^2`` on real images."""
        real = real.detach().requires_grad_(True)
        logits_real = self.discriminator(real)
        loss = F.softplus(-logits_real) + F.softplus(self.discriminator(fake.detach()))
        if self.r1 > 0:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            loss = loss + 0.5 * self.r1 * grad.pow(2).flatten(1).sum(1, keepdim=True)
        return loss.mean()

    def generator_loss(self, fake: Tensor) -> Tensor:
        """``softplus(-D(G(z)))`` with the discriminator's weights held fixed: only the generator learns from it."""
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return F.softplus(-functional_call(self.discriminator, frozen, (fake,))).mean()

    def loss(self, x: Tensor, cond: Any = None) -> Tensor:
        self.check_input(x, cond)
        z = torch.randn((len(x), self.latent), device=x.device, dtype=self.generator_in[0].weight.dtype)
        fake = self.generate(z)
        return self.discriminator_loss(self.to_unit(x), fake) + self.generator_loss(fake)

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        raise ConfigError(f"{self.name}: a GAN has no likelihood; compare it by sample quality (chainrule leaderboard)")

    def log_prob_positions(self, x: Tensor, cond: Any = None) -> Tensor:
        return self.log_prob(x, cond)

    # ------------------------------------------------------------------ sampling
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """``G(T z)`` rounded to the nearest level (``temperature`` scales the latent)."""
        if x_given is not None:
            raise InputError(f"{self.name}: completion needs an autoregressive model; a GAN samples whole images")
        z = torch.randn((n, self.latent), generator=generator, device=self.device,
                        dtype=self.generator_in[0].weight.dtype)
        was_training = self.training
        self.eval()
        try:
            images = self.generate(temperature * z)
        finally:
            self.train(was_training)
        return ((images + 1) * (self.levels - 1) / 2).round().long().clamp(0, self.levels - 1)
