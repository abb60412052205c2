"""GDEModel: one embedding per set of cells, learned from raw counts."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import rich.pretty  # noqa: F401  scvi-tools' view_anndata_setup uses rich.pretty unimported
import torch
from anndata import AnnData
from scipy import sparse
from scvi import settings
from scvi.data import AnnDataManager
from scvi.data._constants import _SCVI_UUID_KEY, _SETUP_ARGS_KEY
from scvi.data.fields import (
    CategoricalJointObsField,
    CategoricalObsField,
    LayerField,
    MuDataCategoricalJointObsField,
    MuDataCategoricalObsField,
    MuDataLayerField,
    MuDataNumericalJointObsField,
    MuDataWrapper,
    NumericalJointObsField,
    ObsmField,
)
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from gde._constants import GDE_KEYS
from gde.data import SetDataSplitter, SetObsField, iter_cell_chunks
from gde.data._stats import (
    batch_log_fold_changes,
    feature_moments,
    library_log_stats,
    nb_log_theta,
    reference_space,
)
from gde.data._validation import (
    check_counts,
    check_finite,
    check_obs_columns,
    check_set_column,
    data_location,
    get_data,
    is_count_matrix,
)
from gde.module import SetCVAE, SetDDPM
from gde.nn import COUNT_LIKELIHOODS, PairwiseW2

from ._budget import STEPS_PER_EPOCH, ConvergenceStopping, resolve_steps, stop_record
from ._generation import GenerationMixin
from ._sets import SetAnalysisMixin
from ._training_plan import GDETrainingPlan

logger = logging.getLogger(__name__)

MuDataSetObsField = MuDataWrapper(SetObsField)

Decoder = Literal["cvae", "ddpm"]
Likelihood = Literal["nb", "zinb", "poisson", "normal"]


class GDEModel(SetAnalysisMixin, GenerationMixin, BaseModelClass):
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
        :meth:`gde.module.SetModuleBase.w2_matching`.
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
        (e.g. ``n_diffusion_steps``, ``cond_dropout``, ``set_kl_weight``); they override
        the statistics computed from the data (e.g. ``log_batch_shift=None``).

    Examples
    --------
    >>> adata = gde.datasets.simulate_sets(n_sets=24, n_cells_per_set=100)
    >>> gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    >>> model = gde.GDEModel(adata, n_latent=16)
    >>> model.train(max_epochs=50)
    >>> emb = model.get_distribution_embeddings()
    >>> cells = model.sample(sets=["set_00", "set_05"], n_cells=200)
    """

    _data_splitter_cls = SetDataSplitter
    _training_plan_cls = GDETrainingPlan
    _train_runner_cls = TrainRunner

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
        mean_path: bool = True,
        set_encoder: Literal["deepsets", "kme"] = "deepsets",
        **module_kwargs,
    ):
        _check_not_a_copy(type(self), adata)
        super().__init__(adata)
        if decoder not in ("cvae", "ddpm"):
            raise ValueError(f"decoder must be 'cvae' or 'ddpm', got {decoder!r}.")
        x = self._data(adata)
        likelihood = self._check_data(x, likelihood, decoder)
        is_counts = likelihood in COUNT_LIKELIHOODS

        n_batch = self.summary_stats.n_batch
        n_cats_per_cov = None
        if GDE_KEYS.CAT_COVS_KEY in self.adata_manager.data_registry:
            cat_state = self.adata_manager.get_state_registry(GDE_KEYS.CAT_COVS_KEY)
            n_cats_per_cov = cat_state.n_cats_per_key
        n_cont = self.summary_stats.get("n_extra_continuous_covs", 0)
        batch_codes = self.adata_manager.get_from_registry(GDE_KEYS.BATCH_KEY)
        sizes = self._modality_sizes
        if sizes is not None and not is_counts:
            raise ValueError("setup_mudata models counts: use a count likelihood (e.g. 'nb').")
        if sizes is not None and decoder != "cvae":
            raise ValueError("Models of several modalities (setup_mudata) use decoder='cvae'.")
        stats = {}
        if is_counts:
            means, log_vars = library_log_stats(x, batch_codes, n_batch, sizes)
            stats = {
                "library_log_means": means,
                "library_log_vars": log_vars,
                "log_theta_init": nb_log_theta(x, sizes),
            }
            if sizes is not None:
                stats["modality_sizes"] = sizes
            if n_batch > 1:
                stats["batch_offset_init"] = batch_log_fold_changes(
                    x, batch_codes, n_batch, segments=sizes
                )
        else:
            mean, std, shift = feature_moments(x, batch_codes, n_batch)
            stats = {"feature_mean": mean, "feature_std": std, "batch_shift": shift}
        reference = reference_space(
            x,
            batch_codes,
            max(w2_n_comps, n_latent),
            batch_offsets=stats.get("batch_offset_init"),
            segments=sizes,
            counts=is_counts,
            batch_shift=None if is_counts else stats["batch_shift"] * stats["feature_std"],
            seed=settings.seed or 0,
        )
        stats["reference_center"] = reference["center"]
        stats["reference_components"] = reference["components"]
        if is_counts and n_batch > 1:
            stats["log_batch_shift"] = reference["log_batch_shift"]
            stats["reference_batch_offset"] = stats["batch_offset_init"]
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
        self._w2_n_cells = w2_n_cells
        self.train_sets_ = None
        self.validation_sets_ = None
        self.excluded_sets_ = None
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
            f" in {self._where}); set embedding n_latent={n_latent} ({enc_desc}; "
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
        anndata_fields = [
            data_field,
            SetObsField(GDE_KEYS.SET_KEY, set_key),
            CategoricalObsField(GDE_KEYS.BATCH_KEY, batch_key),
            CategoricalJointObsField(GDE_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
            NumericalJointObsField(GDE_KEYS.CONT_COVS_KEY, continuous_covariate_keys),
        ]
        adata_manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

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
        from mudata import MuData

        if not isinstance(mdata, MuData):
            raise TypeError(
                f"setup_mudata takes a MuData, got {type(mdata).__name__}; use "
                "GDEModel.setup_anndata for an AnnData."
            )
        modalities = {"rna_layer": "rna", "protein_layer": "prot", **(modalities or {})}
        for role in ("rna_layer", "protein_layer"):
            if modalities[role] not in mdata.mod:
                raise KeyError(
                    f"modality '{modalities[role]}' ({role}) is not in the MuData (modalities: "
                    f"{list(mdata.mod)}). Name them with modalities={{'rna_layer': ..., "
                    "'protein_layer': ...}."
                )
        check_set_column(mdata, set_key)
        rna = mdata[modalities["rna_layer"]]
        prot = mdata[modalities["protein_layer"]]
        for mod, layer, name in (
            (rna, rna_layer, "rna_layer"),
            (prot, protein_layer, "protein_layer"),
        ):
            x = get_data(mod, layer=layer)
            where = _mod_location(modalities[name], layer)
            check_finite(x, where)
            check_counts(x, where, "nb")
        check_obs_columns(mdata, [batch_key] if batch_key else None, "batch_key")
        check_obs_columns(mdata, categorical_covariate_keys, "categorical covariate")
        check_obs_columns(mdata, continuous_covariate_keys, "continuous covariate")
        setup_method_args[_SETUP_ARGS_KEY]["modalities"] = modalities
        fields = [
            MuDataLayerField(
                GDE_KEYS.X_KEY, rna_layer, mod_key=modalities["rna_layer"],
                is_count_data=True, mod_required=True,
            ),
            MuDataLayerField(
                GDE_KEYS.PROTEIN_KEY, protein_layer, mod_key=modalities["protein_layer"],
                is_count_data=True, mod_required=True,
            ),
            MuDataSetObsField(GDE_KEYS.SET_KEY, set_key),
            MuDataCategoricalObsField(GDE_KEYS.BATCH_KEY, batch_key),
            MuDataCategoricalJointObsField(GDE_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
            MuDataNumericalJointObsField(GDE_KEYS.CONT_COVS_KEY, continuous_covariate_keys),
        ]  # fmt: skip
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    # ------------------------------------------------------------- validation
    @property
    def set_key(self) -> str:
        """The ``adata.obs`` column naming sets."""
        return self.adata_manager.get_state_registry(GDE_KEYS.SET_KEY).original_key

    @property
    def _setup_args(self) -> dict:
        return self.adata_manager.registry[_SETUP_ARGS_KEY]

    @property
    def _modalities(self) -> dict | None:
        """Modality names of a model set up with :meth:`setup_mudata`, else ``None``."""
        return self._setup_args.get("modalities")

    @property
    def _modality_sizes(self) -> list[int] | None:
        if self._modalities is None:
            return None
        return [
            len(self.adata_manager.get_state_registry(key).column_names)
            for key in (GDE_KEYS.X_KEY, GDE_KEYS.PROTEIN_KEY)
        ]

    @property
    def _where(self) -> str:
        args = self._setup_args
        if self._modalities is not None:
            mods = self._modalities
            return " and ".join(
                _mod_location(mods[role], args.get(role))
                for role in ("rna_layer", "protein_layer")
            )
        return data_location(args.get("layer"), args.get("obsm_key"))

    def _data(self, adata: AnnData, rows: np.ndarray | None = None):
        """The modelled values of ``adata`` (of the cells at ``rows`` only, if given)."""
        args = self._setup_args
        if self._modalities is not None:  # genes, then proteins, as the module sees them
            mods = self._modalities
            blocks = [
                get_data(adata[mods[role]], layer=args.get(role))
                for role in ("rna_layer", "protein_layer")
            ]
            if rows is not None:
                blocks = [block[rows] for block in blocks]
            return sparse.hstack([sparse.csr_matrix(b) for b in blocks], format="csr")
        x = get_data(adata, layer=args.get("layer"), obsm_key=args.get("obsm_key"))
        return x if rows is None else x[rows]

    @property
    def feature_names(self) -> pd.Index:
        """Names of the modelled features (genes, then proteins for CITE-seq)."""
        if self._modalities is not None:
            return pd.Index(
                np.concatenate(
                    [
                        np.asarray(self.adata_manager.get_state_registry(k).column_names)
                        for k in (GDE_KEYS.X_KEY, GDE_KEYS.PROTEIN_KEY)
                    ]
                ).astype(str)
            )
        names = self.adata_manager.get_state_registry(GDE_KEYS.X_KEY).column_names
        obsm_key = self._setup_args.get("obsm_key")
        if obsm_key is not None and np.issubdtype(np.asarray(names).dtype, np.integer):
            return pd.Index([f"{obsm_key}_{i}" for i in names])
        return pd.Index(np.asarray(names).astype(str))

    def _check_data(self, x, likelihood: str | None, decoder: str) -> str:
        """Check the registered values ``x`` against the likelihood; return the likelihood."""
        where = self._where
        check_finite(x, where)
        is_counts = is_count_matrix(x)
        if likelihood is None:
            likelihood = "nb" if is_counts else "normal"
            if not is_counts and self._setup_args.get("obsm_key") is None:
                warnings.warn(
                    f"{where} is not raw counts (it has negative or non-integer values): "
                    "modelling it as continuous features (likelihood='normal'). Pass "
                    "likelihood='normal' to silence this, or register the raw-count layer "
                    "(e.g. layer='counts') for a count model.",
                    UserWarning,
                    stacklevel=3,
                )
        if likelihood in COUNT_LIKELIHOODS:
            check_counts(x, where, likelihood)
            totals = np.asarray(x.sum(axis=1)).ravel()
            n_empty = int((totals <= 0).sum())
            if n_empty:
                raise ValueError(
                    f"{n_empty} cells have no counts at all. Remove them before setup, e.g. "
                    "`sc.pp.filter_cells(adata, min_counts=1)`."
                )
        elif likelihood == "normal":
            if is_counts:
                model = (
                    "a diffusion model on the raw values" if decoder == "ddpm" else "a Gaussian"
                )
                raise ValueError(
                    f"{where} holds raw counts, but likelihood='normal' would fit {model} and "
                    "generate non-integer 'counts'. Use a count likelihood (likelihood='nb'"
                    + (
                        "; decoder='ddpm' then diffuses in a latent space with a count decoder"
                        if decoder == "ddpm"
                        else ""
                    )
                    + "), or register continuous features: a log-normalised layer, or "
                    "`obsm_key='X_pca'`."
                )
        else:
            raise ValueError(
                f"likelihood must be 'nb', 'zinb', 'poisson' or 'normal', got {likelihood!r}."
            )
        return likelihood

    def _check_features(self, adata: AnnData) -> None:
        if self._modalities is not None:
            for role, key in (
                ("rna_layer", GDE_KEYS.X_KEY),
                ("protein_layer", GDE_KEYS.PROTEIN_KEY),
            ):
                mod = self._modalities[role]
                if mod not in adata.mod:
                    raise KeyError(f"The MuData has no modality '{mod}' (the model's {role}).")
                trained = pd.Index(self.adata_manager.get_state_registry(key).column_names)
                if not adata[mod].var_names.equals(trained):
                    raise ValueError(
                        f"mdata['{mod}'] has other features than the {len(trained)} the model "
                        f"was trained on; subset and order them as `model.adata['{mod}']`."
                    )
            return
        if self._setup_args.get("obsm_key") is not None:
            n_model = len(self.feature_names)
            n_given = self._data(adata).shape[1]
            if n_given != n_model:
                raise ValueError(
                    f"{self._where} has {n_given} columns; the model was trained on {n_model}."
                )
            return
        trained = pd.Index(self.adata_manager.get_state_registry(GDE_KEYS.X_KEY).column_names)
        given = adata.var_names
        if given.equals(trained):
            return
        missing = trained.difference(given)
        extra = given.difference(trained)
        if len(missing) == 0 and len(extra) == 0:
            raise ValueError(
                "adata has the model's genes in a different order. Reorder them with "
                "`adata = adata[:, model.adata.var_names].copy()`."
            )
        raise ValueError(
            f"adata's genes differ from the {len(trained)} genes the model was trained on: "
            f"{len(missing)} missing (e.g. {list(missing[:5])}), {len(extra)} unexpected "
            f"(e.g. {list(extra[:5])}). Subset to the model's genes with "
            "`adata[:, model.adata.var_names]` (all must be present)."
        )

    def _validate_anndata(self, adata: AnnData | None = None, copy_if_view: bool = True):
        """Check features and values of a new AnnData, then register it like the training one."""
        if adata is not None and adata is not self.adata:
            self._check_features(adata)
            check_set_column(adata, self.set_key)
            x = self._data(adata)
            check_finite(x, self._where)
            if self.module.data_kind == "counts":
                check_counts(x, self._where, self.module.likelihood)
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    # --------------------------------------------------------------- training
    def train(
        self,
        max_steps: int | None = None,
        max_epochs: int | None = None,
        set_size: int = 128,
        n_sets_per_batch: int = 16,
        steps_per_epoch: int = STEPS_PER_EPOCH,
        train_size: float = 0.9,
        validation_size: float | None = None,
        min_set_size: int = 10,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        early_stopping: bool = True,
        early_stopping_patience: int | None = None,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train the set encoder and the decoder end to end, until validation stops improving.

        Each minibatch holds ``n_sets_per_batch`` sets of ``set_size`` cells drawn from
        the training cells of each set (with replacement from sets smaller than
        ``set_size``). Sets, not cells, are split into training and validation. Training
        is counted in optimiser steps: every ``steps_per_epoch`` steps (one epoch) the
        validation sets are scored, and training stops when the validation loss has not
        improved for ``early_stopping_patience`` steps, or at ``max_steps``.
        ``model.history["stop"]`` says which. The split and the draws are reproducible
        under ``scvi.settings.seed``.

        Parameters
        ----------
        max_steps
            Largest number of optimiser steps. By default 100 per training set, between
            4,000 and 20,000 (:func:`gde.model.default_max_steps`); early stopping
            usually ends training sooner.
        max_epochs
            Alternatively, the number of epochs of ``steps_per_epoch`` steps.
        set_size
            Cells drawn from each set in a minibatch.
        n_sets_per_batch
            Sets in a minibatch (at most the number of training sets).
        steps_per_epoch
            Optimiser steps between two validation passes.
        train_size
            Fraction of sets used for training.
        validation_size
            Fraction of sets used for validation; ``1 - train_size`` by default.
        min_set_size
            Sets with fewer cells are left out of training, with a warning naming them.
        accelerator, devices
            As in :class:`lightning.pytorch.Trainer` (``"auto"`` picks a GPU if present).
        early_stopping
            Stop when the validation loss stops improving (needs validation sets): when
            over ``early_stopping_patience`` steps it improved by less than a tenth of
            its total improvement so far (``early_stopping_min_progress=0.1``, a keyword
            of ``trainer_kwargs``; see :class:`gde.model.ConvergenceStopping`).
        early_stopping_patience
            Optimiser steps without improvement before stopping; by default 1,000
            (2,000 for the diffusion decoder, whose validation loss is noisier).
        plan_kwargs
            Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``eps``,
            ``n_steps_kl_warmup``, ...). Adam's ``eps`` defaults to ``1e-8``.
        datasplitter_kwargs
            Passed to :class:`gde.data.SetDataSplitter` (e.g. ``num_workers``).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`.
        """
        set_codes = self.adata_manager.get_from_registry(GDE_KEYS.SET_KEY).ravel()
        set_names = np.asarray(
            self.adata_manager.get_state_registry(GDE_KEYS.SET_KEY).categorical_mapping
        ).astype(str)
        splitter = self._data_splitter_cls(
            self.adata_manager,
            set_codes,
            set_names,
            train_size=train_size,
            validation_size=validation_size,
            min_set_size=min_set_size,
            set_size=set_size,
            n_sets_per_batch=n_sets_per_batch,
            n_batches_per_epoch=steps_per_epoch,
            seed=settings.seed or 0,
            **(datasplitter_kwargs or {}),
        )
        n_train_sets = len(splitter.split.train)
        max_steps = resolve_steps(max_steps, max_epochs, steps_per_epoch, n_train_sets)
        if 0 < max_steps < steps_per_epoch:  # validate at least once, at the end
            steps_per_epoch = splitter.n_batches_per_epoch = max_steps
        has_validation = len(splitter.split.validation) > 0
        if early_stopping and not has_validation:
            warnings.warn(
                "No validation sets (too few sets or validation_size=0): early stopping is "
                "off and training runs for max_steps.",
                UserWarning,
                stacklevel=2,
            )
            early_stopping = False
        if early_stopping_patience is None:
            # the diffusion loss is noisy (random timesteps): wait longer before stopping
            early_stopping_patience = 2000 if isinstance(self.module, SetDDPM) else 1000
        patience_epochs = max(1, int(np.ceil(early_stopping_patience / steps_per_epoch)))

        plan_kwargs = dict(plan_kwargs or {})
        if "n_steps_kl_warmup" not in plan_kwargs and "n_epochs_kl_warmup" not in plan_kwargs:
            plan_kwargs["n_epochs_kl_warmup"] = None
            plan_kwargs["n_steps_kl_warmup"] = int(min(1000, max(1, max_steps // 4)))
        plan_kwargs.setdefault("eps", 1e-8)
        pair_w2 = None
        if self.module.w2_weight > 0:
            pair_w2 = self._pair_w2(splitter, settings.seed or 0)
        training_plan = self._training_plan_cls(self.module, pair_w2=pair_w2, **plan_kwargs)

        monitor = trainer_kwargs.pop("early_stopping_monitor", "validation_loss")
        min_progress = trainer_kwargs.pop("early_stopping_min_progress", 0.1)
        stopper = None
        if early_stopping:
            stopper = ConvergenceStopping(monitor, patience_epochs, min_progress)
            trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), stopper]
        trainer_kwargs.setdefault("use_distributed_sampler", False)
        trainer_kwargs.setdefault("max_steps", max_steps)
        if has_validation:
            trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        else:
            trainer_kwargs.setdefault("limit_val_batches", 0)
        runner = self._train_runner_cls(
            self,
            training_plan=training_plan,
            data_splitter=splitter,
            max_epochs=max(1, int(np.ceil(max_steps / steps_per_epoch))),
            accelerator=accelerator,
            devices=devices,
            early_stopping=False,  # ConvergenceStopping above
            **trainer_kwargs,
        )
        self.train_sets_ = splitter.train_sets
        self.validation_sets_ = splitter.validation_sets
        self.excluded_sets_ = splitter.excluded_sets
        previous = len((self.history_ or {}).get(monitor, ())) if self.is_trained_ else 0
        runner()
        if not isinstance(self.history_, dict):  # a logger other than scvi-tools' own
            self.history_ = {}
        self.history_["stop"] = stop_record(
            self.history_,
            steps_run=int(self.trainer.global_step),
            max_steps=int(trainer_kwargs["max_steps"]),
            steps_per_epoch=steps_per_epoch,
            early_stopped=stopper is not None and stopper.stopped_epoch > 0,
            patience_steps=early_stopping_patience if has_validation else None,
            monitor=monitor,
            first_epoch=previous,
        )

    def _pair_w2(self, splitter: SetDataSplitter, seed: int) -> PairwiseW2:
        """Fixed clouds of the training and validation sets in the W2 space."""
        n_points = self._w2_n_cells
        rng = np.random.default_rng([seed, 7])
        keys = [k for k in self.adata_manager.data_registry if k != GDE_KEYS.SET_KEY]
        dataset = self.adata_manager.create_torch_dataset(data_and_attributes=keys)
        clouds = {}
        for code in np.concatenate([splitter.split.train, splitter.split.validation]):
            cells = splitter.set_cells[code]
            rows = np.sort(rng.choice(cells, n_points, replace=len(cells) < n_points))
            tensors = {k: torch.as_tensor(v) for k, v in dataset[rows].items()}
            clouds[int(code)] = self.module.w2_points(tensors).cpu()
        return PairwiseW2(clouds, solver=self.module.w2_solver)

    # -------------------------------------------------------------- embedding
    @torch.inference_mode()
    def get_distribution_embeddings(
        self,
        adata: AnnData | None = None,
        sets: Sequence[str] | None = None,
        key_added: str = "X_gde",
        batch_size: int = 8192,
    ) -> pd.DataFrame:
        """Embed every set (or the given ones) from all of its cells.

        Cells are read in chunks of ``batch_size``, so a set of millions of cells embeds
        in bounded memory; the result equals embedding the whole set at once. Sets the
        model never saw are embedded without retraining.

        Parameters
        ----------
        adata
            AnnData with the model's genes and a set column; the training data by default.
        sets
            Names of the sets to embed; all sets by default.
        key_added
            Where to write the results in ``adata`` (``None`` writes nothing).
        batch_size
            Cells per chunk.

        Returns
        -------
        One row per set (index: set names as strings), one column per latent dimension.
        Also written to ``adata.uns[key_added]`` (``"table"``: cells per set and
        embedding; ``"params"``: the settings used) and ``adata.obsm[key_added]`` (each
        cell carries its set's embedding; NaN for cells of sets not embedded).
        """
        self._check_if_trained(warn=True)
        adata = self._validate_anndata(adata)
        manager = self.get_anndata_manager(adata, required=True)
        labels = pd.Categorical(adata.obs[self.set_key]).remove_unused_categories()
        all_names = labels.categories.astype(str)
        codes = np.asarray(labels.codes)
        if sets is None:
            chosen = np.arange(len(all_names))
        else:
            sets = [str(s) for s in np.atleast_1d(np.asarray(sets, dtype=object))]
            unknown = [s for s in sets if s not in set(all_names)]
            if unknown:
                raise KeyError(
                    f"{len(unknown)} requested set(s) not found in adata.obs['{self.set_key}']:"
                    f" {unknown[:10]}."
                )
            chosen = all_names.get_indexer(pd.Index(sets).unique())
        new_code = np.full(len(all_names), -1)
        new_code[chosen] = np.arange(len(chosen))
        cell_set = new_code[codes]
        cells = np.flatnonzero(cell_set >= 0)
        keys = [k for k in manager.data_registry if k != GDE_KEYS.SET_KEY]

        def chunks():
            for positions, tensors in iter_cell_chunks(manager, cells, batch_size, keys):
                yield tensors, torch.as_tensor(cell_set[cells[positions]], dtype=torch.long)

        self.module.eval()
        z = self.module.embed_chunked(chunks, len(chosen)).cpu().numpy()
        names = all_names[chosen]
        columns = [f"gde_{i}" for i in range(z.shape[1])]
        emb = pd.DataFrame(z, index=pd.Index(names, name=self.set_key), columns=columns)
        if key_added is not None:
            n_cells = np.bincount(cell_set[cells], minlength=len(chosen))
            table = emb.copy()
            table.insert(0, "n_cells", n_cells)
            params = {
                "set_key": self.set_key,
                "layer": self._setup_args.get("layer"),
                "obsm_key": self._setup_args.get("obsm_key"),
                "model": type(self).__name__,
                "n_latent": int(z.shape[1]),
                "decoder": self.init_params_["non_kwargs"].get("decoder", "cvae"),
                "likelihood": self.module.likelihood or "normal",
            }
            adata.uns[key_added] = {
                "table": table,
                "params": {k: v for k, v in params.items() if v is not None},
            }
            per_cell = np.full((adata.n_obs, z.shape[1]), np.nan, dtype=np.float32)
            per_cell[cells] = z[cell_set[cells]]
            adata.obsm[key_added] = per_cell
        return emb

    # ------------------------------------------------------------ persistence
    def save(
        self,
        dir_path: str,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **kwargs,
    ) -> None:
        """Save the model (weights, settings, registry) to ``dir_path``.

        Parameters
        ----------
        dir_path
            Folder to write; it must not exist unless ``overwrite=True``.
        prefix
            Prefix of the file names.
        overwrite
            Replace an existing folder's model files.
        save_anndata
            Also write the AnnData.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save`.
        """
        if os.path.exists(dir_path) and not overwrite:
            raise FileExistsError(
                f"'{dir_path}' already exists; nothing was written. Pass `overwrite=True` to "
                "replace it, or choose another folder."
            )
        super().save(
            dir_path, prefix=prefix, overwrite=overwrite, save_anndata=save_anndata, **kwargs
        )


def _mod_location(modality: str, layer: str | None) -> str:
    return f"mdata['{modality}']" + (".X" if layer is None else f".layers['{layer}']")


def _check_not_a_copy(cls, adata: AnnData) -> None:
    """Raise if ``adata`` carries a setup record that belongs to another object."""
    uuid = adata.uns.get(_SCVI_UUID_KEY) if adata is not None else None
    manager = cls._setup_adata_manager_store.get(uuid) if uuid is not None else None
    if manager is not None and manager.adata is not adata:
        raise ValueError(
            "This AnnData is a copy of one registered with GDEModel.setup_anndata (copies "
            "keep the setup record but not the registration). Call "
            "`GDEModel.setup_anndata(adata, set_key=...)` on this object first."
        )
