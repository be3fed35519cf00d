"""Request bodies and server limits: pydantic models that reject wrong types, NaN/inf and oversized values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: hard caps of the schemas; ``Limits`` may lower them at start-up
MAX_NEW_TOKENS = 1024
MAX_SAMPLES = 64
MAX_HISTORY = 10_000
MAX_HORIZON = 10_000
MAX_PROMPT_CHARS = 100_000
MAX_NAME = 200

ModelName = Annotated[str | None, Field(default=None, max_length=MAX_NAME,
                                        description="served model name (optional when only one fits)")]
Seed = Annotated[int | None, Field(default=0, ge=0, le=2**63 - 1, description="random seed; null = fresh")]


@dataclass(frozen=True)
class Limits:
    """Per-server limits (the CLI may lower the defaults)."""

    max_new_tokens: int = MAX_NEW_TOKENS
    max_samples: int = MAX_SAMPLES
    max_history: int = MAX_HISTORY
    max_body_bytes: int = 1_000_000
    timeout_s: float = 60.0
    #: forecasts (and series scoring) running at once; each holds a model thread for its whole run, so a cap
    #: keeps token-by-token generation from queueing behind them under load
    max_concurrent_forecasts: int = 1


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


class GenerateRequest(_Request):
    """Continue ``prompt`` with a text model; ``stream`` sends the text as server-sent events."""

    model: ModelName
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    max_new_tokens: int = Field(200, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(1.0, ge=0.0, le=100.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=100.0)
    no_repeat_ngram_size: int = Field(0, ge=0, le=64)
    stop: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=16)
    seed: Seed
    num_samples: int = Field(1, ge=1, le=MAX_SAMPLES)
    stream: bool = False

    def options(self) -> dict[str, Any]:
        """The :class:`chainrule.modalities.text.generation.GenerationConfig` fields."""
        return self.model_dump(exclude={"model", "prompt", "stream"})


class SampleRequest(_Request):
    """Draw images from an image model; the reply is one PNG grid."""

    model: ModelName
    num_samples: int = Field(16, ge=1, le=MAX_SAMPLES)
    cls: int | Annotated[str, Field(max_length=MAX_NAME)] | None = Field(
        None, alias="class", description="class index or name (class-conditional models)")
    temperature: float = Field(1.0, gt=0.0, le=100.0)
    seed: Seed
    nrow: int | None = Field(None, ge=1, le=MAX_SAMPLES, description="images per grid row")


class LogProbRequest(_Request):
    """Exact log-likelihood of texts (text models), images (image models) or series (forecasters, one-step-ahead),
    with per-position surprisal for anomaly detection."""

    model: ModelName
    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]] | None = Field(
        None, min_length=1, max_length=MAX_SAMPLES)
    images: list[list[Any]] | None = Field(
        None, min_length=1, max_length=MAX_SAMPLES,
        description="integer levels, each image (C, H, W) or (H, W) for one channel")
    cls: int | Annotated[str, Field(max_length=MAX_NAME)] | None = Field(None, alias="class")
    series: list[Annotated[list[float | None], Field(min_length=1, max_length=MAX_HISTORY)]] | None = Field(
        None, min_length=1, max_length=MAX_SAMPLES, description="time series, null marking a missing value")
    start: str | None = Field(None, max_length=64, description="timestamp of each series' first value")


class ForecastRequest(_Request):
    """Probabilistic forecast of a univariate series from its history (``null`` marks a missing value)."""

    model: ModelName
    history: list[float | None] = Field(..., min_length=1, max_length=MAX_HISTORY)
    horizon: int | None = Field(None, ge=1, le=MAX_HORIZON)
    quantiles: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5, 0.75, 0.95], min_length=1, max_length=32)
    num_samples: int = Field(100, ge=1, le=10_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    start: str | None = Field(None, max_length=64, description="timestamp of the first history value")
