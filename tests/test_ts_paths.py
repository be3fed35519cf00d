"""A series' forecast paths depend on its data, the seed and its position in the request only: never on how the
roll-out is chunked (``max_batch``) nor on the other series of the call. Series ``i`` of a request draws from its
own generator seeded from ``(seed, i)`` (``seed`` itself for ``i = 0``), so a series asked alone gets the same paths
as when it comes first in a longer request.

"Same paths" allows float rounding (1e-5 relative): a network run on a batch of another size may round differently
in the last bit, while a change of random numbers moves a path by the size of its spread.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from chainrule.core.contract import Condition
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.series.neural import NeuralForecaster
from chainrule.modalities.series.table import SeriesSet

N, H = 6, 5  # paths per series, horizon


def tiny(name: str, head: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, modality="series", lags=[1, 3], num_time_features=2, head=head,
                       **model_class(name, "series").TINY).eval()


def requests(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Histories ``(3, 12)`` at different levels, time features ``(3, 12 + H, 2)`` and scales."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(3, 12, generator=g) * 20 + torch.tensor([[5.0], [40.0], [200.0]])).round()
    return y, torch.randn(3, 12 + H, 2, generator=g), y.abs().mean(1)


def paths(m, y, tf, sc, **kw) -> torch.Tensor:
    return m.sample_paths(y, Condition(time_features=tf, scale=sc), H, N, seed=7, **kw)


def same(a, b) -> bool:
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5))


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("name,head", [("deepar", "student_t"), ("transformer", "negative_binomial"),
                                       ("lstm", "gaussian")])
def test_paths_do_not_depend_on_chunking_or_company(name: str, head: str, use_cache: bool) -> None:
    m = tiny(name, head)
    y, tf, sc = requests()
    together = paths(m, y, tf, sc, use_cache=use_cache)
    one_per_chunk = paths(m, y, tf, sc, use_cache=use_cache, max_batch=N)
    two_then_one = paths(m, y, tf, sc, use_cache=use_cache, max_batch=2 * N)
    alone = paths(m, y[:1], tf[:1], sc[:1], use_cache=use_cache)
    assert together.shape == (3, N, H)
    assert same(together, one_per_chunk) and same(together, two_then_one)
    assert same(alone[0], together[0])  # the first series of a request is seeded like a series alone
    # other series in the call (different data, same positions) leave series 1's paths unchanged
    other_y, other_tf, other_sc = requests(seed=1)
    keep = torch.tensor([False, True, False])
    mixed = paths(m, torch.where(keep[:, None], y, other_y), torch.where(keep[:, None, None], tf, other_tf),
                  torch.where(keep, sc, other_sc), use_cache=use_cache)
    assert same(mixed[1], together[1]) and not same(mixed[0], together[0])


def test_series_of_one_request_draw_independent_noise() -> None:
    """The same history twice in one request gets different paths: each position has its own generator."""
    m = tiny("deepar", "gaussian")
    y, tf, sc = requests()
    twice = paths(m, y[[0, 0]], tf[[0, 0]], sc[[0, 0]])
    assert not same(twice[0], twice[1])


def daily(n: int, t: int = 40) -> SeriesSet:
    rng = np.random.default_rng(0)
    times = [pd.date_range("2022-01-01", periods=t, freq="D") for _ in range(n)]
    values = [20 + 5 * np.sin(np.arange(t) * 2 * np.pi / 7) + rng.normal(size=t) + 10 * i for i in range(n)]
    return SeriesSet(name="daily", ids=[f"s{i}" for i in range(n)], values=values, times=times, freq="D", season=7,
                     horizon=H)


def test_forecaster_predict_does_not_depend_on_max_batch() -> None:
    ss = daily(3)
    f = NeuralForecaster("deepar", context=7, horizon=H, steps=2, seed=0, **model_class("deepar", "series").TINY)
    f.fit(ss)
    together = f.predict(ss, H, N, seed=3)
    f.max_batch = N  # one series per chunk
    assert same(f.predict(ss, H, N, seed=3), together)
    assert same(f.predict(ss.subset([0]), H, N, seed=3)[0], together[0])
