"""What makes the embedding learn fast: the W2 space, the mean path, cached W2 targets,
batch centring, the aggregate-posterior term, and training counted in steps."""

import numpy as np
import pytest
import scvi
import torch
from scipy import sparse

import gde
from conftest import TRAIN_KW, small_sets
from gde._pca import principal_components
from gde.data._stats import batch_log_fold_changes, reference_space
from gde.module import SetCVAE
from gde.nn import SetEncoder
from gde.nn._ot import PairwiseW2, exact_w2_squared
from gde.nn._prior import mmd_to_standard_normal


def test_principal_components_match_the_svd_without_densifying():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 30)) * np.linspace(3, 0.1, 30)
    offsets = rng.normal(size=(3, 30))
    groups = rng.integers(0, 3, 400)
    center, comps = principal_components(
        sparse.csr_matrix(x), 4, row_offsets=offsets, groups=groups
    )
    y = x - offsets[groups]
    _, _, vt = np.linalg.svd(y - y.mean(0), full_matrices=False)
    np.testing.assert_allclose(center, y.mean(0), atol=1e-10)
    # the same axes up to sign
    np.testing.assert_allclose(np.abs(comps.T @ vt[:4].T), np.eye(4), atol=1e-3)


def test_reference_space_centres_each_batch_in_log_space():
    adata = small_sets(n_sets=12, n_genes=30, batch_effect=1.0)
    b = adata.obs["batch"].cat.codes.to_numpy()
    fc = batch_log_fold_changes(adata.X, b, 2)
    ref = reference_space(adata.X, b, 5, batch_offsets=fc)
    assert ref["components"].shape == (30, 5)
    shift = ref["log_batch_shift"]
    assert shift.shape == (2, 30)
    np.testing.assert_allclose(shift.mean(0), 0.0, atol=1e-12)
    # the encoder input of a model has the same mean in every batch
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4)
    x = torch.as_tensor(adata.X.toarray())
    with torch.no_grad():
        z = model.module.transform(x, torch.as_tensor(b)[:, None]).numpy()
    np.testing.assert_allclose(z[b == 0].mean(0), z[b == 1].mean(0), atol=1e-4)


def test_mean_path_starts_the_embedding_at_the_projected_set_mean():
    torch.manual_seed(0)
    enc = SetEncoder(10, 6, n_hidden=16, mean_path=True).eval()
    comps = torch.linalg.qr(torch.randn(10, 4))[0]
    center = torch.randn(10)
    enc.init_mean_path(comps, center)
    x = torch.randn(3, 50, 10)
    expected = torch.zeros(3, 6)
    expected[:, :4] = (x.mean(1) - center) @ comps
    torch.testing.assert_close(enc(x), expected, atol=1e-5, rtol=0)
    # chunked embedding reads the mean path too
    flat, index = x.reshape(-1, 10), torch.arange(3).repeat_interleave(50)
    chunks = lambda: [(flat[i : i + 40], index[i : i + 40], [], None) for i in range(0, 150, 40)]
    torch.testing.assert_close(enc.forward_chunked(chunks, 3), enc(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="mean_path=True"):
        SetEncoder(10, 6).init_mean_path(comps, center)


def test_untrained_model_embeds_sets_as_a_batch_corrected_pseudobulk():
    scvi.settings.seed = 0
    adata = small_sets(n_sets=10, n_genes=30)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4)
    model.is_trained_ = True  # read the initial state
    emb = model.get_distribution_embeddings(key_added=None)
    module = model.module
    b = torch.as_tensor(adata.obs["batch"].cat.codes.to_numpy())[:, None]
    with torch.no_grad():
        x_in = module.transform(torch.as_tensor(adata.X.toarray()), b)
    codes = adata.obs["set"].cat.codes.to_numpy()
    means = torch.stack([x_in[codes == s].mean(0) for s in range(10)])
    proj = (means - module.reference_center) @ module.reference_components[:, :4]
    np.testing.assert_allclose(emb.to_numpy(), proj.numpy(), atol=1e-4)


