"""Distributionally invariant set encoder (residual mean-pooled DeepSets)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from ._pooling import Pooling, SegmentPool, pool

ChunkFactory = Callable[
    [], Iterable[tuple[torch.Tensor, torch.Tensor, Sequence[torch.Tensor], torch.Tensor | None]]
]


def one_hot_covariates(
    cat_list: Sequence[torch.Tensor], n_cat_list: Sequence[int]
) -> list[torch.Tensor]:
    """One-hot encode categorical covariates (``(..., 1)`` integer codes each)."""
    out = []
    for codes, n_cat in zip(cat_list, n_cat_list, strict=True):
        if n_cat > 1:
            out.append(nn.functional.one_hot(codes.squeeze(-1).long(), n_cat).float())
    return out


class PooledResidualBlock(nn.Module):
    """Mix every element with its set's pooled vector, with a residual connection.

    ``h_i <- h_i + MLP([LN(h_i), pool(h)])``; LayerNorm acts on each element alone, never
    across elements or sets. The pooled vector is not normalised: a normalisation would
    make sum pooling scale-free, hiding what distinguishes it from mean pooling.

    Parameters
    ----------
    n_hidden
        Feature dimension.
    dropout_rate
        Dropout inside the MLP.
    """

    def __init__(self, n_hidden: int, dropout_rate: float = 0.0):
        super().__init__()
        self.norm_element = nn.LayerNorm(n_hidden)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_hidden, n_hidden),
            nn.GELU(),
            nn.Dropout(dropout_rate),
            nn.Linear(n_hidden, n_hidden),
        )

    def forward(self, h: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Update ``h`` given the pooled vector of its set, broadcast to ``h``'s shape."""
        pooled = pooled.expand_as(h)
        return h + self.mlp(torch.cat([self.norm_element(h), pooled], dim=-1))


