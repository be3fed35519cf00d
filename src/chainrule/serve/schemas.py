"""Request bodies and server limits: pydantic models that reject wrong types, NaN/inf and oversized values.

Types are strict (no ``true`` for 1, no ``"4"`` for 4, no booleans as pixel levels; an integer is accepted where a
number is expected), and values go through the rules every entry point shares (:mod:`chainrule.core.limits`),
so whatever the schema accepts the library accepts too: a bad value is a 422 with its field, never a 500 later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from chainrule.core import limits

#: hard caps of the schemas; ``Limits`` may lower them at start-up
MAX_NEW_TOKENS = 1024
MAX_SAMPLES = 64
MAX_HISTORY = 10_000
MAX_HORIZON = 10_000
MAX_SECONDS = 60.0
MAX_PROMPT_CHARS = 100_000
MAX_NAME = 200

ModelName = Annotated[str | None, Field(default=None, max_length=MAX_NAME,
                                        description="served model name (optional when only one fits)")]
Seed = Annotated[int | None, Field(default=0, ge=0, le=2**63 - 1, description="random seed; null = fresh")]


def _series(values: list[float | None], name: str = "history") -> list[float | None]:
    limits.check_series(values, name=name)  # infinity or beyond float32: a 422 naming the position
    return values


def _each_series(series: list[list[float | None]] | None) -> list[list[float | None]] | None:
    for i, values in enumerate(series or []):
        _series(values, f"series[{i}]")
    return series


def _image_levels(images: list[list[Any]] | None) -> list[list[Any]] | None:
    """Every leaf of the nested lists is an integer (a level; booleans and strings are not)."""
    def walk(value: Any, where: str) -> None:
        if isinstance(value, list):
            for j, v in enumerate(value):
                walk(v, f"{where}[{j}]")
        elif not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: {value!r} is not a level; images hold integers (levels)")

    for i, img in enumerate(images or []):
        walk(img, f"images[{i}]")
    return images


def _timestamp(start: str | None) -> str | None:
    """A start that pandas reads as a timestamp within its range (years 1677..2262)."""
    if start is None:
        return None
    try:
        import pandas as pd
    except ImportError:  # no forecasters can be served without pandas
        return start
    try:
        t = pd.Timestamp(start)
    except (ValueError, TypeError, OverflowError):
        t = None
    if t is None or t is pd.NaT or not pd.Timestamp.min <= t <= pd.Timestamp.max:
        raise ValueError(f"{start!r} is not a timestamp in pandas' range "
                         f"({pd.Timestamp.min.year}..{pd.Timestamp.max.year})")
    return start


Start = Annotated[str | None, Field(None, max_length=64), AfterValidator(_timestamp)]


@dataclass(frozen=True)
class Limits:
    """Per-server limits (the CLI may lower the defaults)."""

    max_new_tokens: int = MAX_NEW_TOKENS
    max_samples: int = MAX_SAMPLES
    max_history: int = MAX_HISTORY
    #: seconds of audio one /v1/sample request may ask for (each waveform; generation is one step per sample)
    max_seconds: float = 10.0
    max_body_bytes: int = 1_000_000
    timeout_s: float = 60.0
    #: forecasts (and series scoring) running at once; each holds a model thread for its whole run, so a cap
    #: keeps token-by-token generation from queueing behind them under load
    max_concurrent_forecasts: int = 1
    #: largest estimated memory of one request's work (``chainrule.serve.memory``); more is refused with 422
    max_request_bytes: int = 512 * 2**20
    #: estimated memory of all requests being worked on at once; more wait in line (503 at their deadline)
    memory_budget_bytes: int = 2048 * 2**20
    #: samples decoded together in one text model's continuous batch (``chainrule.serve.continuous``)
    max_batch_rows: int = 64


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True, strict=True)


class GenerateRequest(_Request):
    """Continue ``prompt`` with a text model; ``stream`` sends the text as server-sent events."""

    model: ModelName
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    max_new_tokens: int = Field(200, ge=1, le=MAX_NEW_TOKENS)
    temperature: Annotated[float, AfterValidator(limits.check_temperature)] = Field(1.0, ge=0.0, le=100.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: Annotated[float, AfterValidator(limits.check_repetition_penalty)] = Field(
        1.0, gt=0.0, le=100.0)
    no_repeat_ngram_size: int = Field(0, ge=0, le=64)
    stop: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=16)
    seed: Seed
    num_samples: int = Field(1, ge=1, le=MAX_SAMPLES)
    stream: bool = False

    def options(self) -> dict[str, Any]:
        """The :class:`chainrule.modalities.text.generation.GenerationConfig` fields."""
        return self.model_dump(exclude={"model", "prompt", "stream"})


class SampleRequest(_Request):
    """Draw images from an image model (the reply is one PNG grid) or waveforms from an audio model (one 16-bit
    WAV at the run's rate, several waveforms one after another)."""

    model: ModelName
    num_samples: int | None = Field(None, ge=1, le=MAX_SAMPLES, description="images (default 16) or waveforms "
                                                                            "(default 1)")
    seconds: float | None = Field(None, gt=0.0, le=MAX_SECONDS,
                                  description="audio models: seconds per waveform (default 1)")
    cls: int | Annotated[str, Field(max_length=MAX_NAME)] | None = Field(
        None, alias="class", description="class index or name (class-conditional models)")
    temperature: Annotated[float, AfterValidator(lambda t: limits.check_temperature(t, greedy=False))] = Field(
        1.0, gt=0.0, le=100.0)
    seed: Seed
    nrow: int | None = Field(None, ge=1, le=MAX_SAMPLES, description="images per grid row")


class LogProbRequest(_Request):
    """Exact log-likelihood of texts (text models), images (image models) or series (forecasters, one-step-ahead),
    with per-position surprisal for anomaly detection."""

    model: ModelName
    texts: list[Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]] | None = Field(
        None, min_length=1, max_length=MAX_SAMPLES)
    images: Annotated[list[list[Any]] | None, AfterValidator(_image_levels)] = Field(
        None, min_length=1, max_length=MAX_SAMPLES,
        description="integer levels, each image (C, H, W) or (H, W) for one channel")
    cls: int | Annotated[str, Field(max_length=MAX_NAME)] | None = Field(None, alias="class")
    series: Annotated[list[Annotated[list[float | None], Field(min_length=1, max_length=MAX_HISTORY)]] | None,
                      AfterValidator(_each_series)] = Field(
        None, min_length=1, max_length=MAX_SAMPLES, description="time series, null marking a missing value")
    start: Start = Field(None, description="timestamp of each series' first value")


class ForecastRequest(_Request):
    """Probabilistic forecast of a univariate series from its history (``null`` marks a missing value)."""

    model: ModelName
    history: Annotated[list[float | None], AfterValidator(_series)] = Field(..., min_length=1, max_length=MAX_HISTORY)
    horizon: int | None = Field(None, ge=1, le=MAX_HORIZON)
    quantiles: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5, 0.75, 0.95], min_length=1, max_length=32)
    num_samples: int = Field(100, ge=1, le=10_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    start: Start = Field(None, description="timestamp of the first history value")
