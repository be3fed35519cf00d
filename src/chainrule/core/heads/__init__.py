"""Output distributions, kept apart from architectures so any network pairs with any fitting head."""

from __future__ import annotations

from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.core.heads.bernoulli import Bernoulli
from chainrule.core.heads.categorical import Categorical

HEADS = ("bernoulli", "categorical", "logistic_mixture")


def build_head(name: str, levels: int, **kwargs) -> Head:
    """Build a head by name; ``auto`` picks Bernoulli for 2 levels and Categorical otherwise."""
    if name == "auto":
        name = "bernoulli" if levels == 2 else "categorical"
    if name == "bernoulli":
        if levels != 2:
            raise ConfigError(f"head 'bernoulli' needs binary data (2 levels), the data has {levels}")
        return Bernoulli()
    if name == "categorical":
        return Categorical(levels)
    if name == "logistic_mixture":
        from chainrule.core.heads.logistic_mixture import DiscretizedLogisticMixture

        return DiscretizedLogisticMixture(levels=levels, **kwargs)
    raise ConfigError(f"unknown head {name!r}; choose one of: auto, {', '.join(HEADS)}")


__all__ = ["Head", "Bernoulli", "Categorical", "build_head", "HEADS"]
