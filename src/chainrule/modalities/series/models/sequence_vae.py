"""The sequence VAE (:mod:`chainrule.core.latent.sequence_vae`) on series windows: the same class as for tokens;
the series decides only the input embedding (a value and its observed flag -> a vector) and the head (Gaussian or
Student-t in units of the window's scale).

It trains through the series pipeline like a forecaster (:class:`~chainrule.modalities.series.features.
TrainingWindows` and the one Trainer: ``loss(y, cond)`` on windows ``(B, T)`` with their
:class:`~chainrule.core.contract.Condition`), but it is a latent-variable model of whole windows, not a
forecaster: it reads values only (no lags or time features), and it does not roll out forecasts (the forecast
commands refuse it; ``chainrule eval`` reports its bounds on held-out windows and ``chainrule sample`` draws
windows from its prior, :mod:`chainrule.modalities.series.latent`). Each window is
divided by its ``cond.scale``, left-padded with missing values to whole segments; missing steps (NaN, or outside
``cond.observed``) are read as "missing" by the encoder and not scored. ``log_prob`` is in original units (the
scaled density minus ``log scale`` per scored step): the ELBO while training, the IWAE bound in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError
from chainrule.core.heads import build_head
from chainrule.core.heads.continuous import ContinuousHead
from chainrule.core.latent.sequence_vae import SequenceVAE


class ValueEmbedding(nn.Module):
    """Scaled values ``(B, 1, T)`` (NaN = missing) -> vectors ``(B, T, D)`` from (value or 0, observed flag)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2, dim)

    def forward(self, x: Tensor) -> Tensor:
        known = torch.isfinite(x[:, 0])
        return self.linear(torch.stack([torch.where(known, x[:, 0], 0.0), known.to(x.dtype)], dim=-1))


class SeriesSequenceVAE(SequenceVAE):
    """MusicVAE-style sequence VAE over series windows (options: see :class:`SequenceVAE`; ``lags`` and
    ``num_time_features``, which the series pipeline passes to every model, are accepted and not used)."""

    name: ClassVar[str] = "sequence_vae"
    modality: ClassVar[str] = "series"
    default_head: ClassVar[str] = "gaussian"
    TINY: ClassVar[dict] = {"segment_length": 4, "embed_dim": 8, "encoder_size": 8, "conductor_size": 8,
                            "decoder_size": 8, "latent": 2, "iwae_samples": 4}

    @classmethod
    def build(cls, event_shape: Sequence[int] | None = None, levels: int = 0, num_classes: int = 0,
              head: str | None = None, head_options: dict[str, Any] | None = None, lags: Sequence[int] = (1,),
              num_time_features: int = 0, **options: Any) -> SeriesSequenceVAE:
        """Registry constructor: window length is free (set by the data), as for the forecasters."""
        return cls((1, 0), build_head(head or cls.default_head, **(head_options or {})), **options)

    def input_embedding(self, embed_dim: int) -> nn.Module:
        if not isinstance(self.head, ContinuousHead) or self.head.point:
            raise ConfigError(f"{self.name} on series needs a probabilistic continuous head (gaussian, student_t)")
        if self.scheduled_sampling:
            raise ConfigError(f"{self.name} on series: scheduled_sampling is for tokens; leave it at 0")
        return ValueEmbedding(embed_dim)

    # ------------------------------------------------------------------ windows in, scaled windows to the core
    def scaled(self, y: Tensor, cond: Condition | None) -> Tensor:
        """Windows ``(B, T)`` -> ``(B, 1, T')``: divided by ``cond.scale``, unobserved steps NaN, left-padded with
        NaN to a whole number of segments."""
        if not isinstance(cond, Condition) or cond.scale is None or y.dim() != 2 or cond.scale.shape != y.shape[:1]:
            raise ValueError(f"{self.name}: expected windows y (B, T) and Condition(scale=(B,))")
        x = y / cond.scale[:, None].to(y.dtype)
        if cond.observed is not None:
            x = torch.where(cond.observed, x, torch.nan)
        pad = -y.shape[1] % self.segment_length
        return nn.functional.pad(x, (pad, 0), value=float("nan")).unsqueeze(1)

    def log_scale(self, x: Tensor, cond: Condition) -> Tensor:
        """``log scale`` times the scored steps of each window ``(B,)``: the change of units of the density."""
        return torch.isfinite(x[:, 0]).sum(-1) * torch.log(cond.scale.to(x.dtype))

    def check_input(self, x: Tensor, cond: Any) -> None:
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] % self.segment_length:
            raise ValueError(f"{self.name}: expected scaled windows (B, 1, T), T a multiple of segment_length")

    def reconstruction_log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        known = torch.isfinite(x[:, 0])
        lp = self.head.log_prob(params, torch.where(known, x[:, 0], 0.0))
        return torch.where(known, lp, 0.0).sum(-1)

    # ------------------------------------------------------------------ the contract's verbs, in series form
    def loss(self, x: Tensor, cond: Any = None) -> Tensor:
        """The regularised negative ELBO of the scaled windows, per scored step (like a forecaster's loss)."""
        scaled = self.scaled(x, cond)
        steps = torch.isfinite(scaled).sum().clamp(min=1)
        return super().loss(scaled) * len(x) / steps

    @property
    def num_dims(self) -> int:
        """The loss is already per scored step (as for the forecasters)."""
        return 1

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """A lower bound on log p(y) per window: the ELBO while training, the IWAE bound in eval mode."""
        return self.elbo(x, cond) if self.training else self.iwae_bound(x, cond, self.iwae_samples)

    def elbo(self, x: Tensor, cond: Any = None) -> Tensor:
        scaled = self.scaled(x, cond)
        rec, kl = self.elbo_terms(scaled)
        return rec - kl.sum(-1) - self.log_scale(scaled, cond)

    def iwae_bound(self, x: Tensor, cond: Condition, k: int, generator: torch.Generator | None = None) -> Tensor:
        """The importance-weighted bound with ``k`` samples, nats per window ``(B,)`` in original units."""
        scaled = self.scaled(x, cond)
        return self.iwae(scaled, k, generator) - self.log_scale(scaled, cond)

    @torch.no_grad()
    def sample_windows(self, n: int, width: int, scored: int, temperature: float = 1.0,
                       generator: torch.Generator | None = None) -> Tensor:
        """``n`` windows ``(n, scored)`` from the prior, in units of the window scale: the decoder runs over the
        ``width`` steps of a training window (left-padded to whole segments) with the steps before the last
        ``scored`` missing, as they were in training, and the last ``scored`` steps are drawn."""
        if not 1 <= scored <= width:
            raise ConfigError(f"{self.name}: scored steps must be in 1..{width}, got {scored}")
        length = width + (-width % self.segment_length)
        missing = torch.arange(length, device=self.device) < length - scored
        given = torch.full((n, 1, length), float("nan"), device=self.device)
        z = torch.randn((n, self.latent), generator=generator, device=self.device, dtype=self.out.weight.dtype)
        x = self.decode_latents(z, temperature, generator, given, missing.expand(n, -1), length=length)
        return x[:, 0, length - scored:]

    def draw(self, n: int, cond: Any, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        raise ConfigError(f"{self.name} on series models whole windows (sample_windows, `chainrule sample RUN`); "
                          "it does not sample forecasts")