def test_pairwise_w2_caches_and_bounds_the_work_per_call():
    torch.manual_seed(0)
    clouds = {k: torch.randn(20, 3) + k for k in range(5)}
    pw = PairwiseW2(clouds)
    codes = torch.tensor([0, 1, 2, 3])
    first = pw.matrix(codes, max_new=2)
    assert len(pw) == 2 and int(torch.isfinite(first).sum()) == 4 + 2 * 2  # diagonal + 2 pairs
    full = pw.matrix(codes)
    assert len(pw) == 6
    exact = exact_w2_squared(clouds[1][None], clouds[3][None]).sqrt()
    assert float(full[1, 3]) == pytest.approx(float(exact[0]), rel=1e-5)
    torch.testing.assert_close(full, full.T)
    # a set without a cloud is unknown
    assert torch.isnan(pw.matrix(torch.tensor([0, 9]))[0, 1])


def test_w2_term_uses_given_targets_and_all_pairs_in_evaluation():
    torch.manual_seed(0)
    module = SetCVAE(6, n_latent=3, likelihood="normal", w2_weight=2.0, w2_pairs=1)
    z = torch.tensor([[0.0, 0, 0], [3.0, 0, 0], [0.0, 4, 0]], requires_grad=True)
    target = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, float("nan")], [2.0, np.nan, 0.0]])
    module.eval()
    term, metrics = module.w2_matching({"z_set": z}, target)
    # the two known pairs: (3 - 1)² and (4 - 2)²
    assert float(metrics["w2_mismatch"]) == pytest.approx(4.0)
    assert float(term) == pytest.approx(8.0)
    module.train()
    _, metrics = module.w2_matching({"z_set": z}, target)  # one random known pair
    assert float(metrics["w2_mismatch"]) == pytest.approx(4.0)


def test_w2_offset_debiases_the_targets():
    module = SetCVAE(6, n_latent=3, likelihood="normal", w2_weight=1.0).eval()
    z = torch.tensor([[0.0, 0, 0], [3.0, 0, 0], [0.0, 4, 0]])
    target = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, np.nan], [2.0, np.nan, 0.0]])
    module.w2_offset.fill_(3.0)
    _, metrics = module.w2_matching({"z_set": z}, target)
    # targets sqrt(max(1 - 3, 0)) = 0 and sqrt(4 - 3) = 1: (3 - 0)² and (4 - 1)²
    assert float(metrics["w2_mismatch"]) == pytest.approx(9.0)


def test_w2_debias_measures_the_floor_between_samples_of_one_set():
    from anndata import AnnData

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8 * 100, 3)).astype(np.float32)  # every set: one distribution
    adata = AnnData(x, obs={"set": np.repeat([f"s{i}" for i in range(8)], 100)})
    gde.GDEModel.setup_anndata(adata, set_key="set")
    scvi.settings.seed = 0
    kw = {"n_latent": 2, "w2_weight": 1.0, "w2_n_cells": 32, "likelihood": "normal"}
    plain = gde.GDEModel(adata, **kw)
    plain.train(**TRAIN_KW)
    assert float(plain.module.w2_offset) == 0.0
    model = gde.GDEModel(adata, w2_debias=True, **kw)
    model.train(**TRAIN_KW)
    floor = float(model.module.w2_offset)
    # W2² between random 32-cell samples of the same distribution, as the targets see it
    points = model.module.w2_points({"X": torch.as_tensor(x[:200]), "batch": torch.zeros(200, 1)})
    draws = [
        exact_w2_squared(points[r[:32]][None], points[r[32:64]][None])[0]
        for r in (torch.as_tensor(rng.permutation(200)) for _ in range(40))
    ]
    assert floor == pytest.approx(float(torch.stack(draws).median()), rel=0.35)
    # a weight file has no floor: models saved before it existed load unchanged
    assert "w2_offset" not in model.module.state_dict()


