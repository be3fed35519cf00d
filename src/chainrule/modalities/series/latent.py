"""Latent-variable models of series windows (the sequence VAE): their held-out windows, bounds and prior samples.

Such a model trains on the forecasters' windows but has no forecast, so it is judged by its likelihood: a run
trains on each series without its last ``horizon`` points (the dataset's holdout; competition sets keep their
official one), and the **held-out windows** are the windows of the full series that end in those points (one
per end, so each holds 1..horizon unseen steps after context the model was trained on). ``chainrule eval``
reports the negative ELBO and the negative IWAE bound on them, both upper bounds on the NLL in nats;
``chainrule sample`` draws windows from the prior, in the units of each series' last window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError, DataError
from chainrule.core.limits import check_count, check_temperature
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.modalities.registry import model_class
from chainrule.modalities.series.features import FeatureSpec, TrainingWindows, history_batch
from chainrule.modalities.series.table import SeriesSet

#: single-sample ELBO draws averaged for the reported ELBO (its Monte Carlo error shrinks as 1/sqrt of this)
ELBO_DRAWS = 10


def is_latent(name: str) -> bool:
    """True for a registered series model with no forecast (``family != "autoregressive"``)."""
    return model_class(name, "series").family != "autoregressive"


def holdout_cut(ss: SeriesSet, horizon: int) -> SeriesSet:
    """Each series without its last ``horizon`` points: what a latent model trains on."""
    lengths = ss.lengths()
    short = int(np.argmin(lengths))
    if lengths[short] <= horizon:
        raise DataError(f"{ss.name}: series {ss.ids[short]!r} has {lengths[short]} points, too few to hold out the "
                        f"last {horizon}")
    return ss.truncate(lengths - horizon)


def heldout_windows(ss: SeriesSet, spec: FeatureSpec) -> tuple[Tensor, Condition]:
    """The windows of ``ss`` that end in each series' last ``spec.horizon`` points: ``y`` ``(W, width)`` and their
    :class:`Condition` (scale from each window's own history, as in training)."""
    windows = TrainingWindows(ss, spec)
    lengths = ss.lengths()
    series, ends = [], []
    for i, n in enumerate(lengths):
        first = max(int(n) - spec.horizon + 1, int(windows.first_end[i]))
        ends.extend(range(first, int(n) + 1))
        series.extend([i] * (int(n) + 1 - first))
    return windows.gather(np.asarray(series, dtype=np.int64), np.asarray(ends, dtype=np.int64))


@torch.no_grad()
def window_bounds(model: Any, y: Tensor, cond: Condition, k: int | None = None, batch_size: int = 256,
                  seed: int = 0) -> dict[str, float]:
    """Negative ELBO (mean of :data:`ELBO_DRAWS` single-sample ELBOs) and negative IWAE bound (``k`` samples,
    default the model's ``iwae_samples``) of windows ``y``: nats per window and per scored step."""
    model.eval()
    k = int(k or model.iwae_samples)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    torch.manual_seed(seed)  # the ELBO's draws (torch.randn_like inside the model)
    elbo, iwae = [], []
    for lo in range(0, len(y), batch_size):
        yb = y[lo:lo + batch_size].to(model.device)
        cb = Condition(scale=cond.scale[lo:lo + batch_size].to(model.device),
                       observed=cond.observed[lo:lo + batch_size].to(model.device))
        elbo.append(torch.stack([model.elbo(yb, cb) for _ in range(ELBO_DRAWS)]).mean(0))
        iwae.append(model.iwae_bound(yb, cb, k, gen))
    scored = int(cond.observed.sum())
    e, w = -torch.cat(elbo).double().sum().item(), -torch.cat(iwae).double().sum().item()
    return {"windows": len(y), "scored_steps": scored, "iwae_samples": k, "elbo_draws": ELBO_DRAWS,
            "nll_elbo_nats": e / len(y), "nll_iwae_nats": w / len(y),
            "nll_elbo_nats_per_step": e / scored, "nll_iwae_nats_per_step": w / scored}


def evaluate_run(run: Any, batch_size: int = 256) -> dict[str, Any]:
    """The bounds of a latent series run on its held-out windows (the run's data, see the module docstring)."""
    from chainrule.modalities.series.api import _run_data

    model, spec = _latent_model(run)
    fs = FeatureSpec.from_dict(spec)
    ss = _run_data(run, None)
    y, cond = heldout_windows(ss, fs)
    result = window_bounds(model, y, cond, batch_size=batch_size)
    return {"split": "test", "data": f"{ss.name}: windows ending in the last {fs.horizon} points of each series",
            "model": model.name, "likelihood": "bound", "params": sum(p.numel() for p in model.parameters()),
            "nll_nats": result["nll_iwae_nats"], "examples": result["windows"], **result}


def sample_run(run: Any, n: int = 8, seed: int = 0, temperature: float = 1.0, out: str | Path | None = None,
               plot: str | Path | None = None) -> pd.DataFrame:
    """``n`` windows per series from the prior of a latent series run, each in the units of that series' last
    window: a frame ``id, sample, step, value`` (``step`` 1..context + horizon), written to ``out`` (CSV) and
    drawn beside the series' last window in ``plot`` (PNG) when given."""
    from chainrule.modalities.series.api import _run_data

    n = check_count(n, "the number of samples", ConfigError)
    check_temperature(temperature, ConfigError, greedy=False)
    model, spec = _latent_model(run)
    fs = FeatureSpec.from_dict(spec)
    ss = _run_data(run, None)
    _, cond = history_batch(ss, fs, 0)
    scored = fs.context + fs.horizon
    gen = torch.Generator(device=model.device).manual_seed(int(seed))
    draws = model.sample_windows(n * len(ss), fs.history + fs.horizon, scored, temperature, gen)
    values = (draws.reshape(len(ss), n, scored).double().cpu() * cond.scale.double()[:, None, None]).numpy()
    frame = pd.DataFrame({"id": np.repeat(ss.ids, n * scored), "sample": np.tile(np.repeat(np.arange(1, n + 1),
                          scored), len(ss)), "step": np.tile(np.arange(1, scored + 1), n * len(ss)),
                          "value": values.ravel()})
    if out is not None:
        atomic_write_text(out, frame.to_csv(index=False))
    if plot is not None:
        from chainrule.modalities.series.plots import window_samples_chart

        window_samples_chart(ss.ids, [v[-scored:] for v in ss.values], values, plot,
                             title=f"{model.name}: windows from the prior beside each series' last window")
    return frame


def _latent_model(run: Any) -> tuple[Any, dict[str, Any]]:
    """The model and spec of a series run whose model is latent; a forecaster's run is a one-line error."""
    from chainrule.modalities.series.api import load_forecast_run

    name = run.config["model"]["name"]
    if not is_latent(name):
        raise ConfigError(f"{run.path} is a time-series run of a forecaster ({name}): use 'chainrule forecast "
                          "predict|backtest' (or chainrule.modalities.series.api)")
    return load_forecast_run(run, "cpu")
