"""Autoregressive architectures, one file each, all on :class:`AutoregressiveModel`."""

from chainrule.core.contract import AutoregressiveModel
from chainrule.modalities.registry import MODELS, build_model, model_class

__all__ = ["AutoregressiveModel", "MODELS", "build_model", "model_class"]
