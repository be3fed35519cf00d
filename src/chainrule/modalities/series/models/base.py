"""The forecasting-model contract: the chain rule over time for a continuous-valued series.

``p(y_1..T) = prod_t p(y_t | y_<t, features)``. The integer-data :class:`chainrule.core.contract.AutoregressiveModel`
does not fit continuous targets with missing values, so forecasters follow this mirror of it:

- ``forward(y, time_feats, scale) -> (B, T, P)``: teacher-forced raw parameters of every step's conditional;
  step ``t`` sees ``y_<t`` only (plus the known time features of steps ``<= t`` and the per-window scale);
- ``log_prob(y, time_feats, scale, mask) -> (B,)``: nats per series, summed over observed (masked-in) steps;
- ``loss(batch)``: mean negative log-likelihood per scored step; missing values contribute nothing;
- ``init_cache(y_hist, time_feats, scale)``, ``step(y_prev, cache)``: incremental roll-out; the history is
  consumed in one pass, then one step per call;
- ``sample_paths(y_hist, time_feats, scale, horizon, num_samples, seed)``: seeded ancestral sample paths
  ``(S, N, H)``.

Architectures implement :meth:`network` (all steps at once), :meth:`network_prefill` and
:meth:`network_step`; inputs (lags, time features, ``log1p(scale)``) are built here, identically for the
teacher-forced and the incremental paths (see :mod:`chainrule.modalities.series.features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.heads.continuous import build_forecast_head
from chainrule.modalities.series.features import ForecastBatch, ffill_scaled, lag_inputs, lag_inputs_at


class ForecastModel(nn.Module):
    """Base class of the neural forecasters.

    Args:
        head: output distribution (``gaussian``, ``student_t``, ``negative_binomial``, ``squared_error``);
            defaults to the architecture's ``default_head``.
        lags: lags whose values feed each step (1 = the previous value).
        num_time_features: width of the per-step time features (calendar + covariates).
    """

    name: ClassVar[str] = "base"
    supports_cache: ClassVar[bool] = False
    default_head: ClassVar[str] = "gaussian"
    #: options of a tiny instance, for tests
    TINY: ClassVar[dict[str, Any]] = {}

    def __init__(self, head: str | None = None, lags: Sequence[int] = (1,), num_time_features: int = 0) -> None:
        super().__init__()
        self.head = build_forecast_head(head or self.default_head)
        self.lags = sorted(int(v) for v in lags)
        self.num_time_features = int(num_time_features)
        self.num_inputs = 2 * len(self.lags) + self.num_time_features + 1

    @property
    def num_params_out(self) -> int:
        return self.head.num_params

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ----------------------------------------------------------------- architecture hooks
    def network(self, inputs: Tensor) -> Tensor:
        """``(B, T, num_inputs)`` -> raw parameters ``(B, T, P)``; step ``t`` may use inputs ``<= t`` only."""
        raise NotImplementedError

    def network_prefill(self, inputs: Tensor, capacity: int) -> Any:
        """Consume ``(B, T0, num_inputs)`` and return the state for :meth:`network_step` (room for
        ``capacity`` steps in all)."""
        raise NotImplementedError(f"{self.name} has no incremental step")

    def network_step(self, inputs: Tensor, state: Any, pos: int) -> tuple[Tensor, Any]:
        """One step's inputs ``(B, num_inputs)`` at position ``pos`` -> raw parameters ``(B, P)`` and state."""
        raise NotImplementedError(f"{self.name} has no incremental step")

    # ----------------------------------------------------------------- teacher-forced
    def inputs(self, y: Tensor, time_feats: Tensor, scale: Tensor) -> Tensor:
        """Per-step inputs ``(B, T, num_inputs)``: lag values and flags, time features, ``log1p(scale)``."""
        zf, obs = ffill_scaled(y, scale)
        static = torch.log1p(scale)[:, None, None].expand(-1, y.shape[1], 1)
        return torch.cat([lag_inputs(zf, obs, self.lags), time_feats.to(zf.dtype), static], dim=-1)

    def forward(self, y: Tensor, time_feats: Tensor, scale: Tensor) -> Tensor:
        """Raw parameters ``(B, T, P)`` of ``p(y_t | y_<t)`` for every step of ``y`` ``(B, T)`` (NaN = missing)."""
        if time_feats.shape[-1] != self.num_time_features:
            raise ValueError(f"{self.name}: expected {self.num_time_features} time features, got "
                             f"{time_feats.shape[-1]}")
        return self.network(self.inputs(y, time_feats, scale))

    def log_prob_steps(self, y: Tensor, time_feats: Tensor, scale: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-step log-probabilities ``(B, T)`` in nats; exactly 0 (and gradient-free) where ``y`` is missing
        or ``mask`` is False."""
        params = self(y, time_feats, scale)
        keep = torch.isfinite(y) if mask is None else torch.isfinite(y) & mask
        lp = self.head.log_prob(params, torch.where(keep, y, 0.0), scale[:, None])
        return torch.where(keep, lp, 0.0)

    def log_prob(self, y: Tensor, time_feats: Tensor, scale: Tensor, mask: Tensor | None = None) -> Tensor:
        """Log-likelihood of each series' observed steps in nats, ``(B,)``."""
        return self.log_prob_steps(y, time_feats, scale, mask).sum(1)

    def loss(self, batch: ForecastBatch) -> Tensor:
        """Mean negative log-likelihood per scored (observed, masked-in) step."""
        keep = torch.isfinite(batch.y) if batch.mask is None else batch.mask & torch.isfinite(batch.y)
        lp = self.log_prob_steps(batch.y, batch.time_feats, batch.scale, keep)
        return -lp.sum() / keep.sum().clamp(min=1)

    # ----------------------------------------------------------------- incremental
    def init_cache(self, y_hist: Tensor, time_feats: Tensor, scale: Tensor) -> dict[str, Any]:
        """Consume the history ``y_hist`` ``(B, T0)``; ``time_feats`` ``(B, T0 + H, F)`` covers the steps
        to come. The first :meth:`step` (with ``None``) then gives the parameters of step ``T0``."""
        b, t0 = y_hist.shape
        cap = time_feats.shape[1]
        zf, obs = ffill_scaled(y_hist, scale)
        buf_z, buf_o = zf.new_zeros(b, cap), obs.new_zeros(b, cap)
        buf_z[:, :t0], buf_o[:, :t0] = zf, obs
        state = self.network_prefill(self.inputs(y_hist, time_feats[:, :t0], scale), cap)
        return {"t": t0, "n": t0, "z": buf_z, "obs": buf_o, "time_feats": time_feats, "scale": scale,
                "static": torch.log1p(scale)[:, None], "state": state}

    def step(self, y_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Append ``y_prev`` ``(B,)`` (the value of the step last returned; ``None`` the first time) and return
        the raw parameters ``(B, P)`` of the next step."""
        t = cache["t"]
        if y_prev is not None:
            n = cache["n"]
            z = y_prev / cache["scale"]
            ok = torch.isfinite(z)
            last = cache["z"][:, n - 1] if n > 0 else torch.zeros_like(z)
            cache["z"][:, n], cache["obs"][:, n] = torch.where(ok, z, last), ok
            cache["n"] = n + 1
        if cache["n"] != t:
            raise ValueError(f"{self.name}: step {t} needs the value of step {t - 1} (pass it as y_prev)")
        if t >= cache["time_feats"].shape[1]:
            raise ValueError(f"{self.name}: no time features for step {t}; init_cache covered "
                             f"{cache['time_feats'].shape[1]} steps")
        inp = torch.cat([lag_inputs_at(cache["z"], cache["obs"], t, self.lags),
                         cache["time_feats"][:, t].to(cache["z"].dtype), cache["static"]], dim=-1)
        params, cache["state"] = self.network_step(inp, cache["state"], t)
        cache["t"] = t + 1
        return params, cache

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample_paths(self, y_hist: Tensor, time_feats: Tensor, scale: Tensor, horizon: int, num_samples: int,
                     seed: int = 0, use_cache: bool = True, max_batch: int = 16384) -> Tensor:
        """Ancestral sample paths ``(S, N, H)`` in original units for ``S`` histories ``y_hist`` ``(S, T0)``.

        ``time_feats`` ``(S, T0 + H, F)``; ``scale`` ``(S,)``. Series are processed in chunks of at most
        ``max_batch`` paths; with the cache, each history is consumed once and its state copied to the
        ``num_samples`` paths. Cached and uncached roll-outs draw the same random numbers in the same order.
        """
        s, t0 = y_hist.shape
        if time_feats.shape[1] < t0 + horizon:
            raise ValueError(f"{self.name}: time_feats has {time_feats.shape[1]} steps, need {t0 + horizon}")
        per = max(1, max_batch // max(num_samples, 1))
        generator = torch.Generator(device=y_hist.device).manual_seed(int(seed))
        out = []
        for lo in range(0, s, per):
            y, tf, sc = y_hist[lo:lo + per], time_feats[lo:lo + per, : t0 + horizon], scale[lo:lo + per]
            if use_cache and self.supports_cache:
                paths = self._rollout_cached(y, tf, sc, num_samples, horizon, generator)
            else:
                rep = [v.repeat_interleave(num_samples, 0) for v in (y, tf, sc)]
                paths = self._rollout_full(*rep, horizon, generator)
            out.append(paths.view(-1, num_samples, horizon))
        return torch.cat(out) if out else y_hist.new_zeros(0, num_samples, horizon)

    def _rollout_cached(self, y: Tensor, tf: Tensor, sc: Tensor, n: int, horizon: int,
                        generator: torch.Generator) -> Tensor:
        """Consume each history once, then roll out ``n`` paths per series from copies of its state."""
        cache = self.repeat_cache(self.init_cache(y, tf, sc), n)
        sc = cache["scale"]
        prev, draws = None, []
        for _ in range(horizon):  # the roll-out: the one Python loop over time
            params, cache = self.step(prev, cache)
            prev = self.head.sample(params, sc, generator)
            draws.append(prev)
        return torch.stack(draws, 1)

    def repeat_cache(self, cache: dict[str, Any], n: int) -> dict[str, Any]:
        """Each row of a cache repeated ``n`` times (row ``i`` -> rows ``i·n .. i·n + n - 1``)."""
        out = {k: v.repeat_interleave(n, 0) if isinstance(v, Tensor) else v for k, v in cache.items()}
        out["state"] = self.repeat_state(cache["state"], n)
        return out

    def repeat_state(self, state: Any, n: int) -> Any:
        """Repeat the rows of :meth:`network_prefill`'s state (batch-first tensors, in nested containers)."""
        if isinstance(state, Tensor):
            return state.repeat_interleave(n, 0)
        if isinstance(state, dict):
            return {k: self.repeat_state(v, n) for k, v in state.items()}
        if isinstance(state, (list, tuple)):
            return type(state)(self.repeat_state(v, n) for v in state)
        return state

    def _rollout_full(self, y: Tensor, tf: Tensor, sc: Tensor, horizon: int, generator: torch.Generator) -> Tensor:
        t0 = y.shape[1]
        seq = torch.cat([y, y.new_full((y.shape[0], horizon), float("nan"))], 1)
        for h in range(horizon):  # re-run the whole network for every step
            params = self(seq[:, : t0 + h + 1], tf[:, : t0 + h + 1], sc)[:, -1]
            seq[:, t0 + h] = self.head.sample(params, sc, generator)
        return seq[:, t0:]

    # ----------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model (with :func:`registry.build_forecast_model`)."""
        return dict(getattr(self, "_config", {}))
