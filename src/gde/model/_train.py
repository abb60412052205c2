"""Training of set models: the set sampler, step budget, early stopping and W2 targets."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from scvi import settings

from gde._constants import GDE_KEYS
from gde._quiet import quiet_backend
from gde.data import OrderedReads, SetDataSplitter
from gde.nn import PairwiseW2, batch_w2_squared

from ._budget import (
    STEPS_PER_EPOCH,
    ConvergenceStopping,
    default_max_steps,
    resolve_steps,
    stop_record,
)
from ._checkpoint import checkpoint_step, training_checkpoint
from ._ema import WeightEMA

# fewer validation sets than this make early stopping follow noise (a warning says so)
MIN_VALIDATION_SETS = 2


class SetTrainingMixin:
    """``train`` for set models: minibatches of sets, counted and stopped in steps.

    The model needs ``module`` (with ``w2_weight``, ``w2_points`` and ``w2_solver``),
    ``adata_manager``, ``_data_splitter_cls``, ``_training_plan_cls``,
    ``_train_runner_cls``, ``_w2_n_cells`` and ``_w2_debias``.
    """

    #: elements drawn from each set in a minibatch when ``train(set_size=None)``
    _default_set_size = 128
    #: decay of the weights' moving average when ``train(weight_ema=None)`` (``0``: none)
    _default_weight_ema = 0.0
    #: share of mixed training draws when ``train(mix_sets=None)`` (``0``: none)
    _default_mix_sets = 0.0

    def train(
        self,
        max_steps: int | None = None,
        max_epochs: int | None = None,
        set_size: int | None = None,
        n_sets_per_batch: int = 16,
        steps_per_epoch: int = STEPS_PER_EPOCH,
        train_size: float = 0.9,
        validation_size: float | None = None,
        min_set_size: int = 10,
        mix_sets: float | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        early_stopping: bool = True,
        early_stopping_patience: int | None = None,
        weight_ema: float | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train the set encoder and the decoder end to end, until validation stops improving.

        Each minibatch holds ``n_sets_per_batch`` sets of ``set_size`` cells drawn from
        the training cells of each set (with replacement from sets smaller than
        ``set_size``). Sets, not cells, are split into training and validation. Training
        is counted in optimiser steps: every ``steps_per_epoch`` steps (one epoch) the
        validation sets are scored, and training stops when the validation loss has not
        improved for ``early_stopping_patience`` steps, or at ``max_steps``.
        ``model.history["stop"]`` says which (with the steps run, the best step, the
        set size and the sets per minibatch). The split and the draws are reproducible
        under ``scvi.settings.seed``.

        Parameters
        ----------
        max_steps
            Largest number of optimiser steps. By default it grows with the number of
            training sets: 100 per set, between 4,000 and 20,000
            (:func:`gde.model.default_max_steps`), unless the model's own docstring
            states another budget. Early stopping usually ends training sooner.
        max_epochs
            Alternatively, the number of epochs of ``steps_per_epoch`` steps.
        set_size
            Elements drawn from each set in a minibatch; by default 128 cells, 32
            sequences.
        n_sets_per_batch
            Sets in a minibatch (at most the number of training sets).
        steps_per_epoch
            Optimiser steps between two validation passes.
        train_size
            Fraction of sets used for training.
        validation_size
            Fraction of sets used for validation; ``1 - train_size`` by default.
        min_set_size
            Sets with fewer cells are left out of training, with a warning naming them.
        mix_sets
            Share of the sets drawn for training that are replaced by a mixture of two
            training sets of the same batch, in proportions drawn uniformly at random
            (:class:`gde.data.SetBatchSampler`), so that the model sees new distributions
            at every step. The W2 target of a mixture is measured on its drawn elements;
            validation sets are never mixed. ``None``: the model's default (off, except
            for :class:`gde.image.ImageGDEModel`, which mixes half); ``0``: off. On 60
            training sets of digit mixtures, ``mix_sets=0.5`` raised the held-out
            Spearman by 0.034 on average over three training seeds (0.003 to 0.072); on
            240 it raised it from 0.938 to 0.948, and the class-proportion error of the
            generated images from 0.247 to 0.278 (``docs/images.md``). On a

            simulated perturbation screen it brought the counterfactual cells of
            non-additive pairs closer to the real ones (energy distance 0.403 against
            0.489, three seeds; ``docs/perturbation.md``), while on 80 training sets of
            simulated cells it lowered the held-out Spearman from 0.903 to 0.892: try it
            where sets are few, and compare on held-out sets.
        accelerator, devices
            As in :class:`lightning.pytorch.Trainer` (``"auto"`` picks a GPU if present).
            With ``strategy="ddp"`` (a keyword of ``trainer_kwargs``) and ``devices=N``,
            N processes train together: at each step each draws ``n_sets_per_batch``
            sets of its own (together the sets one process would draw with minibatches
            N times larger) and their gradients are averaged; the validation sets are
            dealt out among them and their losses averaged, so early stopping decides
            the same everywhere. Each process runs the whole script, so write files
            only ``if model.trainer.is_global_zero``; in Jupyter, use
            ``strategy="ddp_notebook"``. On CPU the processes talk through gloo; more
            processes than cores, or than training sets, are refused.
        early_stopping
            Stop when the validation loss stops improving (needs validation sets): when
            over ``early_stopping_patience`` steps it improved by less than a tenth of
            its total improvement so far (``early_stopping_min_progress=0.1``, a keyword
            of ``trainer_kwargs``; see :class:`gde.model.ConvergenceStopping`).
        early_stopping_patience
            Optimiser steps without improvement before stopping; by default 1,000
            (2,000 for the diffusion decoder, whose validation loss is noisier), unless
            the model's own docstring states another patience.
        weight_ema
            Decay of an exponential moving average of the weights
            (:class:`gde.model.WeightEMA`): validation and the trained model use the
            average. ``None``: the model's default (off, unless its docstring says
            otherwise); ``0``: off; ``0.999`` averages over about 1,000 steps.
        checkpoint_path
            File to keep the whole training state in (weights, optimiser, step count,
            early-stopping and weight-average state, history, random state), rewritten
            after every validation pass (:class:`gde.model.TrainingCheckpoint`). If the
            file exists, training resumes from it and reaches the weights the interrupted
            run would have, e.g. after a job's time limit: build the model again the same
            way and call ``train`` with the same arguments and ``scvi.settings.seed`` (a
            checkpoint of another run is refused, saying what differs). The file is
            deleted when training ends; keep the model with :meth:`save`.
        plan_kwargs
            Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``eps``,
            ``n_steps_kl_warmup``, ...). Adam's ``eps`` defaults to ``1e-8``.
        datasplitter_kwargs
            Passed to :class:`gde.data.SetDataSplitter` (e.g. ``num_workers``).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`, e.g. ``strategy="ddp"``,
            ``precision="bf16-mixed"`` (mixed precision on a GPU), ``callbacks=[...]``.
        """
        if set_size is None:
            set_size = self._default_set_size
        if mix_sets is None:
            mix_sets = self._default_mix_sets
        set_codes = self.adata_manager.get_from_registry(GDE_KEYS.SET_KEY).ravel()
        set_names = np.asarray(
            self.adata_manager.get_state_registry(GDE_KEYS.SET_KEY).categorical_mapping
        ).astype(str)
        splitter = self._data_splitter_cls(
            self.adata_manager,
            set_codes,
            set_names,
            train_size=train_size,
            validation_size=validation_size,
            min_set_size=min_set_size,
            set_size=set_size,
            n_sets_per_batch=n_sets_per_batch,
            n_batches_per_epoch=steps_per_epoch,
            seed=settings.seed or 0,
            mix_sets=mix_sets,
            **(datasplitter_kwargs or {}),
        )
        n_train_sets = len(splitter.split.train)
        max_steps = resolve_steps(
            max_steps, max_epochs, steps_per_epoch, n_train_sets, self._default_max_steps
        )
        if 0 < max_steps < steps_per_epoch:  # validate at least once, at the end
            steps_per_epoch = splitter.n_batches_per_epoch = max_steps
        has_validation = len(splitter.split.validation) > 0
        if early_stopping and not has_validation:
            warnings.warn(
                "No validation sets (too few sets or validation_size=0): early stopping is "
                "off and training runs for max_steps.",
                UserWarning,
                stacklevel=2,
            )
            early_stopping = False
        n_validation = len(splitter.split.validation)
        if early_stopping and n_validation < MIN_VALIDATION_SETS:
            warnings.warn(
                f"Only {n_validation} validation set(s) of {len(set_names)}: early stopping "
                "will follow the noise of so few sets. With few sets, pass a larger "
                "`validation_size` (e.g. 0.2), or set `max_steps` and `early_stopping=False`.",
                UserWarning,
                stacklevel=2,
            )
        if early_stopping_patience is None:
            early_stopping_patience = self._default_patience_steps()
        patience_epochs = max(1, int(np.ceil(early_stopping_patience / steps_per_epoch)))

        if weight_ema is None:
            weight_ema = self._default_weight_ema
        if weight_ema:  # a bad decay is refused here, before the W2 targets are built
            callbacks = trainer_kwargs.get("callbacks", [])
            trainer_kwargs["callbacks"] = [*callbacks, WeightEMA(weight_ema)]

        checkpoint = None
        if checkpoint_path is not None:
            checkpoint = training_checkpoint(
                checkpoint_path,
                type(self).__name__,
                self.init_params_,
                splitter,
                has_validation,
                max_steps=max_steps,
                steps_per_epoch=steps_per_epoch,
                set_size=set_size,
                n_sets_per_batch=n_sets_per_batch,
                mix_sets=float(mix_sets),
                weight_ema=float(weight_ema or 0.0),
                early_stopping_patience=early_stopping_patience if early_stopping else None,
            )
            if checkpoint.resume_step:
                trainer_kwargs["ckpt_path"] = str(checkpoint.path)

        plan_kwargs = dict(plan_kwargs or {})
        if "n_steps_kl_warmup" not in plan_kwargs and "n_epochs_kl_warmup" not in plan_kwargs:
            plan_kwargs["n_epochs_kl_warmup"] = None
            plan_kwargs["n_steps_kl_warmup"] = int(min(1000, max(1, max_steps // 4)))
        plan_kwargs.setdefault("eps", 1e-8)
        pair_w2 = None
        if self.module.w2_weight > 0:
            pair_w2 = self._pair_w2(splitter, settings.seed or 0)
        training_plan = self._training_plan_cls(self.module, pair_w2=pair_w2, **plan_kwargs)

        monitor = trainer_kwargs.pop("early_stopping_monitor", "validation_loss")
        min_progress = trainer_kwargs.pop("early_stopping_min_progress", 0.1)
        stopper = None
        if early_stopping:
            stopper = ConvergenceStopping(monitor, patience_epochs, min_progress)
            trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), stopper]
        if checkpoint is not None:  # after the stopper: the file holds its decision
            trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), checkpoint]
        if checkpoint is not None:  # its file was read when it was checked
            resumed_from = checkpoint.resume_step
        else:  # a Lightning checkpoint passed as `ckpt_path`
            resumed_from = checkpoint_step(trainer_kwargs.get("ckpt_path"))
        trainer_kwargs.setdefault("use_distributed_sampler", False)
        trainer_kwargs.setdefault("max_steps", max_steps)
        trainer_kwargs.setdefault("log_every_n_steps", min(50, steps_per_epoch))
        if has_validation:
            trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        else:
            trainer_kwargs.setdefault("limit_val_batches", 0)
        with quiet_backend():
            runner = self._train_runner_cls(
                self,
                training_plan=training_plan,
                data_splitter=splitter,
                max_epochs=max(1, int(np.ceil(max_steps / steps_per_epoch))),
                accelerator=accelerator,
                devices=devices,
                early_stopping=False,  # ConvergenceStopping above
                **trainer_kwargs,
            )
            _check_processes(runner, n_train_sets)
            if "pin_memory" not in (datasplitter_kwargs or {}):
                # page-locked host memory makes the copies to a GPU faster
                splitter.pin_memory = runner.accelerator in ("gpu", "cuda")
            self.train_sets_ = splitter.train_sets
            self.validation_sets_ = splitter.validation_sets
            self.excluded_sets_ = splitter.excluded_sets
            previous = len((self.history_ or {}).get(monitor, ())) if self.is_trained_ else 0
            previous_epochs = (
                len((self.history_ or {}).get("train_loss", ())) if self.is_trained_ else 0
            )
            # embedding leaves the module in eval mode, and Lightning keeps the mode it
            # finds: train in training mode (fresh noise, dropout, sampled W2 pairs)
            self.module.train()
            runner()
        if checkpoint is not None:
            checkpoint.remove()
        if not isinstance(self.history_, dict):  # a logger other than scvi-tools' own
            self.history_ = {}
        steps_run = int(self.trainer.global_step)
        early_stopped = stopper is not None and stopper.stopped_epoch > 0
        if getattr(self.trainer.strategy, "_start_method", None) in ("spawn", "fork"):
            # the worker processes trained and sent back their weights and logs, not the
            # trainer's step count nor the callbacks: count the steps from the logs
            epochs = len(self.history_.get("train_loss", ())) - previous_epochs
            if resumed_from:  # a resumed history lacks the cut epoch's training rows
                epochs = len(self.history_.get(monitor, ())) - previous
            steps_run = min(int(trainer_kwargs["max_steps"]), epochs * steps_per_epoch)
            early_stopped = stopper is not None and steps_run < trainer_kwargs["max_steps"]
        self.history_["stop"] = stop_record(
            self.history_,
            steps_run=steps_run,
            max_steps=int(trainer_kwargs["max_steps"]),
            steps_per_epoch=steps_per_epoch,
            early_stopped=early_stopped,
            patience_steps=early_stopping_patience if has_validation else None,
            monitor=monitor,
            first_epoch=previous,
            min_progress=min_progress,
        ).assign(
            set_size=set_size,
            n_sets_per_batch=n_sets_per_batch,
            mix_sets=mix_sets,
            weight_ema=float(weight_ema or 0.0),
            resumed_from_step=resumed_from,
        )

    def _default_patience_steps(self) -> int:
        """Steps without improvement before early stopping, by default."""
        return 1000

    def _default_max_steps(self, n_train_sets: int) -> int:
        """Step cap of a default ``train()`` (:func:`gde.model.default_max_steps`)."""
        return default_max_steps(n_train_sets)

    def _pair_w2(self, splitter: SetDataSplitter, seed: int) -> PairwiseW2:
        """Fixed clouds of the training and validation sets in the W2 space."""
        n_points = self._w2_n_cells
        rng = np.random.default_rng([seed, 7])
        keys = [k for k in self.adata_manager.data_registry if k != GDE_KEYS.SET_KEY]
        dataset = OrderedReads(self.adata_manager.create_torch_dataset(data_and_attributes=keys))
        clouds = {}
        for code in np.concatenate([splitter.split.train, splitter.split.validation]):
            cells = splitter.set_cells[code]
            rows = rng.choice(cells, n_points, replace=len(cells) < n_points)
            clouds[int(code)] = self._w2_cloud(dataset, rows)
        floor = self._w2_floor(splitter, dataset, rng) if self._w2_debias else 0.0
        self.module.w2_offset.fill_(floor)
        return PairwiseW2(clouds, solver=self.module.w2_solver)

    def _w2_cloud(self, dataset, rows) -> torch.Tensor:
        """The cells ``rows`` of ``dataset`` in the W2 space, ``(len(rows), k)``, on the CPU."""
        tensors = {k: torch.as_tensor(v) for k, v in dataset[np.sort(rows)].items()}
        return self.module.w2_points(tensors).cpu()

    def _w2_floor(self, splitter: SetDataSplitter, dataset, rng, n_sets: int = 64) -> float:
        """W2² between two samples of one set, the floor of the W2 targets.

        The median, over up to ``n_sets`` training sets, of W2² in the W2 space between two
        disjoint halves of a set's cells (at most ``w2_n_cells`` each).
        """
        codes = splitter.split.train
        values = []
        for code in rng.choice(codes, min(n_sets, len(codes)), replace=False):
            cells = rng.permutation(splitter.set_cells[code])
            half = min(len(cells) // 2, self._w2_n_cells)
            if half < 2:
                continue
            a, b = (self._w2_cloud(dataset, r) for r in (cells[:half], cells[half : 2 * half]))
            w2 = batch_w2_squared(a[None], b[None], solver=self.module.w2_solver)
            values.append(float(w2[0]))
        return float(np.median(values)) if values else 0.0


def _check_processes(runner, n_train_sets: int) -> None:
    """Refuse more processes than CPU cores, or than training sets, before any work."""
    trainer = runner.trainer
    n_cpus = os.cpu_count() or 1
    if runner.accelerator == "cpu" and trainer.num_devices > n_cpus:
        raise ValueError(
            f"`devices={trainer.num_devices}` asks for {trainer.num_devices} CPU processes, "
            f"but this machine has {n_cpus} cores. Pass `devices` at most {n_cpus}."
        )
    if trainer.world_size > n_train_sets:
        raise ValueError(
            f"{trainer.world_size} processes would share {n_train_sets} training set(s): "
            "each process needs at least one set per step. Use at most "
            f"`devices={n_train_sets}` (times the number of nodes), or train on more sets."
        )
