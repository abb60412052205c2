"""GDEModel: one embedding per set of cells, learned from raw counts."""

from __future__ import annotations

from typing import Literal

import rich.pretty  # noqa: F401  scvi-tools' view_anndata_setup uses rich.pretty unimported
from anndata import AnnData
from scvi import settings
from scvi.data import AnnDataManager
from scvi.data._constants import _SETUP_ARGS_KEY
from scvi.data.fields import (
    CategoricalJointObsField,
    LayerField,
    NumericalJointObsField,
    ObsmField,
)

from gde._anndata_utils import (
    check_backed_view,
    check_counts,
    check_finite,
    check_obs_columns,
    check_set_column,
    data_location,
    get_data,
)
from gde._constants import GDE_KEYS
from gde._quiet import quiet_backend
from gde.data import (
    cell_statistics,
    is_on_disk,
    read_rows,
    resolve_likelihood,
    scan_counts,
    stats_rows,
)
from gde.module import SetCVAE, SetDDPM
from gde.nn import COUNT_LIKELIHOODS

from ._base import SetModelBase
from ._counterfactual import CounterfactualMixin
from ._mudata import mudata_fields

Decoder = Literal["cvae", "ddpm"]
Likelihood = Literal["nb", "zinb", "poisson", "normal"]


class GDEModel(CounterfactualMixin, SetModelBase):
    """Generative distribution embeddings of sets of cells.

    Learns one vector per set of cells (a patient, a clone, a perturbation) such that a
    conditional generator, given the vector, reproduces the set's distribution of cells.
    The set encoder depends on a set only through its empirical distribution (mean
    pooling), so sets of any size, including ones never seen in training, can be embedded,
    and new cells can be generated from any embedding (:meth:`sample`,
    :meth:`interpolate`).

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_latent
        Dimension of the set embedding.
    decoder
        Conditional generator. ``"cvae"``: a conditional VAE with a per-cell latent.
        ``"ddpm"``: a denoising diffusion model conditioned on the set embedding; on counts
        it runs in the latent space of an autoencoder with a count decoder (latent
        diffusion), on continuous features directly on them.
    likelihood
        ``"nb"`` (negative binomial), ``"zinb"`` or ``"poisson"`` for raw counts;
        ``"normal"`` for continuous features (PCA coordinates, log-normalised values,
        protein intensities). By default ``"nb"`` if the registered data are non-negative
        integers, else ``"normal"``.
    n_latent_cell
        Dimension of the per-cell latent (CVAE: 10; latent diffusion: 16).
    n_hidden, n_layers
        Width and depth of the cell encoder and decoder.
    n_set_hidden, n_set_blocks
        Width and number of pooled residual blocks of the set encoder.
    pooling
        Pooling of the set encoder. ``"mean"`` (default) makes the embedding a function of
        the set's distribution; ``"sum"`` and ``"max"`` exist for comparison.
    dispersion
        NB dispersion: ``"gene"``, ``"gene-batch"`` or ``"gene-cell"``.
    encode_covariates
        Also feed batch and covariates to the encoders (by default only the decoder sees
        them, so the embedding has no reason to encode them).
    dropout_rate
        Dropout in the cell encoder.
    w2_weight
        Weight of the W2-matching term: at each step, latent L2 distances between random
        pairs of the minibatch's sets are pulled towards the sets' 2-Wasserstein distance,
        so that latent distances are calibrated to W2. W2 is measured once per pair of
        sets, between fixed random subsets of ``w2_n_cells`` cells, in the W2 space: the
        top ``w2_n_comps`` principal components of the cells computed when the model is
        built (for counts: of ``log1p`` expression per 10,000 with batch effects divided
        out and centred; for continuous features: in data units, batch shifts removed).
        ``0`` trains on the generative loss alone; ignored by ``set_encoder="kme"``. See
        the method page, *What the embedding approximates*.
    w2_pairs
        Pairs of sets compared per step by the W2-matching term.
    w2_solver
        OT solver of the W2-matching term: ``"exact"`` (optimal assignment or network
        simplex), ``"sinkhorn"`` (debiased Sinkhorn divergence) or ``"auto"`` (exact up to
        256 cells per set).
    w2_n_comps
        Principal components of the W2 space.
    w2_n_cells
        Cells per set between which W2 is measured.
    w2_debias
        Subtract the sampling floor from the W2 targets: two samples of one set are not
        at W2 0, and the encoder cannot separate them. Before training, the median W2²
        between two disjoint halves of a training set's cells (at most ``w2_n_cells``
        each) is measured, and each target becomes ``sqrt(max(W2² - floor, 0))``.
    mean_path
        Give the set encoder a linear path from each set's mean (encoder input, i.e.
        batch-corrected ``log1p`` expression for counts), starting at its projection on
        the principal components of the cells: the untrained embedding is then a
        batch-corrected pseudobulk, and training adds what the mean misses. Used with
        the mean-pooled ``"deepsets"`` encoder only.
    set_encoder
        ``"deepsets"`` (default): the learned, mean-pooled set encoder. ``"kme"``: a fixed
        kernel mean embedding with random Fourier features, a baseline for comparison.
    **module_kwargs
        Passed to the module, :class:`gde.module.SetCVAE` or :class:`gde.module.SetDDPM`
        (e.g. ``n_diffusion_steps``, ``cond_dropout``, ``set_kl_weight``, and
        ``linear_set_effect=True`` or ``"only"``, which perturbation screens should use:
        the set embedding then also, or only, moves each gene's log rate linearly); they
        override the statistics computed from the data (e.g. ``log_batch_shift=None``).

    Examples
    --------
    >>> adata = gde.datasets.simulate_sets(n_sets=24, n_cells_per_set=100)
    >>> gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    >>> model = gde.GDEModel(adata, n_latent=16)
    >>> model.train()
    >>> emb = model.get_distribution_embeddings()
    >>> cells = model.sample(sets=["set_00", "set_05"], n_cells=200)
    """

    def __init__(
        self,
        adata: AnnData,
        n_latent: int = 64,
        decoder: Decoder = "cvae",
        likelihood: Likelihood | None = None,
        n_latent_cell: int | None = None,
        n_hidden: int = 128,
        n_layers: int = 1,
        n_set_hidden: int = 128,
        n_set_blocks: int = 2,
        pooling: Literal["mean", "sum", "max"] = "mean",
        dispersion: Literal["gene", "gene-batch", "gene-cell"] = "gene",
        encode_covariates: bool = False,
        dropout_rate: float = 0.1,
        w2_weight: float = 1.0,
        w2_pairs: int = 48,
        w2_solver: Literal["auto", "exact", "sinkhorn"] = "auto",
        w2_n_comps: int = 20,
        w2_n_cells: int = 128,
        w2_debias: bool = False,
        mean_path: bool = True,
        set_encoder: Literal["deepsets", "kme"] = "deepsets",
        **module_kwargs,
    ):
        super().__init__(adata, w2_n_cells=w2_n_cells, w2_debias=w2_debias)
        if decoder not in ("cvae", "ddpm"):
            raise ValueError(f"decoder must be 'cvae' or 'ddpm', got {decoder!r}.")
        source = self._source
        x = source.values(adata)
        batch_codes = self.adata_manager.get_from_registry(GDE_KEYS.BATCH_KEY)
        on_disk = is_on_disk(x)
        if on_disk:  # backed: statistics from a sample of cells, never the whole matrix
            rows = stats_rows(adata.n_obs, seed=settings.seed or 0)
            x, batch_codes = read_rows(x, rows), batch_codes[rows]
        likelihood = resolve_likelihood(
            x,
            likelihood,
            decoder,
            source.location,
            warn_if_guessed=self._setup_args.get("obsm_key") is None,
        )
        is_counts = likelihood in COUNT_LIKELIHOODS
        if on_disk and is_counts:  # every cell checked all the same, block by block
            scan_counts(source.values(adata), likelihood, source.location)

        n_batch = self.summary_stats.n_batch
        n_cats_per_cov = None
        if GDE_KEYS.CAT_COVS_KEY in self.adata_manager.data_registry:
            cat_state = self.adata_manager.get_state_registry(GDE_KEYS.CAT_COVS_KEY)
            n_cats_per_cov = cat_state.n_cats_per_key
        n_cont = self.summary_stats.get("n_extra_continuous_covs", 0)
        sizes = source.modality_sizes
        if sizes is not None and not is_counts:
            raise ValueError("setup_mudata models counts: use a count likelihood (e.g. 'nb').")
        if sizes is not None and decoder != "cvae":
            raise ValueError("Models of several modalities (setup_mudata) use decoder='cvae'.")
        stats = cell_statistics(
            x,
            batch_codes,
            n_batch,
            is_counts=is_counts,
            n_comps=max(w2_n_comps, n_latent),
            segments=sizes,
            seed=settings.seed or 0,
        )
        common = {
            "n_input": x.shape[1],
            "n_batch": n_batch,
            "n_latent": n_latent,
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "n_set_hidden": n_set_hidden,
            "n_set_blocks": n_set_blocks,
            "pooling": pooling,
            "dispersion": dispersion,
            "n_continuous_cov": n_cont,
            "n_cats_per_cov": n_cats_per_cov,
            "encode_covariates": encode_covariates,
            "dropout_rate": dropout_rate,
            # a fixed kernel mean embedding has nothing for the W2 term to train
            "w2_weight": w2_weight if set_encoder == "deepsets" else 0.0,
            "w2_pairs": w2_pairs,
            "w2_solver": w2_solver,
            "w2_n_comps": w2_n_comps,
            "mean_path": mean_path and set_encoder == "deepsets" and pooling == "mean",
            "set_encoder": set_encoder,
        }
        if decoder == "cvae":
            self.module = SetCVAE(
                likelihood=likelihood,
                n_latent_cell=n_latent_cell or 10,
                **common,
                **{**stats, **module_kwargs},
            )
        else:
            self.module = SetDDPM(
                likelihood=likelihood if is_counts else None,
                n_latent_cell=n_latent_cell or 16,
                **common,
                **{**stats, **module_kwargs},
            )
        enc_desc = (
            "fixed kernel mean embedding)"
            if set_encoder == "kme"
            else f"{pooling}-pooled encoder, {n_set_blocks} blocks"
            + (", mean path)" if self.module.set_encoder.mean_path is not None else ")")
        )
        if self.module.w2_weight:
            enc_desc += f", W2-matching weight {w2_weight}"
        what = "latent diffusion, " if decoder == "ddpm" and is_counts else ""
        features = "genes" if is_counts else "features"
        if sizes is not None:
            features = f"features ({sizes[0]} genes + {sizes[1]} proteins)"
        self._model_summary_string = (
            f"GDEModel: {self.summary_stats.n_set} sets, {x.shape[1]} "
            f"{features} ({'counts' if is_counts else 'continuous'}"
            f" in {source.location}); set embedding n_latent={n_latent} ({enc_desc}; "
            f"decoder={decoder!r} ({what}likelihood={likelihood!r}); "
            f"n_batch={n_batch}."
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        set_key: str,
        layer: str | None = None,
        batch_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        continuous_covariate_keys: list[str] | None = None,
        obsm_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register an AnnData for :class:`GDEModel`.

        Registration writes ``adata.uns['_scvi_uuid']``, ``adata.uns['_scvi_manager_uuid']``
        and integer code columns ``adata.obs['_scvi_set']`` and ``adata.obs['_scvi_batch']``
        (scvi-tools' convention); nothing else in ``adata`` changes.

        Parameters
        ----------
        adata
            Cells × genes (raw counts or continuous values), or cells with continuous
            features in ``adata.obsm[obsm_key]``.
        set_key
            Column of ``adata.obs`` naming the set of each cell (patient, clone, ...).
            Sets that a trained model never saw are accepted later, to be embedded.
        layer
            Layer holding the data; ``None`` uses ``adata.X``.
        batch_key
            Column of ``adata.obs`` with the batch of each cell; the decoder conditions on
            it so that the embedding need not encode batch effects.
        categorical_covariate_keys
            Other categorical covariates given to the decoder.
        continuous_covariate_keys
            Continuous covariates given to the decoder.
        obsm_key
            Model the continuous features in ``adata.obsm[obsm_key]`` (e.g. ``"X_pca"``)
            instead of a layer.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        check_backed_view(adata)
        check_set_column(adata, set_key)
        x = get_data(adata, layer=layer, obsm_key=obsm_key)
        check_finite(x, data_location(layer, obsm_key))
        check_obs_columns(adata, [batch_key] if batch_key else None, "batch_key")
        check_obs_columns(adata, categorical_covariate_keys, "categorical covariate")
        check_obs_columns(adata, continuous_covariate_keys, "continuous covariate")
        setup_method_args = cls._get_setup_method_args(**locals())
        data_field = (
            ObsmField(GDE_KEYS.X_KEY, obsm_key)
            if obsm_key is not None
            else LayerField(GDE_KEYS.X_KEY, layer, is_count_data=False)
        )
        covariates = [
            CategoricalJointObsField(GDE_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
            NumericalJointObsField(GDE_KEYS.CONT_COVS_KEY, continuous_covariate_keys),
        ]
        cls._register_fields(
            adata, data_field, set_key, batch_key, setup_method_args, covariates, **kwargs
        )

    @classmethod
    def setup_mudata(
        cls,
        mdata,
        set_key: str,
        rna_layer: str | None = None,
        protein_layer: str | None = None,
        batch_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        continuous_covariate_keys: list[str] | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register a MuData of RNA and surface-protein counts (CITE-seq).

        One set encoder reads both modalities; the decoder models gene counts and protein
        counts each with a negative binomial with its own library size (the likelihood
        chosen at model creation applies to both). Set, batch and covariate columns are
        read from the MuData's own ``mdata.obs`` (copy them there from a modality with
        ``mdata.pull_obs()`` if needed). Embeddings are written to ``mdata.obsm`` and
        ``mdata.uns`` as for AnnData; :meth:`sample` returns a MuData with the same
        modalities.

        Parameters
        ----------
        mdata
            :class:`mudata.MuData` with raw counts in both modalities.
        set_key
            Column of ``mdata.obs`` naming each cell's set.
        rna_layer, protein_layer
            Layers of the RNA and protein modalities holding the counts (``None``: ``X``).
        batch_key
            Column of ``mdata.obs`` with each cell's batch.
        categorical_covariate_keys, continuous_covariate_keys
            Columns of ``mdata.obs`` with covariates given to the decoder.
        modalities
            Names of the two modalities: ``{"rna_layer": "rna", "protein_layer": "prot"}``
            by default.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        fields, modalities = mudata_fields(
            mdata,
            set_key,
            rna_layer,
            protein_layer,
            batch_key,
            categorical_covariate_keys,
            continuous_covariate_keys,
            modalities,
        )
        setup_method_args[_SETUP_ARGS_KEY]["modalities"] = modalities
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        with quiet_backend():
            manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    def _check_values(self, x) -> None:
        if self.module.data_kind == "counts":
            check_counts(x, self._source.location, self.module.likelihood)

    def _result_params(self) -> dict:
        return {
            "decoder": self.init_params_["non_kwargs"].get("decoder", "cvae"),
            "likelihood": self.module.likelihood or "normal",
        }

    def _default_patience_steps(self) -> int:
        # the diffusion loss is noisy (random timesteps): wait longer before stopping
        return 2000 if isinstance(self.module, SetDDPM) else 1000
