"""Training: the loop, its configuration, checkpoints and data-parallel launch."""

from chainrule.core.training.checkpoint import load_weights, save_weights
from chainrule.core.training.config import TrainConfig
from chainrule.core.training.trainer import Trainer

__all__ = ["Trainer", "TrainConfig", "save_weights", "load_weights"]
