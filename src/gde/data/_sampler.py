"""Minibatches made of whole sets."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from gde._anndata_utils import group_cells_by_set


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def check_mix_share(mix_sets: float) -> None:
    """Refuse a share of mixed draws outside ``[0, 1]``."""
    if not 0.0 <= mix_sets <= 1.0:
        raise ValueError(f"`mix_sets` is a share of the draws, in [0, 1]; got {mix_sets}.")


class SetBatchSampler(Sampler[np.ndarray]):
    """Yield minibatches of ``n_sets_per_batch`` sets × ``set_size`` cells each.

    Each minibatch is a flat array of cell indices laid out set by set: the first
    ``set_size`` indices belong to the first set, and so on, so a loader can reshape the
    tensors to ``(n_sets, set_size, ...)``. Cells of a set are drawn without replacement
    when the set holds at least ``set_size`` cells and with replacement otherwise.

    Parameters
    ----------
    set_indices
        One array of cell indices (rows of the AnnData) per set.
    set_size
        Cells drawn from each set.
    n_sets_per_batch
        Sets per minibatch.
    n_batches
        Minibatches per epoch drawn by each process (so one epoch is ``n_batches``
        optimiser steps however many processes train). Defaults to as many as it takes
        to draw every cell once on average.
    shuffle
        If ``True`` (training), sets are visited in a new random order each epoch, cycling
        through random permutations so that every set is drawn equally often, and cells
        are redrawn each epoch. If ``False`` (validation), every set appears exactly once,
        in order, with the same cells every epoch.
    seed
        Seed of the random draws; epoch ``e`` uses the stream ``(seed, e)``.
    mix_sets
        Share of the training draws (``shuffle=True``) replaced by a mixture of two sets:
        the drawn set and a partner drawn at random (from the same group, see
        ``set_groups``) share the ``set_size`` cells in proportions drawn uniformly; the
        first cell is the drawn set's (its code names the draw), the others come in
        random order, so that a decoder reading a set's first elements sees the mixture.
        Every training step then shows new distributions. Validation draws are never
        mixed. ``0`` (default): no mixtures.
    set_groups
        A label per set; mixtures only join sets with the same label (e.g. the batch), so
        that a mixture never spans batches. By default all sets are one group.
    num_replicas, rank
        Number of processes and the rank of this one, for distributed training. By default
        read from :mod:`torch.distributed` when it is initialised, else ``1`` and ``0``.
        At each step the processes draw disjoint sets: together they draw
        ``num_replicas * n_sets_per_batch`` sets, in the order one process drawing
        batches that many times larger would.
    """

    def __init__(
        self,
        set_indices: Sequence[np.ndarray],
        set_size: int,
        n_sets_per_batch: int,
        n_batches: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        mix_sets: float = 0.0,
        set_groups: Sequence | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if len(set_indices) == 0:
            raise ValueError("SetBatchSampler needs at least one set.")
        if set_size < 1 or n_sets_per_batch < 1:
            raise ValueError("`set_size` and `n_sets_per_batch` must be positive integers.")
        if any(len(idx) == 0 for idx in set_indices):
            raise ValueError("Every set passed to SetBatchSampler must hold at least one cell.")
        check_mix_share(mix_sets)
        self.set_indices = [np.asarray(idx, dtype=np.int64) for idx in set_indices]
        if set_groups is not None and len(set_groups) != len(self.set_indices):
            raise ValueError(
                f"`set_groups` has {len(set_groups)} labels for {len(self.set_indices)} sets."
            )
        self.mix_sets = float(mix_sets) if set_size > 1 else 0.0
        # each set's group code, and the sets of each group (built only when mixing)
        self._group_of, self._members = None, None
        if self.mix_sets > 0:
            labels = np.zeros(len(self.set_indices)) if set_groups is None else set_groups
            self._group_of = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
            self._members = group_cells_by_set(self._group_of, int(self._group_of.max()) + 1)
        self.set_size = int(set_size)
        self.n_sets_per_batch = int(n_sets_per_batch)
        self.shuffle = shuffle
        self.seed = int(seed)
        self._num_replicas = num_replicas
        self._rank = rank
        if n_batches is None:
            n_cells = sum(len(idx) for idx in self.set_indices)
            n_batches = int(np.ceil(n_cells / (self.set_size * self.n_sets_per_batch)))
        self.n_batches = max(1, int(n_batches))
        self.epoch = 0

    @property
    def n_sets(self) -> int:
        """Number of sets the sampler draws from."""
        return len(self.set_indices)

    def _replicas(self) -> tuple[int, int]:
        world, rank = _world()
        num_replicas = self._num_replicas if self._num_replicas is not None else world
        rank = self._rank if self._rank is not None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is out of range for {num_replicas} replicas.")
        return num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, so that each epoch draws different sets and cells."""
        self.epoch = int(epoch)

    def _draw_cells(
        self, set_id: int, rng: np.random.Generator, size: int | None = None
    ) -> np.ndarray:
        cells = self.set_indices[set_id]
        size = self.set_size if size is None else size
        return rng.choice(cells, size=size, replace=len(cells) < size)

    def _draw_set(self, set_id: int, rng: np.random.Generator, mix: bool) -> np.ndarray:
        """The cells of one draw: the set's own, or a mixture with a partner set."""
        members = self._members[self._group_of[set_id]]
        if not mix or len(members) < 2:
            return self._draw_cells(set_id, rng)
        # uniform over the other sets of the group: draw among all but one position, and
        # take the last member where the draw lands on the set itself
        partner = members[rng.integers(len(members) - 1)]
        partner = members[-1] if partner == set_id else partner
        n_own = int(np.clip(np.rint(rng.uniform() * self.set_size), 1, self.set_size - 1))
        cells = np.concatenate(
            [
                self._draw_cells(set_id, rng, n_own),
                self._draw_cells(partner, rng, self.set_size - n_own),
            ]
        )
        # the drawn set's cell first (its code names the draw), then the rest shuffled:
        # decoders that read the first few elements of a set see the mixture, not one set
        rest = rng.permutation(np.arange(1, self.set_size))
        return cells[np.concatenate([[0], rest])]

    def _train_batches(self, num_replicas: int, rank: int) -> list[tuple[int, np.ndarray]]:
        n_draws = self.n_batches * num_replicas * self.n_sets_per_batch
        order_rng = np.random.default_rng([self.seed, self.epoch])
        n_perms = int(np.ceil(n_draws / self.n_sets))
        # (n_perms * n_sets,): sets in epoch order, each set equally often
        order = np.concatenate([order_rng.permutation(self.n_sets) for _ in range(n_perms)])
        # (n_batches * num_replicas, n_sets_per_batch): global batches, dealt out round-robin
        batches = order[:n_draws].reshape(-1, self.n_sets_per_batch)
        return [(g, batches[g]) for g in range(rank, batches.shape[0], num_replicas)]

    def _validation_batches(self, num_replicas: int, rank: int) -> list[tuple[int, np.ndarray]]:
        per_rank = int(np.ceil(self.n_sets / num_replicas))
        # pad by repeating the first sets, so that every process scores as many sets
        mine = np.resize(np.arange(self.n_sets), per_rank * num_replicas)[rank::num_replicas]
        return [
            (g, mine[start : start + self.n_sets_per_batch])
            for g, start in enumerate(range(0, len(mine), self.n_sets_per_batch))
        ]

    def _batches(self) -> list[tuple[int, np.ndarray]]:
        num_replicas, rank = self._replicas()
        if self.shuffle:
            return self._train_batches(num_replicas, rank)
        return self._validation_batches(num_replicas, rank)

    def __iter__(self) -> Iterator[np.ndarray]:
        stream = self.epoch if self.shuffle else -1
        for global_index, set_ids in self._batches():
            rng = np.random.default_rng([self.seed, stream + 1, global_index])
            if self.shuffle and self.mix_sets > 0:
                mix = rng.uniform(size=len(set_ids)) < self.mix_sets
                draws = [self._draw_set(s, rng, m) for s, m in zip(set_ids, mix, strict=True)]
                yield np.concatenate(draws)
            else:
                yield np.concatenate([self._draw_cells(s, rng) for s in set_ids])

    def __len__(self) -> int:
        num_replicas, _ = self._replicas()
        if self.shuffle:
            return self.n_batches
        per_rank = int(np.ceil(self.n_sets / num_replicas))
        return int(np.ceil(per_rank / self.n_sets_per_batch))
