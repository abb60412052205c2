"""Set-level outputs of a trained model: one AnnData row per set, set × set distances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import set_level_obs
from gde.metrics import pairwise_distances


class SetAnalysisMixin:
    """Set-level AnnData and distance table for :class:`gde.GDEModel`."""

    def get_distribution_distances(
        self,
        adata: AnnData | None = None,
        sets: Sequence[str] | None = None,
        metric: str = "euclidean",
        batch_size: int = 8192,
    ) -> pd.DataFrame:
        """Set × set distances between the sets' embeddings.

        Latent Euclidean distances approximate the 2-Wasserstein distances between the
        sets' cell distributions (closely so when the model was trained with
        ``w2_weight > 0``).

        Parameters
        ----------
        adata
            AnnData holding the sets; the training data by default.
        sets
            Sets to compare; all sets by default.
        metric
            Any metric of :func:`scipy.spatial.distance.pdist`.
        batch_size
            Cells per chunk when embedding.

        Returns
        -------
        Square DataFrame indexed and labelled by set name.
        """
        emb = self.get_distribution_embeddings(
            adata, sets=sets, key_added=None, batch_size=batch_size
        )
        return _distance_table(emb, metric)

    def get_set_adata(
        self,
        adata: AnnData | None = None,
        key_added: str = "X_gde",
        sets: Sequence[str] | None = None,
        metric: str = "euclidean",
        batch_size: int = 8192,
    ) -> AnnData:
        """One AnnData row per set, ready for scanpy.

        ``adata`` itself is not changed. The result works directly with
        ``sc.pp.neighbors(sets, use_rep=key_added)``, ``sc.tl.umap``, ``sc.tl.leiden`` and
        ``sc.pl.umap(sets, color=...)``, and with :mod:`gde.pl`.

        Parameters
        ----------
        adata
            AnnData holding the sets; the training data by default.
        key_added
            Name of the embedding in the result: ``obsm[key_added]``,
            ``obsp[f"{key_added}_distances"]`` and ``uns[key_added]``.
        sets
            Sets to include; all sets by default.
        metric
            Metric of the set × set distances (see :func:`scipy.spatial.distance.pdist`).
        batch_size
            Cells per chunk when embedding.

        Returns
        -------
        AnnData with one observation per set (``obs_names``: set names) and

        - ``X`` and ``obsm[key_added]``: the embedding (``var_names`` ``gde_0``, ...);
        - ``obs["n_cells"]``: cells per set, and every ``obs`` column of the cells that is
          constant within each set (donor, condition, batch, time point, ...);
        - ``obsp[f"{key_added}_distances"]``: set × set latent distances;
        - ``uns[key_added]["params"]``: the settings used.
        """
        src = self.adata if adata is None else adata
        emb = self.get_distribution_embeddings(
            src, sets=sets, key_added=None, batch_size=batch_size
        )
        obs_cols = [c for c in src.obs.columns if not str(c).startswith("_scvi_")]
        obs = set_level_obs(src.obs[obs_cols], self.set_key, sets=emb.index)
        z = emb.to_numpy(dtype=np.float32)
        out = AnnData(X=z.copy(), obs=obs, var=pd.DataFrame(index=emb.columns.astype(str)))
        out.obsm[key_added] = z
        out.obsp[f"{key_added}_distances"] = _distance_table(emb, metric).to_numpy()
        out.uns[key_added] = {
            "params": {
                "set_key": self.set_key,
                "model": type(self).__name__,
                "n_latent": int(z.shape[1]),
                "metric": metric,
            }
        }
        return out


def _distance_table(emb: pd.DataFrame, metric: str) -> pd.DataFrame:
    d = pairwise_distances(emb, metric=metric)
    return pd.DataFrame(d, index=emb.index, columns=emb.index)
