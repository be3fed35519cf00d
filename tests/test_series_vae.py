"""The sequence VAE on series windows: the one class (core/latent/sequence_vae.py) with a value embedding and a
Gaussian head trains through the series pipeline (TrainingWindows and the one Trainer) on a real series, its
bounds are ordered (ELBO <= IWAE) and in original units, and missing steps are not scored."""

from __future__ import annotations

import math

import pytest
import torch

from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError
from chainrule.core.training import TrainConfig, Trainer
from chainrule.modalities.series.datasets import TS_DATASETS
from chainrule.modalities.series.features import FeatureSpec, TrainingWindows
from chainrule.modalities.series.models.sequence_vae import SeriesSequenceVAE
from chainrule.modalities.series.run_config import TRAIN_DEFAULTS


def tiny_series_vae(**options) -> SeriesSequenceVAE:
    torch.manual_seed(0)
    return SeriesSequenceVAE.build(lags=[1], num_time_features=2, **{**SeriesSequenceVAE.TINY, **options})


@pytest.fixture(scope="module")
def windows() -> TrainingWindows:
    passengers = TS_DATASETS["airpassengers"]()
    return TrainingWindows(passengers, FeatureSpec.for_series(passengers, context=12, horizon=12, lags=[1]))


def test_trains_on_real_series_windows_and_its_bounds_are_ordered(windows):
    model = tiny_series_vae(iwae_samples=50, kl_anneal_steps=10)
    x, cond = windows.get(torch.arange(len(windows)))

    def mean_elbo() -> float:
        torch.manual_seed(5)
        with torch.no_grad():
            return float(model.elbo(x, cond).mean())

    before = mean_elbo()
    cfg = TrainConfig.from_dict({**TRAIN_DEFAULTS, "steps": 20, "batch_size": 16, "lr": 1e-2, "warmup_steps": 0,
                                 "progress": False, "device": "cpu"})
    Trainer(model, windows, None, cfg, None).fit()
    model.train()
    assert mean_elbo() > before  # it learned something in 20 steps of the one trainer
    assert int(model.steps_trained) == 20  # the trainer called the series loss once per step
    repeats, x, cond = 20, x[:16], Condition(scale=cond.scale[:16], observed=cond.observed[:16])
    xs = x.repeat(repeats, 1)
    cs = Condition(scale=cond.scale.repeat(repeats), observed=cond.observed.repeat(repeats, 1))
    with torch.no_grad():
        torch.manual_seed(1)
        elbo = model.log_prob(xs, cs).reshape(repeats, -1).mean(0)  # training mode: the ELBO
        model.eval()
        iwae = model.log_prob(xs, cs).reshape(repeats, -1).mean(0)  # eval mode: IWAE with k = 50
    assert bool(torch.all(torch.isfinite(elbo))) and bool(torch.all(elbo <= iwae + 1e-3)), (elbo, iwae)
    assert float((iwae - elbo).mean()) > 0
    # original units: multiplying a window by 10 costs log 10 per scored step, exactly
    ten = Condition(scale=cond.scale * 10, observed=cond.observed)
    torch.manual_seed(2)
    at_10 = model.iwae_bound(x * 10, ten, 5, torch.Generator().manual_seed(3))
    at_1 = model.iwae_bound(x, cond, 5, torch.Generator().manual_seed(3))
    scored = cond.observed.sum(-1)
    torch.testing.assert_close(at_1 - at_10, scored * math.log(10.0), rtol=1e-4, atol=1e-3)


def test_missing_steps_are_not_scored_and_windows_pad_to_segments():
    model = tiny_series_vae(segment_length=4).eval()
    y = torch.randn(2, 10) + 5
    cond = Condition(scale=torch.ones(2))
    scaled = model.scaled(y, cond)
    assert scaled.shape == (2, 1, 12) and bool(torch.isnan(scaled[..., :2]).all())  # left-padded to 3 segments
    z = torch.zeros(1, 2, 2)
    gap = scaled.clone()
    gap[0, 0, -1] = math.nan
    with torch.no_grad():
        full, part = model.decoder_log_prob(scaled, z), model.decoder_log_prob(gap, z)
        per_step = model.head.log_prob(model.decode_inputs(model.encode(scaled), z[0]), scaled[:, 0].nan_to_num())
    torch.testing.assert_close(part[0, 0], full[0, 0] - per_step[0, -1])  # the missing last step drops out
    assert float(part[0, 1]) == float(full[0, 1])
    with pytest.raises(ConfigError, match="continuous head"):
        tiny_series_vae(head="squared_error")
    with pytest.raises(ConfigError, match="forecasts"):
        model.sample(1)
