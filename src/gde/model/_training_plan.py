"""Training plan: scvi-tools' plan with a guard against a diverging loss."""

from __future__ import annotations

import torch
from scvi.train import TrainingPlan


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class GDETrainingPlan(TrainingPlan):
    """:class:`scvi.train.TrainingPlan` that stops with advice when the loss diverges.

    The check runs before the optimiser step, so the weights stay those of the last
    finite step.
    """

    def training_step(self, batch, batch_idx):
        """Run scvi-tools' training step, then check that the loss is finite."""
        loss = super().training_step(batch, batch_idx)
        if not torch.isfinite(loss).all():
            raise TrainingDivergedError(
                f"The training loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}; training stopped (the weights are those of the last "
                "finite step). Things to try: a lower learning rate "
                "(`plan_kwargs={'lr': 1e-4}`), checking the counts for extreme values or "
                "empty cells, `likelihood='poisson'`, or `dispersion='gene'`."
            )
        return loss
