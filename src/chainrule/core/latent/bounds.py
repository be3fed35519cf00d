"""The Gaussian-latent bounds every VAE reports: one place for the log densities and the importance-weighted bound.

A model mixing in :class:`ImportanceWeightedBound` provides ``posterior(x) -> (mean, log_var)``,
``decoder_log_prob(x, z) -> (k, B)``, ``elbo(x, cond)``, ``chunk`` (decoder calls per batch of samples) and
``iwae_samples``; its ``log_prob`` is then the ELBO while training and the IWAE bound in eval mode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def diagonal_normal_log_prob(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(z; mean, diag(exp(log_var))) summed over the last axis."""
    return -0.5 * ((z - mean).pow(2) * torch.exp(-log_var) + log_var + LOG_2PI).sum(-1)


class ImportanceWeightedBound:
    """``iwae`` and the bound-reporting ``log_prob`` shared by the image VAE and the sequence VAE."""

    chunk: int
    iwae_samples: int

    def iwae(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """``log (1/k) sum_i p(x, z_i) / q(z_i | x)``, ``z_i ~ q(z | x)``, in nats ``(B,)``; the ``k`` samples are
        evaluated in chunks of at most ``chunk`` decoder calls and combined by a running log-sum-exp."""
        self.check_input(x, None)  # type: ignore[attr-defined]
        mean, log_var = self.posterior(x)  # type: ignore[attr-defined]
        per_chunk = max(1, self.chunk // max(len(x), 1))
        total = torch.full((len(x),), -math.inf, device=x.device, dtype=mean.dtype)
        done = 0
        while done < k:
            s = min(per_chunk, k - done)
            eps = torch.randn((s, *mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * log_var) * eps
            log_w = (self.decoder_log_prob(x, z) + standard_normal_log_prob(z)  # type: ignore[attr-defined]
                     - diagonal_normal_log_prob(z, mean, log_var))
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
            done += s
        return total - math.log(k)

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """A lower bound on log p(x): the ELBO while training, the IWAE bound with ``iwae_samples`` in eval mode."""
        if self.training:  # type: ignore[attr-defined]
            return self.elbo(x, cond)  # type: ignore[attr-defined]
        self.check_condition(cond, len(x))  # type: ignore[attr-defined]
        return self.iwae(x, self.iwae_samples)
