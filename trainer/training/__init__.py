"""LoRA distillation of a student model: config, data preparation and the training run."""

from trainer.training.config import TrainConfig, load_train_config
from trainer.training.data import TrainingInputError
from trainer.training.train import TrainResult, train_adapter

__all__ = ["TrainConfig", "TrainResult", "TrainingInputError", "load_train_config", "train_adapter"]
