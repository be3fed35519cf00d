"""The rules every entry point applies to sampling options and series values, in plain Python.

One module so the CLI, the Python API, the server's schemas and the torch-free edge runtime agree on what is
an error. It imports nothing beyond the standard library (the edge runtime uses it without torch). Each
``check_*`` returns the value as a plain ``int``/``float`` or raises ``error`` (the caller's error type:
:class:`~chainrule.core.errors.ConfigError` in the library, ``ValueError`` in pydantic validators,
``EdgeError`` in the edge runtime) with a one-line message naming the option and the value.

The rules:

- a count (``n``, ``num_samples``) and a ``horizon`` are integers ``>= 1``; ``None`` for a horizon means "the
  run's own"; booleans are not numbers;
- ``temperature`` is finite, and either 0 (greedy, where the caller allows it: text generation) or in
  ``[MIN_SCALE, MAX_SCALE]`` — smaller positive values overflow the logits; the same range bounds
  ``repetition_penalty``;
- ``top_k`` is ``None`` or an integer ``>= 0`` (0 = off); ``top_p`` is in ``(0, 1]``;
- a series value is a number or missing (``None`` or NaN); infinity is an error, not a missing value, and so is
  a magnitude beyond float32 (the models compute in float32, where it would silently become infinity);
  counts (a negative-binomial model) are non-negative integers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

#: bounds of a positive temperature or repetition penalty (outside them logits overflow or vanish)
MIN_SCALE = 1e-4
MAX_SCALE = 1e4
#: the largest magnitude a float32 holds; series values beyond it are refused
FLOAT32_MAX = 3.4028234663852886e38

ErrorType = type[Exception]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_count(value: Any, name: str, error: ErrorType = ValueError, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (a number of samples, images, paths: at least 1; of new tokens: at least 0)."""
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_horizon(value: Any, error: ErrorType = ValueError, name: str = "horizon") -> int | None:
    """``None`` (the run's default horizon) or an integer ``>= 1``; 0 is an error, never "the default"."""
    return None if value is None else check_count(value, name, error)


def check_temperature(value: Any, error: ErrorType = ValueError, *, greedy: bool = True,
                      name: str = "temperature") -> float:
    """A finite temperature: 0 means greedy when ``greedy`` (text generation), otherwise it must be in
    ``[MIN_SCALE, MAX_SCALE]``."""
    if _is_real(value) and math.isfinite(value) and (MIN_SCALE <= value <= MAX_SCALE or (greedy and value == 0)):
        return float(value)
    zero = "0 (greedy) or " if greedy else ""
    raise error(f"{name} must be {zero}a number in [{MIN_SCALE:g}, {MAX_SCALE:g}], got {value!r}")


def check_repetition_penalty(value: Any, error: ErrorType = ValueError, name: str = "repetition_penalty") -> float:
    """A penalty in ``[MIN_SCALE, MAX_SCALE]`` (1 = off)."""
    if _is_real(value) and math.isfinite(value) and MIN_SCALE <= value <= MAX_SCALE:
        return float(value)
    raise error(f"{name} must be a number in [{MIN_SCALE:g}, {MAX_SCALE:g}] (1 = off), got {value!r}")


def check_top_k(value: Any, error: ErrorType = ValueError, name: str = "top_k") -> int | None:
    """``None`` or an integer ``>= 0``; 0 and ``None`` both mean off (returned as ``None``)."""
    if value is None:
        return None
    if not _is_int(value) or value < 0:
        raise error(f"{name} must be a positive integer (0 or none = off), got {value!r}")
    return int(value) or None


def check_top_p(value: Any, error: ErrorType = ValueError, name: str = "top_p") -> float:
    """A probability mass in ``(0, 1]`` (1 = off)."""
    if not _is_real(value) or not 0 < value <= 1:
        raise error(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


def check_series(values: Iterable[Any], error: ErrorType = ValueError, *, counts: bool = False,
                 name: str = "history") -> list[float]:
    """Series values as floats, NaN for missing (``None`` or NaN); the first impossible value raises ``error``
    naming its position: a non-number, infinity, a magnitude beyond float32, or (``counts``) a negative or
    fractional count."""
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(math.nan)
            continue
        if not _is_real(v):
            raise error(f"{name}[{i}]: {v!r} is not a number (use null for a missing value)")
        v = float(v)
        if math.isnan(v):
            out.append(v)
            continue
        if math.isinf(v):
            raise error(f"{name}[{i}]: {v} is not a value; infinity is an error (use null for a missing value)")
        if abs(v) > FLOAT32_MAX:
            raise error(f"{name}[{i}]: {v:g} is beyond the float32 range (±{FLOAT32_MAX:.4g}) the models compute in")
        if counts and (v < 0 or v != math.floor(v)):
            raise error(f"{name}[{i}]: {v:g} is not a count; this model's negative_binomial head takes "
                        "non-negative integers")
        out.append(v)
    return out
