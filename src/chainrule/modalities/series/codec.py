"""A file of counts as a forecaster's symbols and back, for lossless compression.

Only a run with a discrete conditional can code losslessly: the ``negative_binomial`` head (a distribution over
counts). A run with the ``gaussian``, ``student_t`` or ``squared_error`` head has a density over real values,
which gives no probability to a value, and is refused with the reason.

* File: one value per line (a *values file*), in time order: a count written plainly (``0`` or digits without a
  leading zero, sign or decimal point), or an empty line for a missing value; optionally one header line that
  is not a count. Any other spelling is refused naming the line, because the file must come back byte for byte.
* Conditionals: value ``t`` is coded under ``p(y_t | y_<t)`` computed exactly as the one-step anomaly score
  (:mod:`chainrule.modalities.series.anomaly`): a window of the ``max(lags) + context`` values before it (missing
  before the start), its scale from the window's context, one teacher-forced pass per step. A run with calendar
  features places the values on its grid ending at its last training timestamp (as a forecast from a bare
  history does); a run with covariates is refused (a values file has none).
* Alphabet: each step codes one symbol among a window of ``W`` counts around the conditional's mean (``W`` from
  its spread, at most 4,096), *below*, *above* (the value follows as an Elias-gamma integer, coded uniformly in
  16-bit pieces) or *missing* (fixed probability ``2^-12``). The pmf is evaluated in float64 from the model's
  parameters, so encoder and decoder build the same alphabet.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from chainrule.core.compression.coder import Decoder, Encoder
from chainrule.core.compression.loop import progress_bar
from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError, DataError
from chainrule.core.heads.continuous import NegativeBinomial
from chainrule.modalities.series.features import FeatureSpec, context_scale
from chainrule.modalities.series.models.base import ForecastModel
from chainrule.modalities.series.table import SeriesSet

#: probability of a missing value at every step (a cost of 12 bits per gap, 0.00035 bits per observed value)
MISSING_LOG2 = -12
#: widest window of counts coded directly; spreads beyond it (and the tails) go through the escapes
MAX_WINDOW = 4096
MIN_WINDOW = 16
#: the window spans this many standard deviations of the conditional
SPREAD = 16.0
#: bits per uniformly coded piece of an escaped value (constriction's uniform model takes up to 2^24)
PIECE = 16
#: largest count a values file may hold
MAX_COUNT = (1 << 62) - 1
MISSING = -1
_COUNT = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class ValuesFile:
    """A values file: its name, exact bytes, optional header line and counts (``MISSING`` for an empty line)."""

    name: str
    data: bytes
    header: str | None
    values: np.ndarray


def parse_values(name: str, data: bytes, where: str) -> ValuesFile:
    """``data`` as a :class:`ValuesFile`; :class:`DataError` naming the first line that is not written the way
    :func:`render_values` writes it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 text (byte {e.start}); a series run codes a file of counts, one per "
                        "line") from None
    if "\r" in text:
        raise DataError(f"{where}: has carriage returns (Windows line ends); write one count per line with \\n")
    lines = text.split("\n") if text else []
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the final newline
    header = None
    if lines and lines[0] and not _COUNT.fullmatch(lines[0]) and not lines[0][:1].isdigit():
        header, lines = lines[0], lines[1:]
    values = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        if line == "":
            values[i] = MISSING
        elif _COUNT.fullmatch(line) and int(line) <= MAX_COUNT:
            values[i] = int(line)
        else:
            raise DataError(f"{where}: line {i + 1 + (header is not None)}: {line[:40]!r} is not a count written "
                            "plainly (digits, no sign, leading zero or decimal point; empty = missing)")
    parsed = ValuesFile(name=name, data=data, header=header, values=values)
    if render_values(header, values, data.endswith(b"\n")) != data:
        raise DataError(f"{where}: not a plain values file (one count per line, empty line = missing)")
    return parsed


def render_values(header: str | None, values: np.ndarray, final_newline: bool) -> bytes:
    """Inverse of :func:`parse_values`."""
    lines = ([header] if header is not None else []) + ["" if v == MISSING else str(int(v)) for v in values]
    text = "\n".join(lines)
    return (text + "\n" if final_newline and lines else text).encode("utf-8")


