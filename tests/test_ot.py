"""OT metrics against closed forms, the kernel mean embedding, and the W2-matching term."""

import numpy as np
import ot
import pytest
import torch

import gde
from conftest import TRAIN_KW, small_sets
from gde._ot import sinkhorn_cost
from gde.metrics import (
    fit_gmm,
    gaussian_w2,
    gmm_w2_samples,
    gmm_w2_squared,
    sinkhorn_divergence,
)
from gde.nn import KernelMeanEncoder
from gde.nn._ot import batch_w2_squared, exact_w2_squared


def test_sinkhorn_divergence_is_debiased_and_in_w2_squared_units():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    shift = np.array([1.5, 0.0, -0.5])
    # a translation: W2² is exactly ||shift||² (2.5), for any cloud
    np.testing.assert_allclose(sinkhorn_divergence(x, x + shift), 2.5, rtol=1e-3)
    assert sinkhorn_divergence(x, x) == pytest.approx(0.0, abs=1e-9)
    # the entropic cost itself is biased: not 0 between identical clouds
    t = torch.as_tensor(x)[None]
    assert float(sinkhorn_cost(t, t, eps=0.5)[0]) > 0.1
    # close to exact OT between two different clouds, and closer as the blur shrinks
    y = rng.normal(size=(300, 3)) * 1.5 + 0.3
    exact = ot.emd2([], [], ot.dist(x, y))
    coarse, fine = sinkhorn_divergence(x, y, blur=0.5), sinkhorn_divergence(x, y, blur=0.05)
    assert abs(fine - exact) < abs(coarse - exact)
    assert fine == pytest.approx(exact, rel=0.02)


def test_batch_w2_solvers_agree():
    torch.manual_seed(0)
    x, y = torch.randn(5, 80, 4).double(), torch.randn(5, 80, 4).double() * 2 + 1
    exact = exact_w2_squared(x, y)
    for i in range(5):
        expected = ot.emd2([], [], ot.dist(x[i].numpy(), y[i].numpy()))
        assert float(exact[i]) == pytest.approx(expected, rel=1e-9)
    torch.testing.assert_close(batch_w2_squared(x, y, "auto"), exact)
    # clouds of different sizes go through the network simplex
    uneven = exact_w2_squared(x, y[:, :60])
    for i in range(5):
        expected = ot.emd2([], [], ot.dist(x[i].numpy(), y[i, :60].numpy()))
        assert float(uneven[i]) == pytest.approx(expected, rel=1e-9)
    sink = batch_w2_squared(x, y, "sinkhorn", eps_relative=0.002)
    torch.testing.assert_close(sink, exact, rtol=0.03, atol=0.0)
    with pytest.raises(ValueError, match="solver"):
        batch_w2_squared(x, y, "greedy")


def test_exact_w2_takes_mixed_precision_clouds():
    # under bf16 mixed precision the encoder's codes are bfloat16, their targets float32
    torch.manual_seed(0)
    x, y = torch.randn(3, 40, 4), torch.randn(3, 40, 4) + 1
    mixed = exact_w2_squared(x.bfloat16(), y)
    assert mixed.dtype == torch.bfloat16
    torch.testing.assert_close(
        mixed.float(), exact_w2_squared(x.bfloat16().float(), y), rtol=0.01, atol=0
    )


def test_transport_cost_hands_the_solver_contiguous_float64(monkeypatch):
    # older POT releases refuse strided weights (a column of a table, a pandas row)
    from gde import _ot

    seen, solver = [], ot.emd2

    def emd2(a, b, cost, **kw):
        seen.extend(v.flags["C_CONTIGUOUS"] and v.dtype == np.float64 for v in (a, b, cost))
        return solver(a, b, cost, **kw)

    monkeypatch.setattr(_ot.ot, "emd2", emd2)
    weights = np.array([[0.5, 0.2], [0.5, 0.8]], dtype=np.float32)
    cost = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert _ot.transport_cost(cost[:, ::-1].T, weights[:, 0], weights[:, 1]) == pytest.approx(0.3)
    assert seen == [True, True, True]


def _gmm(rng, k, d):
    w = rng.dirichlet(np.ones(k))
    m = rng.uniform(0, 5, (k, d))
    a = rng.normal(size=(k, d, d))
    return w, m, a @ np.swapaxes(a, 1, 2) / d + 0.1 * np.eye(d)


