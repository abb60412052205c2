"""User-facing models."""

from ._base import SetModelBase
from ._budget import ConvergenceStopping, default_max_steps
from ._checkpoint import TrainingCheckpoint
from ._ema import WeightEMA
from ._gde_model import GDEModel
from ._training_plan import GDETrainingPlan, TrainingDivergedError

__all__ = [
    "ConvergenceStopping",
    "GDEModel",
    "GDETrainingPlan",
    "SetModelBase",
    "TrainingCheckpoint",
    "TrainingDivergedError",
    "WeightEMA",
    "default_max_steps",
]
