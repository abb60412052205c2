"""Set minibatches: whole sets, split by set, reproducible, shardable."""

import itertools

import numpy as np
import pytest
import scvi

import gde
from gde.data import SetBatchSampler, SetDataSplitter, split_sets


def _sets(sizes):
    starts = np.cumsum([0, *sizes])
    return [np.arange(a, b) for a, b in itertools.pairwise(starts)]


def test_batches_hold_whole_sets_of_set_size():
    sets = _sets([5, 40, 12, 100, 8, 30])
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)])
    sampler = SetBatchSampler(sets, set_size=10, n_sets_per_batch=3, seed=1)
    n = 0
    for batch in sampler:
        assert batch.shape == (30,)
        blocks = batch.reshape(3, 10)
        for block in blocks:
            assert len(np.unique(owner[block])) == 1  # one set per block
            s = owner[block[0]]
            if len(sets[s]) >= 10:  # large sets: drawn without replacement
                assert len(np.unique(block)) == 10
        n += 1
    assert n == len(sampler) > 0


def test_small_sets_are_drawn_with_replacement():
    sampler = SetBatchSampler(_sets([3]), set_size=10, n_sets_per_batch=1, n_batches=2)
    for batch in sampler:
        assert batch.shape == (10,) and set(batch) <= {0, 1, 2}


def test_training_draws_every_set_equally_often():
    sets = _sets([20] * 7)
    sampler = SetBatchSampler(sets, set_size=4, n_sets_per_batch=7, n_batches=3)
    owner = np.concatenate([np.full(20, i) for i in range(7)])
    counts = np.bincount(
        np.concatenate([owner[b.reshape(7, 4)[:, 0]] for b in sampler]), minlength=7
    )
    assert (counts == 3).all()


def test_seeds_reproduce_and_epochs_differ():
    sets = _sets([30, 50, 20, 60])

    def draws(seed, epoch):
        s = SetBatchSampler(sets, set_size=8, n_sets_per_batch=2, seed=seed)
        s.set_epoch(epoch)
        return np.concatenate(list(s))

    np.testing.assert_array_equal(draws(0, 0), draws(0, 0))
    assert not np.array_equal(draws(0, 0), draws(0, 1))
    assert not np.array_equal(draws(0, 0), draws(1, 0))


def test_validation_sampler_is_fixed_and_visits_each_set_once():
    sets = _sets([30, 50, 20, 60, 10])
    s = SetBatchSampler(sets, set_size=8, n_sets_per_batch=2, shuffle=False, seed=3)
    first = list(s)
    s.set_epoch(5)
    second = list(s)
    assert len(first) == 3  # 5 sets, 2 per batch
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(sets)])
    seen = np.concatenate([owner[b.reshape(-1, 8)[:, 0]] for b in first])
    np.testing.assert_array_equal(np.sort(seen), np.arange(5))


@pytest.mark.parametrize("shuffle", [True, False])
def test_sharding_gives_each_rank_disjoint_sets(shuffle):
    sets = _sets([10] * 8)
    owner = np.concatenate([np.full(10, i) for i in range(8)])
    per_rank = []
    for rank in (0, 1):
        s = SetBatchSampler(
            sets,
            set_size=5,
            n_sets_per_batch=2,
            n_batches=2,
            shuffle=shuffle,
            num_replicas=2,
            rank=rank,
        )
        batches = list(s)
        assert len(batches) == len(s) == 2
        per_rank.append([set(owner[b.reshape(-1, 5)[:, 0]]) for b in batches])
    for b0, b1 in zip(*per_rank, strict=True):
        assert not b0 & b1  # same step, different sets
    if not shuffle:
        assert set().union(*per_rank[0], *per_rank[1]) == set(range(8))


def test_split_is_by_set_and_reports_small_sets():
    sizes = np.array([50, 60, 3, 70, 80, 2, 90, 55, 65, 75])
    with pytest.warns(UserWarning, match=r"set_c \(3 cells\)"):
        split = split_sets(
            sizes,
            train_size=0.75,
            min_set_size=10,
            seed=0,
            set_names=np.array([f"set_{c}" for c in "abcdefghij"]),
        )
    assert set(split.excluded) == {2, 5}
    assert not set(split.train) & set(split.validation)
    assert set(split.train) | set(split.validation) == set(range(10)) - {2, 5}
    assert len(split.validation) == 2


