"""The whole state of a training run in one file, so that a run cut short can resume."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback


class TrainingCheckpoint(Callback):
    """Write the training state to ``path`` after every validation pass; restore it.

    The file holds what a run needs to go on as if it had never stopped: the weights,
    the optimiser's and learning-rate schedule's state, the step count, the state of the
    other callbacks (early stopping, :class:`WeightEMA`), the W2 targets computed so far,
    the history logged so far and the random number generators' state (the set
    sampler's draws follow from the epoch). A run resumed from it reaches the same
    weights as one never stopped; only the training-loss rows of the history for the
    epoch that was cut short are missing. The file is written after the other callbacks
    have seen the validation pass (place this callback after the early stopping), to a
    temporary file that is then renamed, so a process killed while writing leaves the
    previous state whole. ``train(checkpoint_path=...)`` adds this callback and resumes
    from the file when it exists.

    Parameters
    ----------
    path
        File of the checkpoint.
    run
        What identifies the run (model, data split, budget, minibatch shape), stored
        with the state: a resumed run must be the same run (see :func:`check_resume`).
    """

    def __init__(self, path: str | os.PathLike, run: dict):
        super().__init__()
        self.path = Path(path)
        self.run = dict(run)
        self._trainer = None
        self._restored: dict | None = None  # a loaded state, until training starts
        #: optimiser steps already run in the file when training starts (0: none)
        self.resume_step = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        state, self._restored = self._restored, None
        if state is not None:  # the random state of the run when it was written
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        partial = self.path.with_name(self.path.name + ".partial")
        trainer.save_checkpoint(partial)
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        trainer.strategy.barrier("gde_checkpoint")

    def state_dict(self) -> dict:
        state = {"run": self.run, "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        # scvi-tools' logger keeps the history in the first process only
        history = getattr(getattr(self._trainer, "logger", None), "history", None)
        state["history"] = _plain_history(history if isinstance(history, dict) else {})
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = state_dict
        logger = getattr(self._trainer, "logger", None)
        experiment = getattr(logger, "experiment", None)
        data = getattr(experiment, "data", None)
        if isinstance(data, dict):  # scvi-tools' logger (first process): the history so far
            data.update(_frame_history(state_dict["history"]))

    def remove(self) -> None:
        """Delete the checkpoint (once the run has finished, its state is the model's)."""
        for file in (self.path, self.path.with_name(self.path.name + ".partial")):
            file.unlink(missing_ok=True)


def training_checkpoint(
    path: str | os.PathLike,
    model: str,
    parameters: dict,
    splitter,
    has_validation: bool,
    **run,
) -> TrainingCheckpoint:
    """The callback of ``train(checkpoint_path=path)``, checked against the file ``path``.

    ``model``: the model's class name; ``parameters``: its construction parameters
    (``model.init_params_``); ``splitter``: the run's :class:`gde.data.SetDataSplitter`;
    ``run``: the ``train()`` arguments that a resumed run must share.
    """
    if not has_validation:
        raise ValueError(
            "`checkpoint_path` needs validation sets: the training state is saved after "
            "each validation pass. Keep `validation_size` above 0 (the default), or "
            "train without `checkpoint_path`."
        )
    run = {
        "model": model,
        "model parameters": {
            name: repr(value) for group in parameters.values() for name, value in group.items()
        },
        "train_sets": [str(s) for s in splitter.train_sets],
        "validation_sets": [str(s) for s in splitter.validation_sets],
        **run,
    }
    checkpoint = TrainingCheckpoint(path, run)
    checkpoint.resume_step = check_resume(path, run)
    return checkpoint


def checkpoint_step(path: str | os.PathLike | None) -> int:
    """Optimiser steps already run in the checkpoint ``path`` (``0`` for ``None``)."""
    if path is None:
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def check_resume(path: str | os.PathLike, run: dict) -> int:
    """Steps already run in the checkpoint ``path`` (``0``: no file); refuse another run's.

    Raises
    ------
    ValueError
        When the file is not a training checkpoint, or its run differs from ``run``
        (another model, data split, budget or minibatch shape), naming what differs.
    """
    path = Path(path)
    if not path.exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        stored = state["callbacks"][TrainingCheckpoint.__qualname__]["run"]
    except Exception as error:  # any unreadable file gets the same advice
        raise ValueError(
            f"{path} is not a training checkpoint written by `train(checkpoint_path=...)` "
            f"({type(error).__name__}: {error}). Pass another `checkpoint_path`, or delete "
            "the file to train from the start."
        ) from error
    differ = sorted(k for k in set(stored) | set(run) if stored.get(k) != run.get(k))
    if differ:
        detail = "; ".join(_difference(k, stored.get(k), run.get(k)) for k in differ)
        raise ValueError(
            f"The checkpoint {path} belongs to another training run ({detail}). Resume with "
            "the same data, model and `train()` arguments, pass another `checkpoint_path`, "
            "or delete the file to train from the start."
        )
    return int(state["global_step"])


def _difference(key: str, there, now) -> str:
    """What differs under ``key``: for a mapping, only its entries that differ."""
    if isinstance(there, dict) and isinstance(now, dict):
        keys = sorted(k for k in set(there) | set(now) if there.get(k) != now.get(k))
        return "; ".join(
            f"{key} {k}: {there.get(k, 'not set')} there, {now.get(k, 'not set')} now"
            for k in keys
        )
    return f"{key}: {_short(there)} there, {_short(now)} now"


def _short(value, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters (a list of thousands of sets)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain_history(history: dict[str, pd.DataFrame]) -> dict:
    """The logged history as lists (a checkpoint loads without unpickling objects)."""
    return {
        name: {
            "index_name": frame.index.name,
            "index": [int(i) for i in frame.index],
            "values": [float(v) for v in frame.iloc[:, 0]],
        }
        for name, frame in history.items()
    }


def _frame_history(plain: dict) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, item in plain.items():
        frame = pd.DataFrame({name: item["values"]}, index=item["index"], dtype=object)
        frame.index.name = item["index_name"]
        frames[name] = frame
    return frames
