"""Train/val/test index splits: fixed counts from a seeded permutation, or fractions of a folder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chainrule.core.errors import ConfigError

SPLITS = ("train", "val", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


def seeded_split(n: int, n_val: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Permute ``range(n)`` with ``numpy.random.default_rng(seed)``: the first ``n_test`` indices are the
    test set, the next ``n_val`` the validation set, the rest training (each in permutation order)."""
    if n_val + n_test > n:
        raise ValueError(f"cannot take {n_val} + {n_test} held-out examples from {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": perm[n_test + n_val:], "val": perm[n_test:n_test + n_val], "test": perm[:n_test]}


def parse_fractions(value: object) -> tuple[float, float, float]:
    """``(train, val, test)`` fractions from a sequence or a ``"0.8,0.1,0.1"`` string; they must be
    non-negative, sum to 1 and give training a positive share."""
    items: Sequence[object]
    items = value.replace("/", ",").split(",") if isinstance(value, str) else value  # type: ignore[assignment]
    try:
        fracs = tuple(float(v) for v in items)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"data option 'fractions' must be three numbers train,val,test; got {value!r}") from None
    if len(fracs) != 3 or min(fracs) < 0 or fracs[0] <= 0 or abs(sum(fracs) - 1.0) > 1e-6:
        raise ConfigError(
            f"data option 'fractions' must be three non-negative numbers train,val,test summing to 1 "
            f"(train > 0); got {value!r}")
    return fracs  # type: ignore[return-value]


def fraction_split(n: int, fractions: tuple[float, float, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded split of ``n`` examples by fractions. A held-out split with a positive fraction gets at least
    one example when ``n`` allows it (training keeps at least one); a zero fraction gives an empty split."""
    _, f_val, f_test = fractions
    n_val, n_test = round(n * f_val), round(n * f_test)
    if f_val > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    if f_test > 0 and n_test == 0 and n - n_val >= 2:
        n_test = 1
    while n_val + n_test >= n and n_val + n_test > 0:  # keep one training example
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return seeded_split(n, n_val, n_test, seed)