def test_no_validation_cell_reaches_training(adata):
    gde.GDEModel.setup_anndata(adata, set_key="set")
    manager = gde.GDEModel._setup_adata_manager_store[adata.uns["_scvi_uuid"]]
    codes = adata.obs["_scvi_set"].to_numpy()
    splitter = SetDataSplitter(
        manager,
        codes,
        np.asarray(adata.obs["set"].cat.categories),
        train_size=0.7,
        set_size=8,
        n_sets_per_batch=3,
    )
    assert not set(splitter.train_idx) & set(splitter.val_idx)
    assert set(codes[splitter.val_idx]) == set(splitter.split.validation)
    val_sets = set(splitter.split.validation)
    for batch in splitter.train_dataloader():
        x, s = batch["X"], batch["set"]
        assert x.shape == (3, 8, adata.n_vars) and s.shape == (3, 8, 1)
        assert (s == s[:, :1]).all()  # one set per row
        assert not set(s[:, 0, 0].tolist()) & val_sets
    for batch in splitter.val_dataloader():
        assert set(batch["set"][:, 0, 0].tolist()) <= val_sets


def test_split_follows_scvi_seed(adata):
    def trained_sets(seed):
        scvi.settings.seed = seed
        a = adata.copy()
        gde.GDEModel.setup_anndata(a, set_key="set")
        m = gde.GDEModel(a, n_latent=4, n_hidden=16, n_set_hidden=16)
        m.train(
            max_epochs=1, set_size=8, n_sets_per_batch=2, train_size=0.6, enable_progress_bar=False
        )
        return list(m.validation_sets_)

    assert trained_sets(3) == trained_sets(3)
    assert any(trained_sets(s) != trained_sets(3) for s in (4, 5, 6))


def test_validation_pads_so_every_rank_scores_as_many_sets():
    sets = _sets([10] * 5)
    owner = np.concatenate([np.full(10, i) for i in range(5)])
    seen = []
    for rank in (0, 1):
        s = SetBatchSampler(
            sets, set_size=5, n_sets_per_batch=2, shuffle=False, num_replicas=2, rank=rank
        )
        batches = list(s)
        assert len(batches) == len(s) == 2
        scored = np.concatenate([owner[b.reshape(-1, 5)[:, 0]] for b in batches])
        assert len(scored) == 3  # 5 sets over 2 processes: one repeated
        seen.append(scored)
    assert set(np.concatenate(seen)) == set(range(5))


def test_mixed_draws_join_two_sets_of_the_same_group_in_random_shares():
    sets = _sets([50, 60, 40, 70])
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)])
    groups = np.array(["a", "a", "b", "b"])
    sampler = SetBatchSampler(
        sets, set_size=20, n_sets_per_batch=2, n_batches=30, mix_sets=1.0, set_groups=groups
    )
    shares, orders = [], []
    for batch in sampler:
        for block in batch.reshape(2, 20):
            members = owner[block]
            first = members[0]
            partner = members[members != first]
            assert len(np.unique(partner)) == 1  # exactly two sets, the drawn one first
            assert groups[partner[0]] == groups[first]
            own = int((members == first).sum())
            shares.append(own / 20)
            orders.append(np.mean(members[1:own] == first) < 1 or own < 3)
    assert 0.05 <= min(shares) < 0.3 and 0.7 < max(shares) <= 0.95
    # after the first cell the two sets' cells come in random order, not one block each
    assert np.mean(orders) > 0.8
    # half the draws mixed on average, never in validation
    half = SetBatchSampler(sets, set_size=20, n_sets_per_batch=2, n_batches=200, mix_sets=0.5)
    n_mixed = sum(len(np.unique(owner[b])) == 2 for x in half for b in x.reshape(2, 20))
    assert 150 < n_mixed < 250
    val = SetBatchSampler(sets, set_size=20, n_sets_per_batch=2, shuffle=False, mix_sets=1.0)
    assert all(len(np.unique(owner[b])) == 1 for x in val for b in x.reshape(2, 20))


def test_mixing_refuses_shares_outside_the_unit_interval():
    with pytest.raises(ValueError, match="mix_sets"):
        SetBatchSampler(_sets([5, 5]), set_size=4, n_sets_per_batch=2, mix_sets=1.5)
    with pytest.raises(ValueError, match="set_groups"):
        SetBatchSampler(_sets([5, 5]), set_size=4, n_sets_per_batch=2, set_groups=[0])


def test_training_mixes_sets_only_within_their_batch():
    from gde._constants import GDE_KEYS

    scvi.settings.seed = 0
    adata = gde.datasets.simulate_sets(n_sets=8, n_cells_per_set=40, n_genes=20, seed=0)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=3, w2_weight=1.0)
    model.train(
        max_steps=3, mix_sets=1.0, set_size=10, n_sets_per_batch=3, enable_progress_bar=False
    )
    stop = model.history["stop"].iloc[-1]
    assert stop["mix_sets"] == 1.0 and stop["steps"] == 3
    codes = model.adata_manager.get_from_registry(GDE_KEYS.SET_KEY).ravel()
    names = np.asarray(adata.obs["set"].cat.categories)
    groups = SetDataSplitter(model.adata_manager, codes, names, mix_sets=1.0).set_groups
    first = adata.obs.groupby("set", observed=True)["batch"].first()
    np.testing.assert_array_equal(groups, first.cat.codes.to_numpy())
    assert len(np.unique(groups)) == 2