def test_mmd_to_standard_normal_is_near_zero_only_for_the_prior():
    torch.manual_seed(0)
    on = mmd_to_standard_normal(torch.randn(2, 2000, 4))
    off = mmd_to_standard_normal(torch.randn(2, 2000, 4) * 0.5 + 1.0)
    assert float(on.max()) < 0.01 < float(off.min())
    u = torch.randn(1, 64, 4, requires_grad=True)
    mmd_to_standard_normal(u).sum().backward()
    assert u.grad.abs().sum() > 0


def test_aggregate_term_enters_the_loss():
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, aggregate_weight=10.0)
    model.train(**TRAIN_KW)
    assert "aggregate_mmd_train" in model.history
    with pytest.raises(ValueError, match="aggregate_weight"):
        SetCVAE(5, aggregate_weight=-1.0)


def test_training_counts_steps_and_records_why_it_stopped():
    scvi.settings.seed = 0
    adata = small_sets(n_sets=12)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    kw = {k: v for k, v in TRAIN_KW.items() if k not in ("max_epochs", "steps_per_epoch")}
    model.train(max_steps=6, steps_per_epoch=2, early_stopping_patience=100, **kw)
    stop = model.history["stop"].iloc[0]
    assert model.trainer.global_step == 6 and stop["steps"] == 6
    assert stop["reason"].startswith("reached max_steps=6")
    assert len(model.history["validation_loss"]) == 3  # one validation per epoch

    # a patience of one epoch stops long before a large cap
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16, w2_weight=50.0)
    model.train(max_steps=2000, steps_per_epoch=2, early_stopping_patience=2, **kw)
    stop = model.history["stop"].iloc[0]
    assert stop["reason"].startswith("early stopping") and stop["steps"] < 2000
    with pytest.raises(ValueError, match="either max_steps or max_epochs"):
        model.train(max_steps=5, max_epochs=1, **kw)


def test_stopping_at_the_cap_while_improving_warns():
    scvi.settings.seed = 0
    adata = small_sets(n_sets=12)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    kw = {k: v for k, v in TRAIN_KW.items() if k not in ("max_epochs", "steps_per_epoch")}
    with pytest.warns(UserWarning, match="still improving"):
        model.train(max_steps=20, steps_per_epoch=5, **kw)
    assert "still improving" in model.history["stop"].iloc[0]["reason"]


def test_training_runs_in_training_mode_after_an_embedding():
    """Embedding sets the module to eval mode; a later train() must not train in it.

    In eval mode the diffusion decoders draw the same fixed noise at every step and
    memorise it instead of learning to denoise.
    """
    from lightning.pytorch.callbacks import Callback

    class Mode(Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.seen.append(pl_module.module.training)

    scvi.settings.seed = 0
    adata = small_sets(n_sets=8, n_genes=30)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, n_latent=4, decoder="ddpm")
    model.is_trained_ = True
    model.get_distribution_embeddings(key_added=None)
    assert not model.module.training
    model.is_trained_ = False
    mode = Mode()
    model.train(**{**TRAIN_KW, "callbacks": [mode]})
    assert mode.seen and all(mode.seen)
    model.get_distribution_embeddings(key_added=None)
    model.train(**{**TRAIN_KW, "callbacks": [mode]})  # continued training, too
    assert all(mode.seen)


