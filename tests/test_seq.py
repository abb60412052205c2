"""gde.seq: sets of sequences and of aligned reads, end to end through the public API."""

import numpy as np
import pandas as pd
import pytest
import scvi
import torch
from anndata import AnnData

import gde
from gde.seq import SeqGDEModel

TRAIN_KW = {
    "max_steps": 4,
    "steps_per_epoch": 2,
    "set_size": 12,
    "n_sets_per_batch": 4,
    "enable_progress_bar": False,
}
SMALL = {"n_latent": 8, "n_features": 8, "n_set_hidden": 16, "d_model": 16, "n_channels": 8}


def motif_data(n_sets=10, seed=0):
    return gde.datasets.motif_sets(n_sets=n_sets, n_sequences_per_set=(20, 40), seed=seed)


def reads_data(n_sets=8, n_reads=40, n_pos=12, seed=0):
    """Reads × positions, 0/1 with NaN; each set has its own per-position rates."""
    rng = np.random.default_rng(seed)
    blocks, labels = [], []
    for s in range(n_sets):
        rates = rng.uniform(0.1, 0.9, n_pos)
        x = (rng.random((n_reads, n_pos)) < rates).astype(np.float32)
        x[rng.random(x.shape) < 0.2] = np.nan
        x[np.isnan(x).all(1), 0] = 1.0
        blocks.append(x)
        labels += [f"sample_{s}"] * n_reads
    obs = pd.DataFrame(
        {"sample": pd.Categorical(labels)}, index=[f"r{i}" for i in range(len(labels))]
    )
    return AnnData(
        np.vstack(blocks), obs=obs, var=pd.DataFrame(index=[f"pos_{i}" for i in range(n_pos)])
    )


@pytest.fixture(scope="module")
def trained_seq():
    scvi.settings.seed = 0
    full = motif_data()
    train = full[full.obs["split"] == "train"].copy()
    SeqGDEModel.setup_anndata(train, set_key="set", sequence_key="sequence")
    model = SeqGDEModel(train, **SMALL)
    model.train(**TRAIN_KW)
    return model, full


def test_setup_writes_only_documented_keys():
    adata = motif_data(n_sets=4)
    before_obs, before_uns = list(adata.obs.columns), set(adata.uns)
    SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="sequence")
    tokens = adata.obsm["_gde_tokens"]
    assert tokens.shape == (adata.n_obs, adata.obs["sequence"].str.len().max() + 1)
    assert set(adata.obsm) == {"_gde_tokens"}
    assert set(adata.obs.columns) - set(before_obs) <= {"_scvi_set", "_scvi_batch"}
    assert set(adata.uns) - before_uns == {"_scvi_uuid", "_scvi_manager_uuid"}
    model = SeqGDEModel(adata, **SMALL)
    assert model.alphabet.letters == "ACGT"  # inferred
    first = adata.obs["sequence"].iloc[0]
    assert model.alphabet.decode(tokens[:1]) == [first]


@pytest.mark.parametrize(
    ("first", "message"),
    [("", "empty"), ("ACGX", "'X'"), (np.nan, "missing"), (5, "strings")],
)
def test_bad_sequences_are_refused_naming_the_row(first, message):
    adata = motif_data(n_sets=3)
    adata.obs["sequence"] = [first, *adata.obs["sequence"].iloc[1:]]
    with pytest.raises(ValueError, match=message) as err:
        SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="sequence", alphabet="dna")
    assert "seq_0" in str(err.value)
    assert "_gde_tokens" not in adata.obsm


def test_explicit_alphabet_and_missing_column():
    adata = motif_data(n_sets=3)
    with pytest.raises(ValueError, match="not in the alphabet 'AC'"):
        SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="sequence", alphabet="AC")
    with pytest.raises(KeyError, match="cdr3"):
        SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="cdr3")


def test_read_matrix_errors():
    adata = reads_data(n_sets=2)
    with pytest.raises(ValueError, match="not both"):
        SeqGDEModel.setup_anndata(adata, set_key="sample", sequence_key="x", layer="calls")
    bad = adata.copy()
    bad.X[3, 2] = 2.0
    with pytest.raises(ValueError, match=r"entry \(3, 2\) is 2.0"):
        SeqGDEModel.setup_anndata(bad, set_key="sample")
    empty = AnnData(obs=adata.obs.copy())
    with pytest.raises(ValueError, match="No sequences"):
        SeqGDEModel.setup_anndata(empty, set_key="sample")


def test_untrained_model_refuses():
    adata = motif_data(n_sets=4)
    SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="sequence")
    model = SeqGDEModel(adata, **SMALL)
    with pytest.raises(RuntimeError, match="not been trained"):
        model.get_distribution_embeddings()


