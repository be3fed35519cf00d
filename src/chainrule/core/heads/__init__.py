"""Output distributions, kept apart from architectures so any network pairs with any fitting head."""

from __future__ import annotations

from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.core.heads.bernoulli import Bernoulli
from chainrule.core.heads.categorical import Categorical
from chainrule.core.heads.continuous import CONTINUOUS_HEADS, ContinuousHead

#: discrete heads (integer levels) and continuous heads (real values), by name
DISCRETE_HEADS = ("bernoulli", "categorical", "logistic_mixture")
HEADS = (*DISCRETE_HEADS, *CONTINUOUS_HEADS)


def build_head(name: str, levels: int = 0, **kwargs) -> Head:
    """Build a head by name; ``auto`` picks Bernoulli for 2 levels and Categorical otherwise. Continuous heads
    (``gaussian``, ``student_t``, ``negative_binomial``, ``squared_error``) take no levels."""
    key = str(name).replace("-", "_").lower()
    if key == "auto":
        key = "bernoulli" if levels == 2 else "categorical"
    if key in CONTINUOUS_HEADS:
        if kwargs:
            raise ConfigError(f"head {key!r} takes no options; got {', '.join(kwargs)}")
        return CONTINUOUS_HEADS[key]()
    if key in DISCRETE_HEADS and levels < 2:
        raise ConfigError(f"head {key!r} models discrete levels; this data is continuous (use one of "
                          f"{', '.join(CONTINUOUS_HEADS)})")
    if key == "bernoulli":
        if levels != 2:
            raise ConfigError(f"head 'bernoulli' needs binary data (2 levels), the data has {levels}")
        return Bernoulli()
    if key == "categorical":
        return Categorical(levels)
    if key == "logistic_mixture":
        from chainrule.core.heads.logistic_mixture import DiscretizedLogisticMixture

        return DiscretizedLogisticMixture(levels=levels, **kwargs)
    raise ConfigError(f"unknown head {name!r}; choose one of: auto, {', '.join(HEADS)}")


__all__ = ["Head", "ContinuousHead", "Bernoulli", "Categorical", "build_head", "HEADS", "DISCRETE_HEADS",
           "CONTINUOUS_HEADS"]
