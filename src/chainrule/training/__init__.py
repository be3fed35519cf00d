"""Training: the loop, its configuration, checkpoints and data-parallel launch."""

from chainrule.training.checkpoint import load_weights, save_weights
from chainrule.training.config import TrainConfig
from chainrule.training.trainer import Trainer

__all__ = ["Trainer", "TrainConfig", "save_weights", "load_weights"]
