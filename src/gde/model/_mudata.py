"""The registry fields of a MuData of RNA and surface-protein counts, checked first."""

from __future__ import annotations

from scvi.data.fields import (
    MuDataCategoricalJointObsField,
    MuDataCategoricalObsField,
    MuDataLayerField,
    MuDataNumericalJointObsField,
    MuDataWrapper,
)

from gde._anndata_utils import (
    check_counts,
    check_finite,
    check_obs_columns,
    check_set_column,
    get_data,
)
from gde._constants import GDE_KEYS
from gde.data import SetObsField, mudata_location

MuDataSetObsField = MuDataWrapper(SetObsField)


def mudata_fields(
    mdata,
    set_key: str,
    rna_layer: str | None,
    protein_layer: str | None,
    batch_key: str | None,
    categorical_covariate_keys: list[str] | None,
    continuous_covariate_keys: list[str] | None,
    modalities: dict[str, str] | None,
) -> tuple[list, dict[str, str]]:
    """Check a CITE-seq MuData and return its registry fields and modality names.

    Arguments as in :meth:`gde.GDEModel.setup_mudata`. Raises before anything is
    registered: not a MuData, a missing modality, a bad set column, counts that are not
    finite non-negative integers, or covariate columns absent from ``mdata.obs``.
    """
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
    for role, layer in (("rna_layer", rna_layer), ("protein_layer", protein_layer)):
        x = get_data(mdata[modalities[role]], layer=layer)
        where = mudata_location(modalities[role], layer)
        check_finite(x, where)
        check_counts(x, where, "nb")
    check_obs_columns(mdata, [batch_key] if batch_key else None, "batch_key")
    check_obs_columns(mdata, categorical_covariate_keys, "categorical covariate")
    check_obs_columns(mdata, continuous_covariate_keys, "continuous covariate")
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
    return fields, modalities
