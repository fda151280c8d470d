"""Training: checkpoints with exact resume, callbacks, distribution strategies and the train loop."""

from sr_keras.training.checkpoint import TrainingCheckpoint
from sr_keras.training.strategy import is_chief, make_strategy

__all__ = ["TrainingCheckpoint", "is_chief", "make_strategy"]
