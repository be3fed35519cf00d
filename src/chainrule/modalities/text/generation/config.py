"""Text-generation options, validated on construction (bad values raise :class:`ConfigError`; the sampling
options by the shared rules of :mod:`chainrule.core.limits`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from chainrule.core import limits
from chainrule.core.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class GenerationConfig:
    """How to pick each new token.

    Attributes:
        max_new_tokens: tokens to generate per sample (>= 0).
        temperature: divides the logits; 0 means greedy (argmax, no random draw); else in [1e-4, 1e4].
        top_k: keep the k most likely tokens (``None`` or 0: off).
        top_p: nucleus sampling, applied after top-k; 1.0 is off; must be in (0, 1].
        repetition_penalty: CTRL-style penalty in [1e-4, 1e4] (1.0 is off; > 1 discourages repeats).
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
        self.max_new_tokens = limits.check_count(self.max_new_tokens, "max_new_tokens", ConfigError, minimum=0)
        self.temperature = limits.check_temperature(self.temperature, ConfigError)
        self.top_k = limits.check_top_k(self.top_k, ConfigError)
        self.top_p = limits.check_top_p(self.top_p, ConfigError)
        self.repetition_penalty = limits.check_repetition_penalty(self.repetition_penalty, ConfigError)
        if not _is_int(self.no_repeat_ngram_size) or self.no_repeat_ngram_size < 0:
            raise ConfigError(f"no_repeat_ngram_size must be a non-negative integer, got {self.no_repeat_ngram_size!r}")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"stop strings must be non-empty strings, got {self.stop!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        self.num_samples = limits.check_count(self.num_samples, "num_samples", ConfigError)

    @classmethod
    def from_options(cls, **options: Any) -> GenerationConfig:
        """Build from keyword options, naming any unknown one in a :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown generation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**options)
