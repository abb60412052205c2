"""AnnData field for the set column."""

from __future__ import annotations

import rich.table
from anndata import AnnData
from scvi.data.fields import CategoricalObsField

from gde._anndata_utils import check_set_column


class SetObsField(CategoricalObsField):
    """Categorical ``.obs`` field naming the set each cell belongs to.

    Unlike covariate fields, sets are not model parameters: a model trained on some sets
    embeds any other set without retraining. Transferring the field to a new AnnData
    therefore always accepts set labels the model never saw.

    Parameters
    ----------
    registry_key
        Key under which the field is registered.
    attr_key
        Column of ``adata.obs`` holding the set labels.
    """

    def validate_field(self, adata: AnnData) -> None:
        """Check that the column exists and has no missing labels."""
        check_set_column(adata, self._original_attr_key)
        super().validate_field(adata)

    def transfer_field(
        self, state_registry: dict, adata_target: AnnData, extend_categories: bool = True, **kwargs
    ) -> dict:
        """Transfer the field to ``adata_target``, adding its new sets to the mapping."""
        return super().transfer_field(
            state_registry, adata_target, extend_categories=True, **kwargs
        )

    def view_state_registry(self, state_registry: dict) -> rich.table.Table | None:
        """Summarise the set mapping (sets can number in the thousands)."""
        mapping = state_registry[self.CATEGORICAL_MAPPING_KEY]
        source_key = state_registry[self.ORIGINAL_ATTR_KEY]
        t = rich.table.Table(title=f"{self.registry_key} State Registry")
        t.add_column("Source Location", justify="center", style="dodger_blue1")
        t.add_column("Number of sets", justify="center", style="green")
        t.add_column("First sets", justify="center", style="dark_violet", overflow="fold")
        shown = ", ".join(str(s) for s in mapping[:5]) + (", ..." if len(mapping) > 5 else "")
        t.add_row(f"adata.obs['{source_key}']", str(len(mapping)), shown)
        return t