class WindowConditionals:
    """``p(y_t | y_<t)`` of one series, step by step: a window of the values before ``t`` through the model."""

    def __init__(self, model: ForecastModel, spec: FeatureSpec, times: pd.Index) -> None:
        self.model, self.spec = model, spec
        self.width = spec.history + 1
        ss = SeriesSet(name="values", ids=["values"], values=[np.zeros(len(times))], times=[times], freq=spec.freq,
                       season=spec.season)
        rows = spec.time_rows(ss, 0, self.width - 1, 0) if len(times) else np.zeros((0, spec.num_time_features))
        self.features = torch.from_numpy(np.asarray(rows, dtype=np.float32))
        self.y = torch.full((self.width - 1 + len(times),), float("nan"))
        self.t = 0

    def distribution(self) -> tuple[Tensor, Tensor]:
        """Raw parameters ``(1, P)`` and scale ``(1,)`` of the next step's conditional."""
        window = self.y[self.t:self.t + self.width][None].clone()
        scale = context_scale(window[:, :self.spec.history], self.spec.context, self.spec.scale_offset)
        cond = Condition(time_features=self.features[self.t:self.t + self.width][None], scale=scale)
        return self.model(window, cond)[..., -1], scale

    def push(self, value: int) -> None:
        self.y[self.width - 1 + self.t] = float("nan") if value == MISSING else float(value)
        self.t += 1