def test_embeddings_written_like_cells(trained_seq):
    model, full = trained_seq
    emb = model.get_distribution_embeddings(full, copy_to_cells=True)
    assert emb.shape == (10, 8) and np.isfinite(emb.to_numpy()).all()
    assert list(full.uns["X_gde"]["table"].columns[:1]) == ["n_cells"]
    assert full.uns["X_gde"]["params"]["model"] == "SeqGDEModel"
    assert full.obsm["X_gde"].shape == (full.n_obs, 8)
    dist = model.get_distribution_distances(full)
    assert dist.shape == (10, 10) and np.allclose(np.diag(dist), 0)
    sets = model.get_set_adata(full)
    assert sets.n_obs == 10 and "X_gde" in sets.obsm
    stop = model.history["stop"].iloc[-1]
    assert stop["steps"] == 4 and stop["set_size"] == 12 and stop["n_sets_per_batch"] == 4


@pytest.mark.parametrize("k", [1, 3])
def test_embedding_is_invariant_to_order_and_replication(trained_seq, k):
    model, full = trained_seq
    ref = model.get_distribution_embeddings(full.copy(), key_added=None)
    rows = np.flatnonzero(full.obs["set"] == "set_3")
    others = np.flatnonzero(full.obs["set"] != "set_3")
    order = np.concatenate([others, np.random.default_rng(0).permutation(np.repeat(rows, k))])
    obs = full.obs.iloc[order].copy()
    obs.index = [f"s{i}" for i in range(len(obs))]
    modified = AnnData(np.zeros((len(obs), 0), dtype=np.float32), obs=obs)
    emb = model.get_distribution_embeddings(modified, key_added=None)
    np.testing.assert_allclose(emb.loc["set_3"], ref.loc["set_3"], atol=1e-5)


def test_chunked_embedding_equals_one_shot(trained_seq):
    model, full = trained_seq
    small = model.get_distribution_embeddings(full.copy(), batch_size=50, key_added=None)
    whole = model.get_distribution_embeddings(full.copy(), batch_size=10**6, key_added=None)
    pd.testing.assert_frame_equal(small, whole, atol=1e-5, rtol=0)
    tokens = torch.as_tensor(full[full.obs["set"] == "set_5"].obsm["_gde_tokens"])[None]
    with torch.no_grad():
        dense = model.module.embed(tokens.float(), torch.zeros(1, tokens.shape[1], 1)).numpy()
    np.testing.assert_allclose(whole.loc["set_5"], dense[0], atol=1e-5)


def test_sample_and_interpolate_sequences(trained_seq):
    model, full = trained_seq
    out = model.sample(sets=["set_1", "set_2"], n_sequences=6, adata=full, seed=0)
    assert out.n_obs == 12 and out.n_vars == 0
    seqs = out.obs["sequence"]
    assert all(len(s) >= 1 and set(s) <= set("ACGT") for s in seqs)
    assert all(len(s) <= model.module.width - 1 for s in seqs)
    assert list(out.obs["set"].cat.categories) == ["set_1", "set_2"]
    again = model.sample(sets=["set_1", "set_2"], n_sequences=6, adata=full, seed=0)
    assert list(again.obs["sequence"]) == list(seqs)  # seeded
    greedy = model.sample(sets=["set_1"], n_sequences=4, adata=full, top_k=1, seed=1)
    assert greedy.obs["sequence"].nunique() == 1  # top-1: the same most likely sequence
    z = model.get_distribution_embeddings(full, key_added=None).iloc[:2]
    from_z = model.sample(embeddings=z, n_sequences=3, temperature=0.5)
    assert from_z.n_obs == 6
    path = model.interpolate("set_1", "set_2", n_points=3, n_sequences=4, adata=full)
    assert path.n_obs == 12 and list(np.unique(path.obs["point"])) == [0, 1, 2]
    with pytest.raises(ValueError, match="temperature"):
        model.sample(sets=["set_1"], n_sequences=2, adata=full, temperature=0)


def test_longer_sequences_than_trained_are_refused(trained_seq):
    model, full = trained_seq
    other = full.copy()
    other.obs["sequence"] = other.obs["sequence"].astype(str)
    other.obs.iloc[0, other.obs.columns.get_loc("sequence")] = "A" * (model.module.width + 5)
    with pytest.raises(ValueError, match="reads at most"):
        model.get_distribution_embeddings(other)


def test_save_load_roundtrip(trained_seq, tmp_path):
    model, full = trained_seq
    model.save(tmp_path / "m", save_anndata=True)
    loaded = SeqGDEModel.load(tmp_path / "m")
    a = model.get_distribution_embeddings(full.copy(), key_added=None)
    b = loaded.get_distribution_embeddings(full.copy(), key_added=None)
    pd.testing.assert_frame_equal(a, b, atol=1e-6, rtol=0)
    assert loaded.is_trained_ and loaded.alphabet == model.alphabet


