"""Out-of-distribution scores beyond raw likelihood: the likelihood ratio and the typicality test.

A likelihood model can score inputs it never saw as *more* likely than its own data (a Fashion-MNIST model
and MNIST digits: Nalisnick et al. 2019, "Do deep generative models know what they don't know?"). Two fixes
that need nothing but likelihoods:

* **Likelihood ratio** (Ren et al. 2019, "Likelihood Ratios for Out-of-Distribution Detection"): a background
  model of the same architecture is trained on the same data with a fraction ``rate`` of its positions replaced
  by uniform noise, so it learns the low-level statistics (background pixels, common characters) and not the
  semantics; ``log p(x) - log p_background(x)`` cancels the former. :func:`train_background` trains it.
* **Typicality test** (Nalisnick et al. 2019, "Detecting out-of-distribution inputs to deep generative models
  using typicality"): in-distribution data has an NLL near the model's entropy ``H`` (estimated as the mean NLL of
  held-out training-distribution data); a batch of ``M`` inputs is out of distribution when
  ``|mean NLL - H|`` exceeds a threshold set by bootstrapping batches of held-out data.

Scores here are oriented so that *larger means more out of distribution*.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from chainrule.core.errors import ConfigError
from chainrule.core.runs.config import SECTIONS
from chainrule.runs import Run, open_run

__all__ = ["DEFAULT_RATE", "Perturbed", "Typicality", "batch_means", "check_background", "held_out_bits_per_dim",
           "likelihood_ratio", "perturb", "train_background"]

#: Ren et al. tune the rate in [0.1, 0.2] on held-out data; 0.2 is the middle of the range they found best
DEFAULT_RATE = 0.2


def perturb(x: Tensor, rate: float, levels: int, generator: torch.Generator) -> Tensor:
    """``x`` with each position (each channel value) replaced, with probability ``rate``, by a level drawn
    uniformly from ``0 .. levels-1``."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"perturbation rate must be in [0, 1); got {rate}")
    hit = torch.rand(x.shape, generator=generator) < rate
    noise = torch.randint(0, levels, x.shape, generator=generator, dtype=x.dtype)
    return torch.where(hit.to(x.device), noise.to(x.device), x)


class Perturbed:
    """A training split whose examples come perturbed: the noise of a batch is a function of the seed and the
    batch's indices only, so a resumed run sees the same inputs."""

    def __init__(self, base: Any, rate: float, seed: int = 0) -> None:
        self.base, self.rate, self.seed = base, float(rate), int(seed)
        perturb(torch.zeros(1, dtype=torch.long), self.rate, 2, torch.Generator())  # checks the rate once

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:  # event_shape, levels, tokenizer, set_epoch, ...
        return getattr(self.base, name)

    def get(self, indices: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        x, cond = self.base.get(indices, *args, **kwargs)
        key = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64).tobytes()
        generator = torch.Generator().manual_seed(zlib.crc32(key) * 7919 + self.seed)
        return perturb(x, self.rate, int(self.base.levels), generator), cond

    def all(self) -> tuple[Tensor, Any]:
        """Every example, perturbed (what closed-form fits such as the histogram's read)."""
        return self.get(torch.arange(len(self)))


def train_background(foreground: Run | str | Path, run_dir: str | Path, rate: float = DEFAULT_RATE,
                     overrides: list[str] | tuple[str, ...] = (), seed: int = 0) -> Run:
    """Train the background model of Ren et al. for ``foreground``: the same data, model and training settings
    (``overrides`` on top, e.g. ``train.max_seconds=60``), on inputs perturbed at ``rate``."""
    from chainrule import api
    from chainrule.core.runs.kind import RunKind
    from chainrule.core.runs.lock import run_lock
    from chainrule.core.runs.run import check_new_run_dir

    fg = foreground if isinstance(foreground, Run) else open_run(foreground)
    if fg.kind is RunKind.SERIES:
        raise ConfigError(f"{fg.path}: background models are trained for image and text runs only")
    with tempfile.TemporaryDirectory() as tmp:  # the foreground's settings as a config file, without its spec
        config = Path(tmp) / "foreground.yaml"
        config.write_text(yaml.safe_dump({k: v for k, v in fg.config.items() if k in SECTIONS}), encoding="utf-8")
        run, net, splits = api.prepare_run(None, None, config, overrides, run_dir)
    splits["train"] = Perturbed(splits["train"], rate, seed)
    run.config["background"] = {"perturbation_rate": float(rate), "seed": int(seed), "foreground": fg.path.name}
    with run_lock(run.path, create=True):
        check_new_run_dir(run.path)
        if run.kind is RunKind.TEXT:
            splits["train"].tokenizer.save(run.path / api.TOKENIZER_FILE)
        run.save_config()
        return api._fit(run, net, splits, resume=False)