class SetEncoder(nn.Module):
    """Encode a set of elements into one vector, invariant to order and to replication.

    Each element is embedded by an MLP, then ``n_blocks`` residual blocks each mix every
    element with its set's pooled vector, and a final pooling and MLP give the embedding.
    With ``pooling="mean"`` (the default) the output depends on the set only through its
    empirical distribution: it is unchanged when elements are shuffled or each element
    is replicated ``k`` times. ``"sum"`` and ``"max"`` are offered for comparison: sum
    pooling breaks replication invariance, max pooling is insensitive to proportions.

    Parameters
    ----------
    n_input
        Element feature dimension.
    n_output
        Embedding dimension.
    n_hidden
        Hidden dimension.
    n_blocks
        Number of pooled residual blocks.
    pooling
        ``"mean"``, ``"sum"`` or ``"max"``.
    n_cat_list
        Number of categories of each categorical covariate fed to the element MLP.
    n_cont
        Number of continuous covariates fed to the element MLP.
    dropout_rate
        Dropout in the blocks.
    mean_path
        Add a linear map of the set's pooled input to the embedding (see
        :meth:`init_mean_path`): a direct path from the set mean, so that what the mean
        says about a set needs no training to reach the embedding.
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        n_hidden: int = 128,
        n_blocks: int = 2,
        pooling: Pooling = "mean",
        n_cat_list: Sequence[int] | None = None,
        n_cont: int = 0,
        dropout_rate: float = 0.0,
        mean_path: bool = False,
    ):
        super().__init__()
        if pooling not in ("mean", "sum", "max"):
            raise ValueError(f"pooling must be 'mean', 'sum' or 'max', got {pooling!r}.")
        self.pooling = pooling
        self.n_cat_list = [n if n > 1 else 0 for n in (n_cat_list or [])]
        self.n_cont = n_cont
        n_in = n_input + sum(self.n_cat_list) + n_cont
        self.embed = nn.Sequential(
            nn.Linear(n_in, n_hidden),
            nn.LayerNorm(n_hidden),
            nn.GELU(),
            nn.Linear(n_hidden, n_hidden),
        )
        self.blocks = nn.ModuleList(
            [PooledResidualBlock(n_hidden, dropout_rate) for _ in range(n_blocks)]
        )
        self.head = nn.Sequential(
            nn.Linear(n_hidden, n_hidden),
            nn.GELU(),
            nn.Linear(n_hidden, n_output),
        )
        self.n_hidden = n_hidden
        self.n_input = n_input
        self.mean_path = nn.Linear(n_input, n_output) if mean_path else None

    @torch.no_grad()
    def init_mean_path(self, components: torch.Tensor, center: torch.Tensor) -> None:
        """Start the embedding at the set means projected on ``components``.

        The mean path becomes ``(pool(x) - center) @ components`` in the first
        ``k`` output dimensions (zero in the others), and the last layer of the pooled
        network starts at zero, so the untrained embedding is the projected set mean
        (e.g. on the principal components of the cells: a pseudobulk embedding) and
        training adds what the mean misses.

        Parameters
        ----------
        components
            ``(n_input, k)`` projection, ``k`` at most the output dimension.
        center
            ``(n_input,)`` centre subtracted before projecting.
        """
        if self.mean_path is None:
            raise ValueError("This SetEncoder was built without mean_path=True.")
        components = torch.as_tensor(components, dtype=self.mean_path.weight.dtype)
        center = torch.as_tensor(center, dtype=components.dtype)
        k = min(components.shape[1], self.mean_path.out_features)
        self.mean_path.weight.zero_()
        self.mean_path.bias.zero_()
        # (n_input, k) -> weight rows (k, n_input)
        self.mean_path.weight[:k] = components[:, :k].T
        self.mean_path.bias[:k] = -(center @ components[:, :k])
        last = self.head[-1]
        last.weight.zero_()
        last.bias.zero_()

    def _embed(
        self, x: torch.Tensor, cat_list: Sequence[torch.Tensor], cont: torch.Tensor | None
    ) -> torch.Tensor:
        parts = [x, *one_hot_covariates(cat_list, self.n_cat_list)]
        if self.n_cont:
            parts.append(cont)
        return self.embed(torch.cat(parts, dim=-1) if len(parts) > 1 else x)

    def forward(
        self,
        x: torch.Tensor,
        cat_list: Sequence[torch.Tensor] = (),
        cont: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed sets.

        Parameters
        ----------
        x
            Elements, ``(n_sets, set_size, n_input)``.
        cat_list
            Categorical covariates, each ``(n_sets, set_size, 1)``.
        cont
            Continuous covariates, ``(n_sets, set_size, n_cont)``.

        Returns
        -------
        Embeddings, ``(n_sets, n_output)``.
        """
        h = self._embed(x, cat_list, cont)
        for block in self.blocks:
            h = block(h, pool(h, self.pooling))
        # (n_sets, 1, n_hidden) -> (n_sets, n_hidden)
        out = self.head(pool(h, self.pooling).squeeze(-2))
        if self.mean_path is not None:
            # (n_sets, 1, n_input) -> (n_sets, n_input)
            out = out + self.mean_path(pool(x, self.pooling).squeeze(-2))
        return out

    @torch.no_grad()
    def forward_chunked(self, chunks: ChunkFactory, n_sets: int) -> torch.Tensor:
        """Embed sets of any size from chunks of their elements, in bounded memory.

        The pooled vector of each block needs the whole set, so the elements are read
        ``n_blocks + 1`` times; memory holds one chunk and one vector per set.

        Parameters
        ----------
        chunks
            Called once per pass; returns an iterable of
            ``(x, set_index, cat_list, cont)`` with ``x`` of shape ``(n, n_input)``,
            ``set_index`` of shape ``(n,)`` naming each element's set in ``0..n_sets-1``,
            covariates shaped ``(n, 1)`` and ``(n, n_cont)``.
        n_sets
            Number of sets.

        Returns
        -------
        Embeddings, ``(n_sets, n_output)``; rows of sets without elements are NaN.
        """
        pooled: list[torch.Tensor] = []
        param = next(self.parameters())
        raw = SegmentPool(n_sets, self.n_input, self.pooling, param.device)
        for depth in range(len(self.blocks) + 1):
            acc = SegmentPool(n_sets, self.n_hidden, self.pooling, param.device)
            for x, set_index, cat_list, cont in chunks():
                if depth == 0 and self.mean_path is not None:
                    raw.add(x, set_index)
                h = self._embed(x, cat_list, cont)
                for block, p in zip(self.blocks[:depth], pooled, strict=False):
                    h = block(h, p[set_index])
                acc.add(h, set_index)
            pooled.append(acc.result(dtype=param.dtype))
        out = self.head(pooled[-1])
        if self.mean_path is not None:
            out = out + self.mean_path(raw.result(dtype=param.dtype))
        return out
