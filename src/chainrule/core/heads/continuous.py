"""Continuous heads (real-valued targets such as time series), DeepAR-style scaling included.

On the one :class:`~chainrule.core.heads.base.Head` contract (parameters on axis 1: ``(B, P, T)`` or ``(B, P)``,
values ``(B, T)`` or ``(B,)``, a per-example ``scale`` ``(B,)``). A network emits ``P`` raw parameters per step in
*scaled* units (the series divided by its scale ``s``, see
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
Sampling draws from the ``torch.Generator`` it is given (``sample_paths`` makes one per series from its seed),
so concurrent forecasts never share random state.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core.errors import DataError
from chainrule.core.heads.base import Head

_MIN_SIGMA = 1e-3


def _normal(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal draws shaped like ``like``."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _per_position(scale: Tensor | None, like: Tensor) -> Tensor:
    """``scale`` ``(B,)`` broadcast against one parameter slice ``like`` ``(B, *S)`` (1 when None)."""
    if scale is None:
        return torch.ones((), dtype=like.dtype, device=like.device)
    return scale.reshape(scale.shape + (1,) * (like.dim() - scale.dim())).to(like.dtype)


class ContinuousHead(Head):
    """A distribution over one real value per position; its parameters are in units of ``scale``."""

    discrete: ClassVar[bool] = False
    #: raw parameters per position
    width: ClassVar[int] = 1
    #: added to the mean absolute value when computing the series scale
    scale_offset: ClassVar[float] = 0.0
    #: True for point forecasts (sampling returns the mean)
    point: ClassVar[bool] = False
    #: appended to :meth:`check_values`' message (what to do about training data outside the support)
    data_hint: ClassVar[str] = ""

    def num_params(self, channels: int = 1) -> int:
        if channels != 1:
            raise ValueError(f"the {self.name} head models one value per position, not {channels} channels")
        return self.width

    def dist_params(self, params: Tensor, scale: Tensor | None = None) -> dict[str, Tensor]:
        """Named distribution parameters in original units, each shaped like one slice of ``params``."""
        raise NotImplementedError

    def mean(self, params: Tensor, scale: Tensor | None = None) -> Tensor:
        return self.dist_params(params, scale)["mean"]

    @property
    def support(self) -> str:
        return "finite numbers; NaN = missing"

    def outside_support(self, x: Tensor) -> Tensor:
        """Infinity is outside every continuous head's support; NaN is a missing value, not an error."""
        return torch.isinf(x)

    def check_values(self, values: list, where: str) -> None:
        """Raise :class:`DataError` (naming ``where``) when the data (a list of series) cannot come from this head."""
        for v in values:
            t = torch.as_tensor(np.asarray(v, dtype=np.float64))
            bad = self.outside_support(t)
            if bool(bad.any()):
                first = float(t[bad][0])
                raise DataError(f"{where}: {first:g} is outside the {self.name} head's support ({self.support})"
                                + self.data_hint)


class Gaussian(ContinuousHead):
    name = "gaussian"
    width = 2

    def dist_params(self, params: Tensor, scale: Tensor | None = None) -> dict[str, Tensor]:
        s = _per_position(scale, params[:, 0])
        mu = params[:, 0] * s
        return {"mean": mu, "loc": mu, "scale": (F.softplus(params[:, 1]) + _MIN_SIGMA) * s}

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        p = self.dist_params(params, scale)
        z = (x - p["loc"]) / p["scale"]
        return -0.5 * z * z - p["scale"].log() - 0.5 * math.log(2 * math.pi)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        """``temperature`` multiplies the standard deviation (0: the mean)."""
        p = self.dist_params(params, scale)
        return p["loc"] + temperature * p["scale"] * _normal(p["loc"], generator)


class StudentT(ContinuousHead):
    name = "student_t"
    width = 3

    def dist_params(self, params: Tensor, scale: Tensor | None = None) -> dict[str, Tensor]:
        s = _per_position(scale, params[:, 0])
        mu = params[:, 0] * s
        return {"mean": mu, "loc": mu, "scale": (F.softplus(params[:, 1]) + _MIN_SIGMA) * s,
                "df": 2.0 + F.softplus(params[:, 2])}

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        p = self.dist_params(params, scale)
        df, sigma = p["df"], p["scale"]
        z = (x - p["loc"]) / sigma
        return (torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(math.pi * df) - sigma.log()
                - (df + 1) / 2 * torch.log1p(z * z / df))

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        """``temperature`` multiplies the scale (0: the location)."""
        p = self.dist_params(params, scale)
        df = p["df"]
        chi2 = 2.0 * torch._standard_gamma(df / 2, generator=generator)  # chi-square with df degrees of freedom
        return p["loc"] + temperature * p["scale"] * _normal(df, generator) * torch.rsqrt(chi2 / df)


class NegativeBinomial(ContinuousHead):
    """Counts: a distribution over non-negative integers, parameterised in units of the series scale."""

    name = "negative_binomial"
    width = 2
    scale_offset = 1.0

    def dist_params(self, params: Tensor, scale: Tensor | None = None) -> dict[str, Tensor]:
        s = _per_position(scale, params[:, 0])
        mu = F.softplus(params[:, 0]) * s + 1e-6
        alpha = F.softplus(params[:, 1]) / s.sqrt() + 1e-6
        return {"mean": mu, "mu": mu, "alpha": alpha}

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        p = self.dist_params(params, scale)
        mu, r = p["mu"], 1.0 / p["alpha"]
        log_total = torch.log(r + mu)
        return (torch.lgamma(x + r) - torch.lgamma(r) - torch.lgamma(x + 1)
                + r * (r.log() - log_total) + x * (mu.log() - log_total))

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        """A Gamma-Poisson draw; a count distribution has no temperature, so only 1 is accepted."""
        if temperature != 1.0:
            raise ValueError(f"the negative_binomial head samples at temperature 1 only, got {temperature}")
        p = self.dist_params(params, scale)
        r = 1.0 / p["alpha"]
        rate = torch._standard_gamma(r, generator=generator) * (p["mu"] / r)  # Gamma(r, r/mu)
        return torch.poisson(rate, generator=generator)

    data_hint = "; use --head gaussian or student_t for this target"

    @property
    def support(self) -> str:
        return "non-negative integer counts; NaN = missing"

    def outside_support(self, x: Tensor) -> Tensor:
        return ~torch.isnan(x) & (torch.isinf(x) | (x < 0) | (x != x.floor()))


class SquaredError(ContinuousHead):
    name = "squared_error"
    width = 1
    point = True

    def dist_params(self, params: Tensor, scale: Tensor | None = None) -> dict[str, Tensor]:
        return {"mean": params[:, 0] * _per_position(scale, params[:, 0])}

    def log_prob(self, params: Tensor, x: Tensor, scale: Tensor | None = None) -> Tensor:
        """Unit-variance Gaussian in scaled units: ``-(x/s - m)²/2 - log(2π)/2`` (no ``-log s`` term)."""
        d = x / _per_position(scale, params[:, 0]) - params[:, 0]
        return -0.5 * d * d - 0.5 * math.log(2 * math.pi)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
               scale: Tensor | None = None) -> Tensor:
        """The mean itself: a point forecast rolls out deterministically at any temperature."""
        return self.dist_params(params, scale)["mean"]


CONTINUOUS_HEADS: dict[str, type[ContinuousHead]] = {h.name: h for h in (Gaussian, StudentT, NegativeBinomial,
                                                                        SquaredError)}
