"""Properties of the neural forecasters: causality, cached roll-out, seeding, heads, masking, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from chainrule.core.contract import Condition
from chainrule.core.heads import build_head
from chainrule.modalities.registry import build_model, model_class, model_names
from chainrule.modalities.series.features import (
    FeatureSpec,
    TrainingWindows,
    context_scale,
    ffill_scaled,
    history_batch,
)
from chainrule.modalities.series.table import SeriesSet

LAGS = [1, 3]
NT = 2  # time features
#: the forecasters: every registered series model but the latent ones (the sequence VAE has no forecast to roll
#: out, so none of the forecast properties here apply; tests/test_series_vae.py covers it)
FORECAST_MODELS = [n for n in model_names("series") if model_class(n, "series").family == "autoregressive"]
CASES = [(m, h) for m in FORECAST_MODELS for h in ("gaussian", "student_t", "negative_binomial", "squared_error")]


def tiny(name: str, head: str | None = None, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, modality="series", lags=LAGS, num_time_features=NT, head=head,
                       **model_class(name, "series").TINY).eval()


def cond(tf: torch.Tensor, scale: torch.Tensor, observed: torch.Tensor | None = None) -> Condition:
    return Condition(time_features=tf, scale=scale, observed=observed)


def fwd(m, y: torch.Tensor, tf: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Teacher-forced parameters as (B, T, P), steps first."""
    return m(y, cond(tf, scale)).transpose(1, 2)


