"""DDPM (Ho et al. 2020) with a discretized Gaussian decoder, so the variational bound is on the discrete levels.

Levels ``0 .. K-1`` map to ``[-1, 1]``; ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` over ``steps`` steps
of a linear schedule; the network predicts the noise; reverse variances are ``beta_t``. The negative bound is
``L_T + sum_{t>=2} KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) - log P(x_0 | x_1)``, where ``P(x_0 | x_1)``
integrates the last Gaussian over each level's bin (the outer bins reach infinity): it is a bound on the
log-probability of the levels, in bits/dim, with no dequantization. Training draws one ``t`` per image
(``steps`` times that term is an unbiased estimate of the sum); evaluation sums every term. Sampling is ancestral
(DDPM) or deterministic DDIM on ``sample_steps`` evenly spaced steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.nn.masked import require_image


def gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per element, nats."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p).pow(2)) / var_p - 1.0)


def discretized_gaussian_log_prob(x0: Tensor, mean: Tensor, std: Tensor, levels: int) -> Tensor:
    """log of the mass of N(mean, std^2) on the bin of each level ``x0`` (in [-1, 1]), bins of width 2/(K-1)."""
    half = 1.0 / (levels - 1)
    normal = torch.distributions.Normal(mean, std)
    upper = torch.where(x0 > 1 - half, torch.ones_like(x0), normal.cdf(x0 + half))
    lower = torch.where(x0 < -1 + half, torch.zeros_like(x0), normal.cdf(x0 - half))
    return torch.log((upper - lower).clamp_min(1e-12))


class TimeEmbedding(nn.Module):
    """Sinusoidal features of the step, then an MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        dtype = self.mlp[0].weight.dtype
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=dtype) / half)
        angles = t.to(dtype)[:, None] * freqs[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos(), angles[:, : self.dim - 2 * half]], dim=1))


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.time = nn.Linear(width, width)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        a = self.conv1(torch.nn.functional.silu(h)) + self.time(emb)[:, :, None, None]
        return h + self.conv2(torch.nn.functional.silu(a))


