"""Pooling over the elements of a set, dense or accumulated chunk by chunk."""

from __future__ import annotations

from typing import Literal

import torch

Pooling = Literal["mean", "sum", "max"]


def pool(h: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Pool ``h`` of shape ``(n_sets, set_size, dim)`` over its elements, keeping the axis.

    Returns a tensor of shape ``(n_sets, 1, dim)``.
    """
    if pooling == "mean":
        return h.mean(dim=-2, keepdim=True)
    elif pooling == "sum":
        return h.sum(dim=-2, keepdim=True)
    elif pooling == "max":
        return h.amax(dim=-2, keepdim=True)
    else:
        raise ValueError(f"pooling must be 'mean', 'sum' or 'max', got {pooling!r}.")


class SegmentPool:
    """Accumulate a pooled vector per set over chunks of cells.

    Sums are kept in float64 so that a set of millions of cells pools to the same vector,
    up to float32 rounding, as in one pass.

    Parameters
    ----------
    n_sets
        Number of sets (segments).
    dim
        Feature dimension.
    pooling
        ``"mean"``, ``"sum"`` or ``"max"``.
    device
        Device of the accumulators.
    """

    #: chunks whose cells form at most this many runs of one set are reduced run by run
    max_runs = 64

    def __init__(self, n_sets: int, dim: int, pooling: Pooling, device: torch.device | str):
        if pooling not in ("mean", "sum", "max"):
            raise ValueError(f"pooling must be 'mean', 'sum' or 'max', got {pooling!r}.")
        self.pooling = pooling
        self.counts = torch.zeros(n_sets, dtype=torch.float64, device=device)
        fill = -torch.inf if pooling == "max" else 0.0
        self.acc = torch.full((n_sets, dim), fill, dtype=torch.float64, device=device)

    def add(self, h: torch.Tensor, set_index: torch.Tensor) -> None:
        """Add the rows of ``h`` (``(n, dim)``) to the sets named by ``set_index`` (``(n,)``)."""
        h = h.to(torch.float64)
        # cells of a chunk usually come in runs of one set: reduce each run at once,
        # many times faster on a CPU than adding row by row
        ids, lengths = torch.unique_consecutive(set_index, return_counts=True)
        if len(ids) <= self.max_runs:
            for i, part in zip(ids.tolist(), h.split(lengths.tolist()), strict=True):
                self.counts[i] += len(part)
                if self.pooling == "max":
                    self.acc[i] = torch.maximum(self.acc[i], part.amax(0))
                else:
                    self.acc[i] += part.sum(0)
            return
        self.counts.index_add_(0, set_index, torch.ones_like(set_index, dtype=torch.float64))
        if self.pooling == "max":
            idx = set_index[:, None].expand_as(h)
            self.acc.scatter_reduce_(0, idx, h, reduce="amax", include_self=True)
        else:
            self.acc.index_add_(0, set_index, h)

    def result(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Pooled vectors ``(n_sets, dim)``; rows of sets without cells are NaN."""
        if self.pooling == "mean":
            out = self.acc / self.counts[:, None]
        else:
            out = self.acc.clone()
            out[self.counts == 0] = torch.nan
        return out.to(dtype)