def test_reads_end_to_end():
    scvi.settings.seed = 0
    adata = reads_data()
    adata.obs["run"] = pd.Categorical(np.where(adata.obs["sample"].cat.codes < 4, "r1", "r2"))
    SeqGDEModel.setup_anndata(adata, set_key="sample", batch_key="run")
    model = SeqGDEModel(adata, **SMALL)
    assert model.alphabet.fixed_length
    model.train(**TRAIN_KW)
    emb = model.get_distribution_embeddings()
    assert emb.shape == (8, 8)
    out = model.sample(sets=["sample_0"], n_sequences=20, seed=0)
    assert out.shape == (20, 12) and list(out.var_names) == list(adata.var_names)
    assert (out.obs["run"] == "r1").all()  # the set's own batch
    moved = model.sample(sets=["sample_0"], n_sequences=20, seed=0, batch="r2")
    assert (moved.obs["run"] == "r2").all()
    values = out.X[~np.isnan(out.X)]
    assert set(np.unique(values)) <= {0.0, 1.0}
    other = reads_data(n_pos=10)
    with pytest.raises(ValueError, match="trained on reads of 12"):
        model.get_distribution_embeddings(other)


def test_kmer_baseline_is_blind_to_what_the_simulator_hides():
    """The simulator's k-mer-blind factors leave mean k-mer frequencies uninformative."""
    blind = gde.datasets.motif_sets(n_sets=30, factors=("cooccurrence", "order", "spacing"))
    d = blind.uns["motif_sets"]["distance"]
    emb = gde.tl.kmer_embedding(blind, set_key="set", sequence_key="sequence", key_added=None)
    assert abs(gde.metrics.distance_spearman(emb.loc[d.index], d)) < 0.3
    seen = gde.datasets.motif_sets(n_sets=30, factors="composition")
    d = seen.uns["motif_sets"]["distance"]
    emb = gde.tl.kmer_embedding(seen, set_key="set", sequence_key="sequence")
    assert gde.metrics.distance_spearman(emb.loc[d.index], d) > 0.8
    assert seen.obsm["X_kmer"].shape[0] == seen.n_obs and "X_kmer" in seen.uns


def test_motif_sets_ground_truth_and_split():
    adata = gde.datasets.motif_sets(n_sets=12, factors=("order", "length"), seed=3)
    info = adata.uns["motif_sets"]
    sets = info["sets"]
    assert (sets["cooccurrence"] == 1.0).all() and sets["order"].nunique() == 12
    d = info["distance"].to_numpy()
    expected = np.abs(
        sets[["order", "length"]].to_numpy()[:, None] - sets[["order", "length"]].to_numpy()[None]
    ).sum(-1)
    np.testing.assert_allclose(d, expected)
    assert (sets["split"] == "held_out").sum() == 3
    with pytest.raises(ValueError, match="factors"):
        gde.datasets.motif_sets(factors=("gc",))


def test_sequence_metrics():
    a = ["ACGTACGT", "AACCGGTT"]
    assert gde.metrics.kmer_spectrum_distance(a, a) == 0.0
    assert gde.metrics.kmer_spectrum_distance(["AAAA"], ["CCCC"], alphabet="dna") == 1.0
    assert gde.metrics.length_distance(["AAA"], ["AAAAA"]) == 2.0
    rng = np.random.default_rng(0)
    rates = rng.uniform(0, 1, 15)
    # reads whose first 5 positions share one call (co-methylated), the rest independent
    shared = rng.random((400, 1)) < 0.5
    x = (rng.random((400, 15)) < rates).astype(float)
    x[:, :5] = shared
    y = (rng.random((400, 15)) < rates).astype(float)
    y[:, :5] = rng.random((400, 1)) < 0.5
    assert gde.metrics.position_rate_agreement(x, y) > 0.9
    corr = gde.metrics.co_methylation(x)
    assert corr[0, 1] == pytest.approx(1.0) and abs(corr[6, 7]) < 0.2
    assert gde.metrics.co_methylation_agreement(x, y) > 0.9


def test_position_rate_embedding():
    adata = reads_data()
    emb = gde.tl.position_rate_embedding(adata, set_key="sample", n_comps=3)
    assert emb.shape == (8, 3) and adata.obsm["X_position_rate"].shape == (adata.n_obs, 3)


def test_cached_decoding_matches_the_full_pass():
    torch.manual_seed(0)
    decoder = gde.nn.PrefixDecoder(6, 5, max_length=12, d_model=16, n_heads=4).eval()
    cond = torch.randn(3, 5)
    tokens = torch.randint(2, 6, (3, 9))
    full = decoder.logits(cond, tokens)  # (3, 9, 6)
    caches = [{} for _ in decoder.blocks]
    with torch.no_grad():
        steps = [decoder.head(decoder._hidden(cond, tokens[:, :0], caches)[:, -1])]
        for i in range(8):
            steps.append(decoder.head(decoder._hidden(None, tokens[:, i : i + 1], caches)[:, -1]))
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=0)
    out = decoder.generate(cond, max_length=12)
    ends = (out == 1).float().argmax(1)
    assert (out[:, 0] >= 2).all() and ((out == 1).sum(1) == 1).all()
    assert all((out[i, ends[i] + 1 :] == 0).all() for i in range(3))
