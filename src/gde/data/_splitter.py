"""Train/validation split by set, and the data module that serves set minibatches."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
from scvi.data import AnnDataManager

from gde._anndata_utils import group_cells_by_set
from gde._constants import GDE_KEYS

from ._loader import SetDataLoader
from ._sampler import SetBatchSampler, check_mix_share

logger = logging.getLogger(__name__)


@dataclass
class SetSplit:
    """Which sets train, which validate, and which were too small to use."""

    train: np.ndarray
    validation: np.ndarray
    excluded: np.ndarray


def split_sets(
    set_sizes: np.ndarray,
    train_size: float = 0.9,
    validation_size: float | None = None,
    min_set_size: int = 10,
    seed: int = 0,
    set_names: np.ndarray | None = None,
) -> SetSplit:
    """Split sets (not cells) into training and validation sets.

    Parameters
    ----------
    set_sizes
        Number of cells in each set.
    train_size
        Fraction of the usable sets used for training.
    validation_size
        Fraction used for validation; ``1 - train_size`` by default.
    min_set_size
        Sets with fewer cells are excluded from training and reported in a warning.
    seed
        Seed of the random split.
    set_names
        Set names, used in the warning.

    Returns
    -------
    Set codes for training, validation, and excluded sets.
    """
    set_sizes = np.asarray(set_sizes)
    names = np.arange(len(set_sizes)) if set_names is None else np.asarray(set_names)
    if not 0.0 < train_size <= 1.0:
        raise ValueError(f"`train_size` must be in (0, 1], got {train_size}.")
    if validation_size is None:
        validation_size = 1.0 - train_size
    if validation_size < 0 or train_size + validation_size > 1.0 + 1e-9:
        raise ValueError(
            "`validation_size` must be non-negative with train_size + validation_size <= 1."
        )
    excluded = np.flatnonzero(set_sizes < min_set_size)
    if len(excluded):
        shown = ", ".join(f"{names[i]} ({set_sizes[i]} cells)" for i in excluded[:10]) + (
            ", ..." if len(excluded) > 10 else ""
        )
        warnings.warn(
            f"{len(excluded)} set(s) have fewer than min_set_size={min_set_size} cells and are "
            f"left out of training: {shown}. They can still be embedded; lower "
            "`min_set_size` in `train()` to train on them.",
            UserWarning,
            stacklevel=3,
        )
    usable = np.flatnonzero(set_sizes >= min_set_size)
    if len(usable) == 0:
        raise ValueError(
            f"No set has at least min_set_size={min_set_size} cells (largest: "
            f"{set_sizes.max() if len(set_sizes) else 0}). Lower `min_set_size`."
        )
    rng = np.random.default_rng(seed)
    permuted = rng.permutation(usable)
    n_val = int(np.round(validation_size * len(usable)))
    if validation_size > 0 and n_val == 0 and len(usable) >= 2:
        n_val = 1
    n_train = min(len(usable) - n_val, int(np.ceil(train_size * len(usable))))
    if n_train < 1:
        raise ValueError("The split leaves no training set; increase `train_size`.")
    return SetSplit(
        train=np.sort(permuted[:n_train]),
        validation=np.sort(permuted[n_train : n_train + n_val]),
        excluded=excluded,
    )


class SetDataSplitter(pl.LightningDataModule):
    """Serve set minibatches for training and validation, split by set.

    Parameters
    ----------
    adata_manager
        Manager of the registered AnnData.
    set_codes
        Integer set code of each cell.
    set_names
        Name of each set code.
    train_size, validation_size, min_set_size
        See :func:`split_sets`.
    set_size
        Cells drawn from each set in a minibatch.
    n_sets_per_batch
        Sets per minibatch (at most the number of training sets).
    n_batches_per_epoch
        Training minibatches per epoch; by default enough to draw each cell once on average.
    seed
        Seed of the split and of the draws.
    mix_sets
        Share of training draws that mix two training sets of the same batch (see
        :class:`~gde.data.SetBatchSampler`); validation sets are never mixed.
    pin_memory
        Pin memory of loaded tensors (faster host-to-GPU copies).
    **kwargs
        Passed to the loaders.
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        set_codes: np.ndarray,
        set_names: np.ndarray,
        train_size: float = 0.9,
        validation_size: float | None = None,
        min_set_size: int = 10,
        set_size: int = 128,
        n_sets_per_batch: int = 16,
        n_batches_per_epoch: int | None = None,
        seed: int = 0,
        mix_sets: float = 0.0,
        pin_memory: bool = False,
        **kwargs,
    ):
        super().__init__()
        self.adata_manager = adata_manager
        self.set_names = np.asarray(set_names)
        self.set_cells = group_cells_by_set(set_codes, len(self.set_names))
        sizes = np.array([len(c) for c in self.set_cells])
        self.split = split_sets(
            sizes, train_size, validation_size, min_set_size, seed, set_names=self.set_names
        )
        self.set_size = set_size
        n_train_sets = len(self.split.train)
        if n_sets_per_batch > n_train_sets:
            logger.info(
                f"n_sets_per_batch={n_sets_per_batch} exceeds the {n_train_sets} training "
                f"sets; using {n_train_sets}."
            )
            n_sets_per_batch = n_train_sets
        self.n_sets_per_batch = n_sets_per_batch
        self.seed = seed
        check_mix_share(mix_sets)
        self.mix_sets = mix_sets
        self.set_groups = self._set_batches() if mix_sets > 0 else None
        self.pin_memory = pin_memory
        self.loader_kwargs = kwargs
        self.train_idx = self._cells(self.split.train)
        self.val_idx = self._cells(self.split.validation)
        self.test_idx = np.array([], dtype=np.int64)
        self.n_train = len(self.train_idx)
        self.n_val = len(self.val_idx)
        if n_batches_per_epoch is None:
            n_batches_per_epoch = int(np.ceil(self.n_train / (set_size * n_sets_per_batch)))
        self.n_batches_per_epoch = max(1, n_batches_per_epoch)

    def _set_batches(self) -> np.ndarray:
        """The batch of each set (of its first cell); ``-1`` for a set without cells."""
        if GDE_KEYS.BATCH_KEY not in self.adata_manager.data_registry:
            return np.zeros(len(self.set_cells), dtype=np.int64)
        batches = np.asarray(self.adata_manager.get_from_registry(GDE_KEYS.BATCH_KEY)).ravel()
        return np.array([batches[c[0]] if len(c) else -1 for c in self.set_cells])

    def _cells(self, codes: np.ndarray) -> np.ndarray:
        if len(codes) == 0:
            return np.array([], dtype=np.int64)
        return np.sort(np.concatenate([self.set_cells[c] for c in codes]))

    @property
    def train_sets(self) -> np.ndarray:
        """Names of the training sets."""
        return self.set_names[self.split.train]

    @property
    def validation_sets(self) -> np.ndarray:
        """Names of the validation sets."""
        return self.set_names[self.split.validation]

    @property
    def excluded_sets(self) -> np.ndarray:
        """Names of the sets left out for being too small."""
        return self.set_names[self.split.excluded]

    def _loader(self, codes: np.ndarray, shuffle: bool) -> SetDataLoader:
        sampler = SetBatchSampler(
            [self.set_cells[c] for c in codes],
            set_size=self.set_size,
            n_sets_per_batch=self.n_sets_per_batch,
            n_batches=self.n_batches_per_epoch if shuffle else None,
            shuffle=shuffle,
            seed=self.seed,
            mix_sets=self.mix_sets if shuffle else 0.0,
            set_groups=None if self.set_groups is None else self.set_groups[codes],
        )
        return SetDataLoader(
            self.adata_manager, sampler, pin_memory=self.pin_memory, **self.loader_kwargs
        )

    def train_dataloader(self) -> SetDataLoader:
        """Training loader: sets drawn at random, cells redrawn every epoch."""
        return self._loader(self.split.train, shuffle=True)

    def val_dataloader(self) -> SetDataLoader | list:
        """Validation loader: every validation set once, the same cells every epoch."""
        if len(self.split.validation) == 0:
            return []
        return self._loader(self.split.validation, shuffle=False)
