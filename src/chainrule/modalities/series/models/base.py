"""Forecasters on the one model contract: the chain rule over time for a real-valued series.

``p(y_1..T | c) = prod_t p(y_t | y_<t, c)`` where the condition ``c`` (a :class:`~chainrule.core.contract.Condition`)
carries the known per-step ``time_features`` ``(B, T, F)``, the per-window ``scale`` ``(B,)`` and the ``observed``
mask of steps that count. The contract's verbs take their series form:

- ``forward(y, cond) -> (B, P, T)``: teacher-forced parameters of every step's conditional (continuous head);
  step ``t`` sees ``y_<t`` only (plus time features of steps ``<= t`` and the scale);
- ``log_prob_positions(y, cond) -> (B, T)`` nats, exactly 0 where ``y`` is missing or not observed;
  ``log_prob`` sums them; ``loss`` is the mean NLL per scored step (missing values contribute nothing);
- ``prefill(y_hist, cond) -> (params_next, cache)`` consumes the history in one pass; ``step(y_prev, cache)``
  appends one value and returns the next step's parameters;
- ``sample(n, cond, x_given=y_hist, horizon=H)`` / ``sample_paths``: seeded ancestral paths ``(S, n, H)``.

Architectures implement :meth:`network` (all steps at once), :meth:`network_prefill` and :meth:`network_step`;
inputs (lags, time features, ``log1p(scale)``) are built here, identically for the teacher-forced and the
incremental paths (see :mod:`chainrule.modalities.series.features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from chainrule.core.contract import AutoregressiveModel, Condition
from chainrule.core.heads import build_head
from chainrule.core.heads.continuous import ContinuousHead
from chainrule.core.sampling import check_stop
from chainrule.modalities.series.features import ffill_scaled, lag_inputs, lag_inputs_at


class ForecastModel(AutoregressiveModel):
    """Base class of the neural forecasters.

    Args:
        head: a continuous head or its name (``gaussian``, ``student_t``, ``negative_binomial``,
            ``squared_error``); defaults to the architecture's ``default_head``.
        lags: lags whose values feed each step (1 = the previous value).
        num_time_features: width of the per-step time features (calendar + covariates).
    """

    modality: ClassVar[str] = "series"
    default_head: ClassVar[str] = "gaussian"

    def __init__(self, head: ContinuousHead | str | None = None, lags: Sequence[int] = (1,),
                 num_time_features: int = 0) -> None:
        head_mod = head if isinstance(head, ContinuousHead) else build_head(head or self.default_head)
        if not isinstance(head_mod, ContinuousHead):
            raise ValueError(f"a forecaster needs a continuous head, not {head_mod.name!r}")
        super().__init__(event_shape=(1, 0), head=head_mod)
        self.lags = sorted(int(v) for v in lags)
        self.num_time_features = int(num_time_features)
        self.num_inputs = 2 * len(self.lags) + self.num_time_features + 1

    @classmethod
    def build(cls, event_shape: Sequence[int] | None = None, levels: int = 0, num_classes: int = 0,
              head: str | None = None, head_options: dict[str, Any] | None = None, **options: Any
              ) -> ForecastModel:
        """Registry constructor: series length is free, so only the head and the options matter."""
        return cls(head=build_head(head or cls.default_head, **(head_options or {})), **options)

    @property
    def num_dims(self) -> int:
        """The training loss is already per scored step, so bits/dim of a series are bits per step."""
        return 1

    # ----------------------------------------------------------------- architecture hooks
    def network(self, inputs: Tensor, cond: Condition | None = None) -> Tensor:
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
    def check_input(self, x: Tensor, cond: Any) -> None:
        if not isinstance(cond, Condition) or cond.time_features is None or cond.scale is None:
            raise ValueError(f"{self.name}: a forecaster needs Condition(time_features=..., scale=...)")
        if x.dim() != 2 or cond.time_features.shape[:2] != x.shape or cond.scale.shape != x.shape[:1]:
            raise ValueError(f"{self.name}: expected y (B, T), time features (B, T, F) and scale (B,); got "
                             f"{tuple(x.shape)}, {tuple(cond.time_features.shape)}, {tuple(cond.scale.shape)}")
        if cond.time_features.shape[-1] != self.num_time_features:
            raise ValueError(f"{self.name}: expected {self.num_time_features} time features, got "
                             f"{cond.time_features.shape[-1]}")

    def encode(self, x: Tensor, cond: Condition | None = None) -> Tensor:
        """Per-step inputs ``(B, T, num_inputs)``: lag values and flags, time features, ``log1p(scale)``."""
        assert cond is not None and cond.scale is not None and cond.time_features is not None
        zf, obs = ffill_scaled(x, cond.scale)
        static = torch.log1p(cond.scale)[:, None, None].expand(-1, x.shape[1], 1)
        return torch.cat([lag_inputs(zf, obs, self.lags), cond.time_features.to(zf.dtype), static], dim=-1)

    def forward(self, x: Tensor, cond: Condition | None = None) -> Tensor:
        """Raw parameters ``(B, P, T)`` of ``p(y_t | y_<t)`` for every step of ``x`` ``(B, T)`` (NaN = missing)."""
        self.check_input(x, cond)
        return self.network(self.encode(x, cond), cond).transpose(1, 2)

    def scored(self, x: Tensor, cond: Condition) -> Tensor:
        """``(B, T)`` bool: the steps whose log-probability counts (observed, and in ``cond.observed``)."""
        keep = torch.isfinite(x)
        return keep if cond.observed is None else keep & cond.observed

    def log_prob_positions(self, x: Tensor, cond: Condition | None = None) -> Tensor:
        """Per-step log-probabilities ``(B, T)`` in nats; exactly 0 (and gradient-free) where not scored.
        A value outside the head's support (infinity; a negative or fractional count) is an :class:`InputError`."""
        self.head.check_support(x, "y")
        params = self(x, cond)
        keep = self.scored(x, cond)
        lp = self.head.log_prob(params, torch.where(keep, x, 0.0), cond.scale)
        return torch.where(keep, lp, 0.0)

    def loss(self, x: Tensor, cond: Condition | None = None) -> Tensor:
        """Mean negative log-likelihood per scored step."""
        keep = self.scored(x, cond)
        return -self.log_prob_positions(x, cond).sum() / keep.sum().clamp(min=1)

    # ----------------------------------------------------------------- incremental
    def prefill(self, x: Tensor, cond: Condition) -> tuple[Tensor, dict[str, Any]]:
        """Consume the history ``x`` ``(B, T0)``; ``cond.time_features`` ``(B, T0 + H, F)`` covers the steps to
        come. Returns the parameters ``(B, P)`` of step ``T0`` and the cache for :meth:`step`."""
        b, t0 = x.shape
        tf, scale = cond.time_features, cond.scale
        cap = tf.shape[1]
        zf, obs = ffill_scaled(x, scale)
        buf_z, buf_o = zf.new_zeros(b, cap), obs.new_zeros(b, cap)
        buf_z[:, :t0], buf_o[:, :t0] = zf, obs
        state = self.network_prefill(self.encode(x, Condition(time_features=tf[:, :t0], scale=scale)), cap)
        cache = {"t": t0, "n": t0, "z": buf_z, "obs": buf_o, "time_feats": tf, "scale": scale,
                 "static": torch.log1p(scale)[:, None], "state": state}
        return self.step(None, cache)

    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Append ``x_prev`` ``(B,)`` (the value of the step last returned; ``None`` right after the history) and
        return the raw parameters ``(B, P)`` of the next step."""
        t = cache["t"]
        if x_prev is not None:
            n = cache["n"]
            z = x_prev / cache["scale"]
            ok = torch.isfinite(z)
            last = cache["z"][:, n - 1] if n > 0 else torch.zeros_like(z)
            cache["z"][:, n], cache["obs"][:, n] = torch.where(ok, z, last), ok
            cache["n"] = n + 1
        if cache["n"] != t:
            raise ValueError(f"{self.name}: step {t} needs the value of step {t - 1} (pass it as x_prev)")
        if t >= cache["time_feats"].shape[1]:
            raise ValueError(f"{self.name}: no time features for step {t}; the condition covered "
                             f"{cache['time_feats'].shape[1]} steps")
        inp = torch.cat([lag_inputs_at(cache["z"], cache["obs"], t, self.lags),
                         cache["time_feats"][:, t].to(cache["z"].dtype), cache["static"]], dim=-1)
        params, cache["state"] = self.network_step(inp, cache["state"], t)
        cache["t"] = t + 1
        return params, cache

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, cond: Condition | None = None, x_given: Tensor | None = None,
               known: Tensor | None = None, temperature: float = 1.0, use_cache: bool = True,
               generator: torch.Generator | None = None, horizon: int | None = None) -> Tensor:
        """``n`` ancestral paths ``(S, n, horizon)`` continuing each history ``x_given`` ``(S, T0)``."""
        self.check_sample(n, cond, temperature=temperature)
        if x_given is None or horizon is None or cond is None:
            raise ValueError(f"{self.name}: sampling a forecast needs the history (x_given), a horizon and cond")
        return self.sample_paths(x_given, cond, horizon, n, generator=generator, temperature=temperature,
                                 use_cache=use_cache)

    @torch.no_grad()
    def sample_paths(self, y_hist: Tensor, cond: Condition, horizon: int, num_samples: int, seed: int = 0,
                     use_cache: bool = True, max_batch: int = 16384, generator: torch.Generator | None = None,
                     temperature: float = 1.0) -> Tensor:
        """Ancestral sample paths ``(S, N, H)`` in original units for ``S`` histories ``y_hist`` ``(S, T0)``.

        ``cond.time_features`` ``(S, T0 + H, F)``; ``cond.scale`` ``(S,)``. Series are processed in chunks of at
        most ``max_batch`` paths; with the cache, each history is consumed once and its state copied to the
        ``num_samples`` paths. Cached and uncached roll-outs draw the same random numbers in the same order.

        Seeding rule: series ``i`` of the request draws all its noise from its own generator, seeded by
        :func:`series_seed` ``(seed, i)`` (``seed`` itself for ``i = 0``, so a series asked alone gets ``seed``).
        Its paths therefore depend on its data, ``seed`` and its position in the request only — never on
        ``max_batch`` or on the other series of the call. A ``generator``, when given, supplies ``seed``.
        """
        s, t0 = y_hist.shape
        tf_all, sc_all = cond.time_features, cond.scale
        if tf_all.shape[1] < t0 + horizon:
            raise ValueError(f"{self.name}: time features cover {tf_all.shape[1]} steps, need {t0 + horizon}")
        per = max(1, max_batch // max(num_samples, 1))
        if generator is not None:
            seed = int(torch.randint(2**63 - 1, (1,), generator=generator, device=generator.device))
        gens = [torch.Generator(device=y_hist.device).manual_seed(series_seed(seed, i)) for i in range(s)]
        out = []
        for lo in range(0, s, per):
            y, tf, sc = y_hist[lo:lo + per], tf_all[lo:lo + per, : t0 + horizon], sc_all[lo:lo + per]
            draw = _PerSeriesDraw(self.head, gens[lo:lo + per], num_samples, temperature)
            if use_cache and self.supports_cache:
                paths = self._rollout_cached(y, tf, sc, num_samples, horizon, draw)
            else:
                rep = [v.repeat_interleave(num_samples, 0) for v in (y, tf, sc)]
                paths = self._rollout_full(*rep, horizon, draw)
            out.append(paths.view(-1, num_samples, horizon))
        return torch.cat(out) if out else y_hist.new_zeros(0, num_samples, horizon)

    def _rollout_cached(self, y: Tensor, tf: Tensor, sc: Tensor, n: int, horizon: int, draw: _PerSeriesDraw) -> Tensor:
        """Consume each history once, then roll out ``n`` paths per series from copies of its state."""
        params, cache = self.prefill(y, Condition(time_features=tf, scale=sc))
        params, cache = params.repeat_interleave(n, 0), self.repeat_cache(cache, n)
        sc = cache["scale"]
        draws = []
        for h in range(horizon):  # the roll-out: one step per forecast step
            check_stop()  # a server may abandon the forecast between steps
            if h:
                params, cache = self.step(draws[-1], cache)
            draws.append(draw(params, sc))
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

    def _rollout_full(self, y: Tensor, tf: Tensor, sc: Tensor, horizon: int, draw: _PerSeriesDraw) -> Tensor:
        t0 = y.shape[1]
        seq = torch.cat([y, y.new_full((y.shape[0], horizon), float("nan"))], 1)
        for h in range(horizon):  # re-run the whole network for every step
            check_stop()
            params = self(seq[:, : t0 + h + 1], Condition(time_features=tf[:, : t0 + h + 1], scale=sc))[..., -1]
            seq[:, t0 + h] = draw(params, sc)
        return seq[:, t0:]

    # ----------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model through the registry (head, lags, time features, sizes)."""
        return {"head": self.head.name, "lags": list(self.lags), "num_time_features": self.num_time_features,
                **{k: v for k, v in getattr(self, "_config", {}).items()
                   if k not in ("head", "lags", "num_time_features")}}


#: odd 64-bit constant (2^64 / golden ratio) spreading series positions over the seed space (as in SplitMix64)
_SEED_STRIDE = 0x9E3779B97F4A7C15


def series_seed(seed: int, index: int) -> int:
    """The seed of series ``index`` of a forecast request: ``seed`` for the first, distinct seeds for the rest
    (also in the low 32 bits, all a CPU generator uses)."""
    return (int(seed) + int(index) * _SEED_STRIDE) % 2**64


class _PerSeriesDraw:
    """One roll-out step's draws for a chunk of series, each series' ``n`` consecutive rows from its generator."""

    def __init__(self, head: ContinuousHead, generators: list[torch.Generator], n: int, temperature: float) -> None:
        self.head, self.generators, self.n, self.temperature = head, generators, n, temperature

    def __call__(self, params: Tensor, scale: Tensor) -> Tensor:
        if self.head.point:  # a point forecast draws nothing
            return self.head.sample(params, self.temperature, scale=scale)
        rows = zip(params.split(self.n), scale.split(self.n), self.generators, strict=True)
        return torch.cat([self.head.sample(p, self.temperature, g, scale=s) for p, s, g in rows])
