"""Conditional denoiser: predicts the noise of x_t given the timestep and a condition."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps ``(n,)`` into ``(n, dim)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def guided_at(
    guidance_scale: float, guided_steps: tuple[int, int] | None
) -> Callable[[torch.Tensor], bool]:
    """Whether a reverse-process step at timestep ``t`` (a tensor of one value) is guided.

    Never with ``guidance_scale`` 1; otherwise at every step, or with ``guided_steps =
    (lo, hi)`` at the steps with ``lo <= t < hi`` only.
    """
    if guidance_scale == 1.0:
        return lambda t: False
    if guided_steps is None:
        return lambda t: True
    lo, hi = guided_steps
    return lambda t: lo <= int(t[0]) < hi


class _FiLMBlock(nn.Module):
    """``h + MLP(LN(h) * (1 + scale) + shift)`` with scale and shift from the embedding."""

    def __init__(self, n_hidden: int, dropout_rate: float):
        super().__init__()
        self.norm = nn.LayerNorm(n_hidden, elementwise_affine=False)
        self.film = nn.Linear(n_hidden, 2 * n_hidden)
        self.mlp = nn.Sequential(
            nn.Linear(n_hidden, 2 * n_hidden),
            nn.SiLU(),
            nn.Dropout(dropout_rate),
            nn.Linear(2 * n_hidden, n_hidden),
        )

    def forward(self, h: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        """``film`` is ``self.film(emb)``, one row per row of ``h``."""
        scale, shift = film.chunk(2, dim=-1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class GuidedDenoiser(nn.Module):
    """Base of gde's denoisers: the timestep and condition embedding, and guidance.

    A subclass builds its network after ``super().__init__`` and implements
    :meth:`denoise` (``x_t`` and one embedding row per row of ``x_t`` to ε). The
    embedding is ``silu(time_mlp(timestep) + cond_mlp(condition))``. For
    classifier-free guidance the condition is replaced, with probability
    ``cond_dropout`` during training, by a learned null condition.

    Parameters
    ----------
    n_cond
        Dimension of the condition.
    n_emb
        Dimension of the embedding.
    n_time
        Dimension of the sinusoidal timestep embedding.
    cond_dropout
        Probability of dropping the condition for a training example.
    """

    def __init__(self, n_cond: int, n_emb: int, n_time: int = 64, cond_dropout: float = 0.1):
        super().__init__()
        if not 0.0 <= cond_dropout < 1.0:
            raise ValueError("cond_dropout must be in [0, 1).")
        self.n_time = n_time
        self.cond_dropout = cond_dropout
        self.null_cond = nn.Parameter(torch.zeros(n_cond))
        self.time_mlp = nn.Sequential(nn.Linear(n_time, n_emb), nn.SiLU(), nn.Linear(n_emb, n_emb))
        self.cond_mlp = nn.Sequential(nn.Linear(n_cond, n_emb), nn.SiLU(), nn.Linear(n_emb, n_emb))

    def denoise(self, x_t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Predicted noise from noisy inputs and their embeddings ``(n, n_emb)``."""
        raise NotImplementedError

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        drop_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted noise, shaped like ``x_t``.

        Parameters
        ----------
        x_t
            Noisy inputs, ``(n, ...)``.
        t
            Timesteps, ``(n,)``.
        cond
            Conditions, ``(n, n_cond)``.
        drop_cond
            Boolean ``(n,)``: use the null condition for these rows. In training mode,
            drawn at random with probability ``cond_dropout`` when not given.
        """
        if drop_cond is None and self.training and self.cond_dropout > 0:
            drop_cond = torch.rand(cond.shape[0], device=cond.device) < self.cond_dropout
        if drop_cond is not None:
            cond = torch.where(drop_cond[:, None], self.null_cond.expand_as(cond), cond)
        emb = self.time_mlp(timestep_embedding(t, self.n_time)) + self.cond_mlp(cond)
        return self.denoise(x_t, nn.functional.silu(emb))

    def sampler(
        self,
        cond: torch.Tensor,
        guidance_scale: float = 1.0,
        guided_steps: tuple[int, int] | None = None,
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``eps_fn(x_t, t)`` for sampling under fixed conditions (evaluation mode).

        Equal to :meth:`guided` with ``cond``; the condition's embedding is computed
        once. ``t`` must hold one timestep for all rows, as in a reverse-process step.
        ``guided_steps``: ``(lo, hi)``, guide only the steps with ``lo <= t < hi``
        (``None``: every step; :meth:`gde.nn.NoiseSchedule.steps_within` gives them for
        a fraction of the diffusion time).
        """
        cond_emb = self.cond_mlp(cond)
        null_emb = self.cond_mlp(self.null_cond[None])
        guided = guided_at(guidance_scale, guided_steps)

        def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            time_emb = self.time_mlp(timestep_embedding(t[:1], self.n_time))
            eps = self.denoise(x_t, nn.functional.silu(time_emb + cond_emb))
            if not guided(t):
                return eps
            emb_null = nn.functional.silu(time_emb + null_emb).expand_as(cond_emb)
            eps_null = self.denoise(x_t, emb_null)
            return eps_null + guidance_scale * (eps - eps_null)

        return eps_fn

    def guided(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """Classifier-free guided prediction ``ε_u + s (ε_c - ε_u)``; ``s = 1``: conditional."""
        if guidance_scale == 1.0:
            return self.forward(
                x_t, t, cond, drop_cond=torch.zeros(len(x_t), dtype=torch.bool, device=x_t.device)
            )
        n = x_t.shape[0]
        drop = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
        eps = self.forward(
            torch.cat([x_t, x_t]),
            torch.cat([t, t]),
            torch.cat([cond, cond]),
            drop_cond=drop.to(x_t.device),
        )
        eps_cond, eps_uncond = eps[:n], eps[n:]
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


class ConditionalDenoiser(GuidedDenoiser):
    """MLP with residual blocks predicting ε from ``(x_t, t, condition)``.

    The timestep (sinusoidal embedding) and the condition (a set embedding, possibly with
    covariates) modulate every block. For classifier-free guidance the condition is
    replaced, with probability ``cond_dropout`` during training, by a learned null
    condition; :meth:`guided` then mixes conditional and unconditional predictions
    (see :class:`GuidedDenoiser`).

    Parameters
    ----------
    n_input
        Dimension of ``x``.
    n_cond
        Dimension of the condition.
    n_hidden
        Width of the residual stream.
    n_blocks
        Number of residual blocks.
    n_time
        Dimension of the timestep embedding.
    cond_dropout
        Probability of dropping the condition for a training example (0 disables guidance
        training).
    dropout_rate
        Dropout inside the blocks.
    """

    def __init__(
        self,
        n_input: int,
        n_cond: int,
        n_hidden: int = 256,
        n_blocks: int = 3,
        n_time: int = 64,
        cond_dropout: float = 0.1,
        dropout_rate: float = 0.0,
    ):
        super().__init__(n_cond, n_hidden, n_time, cond_dropout)
        self.input = nn.Linear(n_input, n_hidden)
        self.blocks = nn.ModuleList([_FiLMBlock(n_hidden, dropout_rate) for _ in range(n_blocks)])
        self.output = nn.Sequential(nn.LayerNorm(n_hidden), nn.Linear(n_hidden, n_input))
        nn.init.zeros_(self.output[1].weight)
        nn.init.zeros_(self.output[1].bias)

    def denoise(self, x_t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Predicted noise ``(n, n_input)`` from ``x_t`` and one embedding row per row."""
        return self._forward_rows(x_t, emb, None)

    def sampler(
        self,
        cond: torch.Tensor,
        guidance_scale: float = 1.0,
        guided_steps: tuple[int, int] | None = None,
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``eps_fn(x_t, t)`` for sampling under fixed conditions (evaluation mode).

        Equal to :meth:`guided` with ``cond``, but cheaper: the condition's embedding is
        computed once, and the timestep and modulation layers run once per distinct
        condition (typically one per set) rather than once per cell. ``t`` must hold one
        timestep for all rows, as in a reverse-process step. ``guided_steps`` as in
        :meth:`GuidedDenoiser.sampler`.
        """
        unique, inverse = torch.unique(cond, dim=0, return_inverse=True)
        cond_emb = self.cond_mlp(unique)
        null_emb = self.cond_mlp(self.null_cond[None])
        guided = guided_at(guidance_scale, guided_steps)

        def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            time_emb = self.time_mlp(timestep_embedding(t[:1], self.n_time))
            emb = nn.functional.silu(time_emb + cond_emb)
            eps = self._forward_rows(x_t, emb, inverse)
            if not guided(t):
                return eps
            emb_null = nn.functional.silu(time_emb + null_emb)
            zeros = torch.zeros_like(inverse)
            eps_null = self._forward_rows(x_t, emb_null, zeros)
            return eps_null + guidance_scale * (eps - eps_null)

        return eps_fn

    def _forward_rows(
        self, x_t: torch.Tensor, emb: torch.Tensor, index: torch.Tensor | None
    ) -> torch.Tensor:
        h = self.input(x_t)
        for block in self.blocks:
            film = block.film(emb)
            h = block(h, film if index is None else film[index])
        return self.output(h)
