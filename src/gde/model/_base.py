"""The base of every set model: registration, embedding of sets, results, persistence.

A set model embeds each set of elements (cells, sequences, images) as one vector with
a set encoder, and decodes elements from any vector. :class:`SetModelBase` owns what all
of them share: training with the set sampler (:class:`~gde.model._train.SetTrainingMixin`),
embedding sets from all their elements in chunks, writing results into the user's object,
set-level AnnData and distances, sampling and interpolation plumbing, and save/load. A
concrete model adds its data fields (``setup_anndata``), the statistics its module needs,
and its module (featurizer and decoder).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi.data import AnnDataManager
from scvi.data._constants import _SCVI_UUID_KEY, _SETUP_ARGS_KEY
from scvi.data.fields import BaseAnnDataField, CategoricalObsField
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from gde._anndata_utils import check_backed_view, check_finite, check_set_column, set_codes
from gde._constants import GDE_KEYS
from gde._quiet import quiet_backend
from gde._version import __version__
from gde.data import (
    DataSource,
    SetDataSplitter,
    SetObsField,
    data_source,
    is_on_disk,
    iter_cell_chunks,
    iter_row_chunks,
)

from ._generation import GenerationMixin
from ._sets import SetAnalysisMixin
from ._train import SetTrainingMixin
from ._training_plan import GDETrainingPlan


class SetModelBase(SetAnalysisMixin, GenerationMixin, SetTrainingMixin, BaseModelClass):
    """Shared machinery of set models (see the module docstring).

    Subclasses set ``self.module`` (a :class:`gde.module.SetModuleBase`) in ``__init__``
    after calling ``super().__init__(adata)``, and may override :meth:`_check_values`
    (checks on a new object's values) and :meth:`_result_params` (settings recorded
    with the results).
    """

    _data_splitter_cls = SetDataSplitter
    _training_plan_cls = GDETrainingPlan
    _train_runner_cls = TrainRunner

    def __init__(self, adata: AnnData, w2_n_cells: int = 128, w2_debias: bool = False):
        _check_not_a_copy(type(self), adata)
        super().__init__(adata)
        self.gde_version_ = __version__  # saved with the model (see `load`)
        self._w2_n_cells = w2_n_cells
        self._w2_debias = bool(w2_debias)
        self.train_sets_ = None
        self.validation_sets_ = None
        self.excluded_sets_ = None

    # ------------------------------------------------------------- registration
    @property
    def set_key(self) -> str:
        """The ``adata.obs`` column naming sets."""
        return self.adata_manager.get_state_registry(GDE_KEYS.SET_KEY).original_key

    @property
    def _setup_args(self) -> dict:
        return self.adata_manager.registry[_SETUP_ARGS_KEY]

    @property
    def _source(self) -> DataSource:
        """Where the modelled values live in the registered object."""
        return data_source(self._setup_args, self.adata_manager)

    @property
    def feature_names(self) -> pd.Index:
        """Names of the modelled features (genes, then proteins for CITE-seq)."""
        return self._source.feature_names(self.adata_manager)

    def _check_new_adata(self, adata: AnnData) -> None:
        """Checks on an object other than the training one, before registering it."""
        source = self._source
        source.check_features(adata, self.adata_manager)
        check_backed_view(adata)
        check_set_column(adata, self.set_key)
        x = source.values(adata)
        # a matrix on disk is checked one block of rows at a time, never read whole
        for _, block in iter_row_chunks(x) if is_on_disk(x) else [(0, x)]:
            check_finite(block, source.location)
            self._check_values(block)

    def _check_values(self, x) -> None:
        """Checks on the values of an object to embed or generate from; override."""

    def _result_params(self) -> dict:
        """Model settings recorded with the results in ``uns``; override."""
        return {}

    def _require_trained(self) -> None:
        """Refuse to embed or generate from random weights."""
        if not self.is_trained_:
            raise RuntimeError(
                f"This {type(self).__name__} has not been trained, so its embeddings and "
                "generated cells would come from random weights. Call `model.train()` "
                "first (to inspect an untrained model on purpose, set "
                "`model.is_trained_ = True`)."
            )

    def _validate_anndata(self, adata: AnnData | None = None, copy_if_view: bool = True):
        """Check features and values of a new object, then register it like the training one."""
        if adata is not None and adata is not self.adata:
            self._check_new_adata(adata)
        with quiet_backend():
            return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    @torch.inference_mode()
    def get_distribution_embeddings(
        self,
        adata: AnnData | None = None,
        sets: Sequence[str] | None = None,
        key_added: str | None = "X_gde",
        batch_size: int = 8192,
        copy_to_cells: bool = False,
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
        copy_to_cells
            Also give every cell its set's embedding in ``adata.obsm[key_added]``
            (``n_cells × n_latent`` floats: 256 MB for 10^6 cells and 64 dimensions).

        Returns
        -------
        One row per set (index: set names as strings), one column per latent dimension.
        Also written, once per set, to ``adata.uns[key_added]`` (``"table"``: cells per
        set and embedding; ``"params"``: the settings used), and with
        ``copy_to_cells=True`` to ``adata.obsm[key_added]`` (each cell carries its set's
        embedding; NaN for cells of sets not embedded).
        """
        self._require_trained()
        adata = self._validate_anndata(adata)
        manager = self.get_anndata_manager(adata, required=True)
        codes, all_names = set_codes(adata.obs[self.set_key])
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
                **self._result_params(),
            }
            adata.uns[key_added] = {
                "table": table,
                "params": {k: v for k, v in params.items() if v is not None},
            }
            if copy_to_cells:
                per_cell = np.full((adata.n_obs, z.shape[1]), np.nan, dtype=np.float32)
                per_cell[cells] = z[cell_set[cells]]
                adata.obsm[key_added] = per_cell
        return emb

    @classmethod
    def _register_fields(
        cls,
        adata: AnnData,
        element_field: BaseAnnDataField,
        set_key: str,
        batch_key: str | None,
        setup_method_args: dict,
        covariate_fields: Sequence[BaseAnnDataField] = (),
        **kwargs,
    ) -> None:
        """Register the elements' field, the set and batch columns, and covariates.

        The end of every ``setup_anndata``, after its checks; ``kwargs`` go to
        :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        fields = [
            element_field,
            SetObsField(GDE_KEYS.SET_KEY, set_key),
            CategoricalObsField(GDE_KEYS.BATCH_KEY, batch_key),
            *covariate_fields,
        ]
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        with quiet_backend():
            manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    def load(cls, dir_path: str, adata: AnnData | None = None, **kwargs):
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            The data to attach (registered like the training data); with ``None``, the
            AnnData saved with the model (``save(..., save_anndata=True)``).
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (``accelerator``,
            ``device``, ``prefix``, ...).
        """
        if not os.path.isdir(dir_path):
            raise FileNotFoundError(
                f"No saved model at '{dir_path}': the folder does not exist. Pass the folder "
                "given to `model.save(...)`."
            )
        prefix = kwargs.get("prefix") or ""
        saved = [f"{prefix}adata.h5ad", f"{prefix}mdata.h5mu"]
        if adata is None and not any(os.path.exists(os.path.join(dir_path, f)) for f in saved):
            raise ValueError(
                f"The model in '{dir_path}' was saved without its data, so `adata=` is "
                "required: pass the AnnData (or MuData) it was trained on, or one with the "
                f"same features, e.g. `{cls.__name__}.load('{dir_path}', adata=adata)`."
            )
        try:
            with quiet_backend():
                return super().load(dir_path, adata=adata, **kwargs)
        except RuntimeError as err:
            if "state_dict" not in str(err):
                raise
            version = _saved_version(dir_path, kwargs.get("prefix"))
            raise RuntimeError(
                f"The model in '{dir_path}' was saved by gde {version}; its parameters do "
                f"not match those of this version of gde ({__version__}). Train it "
                "again with this version, or load it with the version that wrote it."
            ) from err

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


def _saved_version(dir_path: str, prefix: str | None) -> str:
    """The gde version recorded in a saved model, or a description if it has none."""
    path = os.path.join(dir_path, f"{prefix or ''}model.pt")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        return str(saved["attr_dict"]["gde_version_"])
    except (OSError, KeyError, TypeError, RuntimeError):
        return "0.1.0 or earlier (it records no version)"


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