def test_mixture_w2_closed_forms():
    rng = np.random.default_rng(1)
    w, m, c = _gmm(rng, 1, 3)
    w2, m2, c2 = _gmm(rng, 1, 3)
    # one component each: the Gaussian W2²
    np.testing.assert_allclose(
        gmm_w2_squared(w, m, c, w2, m2, c2), gaussian_w2(m[0], c[0], m2[0], c2[0], True)
    )
    w, m, c = _gmm(rng, 3, 3)
    assert gmm_w2_squared(w, m, c, w, m, c) == pytest.approx(0.0, abs=1e-9)
    # the order of the components does not matter
    p = [2, 0, 1]
    assert gmm_w2_squared(w, m, c, w[p], m[p], c[p]) == pytest.approx(0.0, abs=1e-9)
    # two mixtures with the same covariances and weights, means all shifted by v:
    # every component moves by v, so MW2² = ||v||²
    v = np.array([1.0, -2.0, 0.5])
    assert gmm_w2_squared(w, m, c, w, m + v, c) == pytest.approx(5.25, rel=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        gmm_w2_squared(w * 2, m, c, w, m, c)
    with pytest.raises(ValueError, match=r"\(K, d, d\)"):
        gmm_w2_squared(w, m, c[:, :2], w, m, c)


def test_mixture_w2_from_samples():
    rng = np.random.default_rng(2)
    w, m = np.array([0.5, 0.3, 0.2]), np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    c = np.stack([np.eye(2) * 0.2, np.diag([0.5, 0.1]), np.array([[0.3, 0.1], [0.1, 0.2]])])
    comp = rng.choice(3, 5000, p=w)
    x = m[comp] + np.einsum("nij,nj->ni", np.linalg.cholesky(c)[comp], rng.normal(size=(5000, 2)))
    same = gmm_w2_samples(x, w, m, c)
    w_o, m_o, c_o = _gmm(rng, 3, 2)
    other = gmm_w2_samples(x, w_o, m_o, c_o)
    # MW2² weighs weight errors by the squared distance between components (~16 here),
    # so the sampling noise of 5,000 samples leaves a floor of a few tenths
    assert same < 0.6
    assert other > 2.0
    weights, means, covs = fit_gmm(x, 3)
    assert weights.shape == (3,) and means.shape == (3, 2) and covs.shape == (3, 2, 2)
    with pytest.raises(ValueError, match="n >= 3"):
        fit_gmm(x[:2], 3)


def test_kernel_mean_encoder_is_distributionally_invariant():
    torch.manual_seed(0)
    enc = KernelMeanEncoder(4, 16, bandwidth=1.5)
    x = torch.randn(3, 20, 4)
    z = enc(x)
    assert z.shape == (3, 16)
    torch.testing.assert_close(enc(x[:, torch.randperm(20)]), z)
    torch.testing.assert_close(enc(x.repeat_interleave(3, dim=1)), z)
    # inner products of the features approximate the Gaussian kernel
    a, b = torch.zeros(1, 4), torch.full((1, 4), 0.5)
    enc_big = KernelMeanEncoder(4, 20000, bandwidth=1.5)
    k = float((enc_big.features(a) * enc_big.features(b)).sum())
    assert k == pytest.approx(np.exp(-1.0 / (2 * 1.5**2)), abs=0.02)

    def chunks():
        flat = x.reshape(-1, 4)
        idx = torch.arange(3).repeat_interleave(20)
        for s in range(0, 60, 7):
            yield flat[s : s + 7], idx[s : s + 7], [], None

    torch.testing.assert_close(enc.forward_chunked(chunks, 3), z)
    with pytest.raises(ValueError, match="even"):
        KernelMeanEncoder(4, 15)


def test_w2_matching_term_value():
    adata = gde.datasets.gaussian_sets(n_sets=8, n_samples_per_set=40, n_dims=3, seed=0)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    model = gde.GDEModel(adata, n_latent=4, w2_weight=2.0, w2_pairs=5, w2_solver="exact")
    module = model.module.eval()  # evaluation: every pair of the minibatch's sets
    x = torch.as_tensor(adata.X).reshape(8, 40, 3)
    out = module._prepare(x, torch.zeros(8, 40, 1), None, None)
    term, metrics = module.w2_matching(out)
    i, j = torch.triu_indices(8, 8, offset=1)
    # the W2 space of 3-D data is a rotation of it: W2 in data units
    target = torch.stack(
        [torch.tensor(ot.emd2([], [], ot.dist(x[a].double().numpy(), x[b].double().numpy())))
         for a, b in zip(i, j, strict=True)]
    ).sqrt()  # fmt: skip
    latent = (out["z_set"][i] - out["z_set"][j]).norm(dim=-1)
    expected = ((latent.double() - target) ** 2).mean()
    assert float(metrics["w2_mismatch"]) == pytest.approx(float(expected), rel=1e-4)
    assert float(term) == pytest.approx(2 * float(expected), rel=1e-4)
    module.train()
    _, metrics = module.w2_matching(out)  # training: w2_pairs random pairs
    assert float(metrics["w2_mismatch"]) > 0
    term.backward()  # gradients reach the encoder, not the OT target
    assert module.set_encoder.embed[0].weight.grad is not None


def test_models_with_w2_term_and_kme_train_end_to_end():
    adata = small_sets()
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    model = gde.GDEModel(adata, n_latent=8, w2_weight=1.0, w2_pairs=4)
    model.train(**TRAIN_KW)
    assert "W2-matching weight 1.0" in model._model_summary_string
    emb = model.get_distribution_embeddings(key_added=None)
    assert np.isfinite(emb.to_numpy()).all()

    # one batch: no learned batch correction of the encoder input
    one = small_sets(n_batches=1)
    gde.GDEModel.setup_anndata(one, set_key="set")
    kme = gde.GDEModel(one, n_latent=8, set_encoder="kme")
    kme.is_trained_ = True  # read the fixed embedding before training, on purpose
    before = kme.get_distribution_embeddings(key_added=None)
    kme.train(**TRAIN_KW)
    # the kernel mean embedding is fixed: training only fits the decoder
    after = kme.get_distribution_embeddings(key_added=None)
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy(), rtol=1e-5, atol=1e-6)
    assert kme.sample(sets=["set_0"], n_cells=5).n_obs == 5


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"set_encoder": "kme", "set_kl_weight": 0.1}, "fixed embedding"),
        ({"set_encoder": "transformer"}, "set_encoder must be"),
        ({"w2_weight": -1.0}, "w2_weight"),
        ({"w2_solver": "greedy"}, "w2_solver"),
    ],
)
def test_bad_encoder_and_w2_options(kw, match):
    adata = small_sets(n_sets=4)
    gde.GDEModel.setup_anndata(adata, set_key="set")
    with pytest.raises(ValueError, match=match):
        gde.GDEModel(adata, n_latent=8, **kw)