def likelihood_ratio(log_likelihood: np.ndarray, background_log_likelihood: np.ndarray) -> np.ndarray:
    """Ren et al.'s statistic ``log p(x) - log p_background(x)`` (nats): *low* means out of distribution."""
    return np.asarray(log_likelihood, dtype=np.float64) - np.asarray(background_log_likelihood, dtype=np.float64)


def batch_means(nll: np.ndarray, batch: int, rng: np.random.Generator, count: int | None = None) -> np.ndarray:
    """Mean NLL of ``count`` batches of ``batch`` examples drawn without replacement within a batch (all disjoint
    consecutive batches of a shuffled order when ``count`` is None)."""
    nll = np.asarray(nll, dtype=np.float64)
    if batch < 1 or batch > len(nll):
        raise ConfigError(f"typicality batch size must be between 1 and {len(nll)}; got {batch}")
    if count is None:
        order = rng.permutation(len(nll))[: len(nll) // batch * batch]
        return nll[order].reshape(-1, batch).mean(1)
    return np.stack([nll[rng.choice(len(nll), batch, replace=False)].mean() for _ in range(count)])


@dataclass(frozen=True)
class Typicality:
    """The typicality test of Nalisnick et al. 2019, fitted on held-out NLLs of the training distribution."""

    #: estimated entropy of the model on its data: the mean held-out NLL (nats per example)
    entropy: float
    #: batch size ``M`` the threshold is for
    batch: int
    #: ``|mean NLL - entropy|`` above this rejects the batch at level ``alpha``
    threshold: float
    alpha: float

    @classmethod
    def fit(cls, held_out_nll: np.ndarray, batch: int = 1, alpha: float = 0.01, bootstrap: int = 2000,
            seed: int = 0) -> Typicality:
        """``entropy`` from ``held_out_nll``; the threshold is the ``1 - alpha`` quantile of the distance of
        ``bootstrap`` resampled batches of size ``batch``."""
        nll = np.asarray(held_out_nll, dtype=np.float64)
        if nll.ndim != 1 or len(nll) < 2 or not np.isfinite(nll).all():
            raise ConfigError("the typicality test needs at least 2 finite held-out NLLs")
        if not 0.0 < alpha < 1.0:
            raise ConfigError(f"typicality alpha must be in (0, 1); got {alpha}")
        entropy = float(nll.mean())
        means = batch_means(nll, batch, np.random.default_rng(seed), bootstrap)
        return cls(entropy, batch, float(np.quantile(np.abs(means - entropy), 1 - alpha)), alpha)

    def distance(self, nll: np.ndarray) -> np.ndarray:
        """The test statistic ``|NLL - entropy|`` of each value (an example's NLL or a batch's mean NLL): larger
        is less typical."""
        return np.abs(np.asarray(nll, dtype=np.float64) - self.entropy)

    def rejects(self, batch_nll: np.ndarray) -> bool:
        """Whether a batch of ``batch`` examples with these NLLs is out of distribution at level ``alpha``."""
        nll = np.asarray(batch_nll, dtype=np.float64)
        if len(nll) != self.batch:
            raise ConfigError(f"the test was fitted for batches of {self.batch}; got {len(nll)} NLLs")
        return bool(self.distance(nll.mean()) > self.threshold)


@torch.inference_mode()
def held_out_bits_per_dim(run: Run, count: int, batch: int = 250) -> np.ndarray:
    """Bits/dim of up to ``count`` examples of the run's validation split (the training distribution's held-out
    data), what the typicality test of :func:`chainrule.scoring.score` is fitted on."""
    from chainrule import api
    from chainrule.core.runs.kind import RunKind

    if run.kind is RunKind.SERIES:
        raise ConfigError(f"{run.path}: the typicality test is available for image and text runs")
    if int(count) < 2:
        raise ConfigError(f"the typicality test needs at least 2 held-out examples; got {count}")
    val = api.load_data(run.config["data"], run.path)["val"]
    x, y = val.get(torch.arange(min(int(count), len(val))))
    model = run.load_model("cpu").eval()
    cond = y if model.num_classes > 0 else None
    ll = torch.cat([model.log_prob(x[i:i + batch], None if cond is None else cond[i:i + batch])
                    for i in range(0, len(x), batch)])
    return (-ll.double() / math.prod(x.shape[1:]) / math.log(2)).numpy()


def check_background(run: Run, background: Run) -> None:
    """A background model must read inputs exactly as the run does: same kind, shape, levels and tokenizer."""
    from chainrule.core.errors import DataError
    from chainrule.core.runs.files import TOKENIZER_FILE

    for key in ("kind", "event_shape", "levels"):
        if run.spec.get(key) != background.spec.get(key):
            raise DataError(f"{background.path}: background {key} {background.spec.get(key)!r} differs from the "
                            f"run's {run.spec.get(key)!r}")
    tok, bg_tok = run.path / TOKENIZER_FILE, background.path / TOKENIZER_FILE
    if tok.is_file() and (not bg_tok.is_file() or tok.read_bytes() != bg_tok.read_bytes()):
        raise DataError(f"{bg_tok}: the background run's tokenizer differs from the run's")