class DDPM(AutoregressiveModel):
    """Options: ``steps`` (T), ``hidden`` channels, ``num_blocks``, ``sampler`` (``ddpm`` or ``ddim``),
    ``sample_steps`` (DDIM; defaults to ``steps``)."""

    name: ClassVar[str] = "ddpm"
    likelihood: ClassVar[str] = "bound"
    family: ClassVar[str] = "diffusion"
    TINY: ClassVar[dict] = {"steps": 4, "hidden": 4, "num_blocks": 1}

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, steps: int = 100,
                 hidden: int = 32, num_blocks: int = 3, sampler: str = "ddpm", sample_steps: int | None = None) -> None:
        super().__init__(event_shape, head, num_classes)
        require_image(self.name, event_shape)
        if num_classes:
            raise ValueError("the DDPM is unconditional; train it without class labels")
        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        steps = int(steps)
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        self.steps, self.sampler = steps, sampler
        self.sample_steps = min(int(sample_steps or steps), steps)
        self.levels = int(head.levels)
        betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64) * (1000.0 / steps)
        betas = betas.clamp_max(0.999)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bars", torch.cumprod(1 - betas, 0).float())
        self.inp = nn.Conv2d(self.channels, hidden, 3, padding=1)
        self.time = TimeEmbedding(hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(int(num_blocks)))
        self.out = nn.Conv2d(hidden, self.channels, 3, padding=1)

    # ------------------------------------------------------------------ the noise predictor
    def to_unit(self, x: Tensor) -> Tensor:
        return x.to(self.betas.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def predict_noise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """eps_theta(x_t, t) for steps ``t`` in ``1 .. T`` (``(B,)`` integers)."""
        emb = self.time(t)
        h = self.inp(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(torch.nn.functional.silu(h))

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """The predicted noise at the last step (a diffusion model has no per-position conditionals)."""
        return self.predict_noise(inputs, torch.full((inputs.shape[0],), self.steps, device=inputs.device))

    def log_prob_positions(self, x: Tensor, cond: Any = None) -> Tensor:
        raise InputError(f"{self.name}: a diffusion model has no per-position conditionals; use log_prob")

    # ------------------------------------------------------------------ the bound's terms (nats per image)
    def schedule(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """beta_t, abar_t and abar_{t-1} (1 at t = 1) for steps ``t`` in ``1 .. T``, shaped to broadcast."""
        beta, abar = self.betas[t - 1], self.alpha_bars[t - 1]
        abar_prev = torch.where(t > 1, self.alpha_bars[(t - 2).clamp_min(0)], torch.ones_like(abar))
        return beta[:, None, None, None], abar[:, None, None, None], abar_prev[:, None, None, None]

    def prior_term(self, x0: Tensor) -> Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I))."""
        abar = self.alpha_bars[-1]
        kl = gaussian_kl(abar.sqrt() * x0, (1 - abar).expand_as(x0), torch.zeros_like(x0), torch.ones_like(x0))
        return kl.flatten(1).sum(1)

    def step_terms(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """The term of step ``t`` for ``x_t`` drawn with ``noise``: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for
        t >= 2, ``-log P(x_0 | x_1)`` (discretized decoder) for t = 1."""
        beta, abar, abar_prev = self.schedule(t)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        eps = self.predict_noise(x_t, t)
        mean_p = (x_t - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()
        var_q = (beta * (1 - abar_prev) / (1 - abar)).clamp_min(1e-20)
        mean_q = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * x_t) / (1 - abar)
        kl = gaussian_kl(mean_q, var_q.expand_as(x0), mean_p, beta.expand_as(x0)).flatten(1).sum(1)
        decoder = -discretized_gaussian_log_prob(x0, mean_p, beta.sqrt().expand_as(x0), self.levels)
        return torch.where(t > 1, kl, decoder.flatten(1).sum(1))

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """The variational lower bound on log P(x): one random step (unbiased) while training, every step in eval."""
        self.check_input(x, cond)
        x0 = self.to_unit(x)
        total = -self.prior_term(x0)
        if self.training:
            t = torch.randint(1, self.steps + 1, (len(x),), device=x.device)
            return total - self.steps * self.step_terms(x0, t, torch.randn_like(x0))
        for step in range(1, self.steps + 1):
            t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
            total = total - self.step_terms(x0, t, torch.randn_like(x0))
        return total

    # ------------------------------------------------------------------ sampling
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """Ancestral DDPM over every step, or DDIM (eta = 0) over ``sample_steps``; the last mean is rounded to a
        level. ``temperature`` scales the initial and the injected noise."""
        if x_given is not None:
            raise InputError(f"{self.name}: completion needs an autoregressive model; a diffusion model samples "
                             "whole images")
        shape = (n, *self.event_shape)
        x = temperature * torch.randn(shape, generator=generator, device=self.device, dtype=self.betas.dtype)
        if self.sampler == "ddim":
            grid = torch.linspace(self.steps, 1, self.sample_steps, device=self.device).round().long().tolist()
            for i, step in enumerate(grid):
                t = torch.full((n,), step, device=self.device, dtype=torch.long)
                abar = self.alpha_bars[step - 1]
                abar_next = self.alpha_bars[grid[i + 1] - 1] if i + 1 < len(grid) else torch.ones_like(abar)
                x = ddim_step(x, self.predict_noise(x, t), abar, abar_next)
        else:
            for step in range(self.steps, 0, -1):
                t = torch.full((n,), step, device=self.device, dtype=torch.long)
                beta, abar = self.betas[step - 1], self.alpha_bars[step - 1]
                x = (x - beta / (1 - abar).sqrt() * self.predict_noise(x, t)) / (1 - beta).sqrt()
                if step > 1:
                    noise = torch.randn(shape, generator=generator, device=self.device, dtype=x.dtype)
                    x = x + temperature * beta.sqrt() * noise
        levels = ((x.clamp(-1, 1) + 1) * (self.levels - 1) / 2).round()
        return levels.long().clamp(0, self.levels - 1)


def ddim_step(x: Tensor, eps: Tensor, abar: Tensor, abar_next: Tensor) -> Tensor:
    """One deterministic DDIM move (eta = 0) from noise level ``abar`` to ``abar_next``. The predicted clean image
    is clamped to the data range [-1, 1], and the noise is then re-derived from it, so that the pair still
    reproduces ``x`` (``x = sqrt(abar) x0 + sqrt(1 - abar) eps``); keeping the network's raw noise beside a clamped
    image would push ``x`` off the forward process's path, and over tens of steps the samples saturate."""
    x0 = ((x - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
    eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
    return abar_next.sqrt() * x0 + (1 - abar_next).sqrt() * eps