def test_mixed_sets_get_w2_targets_measured_on_their_drawn_cells():
    from gde.model._training_plan import GDETrainingPlan

    adata = small_sets(n_sets=6, n_genes=20)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, n_latent=3, w2_weight=1.0, w2_pairs=48)
    rng = np.random.default_rng(0)
    codes = adata.obs["set"].cat.codes.to_numpy()
    cells = [np.flatnonzero(codes == c) for c in range(3)]
    clouds = {c: model.module.w2_points(_rows(model, rng.choice(cells[c], 16))) for c in (0, 1)}
    plan = GDETrainingPlan(model.module, pair_w2=PairwiseW2(clouds))
    # sets 0 and 1 as drawn; the third is a mixture of sets 1 and 2
    rows = [rng.choice(cells[0], 16), rng.choice(cells[1], 16)]
    rows.append(np.concatenate([rng.choice(cells[1], 6), rng.choice(cells[2], 10)]))
    batch = {
        k: v.reshape(3, 16, *v.shape[1:]) for k, v in _rows(model, np.concatenate(rows)).items()
    }
    target = plan._with_targets(batch)[gde._constants.GDE_KEYS.W2_TARGET_KEY]
    cached = plan.pair_w2.matrix(torch.tensor([0, 1]))
    torch.testing.assert_close(target[:2, :2], cached)
    mixture = model.module.w2_points({k: v[2] for k, v in batch.items()})
    expected = exact_w2_squared(mixture[None], clouds[0][None]).sqrt()
    assert float(target[2, 0]) == pytest.approx(float(expected[0]), rel=1e-5)
    assert float(target[0, 2]) == float(target[2, 0])
    # not the cached W2 of set 1, whose first cell the mixture starts with
    assert float(target[2, 0]) != pytest.approx(float(cached[1, 0]), rel=1e-3)


def _rows(model, rows):
    manager = model.adata_manager
    keys = list(manager.data_registry)
    data = manager.create_torch_dataset(data_and_attributes=keys)[np.sort(rows)]
    order = np.argsort(np.argsort(rows, kind="stable"), kind="stable")
    return {k: torch.as_tensor(v)[order] for k, v in data.items()}


def test_weight_ema_averages_validates_and_ends_with_the_average():
    from types import SimpleNamespace

    from gde.model import WeightEMA

    layer = torch.nn.Linear(2, 1, bias=False)
    plan = SimpleNamespace(module=layer)
    trainer = SimpleNamespace(global_step=0)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema = WeightEMA(decay=0.5)
    ema.on_fit_start(trainer, plan)
    expected = torch.zeros(1, 2)
    for step, value in enumerate([4.0, 8.0, 2.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        trainer.global_step = step
        ema.on_train_batch_end(trainer, plan, None, None, 0)
        ema.on_train_batch_end(trainer, plan, None, None, 1)  # no new step: no update
        expected += (1 - min(0.5, (1 + step) / (10 + step))) * (value - expected)
    # validation sees the average and training resumes on its own weights
    ema.on_validation_epoch_start(trainer, plan)
    torch.testing.assert_close(layer.weight.detach(), expected)
    ema.on_validation_epoch_end(trainer, plan)
    assert (layer.weight == 2.0).all()
    ema.on_train_end(trainer, plan)
    torch.testing.assert_close(layer.weight.detach(), expected)
    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightEMA(decay=1.0)


def test_cells_train_without_average_or_mixing_by_default_and_record_both():
    from lightning.pytorch.callbacks import Callback

    class LastWeights(Callback):  # runs before the average replaces the weights
        def on_train_end(self, trainer, pl_module):
            self.weights = [p.detach().clone() for p in pl_module.module.parameters()]

    scvi.settings.seed = 0
    adata = small_sets(n_sets=12)
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=4, n_hidden=16, n_set_hidden=16)
    for ema, kept_raw in ((None, True), (0.9, False)):
        probe = LastWeights()
        model.train(weight_ema=ema, callbacks=[probe], **TRAIN_KW)
        stop = model.history["stop"].iloc[-1]
        assert stop["weight_ema"] == (ema or 0.0) and stop["mix_sets"] == 0.0  # cells: unmixed
        weights = zip(probe.weights, model.module.parameters(), strict=True)
        same = [torch.equal(a, b) for a, b in weights]
        assert all(same) == kept_raw
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.train(weight_ema=1.5, **TRAIN_KW)
