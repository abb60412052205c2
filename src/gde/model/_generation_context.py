"""Where generated cells live: the batch, covariates and library sizes they take."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from gde._anndata_utils import group_cells_by_set
from gde._constants import GDE_KEYS
from gde.data import log_library_sizes


class GenerationContextMixin:
    """The context of generated elements: batch, covariates, library sizes per set."""

    def _batch_code(self, batch: str | None) -> int | None:
        if batch is None:
            return None
        mapping = list(
            self.adata_manager.get_state_registry(GDE_KEYS.BATCH_KEY).categorical_mapping
        )
        names = [str(m) for m in mapping]
        if str(batch) not in names:
            raise KeyError(f"Unknown batch {batch!r}; the model knows {names}.")
        return names.index(str(batch))

    def _set_context(self, adata: AnnData, names: Sequence[str]) -> list[dict]:
        """Batch, covariates and library sizes of the cells of each named set."""
        manager = self.get_anndata_manager(adata, required=True)
        # cell positions of each named set, in one pass over the labels
        groups = group_cells_by_set(adata.obs[self.set_key])
        batch = manager.get_from_registry(GDE_KEYS.BATCH_KEY).ravel()
        cat = (
            manager.get_from_registry(GDE_KEYS.CAT_COVS_KEY)
            if GDE_KEYS.CAT_COVS_KEY in manager.data_registry
            else None
        )
        cont = (
            manager.get_from_registry(GDE_KEYS.CONT_COVS_KEY)
            if GDE_KEYS.CONT_COVS_KEY in manager.data_registry
            else None
        )
        rows = {name: groups[name] for name in names}
        log_library = None
        if self.module.data_kind == "counts":  # library sizes of the named sets' cells only
            chosen = np.concatenate(list(rows.values()))
            source = self._source
            logs = log_library_sizes(source.values(adata, rows=chosen), source.modality_sizes)
            ends = np.cumsum([len(r) for r in rows.values()])
            log_library = dict(zip(rows, np.split(logs, ends[:-1]), strict=True))
        out = []
        for name in names:
            cells = rows[name]
            ctx = {"batch": int(np.bincount(batch[cells]).argmax())}
            if cat is not None:
                codes = np.asarray(cat)[cells]
                ctx["cat"] = np.array([np.bincount(c).argmax() for c in codes.T.astype(int)])
            if cont is not None:
                ctx["cont"] = np.asarray(cont, dtype=np.float32)[cells].mean(0)
            if log_library is not None:  # per cell and modality
                ctx["log_library"] = log_library[name]
            out.append(ctx)
        return out

    def _default_context(self, batch_code: int | None) -> dict:
        ctx = {"batch": batch_code or 0}
        manager = self.adata_manager
        if GDE_KEYS.CAT_COVS_KEY in manager.data_registry:
            ctx["cat"] = np.zeros(len(self.module.cat_list) - 1, dtype=int)
        if GDE_KEYS.CONT_COVS_KEY in manager.data_registry:
            cont = np.asarray(manager.get_from_registry(GDE_KEYS.CONT_COVS_KEY), np.float32)
            ctx["cont"] = cont.mean(0)
        return ctx
