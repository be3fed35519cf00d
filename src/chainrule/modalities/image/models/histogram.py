"""Histogram baseline: every position and channel has its own distribution, independent of the others.

``p(x | c) = prod_{position, channel} p(x_{pos,ch} | c)`` — the lecture's starting point. The table is fitted
in closed form by counting (:meth:`Histogram.fit_counts`) but stays a set of ``nn.Parameter`` logits, so SGD
works too. With ``num_classes > 0`` there is one table per class plus an unconditional one (used when no
label is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.core.heads.bernoulli import Bernoulli
from chainrule.core.heads.categorical import Categorical

#: floor on fitted log-probabilities so unseen values (alpha = 0) stay finite
MIN_LOG_PROB = -1e4


class Histogram(AutoregressiveModel):
    """Independent per-position categorical (or Bernoulli) table; input-independent parameters.

    Any head works for SGD training (the parameters are then one learned parameter vector per position);
    closed-form fitting, :meth:`exact_probs` and inverse-CDF sampling need a Categorical or Bernoulli head.
    """

    name: ClassVar[str] = "histogram"
    TINY: ClassVar[dict] = {}
    #: the trainer calls :meth:`fit_counts` instead of running SGD (False for heads without counts)
    closed_form: ClassVar[bool] = True

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0) -> None:
        super().__init__(event_shape, head, num_classes)
        tables = self.num_classes + 1 if self.num_classes > 0 else 1
        self.logits = nn.Parameter(torch.zeros(tables, self.num_params_out, *self.positions))
        if not self.countable:
            self.closed_form = False  # type: ignore[misc]  # instance override: fall back to SGD

    @property
    def countable(self) -> bool:
        return isinstance(self.head, (Categorical, Bernoulli))

    def _rows(self, batch: int, cond: Tensor | None) -> Tensor:
        """Table index per example: the class, or the unconditional table."""
        if cond is None or self.num_classes == 0:
            return torch.full((batch,), self.logits.shape[0] - 1, dtype=torch.long, device=self.logits.device)
        return cond.to(self.logits.device).long()

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.logits[self._rows(inputs.shape[0], cond)]

    # ------------------------------------------------------------------ closed form
    @torch.no_grad()
    def fit_counts(self, dataset: Any, alpha: float = 1.0) -> None:
        """Set the table to the smoothed frequencies ``(count + alpha) / (N + K alpha)`` of ``dataset.all()``.

        ``alpha = 1`` is Laplace smoothing, ``alpha = 0`` the maximum-likelihood estimate (unseen values then
        get log-probability ``MIN_LOG_PROB``).
        """
        if not self.countable:
            raise ConfigError(f"histogram: closed-form fitting needs a categorical or bernoulli head, "
                              f"not {type(self.head).__name__}")
        if alpha < 0:
            raise ConfigError(f"histogram: alpha must be >= 0, got {alpha}")
        x, y = dataset.all()
        x = x.to(self.logits.device).long()
        if tuple(x.shape[1:]) != self.event_shape:
            raise ConfigError(f"histogram: data shape {tuple(x.shape[1:])} != model shape {self.event_shape}")
        k = self.head.levels
        if len(x) and (x.min() < 0 or x.max() >= k):
            raise ConfigError(f"histogram: data values must be in 0..{k - 1}")
        groups = [(self.logits.shape[0] - 1, x)]
        if self.num_classes > 0:
            if y is None:
                raise ConfigError("histogram: a class-conditional histogram needs labelled data")
            y = y.to(x.device)
            groups += [(c, x[y == c]) for c in range(self.num_classes)]
        for row, xs in groups:
            if len(xs) == 0 and alpha == 0:
                self.logits[row] = 0.0  # no data and no prior: flat table
                continue
            logp = torch.log((self._counts(xs) + alpha) / (len(xs) + k * alpha)).clamp_min(MIN_LOG_PROB)
            if isinstance(self.head, Bernoulli):
                logp = logp[:, 1] - logp[:, 0]  # one logit per channel
            self.logits[row] = logp.reshape(self.logits.shape[1:]).to(self.logits.dtype)

    def _counts(self, x: Tensor) -> Tensor:
        """Value counts ``(C, K, *S)`` of long data ``(N, C, *S)`` (one bincount, no one-hot blow-up)."""
        k, cells = self.head.levels, self.channels * self.num_positions
        offsets = torch.arange(cells, device=x.device) * k
        flat = (x.reshape(len(x), cells) + offsets).reshape(-1)
        counts = torch.bincount(flat, minlength=cells * k).reshape(self.channels, self.num_positions, k)
        return counts.movedim(-1, 1).reshape(self.channels, k, *self.positions).double()

    def exact_probs(self, cond: Tensor | None = None) -> Tensor:
        """Probability table ``(C, K, *S)`` (or ``(B, C, K, *S)`` for labels ``cond`` of shape ``(B,)``)."""
        if not self.countable:
            raise ConfigError(f"histogram: exact_probs needs a categorical or bernoulli head, "
                              f"not {type(self.head).__name__}")
        if cond is not None:
            self.check_condition(cond, cond.shape[0])
        rows = self._rows(1, None) if cond is None else self._rows(cond.shape[0], cond)
        probs = self._probs(self.logits[rows], 1.0)
        return probs[0] if cond is None else probs

    def _probs(self, logits: Tensor, temperature: float) -> Tensor:
        """Table logits (B, P, *S) -> probabilities (B, C, K, *S) at ``temperature``."""
        b, _, *s = logits.shape
        if isinstance(self.head, Bernoulli):
            z = torch.stack([torch.zeros_like(logits), logits], dim=2)  # softmax([0, l]) = [1 - p, p]
        else:
            z = logits.reshape(b, self.channels, self.head.levels, *s)
        if temperature <= 0:
            return torch.nn.functional.one_hot(z.argmax(2), z.shape[2]).movedim(-1, 2).to(z.dtype)
        return torch.softmax(z / temperature, dim=2)

    # ------------------------------------------------------------------ sampling
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """All positions at once (they are independent): inverse CDF of uniforms from ``generator``."""
        device = self.logits.device
        params = self.logits[self._rows(n, cond)]
        if not self.countable:
            x = self.head.sample(params, temperature=temperature, generator=generator)
        else:
            probs = self._probs(params, temperature).movedim(2, -1)  # (n, C, *S, K)
            cdf = probs.cumsum(-1).contiguous()
            u = torch.rand((*cdf.shape[:-1], 1), generator=generator, device=device, dtype=cdf.dtype)
            x = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)
        if x_given is not None:
            x = torch.where(known.to(device).bool().unsqueeze(1), x_given.to(device).long(), x)
        return x
