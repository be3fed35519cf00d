"""Injected anomalies: each event changes exactly its labelled steps by its documented size, events respect
``start``, the gap and missing values, the draw depends on the seed alone; the rolling z-score and the
detection metrics give the hand-computed values on tiny cases."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.core.errors import ConfigError
from chainrule.modalities.series.anomaly import detection_metrics, rolling_zscore
from chainrule.modalities.series.datasets import load_timeseries
from chainrule.modalities.series.inject import Anomaly, inject_anomalies, step_noise


@pytest.fixture(scope="module")
def sunspots() -> np.ndarray:
    return load_timeseries("sunspots").values[0].astype(np.float64)


def test_each_event_changes_exactly_its_labelled_steps_by_its_size(sunspots):
    got = inject_anomalies(sunspots, per_kind=3, start=100, length=5, gap=4, seed=7)
    sigma = step_noise(sunspots)
    assert [e.kind for e in got.events].count("spike") == 3 and len(got.events) == 9
    assert got.labels.sum() == 3 * 1 + 6 * 5
    changed = got.values != sunspots
    np.testing.assert_array_equal(changed, got.labels)  # nothing outside the labels moved
    for e in got.events:
        delta = got.values[e.start:e.end] - sunspots[e.start:e.end]
        assert e.start >= 100 and e.end - e.start == (1 if e.kind == "spike" else 5)
        if e.kind == "spike":
            assert abs(delta[0]) == pytest.approx(6.0 * sigma)
        elif e.kind == "level_shift":
            np.testing.assert_allclose(np.abs(delta), 4.0 * sigma)
            assert len(set(np.sign(delta))) == 1
        else:
            assert len(set(np.round(delta, 9))) == 5  # noise: a different change at every step
    for seed in range(20):  # packed tightly, so an event ignoring the gap on either side would show
        events = inject_anomalies(sunspots[:80], per_kind=2, length=5, gap=4, seed=seed).events
        assert all(b.start - a.end >= 4 for a, b in zip(events, events[1:], strict=False))


def test_the_draw_depends_on_the_seed_alone_and_skips_missing_values(sunspots):
    a = inject_anomalies(sunspots, seed=3)
    np.testing.assert_array_equal(a.values, inject_anomalies(sunspots, seed=3).values)
    assert a.events != inject_anomalies(sunspots, seed=4).events
    holey = sunspots.copy()
    holey[: len(holey) - 40] = np.nan  # only the last 40 steps are observed
    got = inject_anomalies(holey, per_kind=1, length=3, gap=2, seed=0)
    assert all(e.start >= len(holey) - 40 for e in got.events)
    with pytest.raises(ConfigError, match="no room left"):
        inject_anomalies(sunspots[:30], per_kind=5, length=5, gap=5)
    with pytest.raises(ConfigError, match="unknown anomaly kind 'drift'"):
        inject_anomalies(sunspots, kinds=("drift",))


def test_rolling_zscore_on_a_tiny_series():
    z = rolling_zscore(np.array([1.0, 2.0, 3.0, 4.0, 10.0]), window=3)
    assert np.isnan(z[:3]).all()
    np.testing.assert_allclose(z[3:], [2.0, 7.0])  # past [1,2,3]: mean 2, sd 1; past [2,3,4]: mean 3, sd 1


def test_detection_metrics_on_a_tiny_case():
    scores = np.array([0.9, 0.8, 0.7, 0.6, np.nan])
    labels = np.array([True, False, True, False, False])
    m = detection_metrics(scores, labels, [Anomaly("spike", 0, 1), Anomaly("spike", 2, 3)])
    assert m["auroc"] == pytest.approx(5 / 6)  # of 6 (positive, negative) pairs only (0.7, 0.8) is misordered
    assert m["f1"] == pytest.approx(0.8) and m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert m["threshold"] == pytest.approx(0.7) and m["event_recall"] == 1.0
    perfect = detection_metrics(np.array([0.1, 5.0, 0.2]), np.array([False, True, False]))
    assert perfect["auroc"] == perfect["f1"] == 1.0 and "event_recall" not in perfect
