"""Training options: one dataclass, validated on construction, built from a plain dict (e.g. YAML)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from chainrule.core.errors import ConfigError

_INT_FIELDS = ("steps", "batch_size", "warmup_steps", "eval_every", "eval_batch_size", "eval_max_windows",
               "patience", "checkpoint_every", "keep_checkpoints", "seed", "log_every")
_FLOAT_FIELDS = ("lr", "weight_decay", "min_lr_ratio", "grad_clip", "ema", "max_seconds")


@dataclass
class TrainConfig:
    """Options of one training run.

    ``batch_size`` is the global batch (split across processes under torchrun). ``warmup_steps``: the learning
    rate rises linearly from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps`` steps, then decays
    along a half cosine to ``min_lr_ratio · lr`` at the last step (0 = no warm-up). ``eval_every``,
    ``checkpoint_every``: 0 = only at the end. ``patience``: evaluations without a new best validation
    NLL before stopping (0 = never). ``grad_clip`` / ``ema``: 0 = off. ``keep_checkpoints``: 0 = keep all.
    ``eval_max_windows``: every evaluation scores one fixed subset of that many validation examples (windows,
    for text), drawn once from ``seed``, instead of the whole split (0 = the whole split); the summary and
    metrics say which (``val_examples`` of ``val_split_examples``).
    ``max_seconds``: a wall-clock training budget (0 = none); when it runs out the run evaluates,
    checkpoints and stops as if ``steps`` were reached (a fixed CPU budget for fair comparisons).
    ``curriculum``: ``[[step, context_length], ...]`` with steps increasing from 0 — training windows are cut
    to the length of the last pair whose step <= the current step (validation uses the full context);
    empty or null = off. ``compile``: run the training step's forward/backward through ``torch.compile``
    (inductor); the first step pays the compilation, reported as ``compile_seconds`` in the summary.
    ``keep_weights``: which weights become ``best.safetensors``: ``best`` (lowest validation NLL) or ``final``
    (the last step's, still evaluated and reported) for models whose validation NLL does not track what users
    take from them (a text-to-speech decoder is teacher-forced in validation but runs free when it speaks).
    """

    steps: int = 5000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema: float = 0.0
    eval_every: int = 500
    eval_batch_size: int = 256
    eval_max_windows: int = 0
    patience: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    seed: int = 0
    log_every: int = 50
    progress: bool = True
    device: str = "auto"
    num_threads: int | None = None
    max_seconds: float = 0.0
    curriculum: list[list[int]] | None = None
    compile: bool = False
    keep_weights: str = "best"

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            setattr(self, name, as_int(name, getattr(self, name)))
        for name in _FLOAT_FIELDS:
            setattr(self, name, as_float(name, getattr(self, name)))
        self.betas = _as_betas(self.betas)
        if not isinstance(self.progress, bool):
            raise ConfigError(f"train.progress must be true or false; got {self.progress!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"train.compile must be true or false; got {self.compile!r}")
        if self.num_threads is not None:
            self.num_threads = as_int("num_threads", self.num_threads)
        self.curriculum = _as_curriculum(self.curriculum)
        self._check_ranges()

    def context_length(self, step: int) -> int | None:
        """Training window length at (0-based) optimiser step ``step`` under the curriculum; None when off."""
        if not self.curriculum:
            return None
        return [length for start, length in self.curriculum if start <= step][-1]

    def _check_ranges(self) -> None:
        positive = ("steps", "batch_size", "eval_batch_size", "log_every")
        non_negative = ("warmup_steps", "eval_every", "eval_max_windows", "patience", "checkpoint_every",
                        "keep_checkpoints", "seed", "weight_decay", "grad_clip", "max_seconds")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive; got {getattr(self, name)}")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0; got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive; got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"train.ema must be in [0, 1) (0 = off); got {self.ema}")
        if self.num_threads is not None and self.num_threads <= 0:
            raise ConfigError(f"train.num_threads must be positive; got {self.num_threads}")
        if self.keep_weights not in ("best", "final"):
            raise ConfigError(f"train.keep_weights must be best or final; got {self.keep_weights!r}")
        if not isinstance(self.device, str):
            raise ConfigError(f"train.device must be a string such as auto, cpu or cuda; got {self.device!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ConfigError(f"train.device: unknown device {self.device!r}; use auto, cpu, cuda or "
                                  "cuda:N") from None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrainConfig:
        """Build from a mapping; unknown keys and invalid values raise :class:`ConfigError`."""
        d = dict(d or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in d if k not in known)
        if unknown:
            raise ConfigError(f"unknown training option{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(map(repr, unknown))}; valid options: {', '.join(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def as_float(name: str, v: Any) -> float:
    """``train.NAME`` as a finite float; :class:`ConfigError` naming the option otherwise."""
    if isinstance(v, bool):
        raise ConfigError(f"train.{name} must be a number; got {v!r}")
    try:
        f = float(v)  # also accepts YAML strings such as "3e-4"
    except (TypeError, ValueError):
        raise ConfigError(f"train.{name} must be a number; got {v!r}") from None
    if not math.isfinite(f):
        raise ConfigError(f"train.{name} must be finite; got {v!r}")
    return f


def as_int(name: str, v: Any) -> int:
    """``train.NAME`` as a whole number; :class:`ConfigError` naming the option otherwise."""
    f = as_float(name, v)
    if f != int(f):
        raise ConfigError(f"train.{name} must be a whole number; got {v!r}")
    return int(f)


def _as_curriculum(v: Any) -> list[list[int]] | None:
    """``[[step, length], ...]`` with steps 0 = s0 < s1 < ... and positive lengths; empty/None -> None."""
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return None
    usage = "train.curriculum must be a list of [step, context_length] pairs starting at step 0, e.g. [[0, 32], " \
            "[500, 64]]"
    if not isinstance(v, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in v):
        raise ConfigError(f"{usage}; got {v!r}")
    pairs = [[as_int("curriculum", s), as_int("curriculum", n)] for s, n in v]
    if pairs[0][0] != 0:
        raise ConfigError(f"{usage}; the first step is {pairs[0][0]}")
    for (s0, _), (s1, _) in zip(pairs, pairs[1:], strict=False):
        if s1 <= s0:
            raise ConfigError(f"train.curriculum steps must increase; got {s1} after {s0}")
    for _, n in pairs:
        if n <= 0:
            raise ConfigError(f"train.curriculum context lengths must be positive; got {n}")
    return pairs


def _as_betas(v: Any) -> tuple[float, float]:
    if isinstance(v, str) or not hasattr(v, "__len__") or len(v) != 2:
        raise ConfigError(f"train.betas must be two numbers in [0, 1); got {v!r}")
    b = (as_float("betas", v[0]), as_float("betas", v[1]))
    if not all(0.0 <= x < 1.0 for x in b):
        raise ConfigError(f"train.betas must be two numbers in [0, 1); got {v!r}")
    return b
