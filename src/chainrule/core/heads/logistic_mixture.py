"""Discretized logistic mixture head (Salimans et al. 2017, PixelCNN++).

Each of the ``K`` levels is a bin of width ``2/(K-1)`` centred on its value in [-1, 1]; the two edge bins
extend to -inf / +inf, so the ``K`` probabilities of a channel sum to exactly one. The channels of one
position share a mixture component and are ordered inside the position: channel ``c`` has mean
``mu_c + sum_{j<c} coeff_{cj} * x_j`` using the actual values ``x_j`` (for RGB: G given R, B given R and G).

Parameter layout per position, ``M = num_mix`` and ``C`` channels, ``P = M * (1 + 2C + C(C-1)/2)``::

    [logits (M) | means (C*M) | log_scales (C*M) | coeffs (C(C-1)/2 * M)]

with each channel's ``M`` values contiguous; coefficient pairs are ordered (1,0), (2,0), (2,1), ...
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.heads.base import Head

#: lower clamp on the log-scales, as in PixelCNN++
MIN_LOG_SCALE = -7.0


class DiscretizedLogisticMixture(Head):
    """Mixture of ``num_mix`` discretized logistics over ``levels`` values per channel.

    ``temperature`` in :meth:`sample` divides the mixture logits and multiplies every logistic scale;
    ``temperature <= 0`` picks the most probable component and rounds each channel's mean.
    """
    name = "logistic_mixture"

    def __init__(self, levels: int = 256, num_mix: int = 5) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"a logistic mixture head needs at least 2 levels, got {levels}")
        if num_mix < 1:
            raise ValueError(f"num_mix must be >= 1, got {num_mix}")
        self.levels = int(levels)
        self.num_mix = int(num_mix)

    def num_params(self, channels: int) -> int:
        return self.num_mix * (1 + 2 * channels + channels * (channels - 1) // 2)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, num_mix={self.num_mix}"

    # ------------------------------------------------------------------ parameters
    def split(self, params: Tensor, channels: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(B, P, *S) -> logits (B, M, *S), means, log_scales (B, C, M, *S), coeffs (B, C(C-1)/2, M, *S)."""
        if params.shape[1] != self.num_params(channels):
            raise ValueError(f"logistic mixture with {channels} channel(s) and num_mix={self.num_mix} needs "
                             f"{self.num_params(channels)} params per position, got {params.shape[1]}")
        b, _, *s = params.shape
        m, c = self.num_mix, channels
        logits, means, log_scales, coeffs = params.split([m, c * m, c * m, c * (c - 1) // 2 * m], dim=1)
        means = means.reshape(b, c, m, *s)
        log_scales = log_scales.reshape(b, c, m, *s).clamp_min(MIN_LOG_SCALE)
        coeffs = torch.tanh(coeffs.reshape(b, c * (c - 1) // 2, m, *s))
        return logits, means, log_scales, coeffs

    @staticmethod
    def _shift(coeffs: Tensor, values: Tensor, c: int) -> Tensor:
        """Mean offset of channel ``c``: ``sum_{j<c} coeff_{cj} * values_j`` (channels on axis 1)."""
        start = c * (c - 1) // 2
        return sum(coeffs[:, start + j] * values[:, j] for j in range(c))

    def _values(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        return x.to(dtype) * (2.0 / (self.levels - 1)) - 1.0

    # ------------------------------------------------------------------ scoring
    def _log_bins(self, x: Tensor, centered: Tensor, log_scales: Tensor) -> Tensor:
        """Log-probability of level ``x`` under a discretized logistic whose mean lies ``centered`` below the
        level's value (all three broadcast together)."""
        inv_s = torch.exp(-log_scales)
        half = 1.0 / (self.levels - 1)
        upper = inv_s * (centered + half)  # logistic-space upper bin edge
        lower = inv_s * (centered - half)
        width = inv_s * (2.0 * half)  # upper - lower, computed without cancellation
        log_cdf_upper = F.logsigmoid(upper)  # first bin: P(X < upper)
        log_sf_lower = F.logsigmoid(-lower)  # last bin: P(X > lower)
        # interior bin, exactly: sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - exp(b - a))
        log_bin = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(-width.clamp_min(1e-30)))
        # mid-bin density approximation, used only when the bin is numerically degenerate
        mid = inv_s * centered
        log_mid = F.logsigmoid(mid) + F.logsigmoid(-mid) + torch.log(width.clamp_min(1e-30))
        log_bin = torch.where(width > 1e-6, log_bin, log_mid)
        return torch.where(x == 0, log_cdf_upper, torch.where(x == self.levels - 1, log_sf_lower, log_bin))

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        c = x.shape[1]
        logits, means, log_scales, coeffs = self.split(params, c)
        v = self._values(x, params.dtype).unsqueeze(2)  # (B, C, 1, *S)
        means = torch.stack([means[:, i] + self._shift(coeffs, v, i) for i in range(c)], dim=1)
        per_channel = self._log_bins(x.unsqueeze(2), v - means, log_scales)
        return torch.logsumexp(per_channel.sum(1) + torch.log_softmax(logits, dim=1), dim=1)

    def level_log_probs(self, params: Tensor, x: Tensor, channel: int) -> Tensor:
        """``log p(x_c = k | x_<c)`` for every level ``k``: the mixture weights are updated by the earlier channels'
        likelihood under each component (Bayes), then mixed over the component's bins of channel ``c``."""
        logits, means, log_scales, coeffs = self.split(params, x.shape[1])  # (B, M), (B, C, M), ...
        v = self._values(x, params.dtype).unsqueeze(2)  # (B, C, 1)
        log_w = torch.log_softmax(logits, dim=1)
        for j in range(channel):
            mean_j = means[:, j] + self._shift(coeffs, v, j)
            log_w = log_w + self._log_bins(x[:, j:j + 1], v[:, j] - mean_j, log_scales[:, j])
        mean_c = (means[:, channel] + self._shift(coeffs, v, channel)).unsqueeze(-1)  # (B, M, 1)
        grid = torch.arange(self.levels, device=params.device)
        per_level = self._log_bins(grid, self._values(grid, params.dtype) - mean_c,
                                   log_scales[:, channel].unsqueeze(-1))  # (B, M, K)
        return torch.logsumexp(log_w.unsqueeze(-1) + per_level, dim=1) - torch.logsumexp(log_w, dim=1).unsqueeze(-1)

    # ------------------------------------------------------------------ sampling
    def sample(
        self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
        scale: Tensor | None = None,
    ) -> Tensor:
        m = self.num_mix
        # recover C from P = M (1 + 2C + C(C-1)/2)  <=>  C^2 + 3C + 2 - 2P/M = 0
        c = int(round((-3 + math.sqrt(1 + 8 * params.shape[1] / m)) / 2))
        logits, means, log_scales, coeffs = self.split(params, c)
        b, _, *s = logits.shape
        flat_logits = logits.movedim(1, -1).reshape(-1, m)
        if temperature <= 0:
            comp = flat_logits.argmax(-1)
        else:
            probs = torch.softmax(flat_logits / temperature, dim=-1)
            comp = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        comp = comp.reshape(b, 1, 1, *s)

        def pick(t: Tensor) -> Tensor:  # (B, X, M, *S) -> (B, X, *S)
            return t.gather(2, comp.expand(-1, t.shape[1], -1, *s)).squeeze(2)

        mu, log_s, co = pick(means), pick(log_scales), pick(coeffs)
        if temperature > 0:
            eps = torch.finfo(params.dtype).eps
            u = torch.rand(mu.shape, generator=generator, device=params.device, dtype=params.dtype)
            mu = mu + torch.logit(u.clamp(eps, 1 - eps)) * (log_s.exp() * temperature)
        levels = torch.empty(mu.shape, dtype=torch.long, device=params.device)
        values = torch.empty_like(mu)
        for i in range(c):  # R, then G | R, then B | R, G
            z = mu[:, i] + self._shift(co, values, i) if i else mu[:, i]
            q = torch.round((z.clamp(-1.0, 1.0) + 1.0) * ((self.levels - 1) / 2.0))
            levels[:, i] = q.long()
            values[:, i] = self._values(q, params.dtype)
        return levels
