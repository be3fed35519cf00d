"""Text-generation options, validated on construction (bad values raise :class:`ConfigError`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from chainrule.core.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class GenerationConfig:
    """How to pick each new token.

    Attributes:
        max_new_tokens: tokens to generate per sample (>= 0).
        temperature: divides the logits; 0 means greedy (argmax, no random draw).
        top_k: keep the k most likely tokens (``None`` or 0: off).
        top_p: nucleus sampling, applied after top-k; 1.0 is off; must be in (0, 1].
        repetition_penalty: CTRL-style penalty (> 0; 1.0 is off; > 1 discourages repeats).
        no_repeat_ngram_size: ban any n-gram of this size from occurring twice (0: off).
        stop: stop a sample once its generated text contains one of these strings (output ends before it).
        seed: seed of the random draws (``None``: fresh randomness).
        num_samples: independent samples generated together as one batch.
    """

    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    stop: list[str] = field(default_factory=list)
    seed: int | None = 0
    num_samples: int = 1

    def __post_init__(self) -> None:
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            raise ConfigError(f"max_new_tokens must be a non-negative integer, got {self.max_new_tokens!r}")
        if not _is_number(self.temperature) or self.temperature < 0:
            raise ConfigError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}")
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 0):
            raise ConfigError(f"top_k must be a positive integer (0 or None = off), got {self.top_k!r}")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not _is_number(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty must be a finite number > 0, got {self.repetition_penalty!r}")
        if not _is_int(self.no_repeat_ngram_size) or self.no_repeat_ngram_size < 0:
            raise ConfigError(f"no_repeat_ngram_size must be a non-negative integer, got {self.no_repeat_ngram_size!r}")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"stop strings must be non-empty strings, got {self.stop!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if not _is_int(self.num_samples) or self.num_samples < 1:
            raise ConfigError(f"num_samples must be a positive integer, got {self.num_samples!r}")
        if self.top_k == 0:
            self.top_k = None

    @classmethod
    def from_options(cls, **options: Any) -> GenerationConfig:
        """Build from keyword options, naming any unknown one in a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown generation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**options)