def series(b: int = 3, t: int = 14, head: str = "gaussian", seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(b, t, generator=g) * 20 + 1
    if head == "negative_binomial":
        y = y.round()
    tf = torch.randn(b, t + 8, NT, generator=g)
    scale = torch.tensor([1.0, 7.0, 30.0][:b])
    return y, tf, scale


# ---------------------------------------------------------------------------- no look-ahead
@pytest.mark.parametrize("name,head", CASES)
def test_no_lookahead_values(name, head):
    """Changing y at steps >= t0 leaves the parameters of steps <= t0 (and so the forecast from t0) unchanged."""
    m = tiny(name, head)
    y, tf, scale = series(head=head)
    y[0, 4] = float("nan")
    t = y.shape[1]
    with torch.no_grad():
        base = fwd(m, y, tf[:, :t], scale)
        for t0 in (2, 6, t - 2):
            y2 = y.clone()
            y2[:, t0:] = torch.randn_like(y2[:, t0:]) * 100
            y2[1, t0] = float("nan")
            other = fwd(m, y2, tf[:, :t], scale)
            assert torch.equal(base[:, : t0 + 1], other[:, : t0 + 1])
            assert not torch.equal(base[:, t0 + 1:], other[:, t0 + 1:])  # the test can see a change


@pytest.mark.parametrize("name", list(FORECAST_MODELS))
def test_no_lookahead_gradient(name):
    """d params[:, t] / d y[:, s] is exactly zero for s >= t, and non-zero for s = t - 1 (lag 1)."""
    m = tiny(name, "student_t")
    y, tf, scale = series()
    t = y.shape[1]
    y = y.clone().requires_grad_(True)
    params = fwd(m, y, tf[:, :t], scale)
    for step in range(t):
        (g,) = torch.autograd.grad(params[:, step].sum(), y, retain_graph=True)
        assert torch.all(g[:, step:] == 0), f"step {step} depends on later inputs"
        if step >= 1:
            assert torch.all(g[:, step - 1] != 0)


@pytest.mark.parametrize("name", list(FORECAST_MODELS))
def test_first_forecast_step_ignores_the_future(name):
    """The cached forecast's first-step parameters equal the teacher-forced ones on a sequence whose values
    after the origin are arbitrary."""
    m = tiny(name, "gaussian")
    y, tf, scale = series()
    t0 = y.shape[1]
    with torch.no_grad():
        params, _ = m.prefill(y, cond(tf, scale))
        future = torch.cat([y, torch.randn(y.shape[0], 5) * 1e3], 1)
        teacher = fwd(m, future, tf[:, : t0 + 5], scale)[:, t0]
    torch.testing.assert_close(params, teacher, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- roll-out
@pytest.mark.parametrize("name,head", CASES)
def test_cached_rollout_equals_full_rerun(name, head):
    m = tiny(name, head)
    y, tf, scale = series(head=head)
    y[1, -3] = float("nan")
    a = m.sample_paths(y, cond(tf, scale), horizon=8, num_samples=4, seed=3, use_cache=True)
    b = m.sample_paths(y, cond(tf, scale), horizon=8, num_samples=4, seed=3, use_cache=False)
    assert a.shape == (3, 4, 8) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(FORECAST_MODELS))
def test_step_equals_teacher_forcing(name):
    """Feeding known values through step() gives the teacher-forced parameters at every step."""
    m = tiny(name, "student_t")
    y, tf, scale = series(t=20)
    y[0, 12] = float("nan")  # a missing value inside the stepped part
    with torch.no_grad():
        full = fwd(m, y, tf[:, :20], scale)
        p, cache = m.prefill(y[:, :10], cond(tf[:, :20], scale))
        out = [p]
        for t in range(10, 19):
            p, cache = m.step(y[:, t], cache)
            out.append(p)
    torch.testing.assert_close(torch.stack(out, 1), full[:, 10:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,head", [(m, h) for m in FORECAST_MODELS for h in ("gaussian", "negative_binomial")])
def test_sample_paths_seeded(name, head):
    m = tiny(name, head)
    y, tf, scale = series(head=head)
    state = torch.get_rng_state()
    a = m.sample_paths(y, cond(tf, scale), 6, 5, seed=11)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    torch.manual_seed(123)  # global state must not matter
    b = m.sample_paths(y, cond(tf, scale), 6, 5, seed=11)
    c = m.sample_paths(y, cond(tf, scale), 6, 5, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[:, 0], a[:, 1])  # paths differ within one call


def test_point_head_rolls_out_deterministically():
    m = tiny("lstm")
    y, tf, scale = series()
    a = m.sample_paths(y, cond(tf, scale), 5, 3, seed=0)
    assert m.head.name == "squared_error"
    assert torch.equal(a[:, 0], a[:, 2]) and torch.equal(a, m.sample_paths(y, cond(tf, scale), 5, 3, seed=9))


# ---------------------------------------------------------------------------- heads
def test_negative_binomial_pmf_sums_to_one_with_the_right_moments():
    head = build_head("negative_binomial")
    raw = torch.tensor([[0.5, -1.0], [3.0, 0.5], [-2.0, 2.0], [8.0, -3.0]], dtype=torch.float64)
    scale = torch.tensor([1.0, 4.0, 1.0, 20.0], dtype=torch.float64)
    k = torch.arange(0, 20000, dtype=torch.float64)[:, None]
    pmf = head.log_prob(raw, k, scale).exp()  # (K, 4)
    torch.testing.assert_close(pmf.sum(0), torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-6)
    p = head.dist_params(raw, scale)
    mean = (pmf * k).sum(0)
    var = (pmf * (k - mean) ** 2).sum(0)
    torch.testing.assert_close(mean, p["mu"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var, p["mu"] + p["alpha"] * p["mu"] ** 2, rtol=1e-4, atol=1e-6)
    r = 1 / p["alpha"]
    ref = torch.distributions.NegativeBinomial(total_count=r, probs=p["mu"] / (r + p["mu"])).log_prob(k[:50])
    torch.testing.assert_close(head.log_prob(raw, k[:50], scale), ref, rtol=1e-6, atol=1e-6)
    # DeepAR scaling: the mean grows with the scale, the dispersion shrinks as 1/sqrt(scale)
    one = head.dist_params(raw[:1], torch.ones(1, dtype=torch.float64))
    four = head.dist_params(raw[:1], torch.full((1,), 4.0, dtype=torch.float64))
    torch.testing.assert_close(four["mu"] - 1e-6, 4 * (one["mu"] - 1e-6))
    torch.testing.assert_close(four["alpha"] - 1e-6, (one["alpha"] - 1e-6) / 2)


def test_negative_binomial_samples_match_the_mean():
    head = build_head("negative_binomial")
    raw = torch.tensor([[1.0, 0.0]]).expand(40000, 2)
    scale = torch.full((40000,), 5.0)
    torch.manual_seed(0)
    x = head.sample(raw, scale=scale)
    mu = float(head.dist_params(raw[:1], scale[:1])["mu"])
    assert torch.all(x == x.round()) and x.min() >= 0
    assert abs(float(x.mean()) - mu) < 0.05 * mu


def test_gaussian_and_student_t_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(50, 3, generator=g, dtype=torch.float64)
    scale = torch.rand(50, generator=g, dtype=torch.float64) * 10 + 0.1
    y = torch.randn(50, generator=g, dtype=torch.float64) * 10
    gh, th = build_head("gaussian"), build_head("student_t")
    p = gh.dist_params(raw[:, :2], scale)
    ref = torch.distributions.Normal(p["loc"], p["scale"]).log_prob(y)
    torch.testing.assert_close(gh.log_prob(raw[:, :2], y, scale), ref)
    p = th.dist_params(raw, scale)
    ref = torch.distributions.StudentT(p["df"], p["loc"], p["scale"]).log_prob(y)
    torch.testing.assert_close(th.log_prob(raw, y, scale), ref)
    assert torch.all(p["df"] > 2)  # finite variance
    # the location and spread follow the series scale
    torch.testing.assert_close(p["loc"], raw[:, 0] * scale)


def test_squared_error_log_prob_is_unit_gaussian_in_scaled_units():
    head = build_head("squared_error")
    raw, y, s = torch.tensor([[0.5]]), torch.tensor([3.0]), torch.tensor([2.0])
    expected = -0.5 * (3.0 / 2.0 - 0.5) ** 2 - 0.5 * math.log(2 * math.pi)
    assert float(head.log_prob(raw, y, s)) == pytest.approx(expected)


# ---------------------------------------------------------------------------- missing values
@pytest.mark.parametrize("name", list(FORECAST_MODELS))
def test_missing_values_are_masked_out_of_the_loss(name):
    m = tiny(name, "student_t")  # eval mode: no dropout, so the forwards below are comparable
    y, tf, scale = series(t=12)
    y[0, 3] = y[1, 7] = y[2, 11] = float("nan")
    tf = tf[:, :12]
    loss = m.loss(y, cond(tf, scale))
    m.zero_grad()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    # equals the mean NLL over the observed steps only, computed directly from the head
    with torch.no_grad():
        params = fwd(m, y, tf, scale)
        obs = torch.isfinite(y)
        lp = m.head.log_prob(params[obs], y[obs], scale[:, None].expand_as(y)[obs])
        assert float(loss) == pytest.approx(float(-lp.mean()), rel=1e-5)
        # a missing last value contributes exactly nothing: same loss as without that step
        y2 = y.clone()
        y2[:, -1] = float("nan")
        short = (y[:, :-1], cond(tf[:, :-1], scale))
        assert float(m.loss(y2, cond(tf, scale))) == pytest.approx(float(m.loss(*short)), rel=1e-6)
        # and it is not treated as a zero
        y3 = y2.clone()
        y3[:, -1] = 0.0
        assert float(m.loss(y3, cond(tf, scale))) != pytest.approx(float(m.loss(*short)), rel=1e-3)
        # an explicit mask drops observed steps too
        mask = torch.ones_like(y, dtype=torch.bool)
        mask[:, :5] = False
        keep = obs & mask
        lp = m.head.log_prob(params[keep], y[keep], scale[:, None].expand_as(y)[keep])
        assert float(m.loss(y, cond(tf, scale, mask))) == pytest.approx(float(-lp.mean()), rel=1e-5)


def test_inputs_forward_fill_missing_values_with_a_flag():
    y = torch.tensor([[float("nan"), 2.0, float("nan"), float("nan"), 6.0]])
    zf, obs = ffill_scaled(y, torch.tensor([2.0]))
    assert zf.tolist() == [[0.0, 1.0, 1.0, 1.0, 3.0]]
    assert obs.tolist() == [[False, True, False, False, True]]
    scale = context_scale(torch.tensor([[100.0, float("nan"), -2.0, 4.0]]), context=3)
    assert float(scale) == pytest.approx(3.0)  # mean |y| of the observed context values
    assert float(context_scale(torch.tensor([[0.0, 0.0]]), 2)) == 1.0


# ---------------------------------------------------------------------------- windows and features
def daily_set(n: int = 2, t: int = 60, covariates: bool = False) -> SeriesSet:
    rng = np.random.default_rng(0)
    times = [pd.date_range("2021-03-01", periods=t, freq="D") for _ in range(n)]
    values = [10 + 5 * np.sin(np.arange(t) * 2 * np.pi / 7) + rng.normal(size=t) + 10 * i for i in range(n)]
    values[0][10] = np.nan
    cov = [rng.normal(size=(t + 7, 1)) for _ in range(n)] if covariates else None
    return SeriesSet(name="toy.csv", ids=[f"s{i}" for i in range(n)], values=values, times=times, freq="D",
                     season=7, horizon=7, covariates=cov, covariate_names=["temp"] if covariates else [])


def test_feature_spec_windows_and_history():
    ss = daily_set(covariates=True)
    spec = FeatureSpec.for_series(ss, context=14, horizon=7)
    assert spec.lags == [1, 7, 14, 28] and spec.calendar == ["day_of_week", "day_of_year"]
    assert spec.num_time_features == 5 and spec.history == 42
    ws = TrainingWindows(ss, spec)
    assert len(ws) == ws.num_windows == 2 * (60 - 21 + 1) and ws.labels is None and ws.event_shape == (49,)
    y, c = ws.get(torch.randperm(len(ws), generator=torch.Generator().manual_seed(0))[:16])
    assert y.shape == (16, 49) and c.time_features.shape == (16, 49, 5) and c.scale.shape == (16,)
    assert not c.observed[:, :28].any() and torch.equal(c.observed, c.observed & torch.isfinite(y))
    # window i is a fixed (series, end): the last index is exactly the last 49 values of series 1
    y, _ = ws.get(torch.tensor([len(ws) - 1]))
    np.testing.assert_array_equal(y[0].numpy(), ss.values[1][-49:].astype(np.float32))
    # every (series, end) pair is one window, so uniform indices weight series by their length
    series, ends = ws.locate(torch.arange(len(ws)))
    assert sorted(zip(series.tolist(), ends.tolist(), strict=True)) == [(i, e) for i in (0, 1) for e in range(21, 61)]
    # fewer windows than a batch: each is listed several times, in equal numbers
    few = TrainingWindows(ss, spec, min_size=200)
    assert few.repeats == 3 and len(few) == 3 * few.num_windows
    assert np.bincount(few.locate(torch.arange(len(few)))[1]).tolist()[21:] == [6] * 40
    h, hc = history_batch(ss.truncate(53, covariate_extra=7), spec, 7)
    assert h.shape == (2, 42) and hc.time_features.shape == (2, 49, 5) and hc.observed is None
    np.testing.assert_array_equal(h[1].numpy(), ss.values[1][11:53].astype(np.float32))
    # the calendar of the forecast steps continues the series' dates (day of week of 2021-04-23 = Friday)
    tf = hc.time_features
    dow = np.arctan2(tf[0, 42, 0].item(), tf[0, 42, 1].item()) * 7 / (2 * np.pi)
    assert round(dow) % 7 == pd.Timestamp("2021-04-23").dayofweek


def test_round_trip_of_a_trained_run_gives_identical_forecasts(tmp_path):
    from chainrule.modalities.series import api
    from chainrule.modalities.series.neural import NeuralForecaster

    ss = daily_set()
    for name in FORECAST_MODELS:
        f = NeuralForecaster(name, context=14, horizon=7, steps=5, seed=1, **model_class(name, "series").TINY)
        run_dir = tmp_path / name
        f.fit(ss, run_dir=run_dir)
        api.save_forecast_run(run_dir, f, ss, {"source": "toy.csv", "time": "date", "target": "y"})
        again = api.forecaster_from_run(run_dir)
        a, b = f.predict(ss, 7, 20, seed=4), again.predict(ss, 7, 20, seed=4)
        assert a.shape == (2, 20, 7) and np.array_equal(a, b)
        assert type(again.model) is type(f.model) and again.model.head.name == f.model.head.name


def test_the_generic_run_loader_rebuilds_a_forecaster(tmp_path):
    """One registry: ``open_run(...).load_model()`` rebuilds a forecasting run exactly like the series API."""
    from chainrule.modalities.series import api
    from chainrule.runs import open_run

    ss = daily_set()
    run = api.train_forecaster(ss_path(ss, tmp_path), "deepar", horizon=7, time="date", target="y", id="id", steps=3,
                               run_dir=tmp_path / "run", progress=False, **model_class("deepar", "series").TINY)
    ref, _ = api.load_forecast_run(run.path)
    got = open_run(run.path).load_model()
    assert type(got) is type(ref) and got.modality == "series"
    for (k, a), b in zip(ref.state_dict().items(), got.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def ss_path(ss: SeriesSet, tmp_path) -> str:
    """``ss`` written as a long CSV (date, id, y)."""
    rows = [{"date": t, "id": sid, "y": v} for sid, ts, vs in zip(ss.ids, ss.times, ss.values, strict=True)
            for t, v in zip(ts, vs, strict=True)]
    path = tmp_path / "toy.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)
