"""The sequence VAE on series windows: the one class (core/latent/sequence_vae.py) with a value embedding and a
Gaussian head trains through the series pipeline (TrainingWindows and the one Trainer) on a real series, its
bounds are ordered (ELBO <= IWAE) and in original units, and missing steps are not scored. Registered as
("series", "sequence_vae"): `chainrule train airpassengers sequence_vae` holds out each series' tail, `chainrule
eval` bounds the held-out windows, `chainrule sample` draws windows in the series' units, and every forecast path
refuses it in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

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


# ---------------------------------------------------------------------------- the registered model, end to end
TINY_RUN = ["train.steps=30", "train.batch_size=16", "train.lr=1e-2", "train.warmup_steps=0", "train.progress=false",
            "model.iwae_samples=50", "model.kl_anneal_steps=10",
            *(f"model.{k}={v}" for k, v in SeriesSequenceVAE.TINY.items() if k != "iwae_samples")]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """``chainrule train airpassengers sequence_vae`` (tiny): the registered model through the series pipeline."""
    from chainrule import cli

    run = tmp_path_factory.mktemp("series-vae") / "run"
    args = ["train", "airpassengers", "sequence_vae", "--run", str(run)]
    assert cli.main([*args, *(a for kv in TINY_RUN for a in ("--set", kv))]) == 0
    return run


def test_registered_vae_trains_on_all_but_the_holdout_and_its_iwae_bound_beats_its_elbo(vae_run, capsys):
    from chainrule import api, cli
    from chainrule.modalities.series.latent import holdout_cut

    passengers = TS_DATASETS["airpassengers"]()
    summary = json.loads((vae_run / "summary.json").read_text())
    spec = FeatureSpec.from_dict(api.open_run(vae_run).spec)
    cut = TrainingWindows(holdout_cut(passengers, spec.horizon), spec)
    assert summary["steps"] == 30 and summary["windows"] == cut.num_windows  # the held-out tail was not trained on
    assert cli.main(["eval", str(vae_run), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["likelihood"] == "bound" and res["windows"] == spec.horizon  # one window per held-out end
    assert res["scored_steps"] == spec.horizon * (spec.context + spec.horizon)
    # -log p <= -IWAE <= -ELBO (in expectation; the ELBO is a mean of 10 draws, the IWAE bound has k = 50)
    assert math.isfinite(res["nll_iwae_nats"]) and res["nll_iwae_nats"] < res["nll_elbo_nats"], res
    assert res["nll_nats"] == res["nll_iwae_nats"]
    assert cli.main(["eval", str(vae_run)]) == 0
    assert "upper bounds" in capsys.readouterr().out


def test_sample_writes_windows_from_the_prior_in_the_series_units(vae_run, tmp_path, capsys):
    from chainrule import cli

    out = tmp_path / "windows.csv"
    assert cli.main(["sample", str(vae_run), "-n", "3", "--out", str(out), "--seed", "1"]) == 0
    frame = pd.read_csv(out)
    spec = FeatureSpec.from_dict(yaml.safe_load((vae_run / "config.yaml").read_text())["spec"])
    scored = spec.context + spec.horizon
    assert list(frame.columns) == ["id", "sample", "step", "value"] and len(frame) == 3 * scored
    assert frame["step"].tolist() == list(range(1, scored + 1)) * 3 and np.isfinite(frame["value"]).all()
    assert frame["value"].abs().mean() > 20  # passengers (hundreds), not scaled units (about 1)
    assert (tmp_path / "windows.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "windows per series" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["forecast", "predict", "{run}", "--out", "{tmp}/f.csv"],
    ["forecast", "backtest", "sequence_vae", "--data", "airpassengers", "--steps", "2"],
    ["forecast", "stability", "sequence_vae", "--data", "airpassengers", "--seeds", "2", "--steps", "2"],
    ["export", "{run}", "--out", "{tmp}/v.onnx"],
], ids=["predict", "backtest", "stability", "export"])
def test_a_latent_series_run_is_refused_in_one_line(vae_run, tmp_path, capsys, args):
    """Every forecast path refuses the registered VAE before any work, as one line (exit 1), naming what to use."""
    from chainrule import cli

    assert cli.main([a.format(run=vae_run, tmp=tmp_path) for a in args]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sequence_vae" in err and "chainrule sample" in err, err
    assert not list(tmp_path.iterdir())  # nothing written
