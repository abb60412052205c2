"""Training budget in optimiser steps, and a record of why training stopped."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping

#: optimiser steps between two validation passes (one "epoch")
STEPS_PER_EPOCH = 100


def default_max_steps(n_train_sets: int) -> int:
    """Step cap of a default :meth:`~gde.GDEModel.train`: grows with the number of sets.

    ``100`` steps per training set, between ``4,000`` and ``20,000``. Early stopping
    usually ends training before the cap; the cap only bounds a run whose validation
    loss keeps creeping down.
    """
    return int(np.clip(100 * n_train_sets, 4000, 20000))


class ConvergenceStopping(EarlyStopping):
    """Stop when the monitored loss has stopped improving *relative to its progress*.

    An improvement counts only if it exceeds ``min_progress`` times the total
    improvement since the first validation (``first - best``), so the rule is free of
    the loss's units and sign: training ends when ``patience`` validations in a row
    together added less than that share of what training had achieved so far.

    Parameters
    ----------
    monitor
        Logged metric to watch (lower is better).
    patience
        Validations (epochs) without a counted improvement before stopping.
    min_progress
        Share of the progress so far that an improvement must exceed.
    """

    def __init__(self, monitor: str, patience: int, min_progress: float = 0.1):
        super().__init__(
            monitor=monitor,
            patience=patience,
            mode="min",
            min_delta=0.0,
            check_on_train_epoch_end=False,  # after each validation pass
            strict=False,
        )
        self.min_progress = float(min_progress)
        self.first: float | None = None
        self.stop_reason: str | None = None

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        value = float(current)
        if self.first is None and np.isfinite(value):
            self.first = value
        best = float(self.best_score)
        if self.first is not None and np.isfinite(best):
            # Lightning adds min_delta to the current value; negative means "lower by"
            self.min_delta = -self.min_progress * max(self.first - best, 0.0)
        stop, reason = super()._evaluate_stopping_criteria(current)
        if stop:
            self.stop_reason = reason
        return stop, reason

    def state_dict(self) -> dict:
        return {**super().state_dict(), "first": self.first, "stop_reason": self.stop_reason}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.first = state_dict.get("first")
        self.stop_reason = state_dict.get("stop_reason")


def resolve_steps(
    max_steps: int | None,
    max_epochs: int | None,
    steps_per_epoch: int,
    n_train_sets: int,
    default=default_max_steps,
) -> int:
    """The step cap from ``max_steps`` or ``max_epochs`` (epochs of ``steps_per_epoch``).

    Neither given: ``default(n_train_sets)``.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch}.")
    if max_steps is not None and max_epochs is not None:
        raise ValueError(
            "Pass either max_steps or max_epochs (epochs of steps_per_epoch steps), not both."
        )
    if max_epochs is not None:
        if max_epochs < 1:
            raise ValueError(
                f"max_epochs must be a positive integer, got {max_epochs}: training for no "
                "epoch would leave the model's random weights. Pass None for the default "
                "budget."
            )
        return int(max_epochs) * steps_per_epoch
    if max_steps is None:
        return int(default(n_train_sets))
    if max_steps < 1:
        raise ValueError(
            f"max_steps must be a positive integer, got {max_steps}: training for no step "
            "would leave the model's random weights. Pass None for the default budget."
        )
    return int(max_steps)


def stop_record(
    history: dict[str, pd.DataFrame] | None,
    steps_run: int,
    max_steps: int,
    steps_per_epoch: int,
    early_stopped: bool,
    patience_steps: int | None,
    monitor: str = "validation_loss",
    first_epoch: int = 0,
    min_progress: float = 0.1,
) -> pd.DataFrame:
    """One row saying why training ended, for ``model.history["stop"]``.

    Also warns, once, when training ended at the step cap while the validation loss was
    still improving (its best value within the last ``patience_steps``), since the model
    is then likely under-trained. ``first_epoch``: rows of ``history`` from earlier calls
    of ``train()``, to skip; ``min_progress``: as in :class:`ConvergenceStopping`.
    """
    values = (history or {}).get(monitor)
    if values is not None:
        values = values.iloc[first_epoch:]
    best_step = best_value = None
    if values is not None and len(values):
        series = values.iloc[:, 0].astype(float)
        position = int(np.nanargmin(series.to_numpy()))
        best_step = (position + 1) * steps_per_epoch
        best_value = float(series.iloc[position])
    if early_stopped:
        reason = (
            f"early stopping: over the last {patience_steps} steps {monitor} improved by "
            f"less than {min_progress:.0%} of its total improvement (best at step {best_step})"
        )
    elif steps_run >= max_steps:
        reason = f"reached max_steps={max_steps}"
        still_improving = (
            best_step is not None
            and patience_steps is not None
            and steps_run - best_step < patience_steps
            and steps_run >= steps_per_epoch
        )
        if still_improving:
            warnings.warn(
                f"Training stopped at the step cap ({steps_run} optimiser steps) while the "
                f"{monitor} was still improving (best at step {best_step}); the model is "
                "probably under-trained. Train longer: `model.train(max_steps=...)` with a "
                "larger value.",
                UserWarning,
                stacklevel=3,
            )
            reason += ", validation loss still improving"
    else:
        reason = "interrupted"
    return pd.DataFrame(
        {
            "reason": [reason],
            "steps": [steps_run],
            "max_steps": [max_steps],
            "best_step": [best_step],
            f"best_{monitor}": [best_value],
        }
    )
