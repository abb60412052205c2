"""Training plan: scvi-tools' plan with W2 targets and a guard against a diverging loss."""

from __future__ import annotations

import torch
from scvi.train import TrainingPlan

from gde._constants import GDE_KEYS
from gde.nn import PairwiseW2, batch_w2_squared


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

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.pair_w2 is not None:  # the W2 targets computed so far
            checkpoint["gde_pair_w2"] = self.pair_w2.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.pair_w2 is not None and "gde_pair_w2" in checkpoint:
            self.pair_w2.load_state_dict(checkpoint["gde_pair_w2"])

    def _with_targets(self, batch: dict) -> dict:
        if self.pair_w2 is None or GDE_KEYS.SET_KEY not in batch:
            return batch
        # (n_sets, set_size) set code of each element; a set's code is its first element's
        all_codes = batch[GDE_KEYS.SET_KEY][..., 0].long().cpu()
        codes = all_codes[:, 0]
        # at most w2_pairs new transport problems per step, the rest from the cache
        target = self.pair_w2.matrix(codes, max_new=self.module.w2_pairs)
        mixed = (all_codes != codes[:, None]).any(dim=1)
        if mixed.any():
            target = self._mixture_targets(batch, codes, target, mixed)
        return {**batch, GDE_KEYS.W2_TARGET_KEY: target}

    def _mixture_targets(
        self, batch: dict, codes: torch.Tensor, target: torch.Tensor, mixed: torch.Tensor
    ) -> torch.Tensor:
        """W2 of sets mixed by the sampler, measured on the minibatch's own elements.

        A mixture has no cached cloud: its W2 to ``w2_pairs // 2`` random partners (the
        fixed cloud of a set, a mixture's drawn elements) is computed now, the rest is NaN.
        ``codes``: the set code of each set of the minibatch (its first element's).
        """
        n_sets = target.shape[0]
        target = target.clone()
        target[mixed, :] = float("nan")
        target[:, mixed] = float("nan")
        i, j = torch.triu_indices(n_sets, n_sets, offset=1)
        involved = mixed[i] | mixed[j]
        i, j = i[involved], j[involved]
        pick = torch.randperm(len(i))[: max(1, self.module.w2_pairs // 2)]
        i, j = i[pick], j[pick]
        cached = torch.tensor([int(c) in self.pair_w2.clouds for c in codes]) & ~mixed
        # the sets measured on their drawn elements: mixtures, and sets without a cloud
        rows = torch.unique(torch.cat([i, j]))
        rows = rows[~cached[rows]]
        # (n_rows, set_size, d): their elements in the W2 space
        flat = {k: v[rows].flatten(0, 1) for k, v in batch.items() if torch.is_tensor(v)}
        points = self.module.w2_points(flat)
        points = points.reshape(len(rows), batch[GDE_KEYS.SET_KEY].shape[1], -1).cpu()
        where = {int(r): k for k, r in enumerate(rows.tolist())}

        def cloud(s: int) -> torch.Tensor:
            return self.pair_w2.clouds[int(codes[s])] if cached[s] else points[where[s]]

        x = [cloud(int(a)) for a in i]
        y = [cloud(int(b)) for b in j]
        values = torch.stack(
            [
                batch_w2_squared(a[None], b[None], solver=self.pair_w2.solver)[0]
                for a, b in zip(x, y, strict=True)
            ]
        )
        values = values.clamp_min(0).sqrt().to(target)
        target[i, j] = values
        target[j, i] = values
        return target

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
