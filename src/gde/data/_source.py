"""Data sources: where a set model's values live in an AnnData or MuData, and how to read them.

A model is registered on one of three sources: a layer (or ``X``) of an AnnData, an
``obsm`` matrix of continuous features, or two count modalities of a MuData (RNA and
surface proteins). Each source reads the values (of all cells or of some), names them,
says where they are in words for error messages, and checks that a new object has the
features a trained model expects. Models read one source object instead of branching on
the kind of data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from gde._anndata_utils import data_location, get_data
from gde._constants import GDE_KEYS

from ._backed import read_rows

ROLES = ("rna_layer", "protein_layer")


def _registered_names(manager, key: str) -> np.ndarray:
    return np.asarray(manager.get_state_registry(key).column_names)


@dataclass(frozen=True)
class LayerSource:
    """Values in ``adata.X`` (``layer=None``) or ``adata.layers[layer]``."""

    layer: str | None = None
    modality_sizes = None

    @property
    def location(self) -> str:
        """Where the values are, in words."""
        return data_location(self.layer, None)

    def values(self, adata: AnnData, rows: np.ndarray | None = None):
        """The values of all cells, or of the cells at ``rows``."""
        x = get_data(adata, layer=self.layer)
        return x if rows is None else read_rows(x, rows)

    def feature_names(self, manager) -> pd.Index:
        """Names of the modelled features."""
        return pd.Index(_registered_names(manager, GDE_KEYS.X_KEY).astype(str))

    def check_features(self, adata: AnnData, manager) -> None:
        """Raise unless ``adata`` has the registered genes, in order."""
        trained = pd.Index(_registered_names(manager, GDE_KEYS.X_KEY))
        given = adata.var_names
        if given.equals(trained):
            return
        missing, extra = trained.difference(given), given.difference(trained)
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

    def as_output(self, adata: AnnData) -> AnnData:
        """Generated cells (genes in columns) in the form of the registered object."""
        return adata


@dataclass(frozen=True)
class ObsmSource(LayerSource):
    """Continuous features in ``adata.obsm[obsm_key]`` (e.g. ``"X_pca"``)."""

    obsm_key: str = "X_pca"

    @property
    def location(self) -> str:
        return data_location(None, self.obsm_key)

    def values(self, adata: AnnData, rows: np.ndarray | None = None):
        x = get_data(adata, obsm_key=self.obsm_key)
        return x if rows is None else x[rows]

    def feature_names(self, manager) -> pd.Index:
        names = _registered_names(manager, GDE_KEYS.X_KEY)
        if np.issubdtype(names.dtype, np.integer):
            return pd.Index([f"{self.obsm_key}_{i}" for i in names])
        return pd.Index(names.astype(str))

    def check_features(self, adata: AnnData, manager) -> None:
        n_model = len(_registered_names(manager, GDE_KEYS.X_KEY))
        n_given = self.values(adata).shape[1]
        if n_given != n_model:
            raise ValueError(
                f"{self.location} has {n_given} columns; the model was trained on {n_model}."
            )


@dataclass(frozen=True)
class MuDataSource:
    """Counts of two modalities of a MuData: genes, then surface proteins (CITE-seq).

    ``modalities`` maps ``"rna_layer"`` and ``"protein_layer"`` to modality names;
    ``layers`` maps the same roles to a layer of each modality (``None``: its ``X``).
    """

    modalities: tuple[tuple[str, str], ...]
    layers: tuple[tuple[str, str | None], ...]
    sizes: tuple[int, int] | None = None

    @classmethod
    def from_args(cls, modalities: dict, layers: dict, manager=None) -> MuDataSource:
        """From the setup arguments (and, once registered, the modality sizes)."""
        sizes = None
        if manager is not None:
            sizes = tuple(
                len(_registered_names(manager, k)) for k in (GDE_KEYS.X_KEY, GDE_KEYS.PROTEIN_KEY)
            )
        return cls(
            tuple((r, modalities[r]) for r in ROLES),
            tuple((r, layers.get(r)) for r in ROLES),
            sizes,
        )

    def _mod(self, role: str) -> str:
        return dict(self.modalities)[role]

    def _layer(self, role: str) -> str | None:
        return dict(self.layers)[role]

    @property
    def modality_sizes(self) -> list[int] | None:
        """Number of genes and of proteins, as the module sees them."""
        return None if self.sizes is None else list(self.sizes)

    @property
    def location(self) -> str:
        return " and ".join(mudata_location(self._mod(r), self._layer(r)) for r in ROLES)

    def values(self, mdata, rows: np.ndarray | None = None):
        blocks = [get_data(mdata[self._mod(r)], layer=self._layer(r)) for r in ROLES]
        if rows is not None:
            blocks = [read_rows(block, rows) for block in blocks]
        return sparse.hstack([sparse.csr_matrix(b) for b in blocks], format="csr")

    def feature_names(self, manager) -> pd.Index:
        names = [_registered_names(manager, k) for k in (GDE_KEYS.X_KEY, GDE_KEYS.PROTEIN_KEY)]
        return pd.Index(np.concatenate(names).astype(str))

    def check_features(self, mdata, manager) -> None:
        for role, key in zip(ROLES, (GDE_KEYS.X_KEY, GDE_KEYS.PROTEIN_KEY), strict=True):
            mod = self._mod(role)
            if mod not in mdata.mod:
                raise KeyError(f"The MuData has no modality '{mod}' (the model's {role}).")
            trained = pd.Index(_registered_names(manager, key))
            if not mdata[mod].var_names.equals(trained):
                raise ValueError(
                    f"mdata['{mod}'] has other features than the {len(trained)} the model "
                    f"was trained on; subset and order them as `model.adata['{mod}']`."
                )

    def as_output(self, adata: AnnData):
        """Split generated genes and proteins into a MuData with the model's modalities."""
        import mudata

        n_genes = self.sizes[0]
        parts = {
            self._mod("rna_layer"): adata[:, :n_genes].copy(),
            self._mod("protein_layer"): adata[:, n_genes:].copy(),
        }
        with warnings.catch_warnings():  # mudata < 0.4 announces a change of defaults
            warnings.simplefilter("ignore", FutureWarning)
            mdata = mudata.MuData(parts)
        mdata.obs = adata.obs.copy()
        return mdata


DataSource = LayerSource | ObsmSource | MuDataSource


def mudata_location(modality: str, layer: str | None) -> str:
    """Human-readable location of a modality's values."""
    return f"mdata['{modality}']" + (".X" if layer is None else f".layers['{layer}']")


def data_source(setup_args: dict, manager=None) -> DataSource:
    """The source a model was registered on, from its setup arguments."""
    modalities = setup_args.get("modalities")
    if modalities is not None:
        return MuDataSource.from_args(modalities, setup_args, manager)
    if setup_args.get("obsm_key") is not None:
        return ObsmSource(obsm_key=setup_args["obsm_key"])
    return LayerSource(layer=setup_args.get("layer"))
