"""An exponential moving average of a module's weights, kept during training."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback


class WeightEMA(Callback):
    """Keep an exponential moving average (EMA) of the weights; validate and end with it.

    After every optimiser step the average moves towards the current weights by
    ``1 - d``, where ``d = min(decay, (1 + t) / (10 + t))`` after ``t`` updates (a short
    warm-up, so the average does not remember the random start). Validation runs on the
    averaged weights, so early stopping judges the model that will be kept, and when
    training ends the averaged weights replace the module's. Diffusion decoders gain
    most: their weights wander with the noise of random timesteps, and the average
    samples cleaner images at the same number of steps.

    Parameters
    ----------
    decay
        Weight of the old average at each step, in (0, 1); ``0.999`` averages over
        about the last 1,000 steps.
    """

    def __init__(self, decay: float = 0.999):
        super().__init__()
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f"`decay` must lie between 0 and 1 (exclusive), got {decay}.")
        self.decay = float(decay)
        self._average: list[torch.Tensor] | None = None
        self._backup: list[torch.Tensor] | None = None
        self._updates = 0
        self._last_step = -1

    @staticmethod
    def _weights(pl_module) -> list[torch.Tensor]:
        module = getattr(pl_module, "module", pl_module)
        return [p for p in module.parameters() if p.requires_grad]

    @torch.no_grad()
    def on_fit_start(self, trainer, pl_module) -> None:
        if self._average is not None:  # restored from a checkpoint: go on averaging
            weights = self._weights(pl_module)
            self._average = [a.to(p.device) for a, p in zip(self._average, weights, strict=True)]
            return
        self._average = [p.detach().clone() for p in self._weights(pl_module)]
        self._updates, self._last_step = 0, int(trainer.global_step)

    def state_dict(self) -> dict:
        if self._average is None:
            return {}
        return {"average": self._average, "updates": self._updates, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        if "average" in state_dict:  # a checkpoint written during training
            self._average = [a.clone() for a in state_dict["average"]]
            self._updates = int(state_dict["updates"])
            self._last_step = int(state_dict["last_step"])

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._average is None or int(trainer.global_step) == self._last_step:
            return  # no optimiser step since the last update
        self._last_step = int(trainer.global_step)
        self._updates += 1
        step = 1.0 - min(self.decay, (1.0 + self._updates) / (10.0 + self._updates))
        for avg, p in zip(self._average, self._weights(pl_module), strict=True):
            avg.lerp_(p.detach(), step)

    @torch.no_grad()
    def _swap_in(self, pl_module) -> None:
        if self._average is None or self._backup is not None:
            return
        weights = self._weights(pl_module)
        self._backup = [p.detach().clone() for p in weights]
        for p, avg in zip(weights, self._average, strict=True):
            p.copy_(avg)

    @torch.no_grad()
    def _swap_out(self, pl_module) -> None:
        if self._backup is None:
            return
        for p, old in zip(self._weights(pl_module), self._backup, strict=True):
            p.copy_(old)
        self._backup = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._swap_in(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._swap_out(pl_module)

    @torch.no_grad()
    def on_train_end(self, trainer, pl_module) -> None:
        self._swap_out(pl_module)
        if self._average is not None:
            for p, avg in zip(self._weights(pl_module), self._average, strict=True):
                p.copy_(avg)
        self._average = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._swap_out(pl_module)  # never leave the averaged weights in by accident
        self._average = None
