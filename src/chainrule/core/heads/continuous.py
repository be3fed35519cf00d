"""Output distributions of one forecast step ("heads"), DeepAR-style scaling included.

A network emits ``P`` raw parameters per step in *scaled* units (the series divided by its scale ``s``, see
:func:`chainrule.modalities.series.features.context_scale`). A head maps them to a distribution over the target in
*original* units and scores / samples it:

- ``gaussian``: mean ``m·s``, std ``(softplus(r) + 1e-3)·s``;
- ``student_t``: as gaussian plus degrees of freedom ``2 + softplus(r)`` (finite variance);
- ``negative_binomial`` (non-negative integer counts): mean ``softplus(r)·s``, dispersion
  ``softplus(r)/sqrt(s)`` (variance ``mu + alpha·mu²``), as in the DeepAR paper; its scale is
  ``1 + mean|y|`` (``scale_offset = 1``);
- ``squared_error`` (point forecast): mean ``m·s``. Its ``log_prob`` is that of a *unit-variance Gaussian in
  scaled units*, ``-(y/s - m)²/2 - log(2π)/2`` — the squared-error loss up to a constant, not a density of
  ``y`` in original units — and its samples are the mean itself (a deterministic roll-out).

``log_prob`` is in nats; for the three distributions it is the density (pmf) of ``y`` in original units.
Sampling draws from the ``torch.Generator`` it is given (``sample_paths`` makes one per call from its seed), so
concurrent forecasts never share random state.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.errors import ConfigError, DataError

_MIN_SIGMA = 1e-3


def _normal(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal draws shaped like ``like``."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


class ForecastHead:
    """Raw parameters ``(..., P)`` + scale ``(...)`` -> a distribution over one step's target ``(...)``."""

    name: ClassVar[str] = "base"
    num_params: ClassVar[int] = 1
    #: added to the mean absolute value when computing the series scale
    scale_offset: ClassVar[float] = 0.0
    #: True for point forecasts (sampling returns the mean)
    point: ClassVar[bool] = False

    def dist_params(self, raw: Tensor, scale: Tensor) -> dict[str, Tensor]:
        """Named distribution parameters in original units, each ``(...)``."""
        raise NotImplementedError

    def log_prob(self, raw: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        """Log-probability (nats) of finite ``y`` ``(...)``; callers mask missing values first."""
        raise NotImplementedError

    def sample(self, raw: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One draw ``(...)`` per set of parameters, in original units, from ``generator`` (torch's global
        generator when None)."""
        raise NotImplementedError

    def mean(self, raw: Tensor, scale: Tensor) -> Tensor:
        return self.dist_params(raw, scale)["mean"]

    def check_target(self, values: list, where: str) -> None:
        """Raise :class:`DataError` (naming ``where``) when the data cannot come from this head."""


class Gaussian(ForecastHead):
    name = "gaussian"
    num_params = 2

    def dist_params(self, raw: Tensor, scale: Tensor) -> dict[str, Tensor]:
        mu = raw[..., 0] * scale
        return {"mean": mu, "loc": mu, "scale": (F.softplus(raw[..., 1]) + _MIN_SIGMA) * scale}

    def log_prob(self, raw: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        p = self.dist_params(raw, scale)
        z = (y - p["loc"]) / p["scale"]
        return -0.5 * z * z - p["scale"].log() - 0.5 * math.log(2 * math.pi)

    def sample(self, raw: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = self.dist_params(raw, scale)
        return p["loc"] + p["scale"] * _normal(p["loc"], generator)


class StudentT(ForecastHead):
    name = "student_t"
    num_params = 3

    def dist_params(self, raw: Tensor, scale: Tensor) -> dict[str, Tensor]:
        mu = raw[..., 0] * scale
        return {"mean": mu, "loc": mu, "scale": (F.softplus(raw[..., 1]) + _MIN_SIGMA) * scale,
                "df": 2.0 + F.softplus(raw[..., 2])}

    def log_prob(self, raw: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        p = self.dist_params(raw, scale)
        df, sigma = p["df"], p["scale"]
        z = (y - p["loc"]) / sigma
        return (torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(math.pi * df) - sigma.log()
                - (df + 1) / 2 * torch.log1p(z * z / df))

    def sample(self, raw: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = self.dist_params(raw, scale)
        df = p["df"]
        chi2 = 2.0 * torch._standard_gamma(df / 2, generator=generator)  # chi-square with df degrees of freedom
        return p["loc"] + p["scale"] * _normal(df, generator) * torch.rsqrt(chi2 / df)


class NegativeBinomial(ForecastHead):
    name = "negative_binomial"
    num_params = 2
    scale_offset = 1.0

    def dist_params(self, raw: Tensor, scale: Tensor) -> dict[str, Tensor]:
        mu = F.softplus(raw[..., 0]) * scale + 1e-6
        alpha = F.softplus(raw[..., 1]) / scale.sqrt() + 1e-6
        return {"mean": mu, "mu": mu, "alpha": alpha}

    def log_prob(self, raw: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        p = self.dist_params(raw, scale)
        mu, r = p["mu"], 1.0 / p["alpha"]
        log_total = torch.log(r + mu)
        return (torch.lgamma(y + r) - torch.lgamma(r) - torch.lgamma(y + 1)
                + r * (r.log() - log_total) + y * (mu.log() - log_total))

    def sample(self, raw: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = self.dist_params(raw, scale)
        r = 1.0 / p["alpha"]
        rate = torch._standard_gamma(r, generator=generator) * (p["mu"] / r)  # Gamma(r, r/mu): Gamma-Poisson mixture
        return torch.poisson(rate, generator=generator)

    def check_target(self, values: list, where: str) -> None:
        import numpy as np

        for v in values:
            v = np.asarray(v, dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size and (v.min() < 0 or np.any(v != np.round(v))):
                raise DataError(f"{where}: the negative_binomial head needs non-negative integer counts; use "
                                "--head gaussian or student_t for this target")


class SquaredError(ForecastHead):
    name = "squared_error"
    num_params = 1
    point = True

    def dist_params(self, raw: Tensor, scale: Tensor) -> dict[str, Tensor]:
        return {"mean": raw[..., 0] * scale}

    def log_prob(self, raw: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        """Unit-variance Gaussian in scaled units: ``-(y/s - m)²/2 - log(2π)/2`` (no ``-log s`` term)."""
        d = y / scale - raw[..., 0]
        return -0.5 * d * d - 0.5 * math.log(2 * math.pi)

    def sample(self, raw: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.dist_params(raw, scale)["mean"]


HEADS: dict[str, type[ForecastHead]] = {h.name: h for h in (Gaussian, StudentT, NegativeBinomial, SquaredError)}


def build_forecast_head(name: str) -> ForecastHead:
    key = name.replace("-", "_").lower()
    if key not in HEADS:
        raise ConfigError(f"unknown forecast head {name!r}; available: {', '.join(HEADS)}")
    return HEADS[key]()
