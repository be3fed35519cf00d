"""Autoregressive architectures, one file each, all on :class:`AutoregressiveModel`."""

from chainrule.models.base import AutoregressiveModel
from chainrule.models.registry import MODELS, build_model, model_class

__all__ = ["AutoregressiveModel", "MODELS", "build_model", "model_class"]
