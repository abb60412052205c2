"""Counterfactual cells: the cells of one set, decoded under other set embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse

from gde._anndata_utils import group_cells_by_set, to_dense
from gde._constants import GDE_KEYS

from ._generation import _seeded


class CounterfactualMixin:
    """``counterfactual`` for :class:`gde.GDEModel` with the conditional VAE decoder."""

    def counterfactual(
        self,
        embeddings: pd.DataFrame,
        source: str,
        *,
        adata: AnnData | None = None,
        n_samples: int = 1,
        seed: int | None = None,
        batch_size: int = 4096,
    ) -> AnnData:
        """Decode the cells of one set under other set embeddings: counterfactual cells.

        Each cell of ``source`` keeps its own per-cell latent (what it is within its set:
        its state, its place in the set's distribution), its library size, batch and
        covariates; only the set embedding is swapped for each of ``embeddings``. This is
        how scGen and CPA answer "what would my control cells look like under this
        perturbation", with the set embedding as the perturbation: pass the control set
        and the embeddings of :func:`gde.tl.predict_perturbation_embeddings`. The cells
        inherit the real cells' heterogeneity, which :meth:`sample` has to draw from the
        prior. With count data the per-cell latent carries a cell's state; with a
        Gaussian likelihood on continuous features it may carry little (the decoder's
        variance can absorb the spread within a set), and the cells then mostly follow
        the target set.

        Parameters
        ----------
        embeddings
            Embeddings to decode under, one row each (the index names them), as
            :meth:`get_distribution_embeddings` or
            :func:`gde.tl.predict_perturbation_embeddings` return them.
        source
            The set whose cells are moved (a value of the model's ``set_key``).
        adata
            AnnData holding ``source``; the training data by default.
        n_samples
            Draws of each source cell under each embedding. Several draws give more
            cells from a small source set and a mean expression with less sampling noise
            (average the draws); the draws of one cell share its latent and library, so
            keep one draw per cell where cells are compared as a sample (e.g. distances
            between distributions).
        seed
            Seed of the decoder's draws (the global random state is left untouched).
        batch_size
            Cells decoded at once.

        Returns
        -------
        AnnData with ``len(source's cells) × n_samples × len(embeddings)`` cells,
        embedding by embedding, then draw by draw: counts (sparse) for count models;
        ``obs`` has the set column (named as at setup) with the embedding's name,
        ``source_cell``, the real cell each one comes from, ``draw`` (0 to
        ``n_samples - 1``) and, with several batches, the batch column (the source
        cell's batch).
        """
        self._require_trained()
        if not hasattr(self.module, "counterfactual"):
            raise TypeError(
                "counterfactual needs per-cell latents, which the diffusion decoder does not "
                "have; train a GDEModel with decoder='cvae' (the default)."
            )
        if not isinstance(embeddings, pd.DataFrame):
            raise TypeError("embeddings must be a DataFrame, one named row per embedding.")
        names, z = self._embedding_rows(embeddings)
        if (
            not isinstance(n_samples, int | np.integer)
            or isinstance(n_samples, bool)
            or n_samples < 1
        ):
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        adata = self.adata if adata is None else adata
        z_source = self.get_distribution_embeddings(adata, sets=[source], key_added=None)
        cells = group_cells_by_set(adata.obs[self.set_key])[str(source)]
        manager = self.get_anndata_manager(adata, required=True)
        x = self._source.values(adata, rows=cells)
        covariates = {
            key: np.asarray(manager.get_from_registry(key))[cells]
            for key in (GDE_KEYS.BATCH_KEY, GDE_KEYS.CAT_COVS_KEY, GDE_KEYS.CONT_COVS_KEY)
            if key in manager.data_registry
        }
        blocks = self._counterfactual_blocks(
            x, z_source.to_numpy()[0], z, covariates, n_samples, seed, batch_size
        )
        per_target, n_out = len(cells) * n_samples, len(cells) * n_samples * len(names)
        obs = pd.DataFrame(
            {
                self.set_key: pd.Categorical(np.repeat(names, per_target), categories=names),
                "source_cell": np.tile(adata.obs_names[cells].astype(str), n_samples * len(names)),
                "draw": np.tile(np.repeat(np.arange(n_samples), len(cells)), len(names)),
            },
            index=[f"cf_{i}" for i in range(n_out)],
        )
        if GDE_KEYS.BATCH_KEY in covariates:  # each cell stays in its own batch
            codes = np.tile(covariates[GDE_KEYS.BATCH_KEY].ravel(), n_samples * len(names))
            obs = self._with_batch_column(obs, codes)
        return self._generated_adata(blocks, obs)

    def _counterfactual_blocks(self, x, z_source, z, covariates, n_samples, seed, batch_size):
        """Decoded cells, embedding by embedding, draw by draw, in chunks of source cells."""
        module = self.module
        module.eval()
        dtypes = {GDE_KEYS.CONT_COVS_KEY: torch.float32}
        per_target = []
        with _seeded(seed, module.device):
            for target in np.repeat(z, n_samples, axis=0):
                chunks = []
                for start in range(0, x.shape[0], batch_size):
                    rows = slice(start, start + batch_size)
                    cov = {
                        k: torch.as_tensor(v[rows], dtype=dtypes.get(k, torch.long))
                        for k, v in covariates.items()
                    }
                    out = module.counterfactual(
                        torch.as_tensor(to_dense(x[rows]), dtype=torch.float32),
                        torch.as_tensor(z_source),
                        torch.as_tensor(target[None]),
                        cov.get(GDE_KEYS.BATCH_KEY),
                        cov.get(GDE_KEYS.CAT_COVS_KEY),
                        cov.get(GDE_KEYS.CONT_COVS_KEY),
                    )
                    chunks.append(out.cpu().numpy().astype(np.float32))
                per_target.append(np.vstack(chunks))
        x_out = np.vstack(per_target)
        return sparse.csr_matrix(x_out) if module.data_kind == "counts" else x_out
