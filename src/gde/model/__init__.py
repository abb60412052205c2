"""User-facing models."""

from ._gde_model import GDEModel
from ._training_plan import GDETrainingPlan, TrainingDivergedError

__all__ = ["GDEModel", "GDETrainingPlan", "TrainingDivergedError"]
