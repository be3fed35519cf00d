"""The Forecaster protocol shared by baselines, statistical comparators and neural models, plus sample helpers."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from chainrule.core.errors import ConfigError
from chainrule.modalities.series.table import SeriesSet


def require_forecaster(model: Any) -> None:
    """:class:`ConfigError` when a registered series model (class or instance) has no forecast: a latent-variable
    model of whole windows (``family != "autoregressive"``) trains on the same windows but rolls nothing out."""
    if getattr(model, "family", "autoregressive") != "autoregressive":
        raise ConfigError(f"{model.name} is a latent-variable model: it has no forecast; use `chainrule sample` / "
                          "`chainrule eval`")


@runtime_checkable
class Forecaster(Protocol):
    """Fit on a series set, then forecast sample paths.

    ``predict`` returns an array of shape ``(len(context), num_samples, horizon)`` (float64). A forecast may use
    only ``context.values`` (and covariates of the context; a model that uses covariates may read the
    ``horizon`` extra covariate rows when ``context.covariates`` extends past the values). Point forecasters
    repeat their point forecast across samples. A forecaster may also define
    ``predict_point(context, horizon) -> (N, horizon)``; backtests then score that point forecast (e.g. an exact
    mean) instead of the sample median.
    """

    name: str

    def fit(self, train: SeriesSet) -> None: ...

    def predict(self, context: SeriesSet, horizon: int, num_samples: int, seed: int) -> np.ndarray: ...


def gaussian_paths(mu: np.ndarray, sigma: np.ndarray, num_samples: int, seed: int) -> np.ndarray:
    """``(N, S, H)`` independent Gaussian draws per step with mean ``mu`` and std ``sigma`` (both ``(N, H)``);
    a NaN or zero ``sigma`` gives the mean itself. Reproducible for a given ``seed``."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.nan_to_num(np.asarray(sigma, dtype=np.float64), nan=0.0)
    noise = np.random.default_rng(seed).standard_normal((mu.shape[0], num_samples, mu.shape[1]))
    return mu[:, None, :] + sigma[:, None, :] * noise


class GaussianForecaster:
    """Shared behaviour of local methods whose forecast distribution is Gaussian per step: subclasses give
    :meth:`forecast` (means and standard deviations); the point forecast is the mean and the sample paths
    are :func:`gaussian_paths`. Nothing is learned across series, so :meth:`fit` does nothing."""

    name: str

    def fit(self, train: SeriesSet) -> None:
        """Nothing to learn across series: each forecast uses only its own context."""

    def forecast(self, context: SeriesSet, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Means and standard deviations, each ``(N, horizon)``."""
        raise NotImplementedError

    def predict_point(self, context: SeriesSet, horizon: int) -> np.ndarray:
        return self.forecast(context, horizon)[0]

    def predict(self, context: SeriesSet, horizon: int, num_samples: int, seed: int) -> np.ndarray:
        mu, sigma = self.forecast(context, horizon)
        return gaussian_paths(mu, sigma, num_samples, seed)