def alphabet(head: NegativeBinomial, params: Tensor, scale: Tensor) -> tuple[int, np.ndarray]:
    """The first count ``lo`` of the step's window and the log-probabilities ``(1, W + 3)`` of its symbols: counts
    ``lo .. lo + W - 1``, then below, above, missing."""
    p64, s64 = params.double(), scale.double()
    d = head.dist_params(p64, s64)
    mu, alpha = float(d["mu"][0]), float(d["alpha"][0])
    std = math.sqrt(mu + alpha * mu * mu) if math.isfinite(mu) and math.isfinite(alpha) else 0.0
    width = int(min(MAX_WINDOW, max(MIN_WINDOW, math.ceil(SPREAD * std) + MIN_WINDOW))) if math.isfinite(std) \
        else MAX_WINDOW
    centre = int(min(mu, MAX_COUNT)) if math.isfinite(mu) else 0
    lo = max(0, centre - width // 2)
    counts = torch.arange(lo, lo + width, dtype=torch.float64)[None]
    lp = head.log_prob(p64[:, :, None].expand(-1, -1, width), counts, s64)[0].numpy()
    lp = np.where(np.isfinite(lp), lp, -np.inf)
    inside = float(np.exp(lp).sum()) if np.isfinite(lp).any() else 0.0
    outside = max(0.0, 1.0 - inside)
    below, above = (outside / 2, outside / 2) if lo > 0 else (0.0, outside)
    keep = math.log1p(-2.0 ** MISSING_LOG2)
    with np.errstate(divide="ignore"):
        tails = np.log([below, above])
    out = np.concatenate([lp + keep, tails + keep, [MISSING_LOG2 * math.log(2)]])
    return lo, out[None]


def symbol_of(value: int, lo: int, width: int) -> int:
    if value == MISSING:
        return width + 2
    if value < lo:
        return width
    if value >= lo + width:
        return width + 1
    return value - lo


def encode_integer(encoder: Encoder, value: int) -> None:
    """A non-negative integer: its bit length (uniform over 0..63), then its bits in 16-bit pieces."""
    bits = int(value).bit_length()
    encoder.uniform(np.array([bits]), 64)
    pieces = [(value >> shift) & ((1 << PIECE) - 1) for shift in range(0, bits, PIECE)]
    encoder.uniform(np.array(pieces, dtype=np.int64), 1 << PIECE)


def decode_integer(decoder: Decoder) -> int:
    bits = int(decoder.uniform(1, 64)[0])
    pieces = decoder.uniform(-(-bits // PIECE), 1 << PIECE) if bits else []
    return sum(int(p) << (PIECE * i) for i, p in enumerate(pieces))


class SeriesCodec:
    """Values files <-> a count forecaster's conditionals (see the module docstring)."""

    kind = "series"

    def __init__(self, model: ForecastModel, spec: dict[str, Any], where: str = "run") -> None:
        if not isinstance(model.head, NegativeBinomial):
            raise ConfigError(f"{where}: a {model.head.name} run has a density over real values, which gives no "
                              "probability to a value; lossless coding needs a discrete head (train with --head "
                              "negative_binomial for counts)")
        self.model, self.spec = model, FeatureSpec.from_dict(spec)
        if self.spec.covariates:
            raise ConfigError(f"{where}: the model needs covariates ({', '.join(self.spec.covariates)}), which a "
                              "values file does not have")
        self.last_timestamp = spec.get("last_timestamp")

    # -------------------------------------------------------------- files
    def read(self, path: Path) -> ValuesFile:
        if not path.is_file():
            raise DataError(f"{path}: not a file (a series run compresses a file of counts, one per line)")
        return parse_values(path.name, path.read_bytes(), str(path))

    def checksum(self, content: ValuesFile) -> bytes:
        return hashlib.sha256(content.data).digest()

    def units(self, content: ValuesFile) -> tuple[int, str]:
        return len(content.values), "value"

    def output_names(self, metadata: dict[str, Any]) -> list[str]:
        return [str(metadata["name"])]

    def write_plan(self, content: ValuesFile) -> list[tuple[str, bytes]]:
        return [(content.name, content.data)]

    # -------------------------------------------------------------- coding
    def times(self, n: int) -> pd.Index:
        """The values' timestamps: the run's grid ending at its last training timestamp (positions without a
        calendar)."""
        if not self.spec.calendar or n == 0:
            return pd.RangeIndex(n)
        try:
            return pd.date_range(end=pd.Timestamp(self.last_timestamp), periods=n, freq=self.spec.freq)
        except (ValueError, TypeError, OverflowError) as e:
            raise DataError(f"{n} values do not fit on the run's {self.spec.freq!r} calendar grid ({e})") from None

    def encode(self, content: ValuesFile, encoder: Encoder, batch: int, progress: str | None = None
               ) -> dict[str, Any]:
        steps = WindowConditionals(self.model, self.spec, self.times(len(content.values)))
        with progress_bar(progress, len(content.values)) as bar:
            for value in content.values.tolist():
                lo, lp = alphabet(self.model.head, *steps.distribution())
                width = lp.shape[1] - 3
                symbol = symbol_of(value, lo, width)
                encoder.categorical(np.array([symbol]), lp)
                if symbol in (width, width + 1):
                    encode_integer(encoder, value if symbol == width else value - lo - width)
                steps.push(value)
                if bar is not None:
                    bar.update(1)
        return {"codec": self.kind, "name": content.name, "values": len(content.values), "header": content.header,
                "final_newline": content.data.endswith(b"\n")}

    def decode(self, metadata: dict[str, Any], decoder: Decoder, progress: str | None = None) -> ValuesFile:
        n, header = int(metadata["values"]), metadata["header"]
        if header is not None and not isinstance(header, str):
            raise ValueError("the header must be a string")
        steps = WindowConditionals(self.model, self.spec, self.times(n))
        values = np.empty(n, dtype=np.int64)
        with progress_bar(progress, n) as bar:
            for t in range(n):
                lo, lp = alphabet(self.model.head, *steps.distribution())
                width = lp.shape[1] - 3
                symbol = int(decoder.categorical(lp)[0])
                value = {width: None, width + 1: None, width + 2: MISSING}.get(symbol, lo + symbol)
                if symbol == width:
                    value = decode_integer(decoder)
                elif symbol == width + 1:
                    value = lo + width + decode_integer(decoder)
                values[t] = value
                steps.push(int(value))
                if bar is not None:
                    bar.update(1)
        data = render_values(header, values, bool(metadata["final_newline"]))
        return ValuesFile(name=str(metadata["name"]), data=data, header=header, values=values)
