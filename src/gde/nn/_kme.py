"""Kernel mean embedding of a set with random Fourier features (a fixed encoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._pooling import SegmentPool
from ._set_encoder import ChunkFactory


class KernelMeanEncoder(nn.Module):
    """Mean of random Fourier features: the kernel mean embedding of a set's distribution.

    ``φ(x) = [cos(Wx), sin(Wx)] / sqrt(D)`` with ``W ~ N(0, I / h²)`` approximates the
    Gaussian kernel of bandwidth ``h``; the set's embedding is the mean of ``φ`` over
    its elements, so L2 distances between embeddings approximate the kernel's MMD. The
    features are fixed (not learned): this is the kernel mean embedding baseline of the
    GDE paper, to be compared with the learned :class:`gde.nn.SetEncoder`. Covariates
    are not used.

    Parameters
    ----------
    n_input
        Element feature dimension.
    n_output
        Embedding dimension (even: half cosines, half sines).
    bandwidth
        Kernel bandwidth ``h``, in units of the (transformed) input.
    seed
        Seed of the random frequencies.
    """

    def __init__(self, n_input: int, n_output: int, bandwidth: float = 1.0, seed: int = 0):
        super().__init__()
        if n_output < 2 or n_output % 2:
            raise ValueError(f"KernelMeanEncoder needs an even n_output >= 2, got {n_output}.")
        if bandwidth <= 0:
            raise ValueError(f"bandwidth must be positive, got {bandwidth}.")
        generator = torch.Generator().manual_seed(seed)
        freqs = torch.randn(n_input, n_output // 2, generator=generator) / bandwidth
        self.register_buffer("freqs", freqs)
        self.bandwidth = bandwidth
        self.pooling = "mean"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Random Fourier features ``(..., n_output)`` of elements ``(..., n_input)``."""
        proj = x @ self.freqs.to(x.dtype)
        return torch.cat([proj.cos(), proj.sin()], dim=-1) / proj.shape[-1] ** 0.5

    def forward(
        self,
        x: torch.Tensor,
        cat_list: Sequence[torch.Tensor] = (),
        cont: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed sets ``(n_sets, set_size, n_input)`` → ``(n_sets, n_output)``."""
        return self.features(x).mean(dim=-2)

    @torch.no_grad()
    def forward_chunked(self, chunks: ChunkFactory, n_sets: int) -> torch.Tensor:
        """Embed sets of any size from chunks of their elements, in one pass.

        Same contract as :meth:`gde.nn.SetEncoder.forward_chunked`.
        """
        pool = None
        for x, set_index, _, _ in chunks():
            phi = self.features(x)
            if pool is None:
                pool = SegmentPool(n_sets, phi.shape[-1], "mean", phi.device)
            pool.add(phi, set_index)
        if pool is None:
            return torch.full((n_sets, 2 * self.freqs.shape[1]), torch.nan)
        return pool.result(dtype=self.freqs.dtype)
