"""Training plan: scvi-tools' plan with W2 targets and a guard against a diverging loss."""

from __future__ import annotations

import torch
from scvi.train import TrainingPlan

from gde._constants import GDE_KEYS
from gde.nn import PairwiseW2


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class GDETrainingPlan(TrainingPlan):
    """:class:`scvi.train.TrainingPlan` with W2 targets, that stops when the loss diverges.

    Parameters
    ----------
    module
        The set module.
    pair_w2
        Cached W2 between the sets' fixed clouds; each minibatch receives the W2
        between its sets under ``GDE_KEYS.W2_TARGET_KEY`` (for the W2-matching term).
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan`.
    """

    def __init__(self, module, pair_w2: PairwiseW2 | None = None, **kwargs):
        super().__init__(module, **kwargs)
        self.pair_w2 = pair_w2

    def _with_targets(self, batch: dict) -> dict:
        if self.pair_w2 is None or GDE_KEYS.SET_KEY not in batch:
            return batch
        # (n_sets, set_size, 1) set codes -> one code per set
        codes = batch[GDE_KEYS.SET_KEY][:, 0].reshape(-1).long().cpu()
        # at most w2_pairs new transport problems per step, the rest from the cache
        target = self.pair_w2.matrix(codes, max_new=self.module.w2_pairs)
        return {**batch, GDE_KEYS.W2_TARGET_KEY: target}

    def training_step(self, batch, batch_idx):
        """Run scvi-tools' training step, then check that the loss is finite.

        The check runs before the optimiser step, so the weights stay those of the last
        finite step.
        """
        loss = super().training_step(self._with_targets(batch), batch_idx)
        if not torch.isfinite(loss).all():
            raise TrainingDivergedError(
                f"The training loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}; training stopped (the weights are those of the last "
                "finite step). Things to try: a lower learning rate "
                "(`plan_kwargs={'lr': 1e-4}`), checking the counts for extreme values or "
                "empty cells, `likelihood='poisson'`, or `dispersion='gene'`."
            )
        return loss

    def compute_and_log_metrics(self, loss_output, metrics, mode):
        """scvi-tools' metrics, with the module's extra metrics logged outside inference mode.

        scvi-tools logs extra metrics under :func:`torch.inference_mode`, so Lightning
        creates their accumulators as inference tensors and cannot reduce them across
        processes in distributed training.
        """
        extra, loss_output.extra_metrics = loss_output.extra_metrics, {}
        try:
            super().compute_and_log_metrics(loss_output, metrics, mode)
        finally:
            loss_output.extra_metrics = extra
        for key, value in extra.items():
            if isinstance(value, torch.Tensor):
                if value.dim() > 0:
                    continue  # scvi-tools logs 0-d metrics only
                value = value.detach()
            self.log(
                f"{key}_{mode}",
                value,
                on_step=self.on_step,
                on_epoch=self.on_epoch,
                batch_size=loss_output.n_obs_minibatch,
                sync_dist=self.use_sync_dist,
            )

    def validation_step(self, batch, batch_idx):
        """scvi-tools' validation step, with the minibatch's W2 targets."""
        return super().validation_step(self._with_targets(batch), batch_idx)
