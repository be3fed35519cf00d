"""Coercion of data options given in a config or on the command line (YAML values or strings), with errors
that name the option."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core.errors import ConfigError


def as_int(name: str, value: Any) -> int:
    """``value`` as an int (ints and integer strings); ConfigError naming the option otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"data option {name!r} must be an integer; got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"data option {name!r} must be an integer; got {value!r}")


def as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"data option {name!r} must be a number; got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"data option {name!r} must be a number; got {value!r}") from None


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"data option {name!r} must be true or false; got {value!r}")


def as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"data option {name!r} must be a string; got {value!r}")
    return value.strip().lower()
