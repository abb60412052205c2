"""Generating cells from set embeddings: sample and interpolate."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import anndata as ad
import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse

from gde._constants import GDE_KEYS

from ._generation_context import GenerationContextMixin


@contextmanager
def _seeded(seed: int | None, device: torch.device):
    """Fix torch's random state inside the block (restored afterwards) if ``seed`` is set."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class GenerationMixin(GenerationContextMixin):
    """``sample`` and ``interpolate`` for :class:`gde.GDEModel`."""

    # ---------------------------------------------------------------- helpers
    def _generate(
        self,
        z: np.ndarray,
        labels: Sequence[str],
        contexts: list[dict],
        n_cells: int,
        seed: int | None,
        batch_size: int,
        **generate_kwargs,
    ) -> AnnData:
        """Generate ``n_cells`` per embedding and assemble the AnnData."""
        self._require_trained()
        if n_cells < 1:
            raise ValueError("n_cells must be at least 1.")
        module = self.module
        module.eval()
        device = module.device
        rng = np.random.default_rng(seed)
        per_chunk = max(1, batch_size // n_cells)
        blocks = []
        with _seeded(seed, device), torch.inference_mode():
            for start in range(0, len(z), per_chunk):
                ctx = contexts[start : start + per_chunk]
                zc = torch.as_tensor(z[start : start + per_chunk], dtype=torch.float32)

                def per_cell(key, dtype, ctx=ctx):
                    return torch.as_tensor(
                        np.repeat(np.stack([c[key] for c in ctx]), n_cells, axis=0), dtype=dtype
                    )

                batch_index = per_cell("batch", torch.long).reshape(-1, 1)
                cat = per_cell("cat", torch.long) if "cat" in ctx[0] else None
                cont = per_cell("cont", torch.float32) if "cont" in ctx[0] else None
                library = None
                if "log_library" in ctx[0]:
                    library = torch.as_tensor(
                        np.concatenate(
                            [
                                c["log_library"][rng.integers(len(c["log_library"]), size=n_cells)]
                                for c in ctx
                            ]
                        ),
                        dtype=torch.float32,
                    )
                x = module.generate(
                    zc, n_cells, batch_index, library, cat, cont, **generate_kwargs
                )
                x = x.cpu().numpy().astype(np.float32)
                blocks.append(sparse.csr_matrix(x) if module.data_kind == "counts" else x)
        x = (
            sparse.vstack(blocks, format="csr")
            if module.data_kind == "counts"
            else np.vstack(blocks)
        )
        labels = [str(s) for s in labels]
        return self._generated_adata(x, self._generated_obs(labels, contexts, n_cells))

    def _generated_obs(self, labels: list[str], contexts: list[dict], n_cells: int):
        """Set (and batch) of each generated element."""
        obs = pd.DataFrame(
            {
                self.set_key: pd.Categorical(
                    np.repeat(labels, n_cells), categories=pd.unique(np.asarray(labels))
                )
            },
            index=[f"gen_{i}" for i in range(len(labels) * n_cells)],
        )
        return self._with_batch_column(obs, np.repeat([c["batch"] for c in contexts], n_cells))

    def _with_batch_column(self, obs: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
        """``obs`` with the batch of each element (column named as at setup), if several."""
        if self.module.n_batch > 1:
            mapping = self.adata_manager.get_state_registry(GDE_KEYS.BATCH_KEY)
            names = np.asarray(mapping.categorical_mapping).astype(str)
            key = self._setup_args.get("batch_key") or "batch"
            obs[key] = pd.Categorical(names[np.asarray(codes, dtype=int)], categories=names)
        return obs

    def _embedding_rows(self, embeddings) -> tuple[list[str], np.ndarray]:
        """Names and rows (float32) of embeddings to decode; refuses a wrong shape or NaN."""
        if isinstance(embeddings, pd.DataFrame):
            labels, z = [str(i) for i in embeddings.index], embeddings.to_numpy()
        else:
            z = np.asarray(embeddings)
            z = z[None] if z.ndim == 1 else z
            labels = [f"embedding_{i}" for i in range(len(z))]
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.module.n_latent:
            raise ValueError(
                f"embeddings must be shaped (n, {self.module.n_latent}), got {z.shape}."
            )
        if not np.isfinite(z).all():
            raise ValueError("embeddings contain NaN or infinite values.")
        return labels, z

    def _generated_adata(self, x, obs: pd.DataFrame) -> AnnData:
        """Generated elements (rows of ``x``) as the output object; override per modality."""
        out = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=self.feature_names))
        layer = self._setup_args.get("layer")
        if self.module.data_kind == "counts" and layer is not None:
            # where the real counts live, so comparisons can use the same scale
            out.uns["gde_sample"] = {"counts_layer": str(layer)}
        return self._source.as_output(out)

    # ------------------------------------------------------------- public API
    def sample(
        self,
        sets: Sequence[str] | None = None,
        embeddings: pd.DataFrame | np.ndarray | None = None,
        n_cells: int = 100,
        *,
        adata: AnnData | None = None,
        batch: str | None = None,
        seed: int | None = None,
        n_steps: int | None = None,
        guidance_scale: float = 1.0,
        guidance_interval: tuple[float, float] | None = None,
        batch_size: int = 16384,
    ) -> AnnData:
        """Generate new cells from sets or from arbitrary points of the embedding space.

        Parameters
        ----------
        sets
            Names of sets to generate from (embedded from all their cells); all sets of
            ``adata`` by default.
        embeddings
            Instead of ``sets``: vectors to decode, a DataFrame (its index names them) or
            an array ``(n, n_latent)``.
        n_cells
            Cells generated per set or embedding.
        adata
            AnnData holding ``sets``; the training data by default.
        batch
            Batch to generate the cells in. By default each set's most common batch (for
            ``embeddings``: the first batch).
        seed
            Seed for reproducible draws (the global random state is left untouched).
        n_steps
            Diffusion decoder only: ``None`` for ancestral sampling over all diffusion
            steps, or the number of DDIM steps (e.g. 50; much faster).
        guidance_scale
            Diffusion decoder only: classifier-free guidance scale (1: none).
        guidance_interval
            Diffusion decoder only: ``(start, end)``, guide only this part of the
            diffusion time (fractions, 0 the clean data, 1 pure noise); ``None``: all of
            it.
        batch_size
            Cells generated at once.

        Returns
        -------
        AnnData of generated cells: counts in ``X`` (sparse) for count models, features for
        continuous ones; the set column (named as at setup, e.g. ``obs['patient']``)
        names the source set or embedding, and the batch column (also named as at setup)
        the batch the cells were generated in. For counts, library sizes are drawn from
        the source set's cells (for ``embeddings``: from the batch's log-normal library
        distribution).
        """
        return self._sample(
            sets,
            embeddings,
            n_cells,
            adata,
            batch,
            seed,
            batch_size,
            self._sampler_kwargs(n_steps, guidance_scale, guidance_interval),
        )

    def _sample(
        self,
        sets: Sequence[str] | None,
        embeddings: pd.DataFrame | np.ndarray | None,
        n_cells: int,
        adata: AnnData | None,
        batch: str | None,
        seed: int | None,
        batch_size: int,
        sampler_kwargs: dict,
    ) -> AnnData:
        """:meth:`sample` with the decoder's own sampler options."""
        if sets is not None and embeddings is not None:
            raise ValueError("Pass either `sets` or `embeddings`, not both.")
        batch_code = self._batch_code(batch)
        if embeddings is None:
            src = self.adata if adata is None else adata
            emb = self.get_distribution_embeddings(src, sets=sets, key_added=None)
            labels, z = list(emb.index), emb.to_numpy()
            contexts = self._set_context(src, labels)
            if batch_code is not None:
                for c in contexts:
                    c["batch"] = batch_code
        else:
            labels, z = self._embedding_rows(embeddings)
            contexts = [self._default_context(batch_code) for _ in labels]
        return self._generate(z, labels, contexts, n_cells, seed, batch_size, **sampler_kwargs)

    def interpolate(
        self,
        set_a: str,
        set_b: str,
        n_points: int = 5,
        n_cells: int = 100,
        *,
        adata: AnnData | None = None,
        batch: str | None = None,
        seed: int | None = None,
        n_steps: int | None = None,
        guidance_scale: float = 1.0,
        guidance_interval: tuple[float, float] | None = None,
        batch_size: int = 16384,
    ) -> AnnData:
        """Generate cells along the straight line between two sets' embeddings.

        Parameters
        ----------
        set_a, set_b
            The two sets (embedded from all their cells).
        n_points
            Number of points on the line, ends included.
        n_cells
            Cells generated per point.
        adata
            AnnData holding the sets; the training data by default.
        batch
            Batch to generate in; by default ``set_a``'s most common batch.
        seed
            Seed for reproducible draws.
        n_steps, guidance_scale, guidance_interval
            Diffusion decoder only, as in :meth:`sample`: DDIM steps (``None``: ancestral
            sampling over all diffusion steps) and classifier-free guidance.
        batch_size
            Cells generated at once.

        Returns
        -------
        AnnData of generated cells with ``obs['point']`` (0 at ``set_a`` to
        ``n_points - 1`` at ``set_b``), ``obs['weight']`` (the weight of ``set_b``) and
        the set column (named as at setup) naming each point; ``uns['interpolation']``
        records the two sets. Library sizes (counts) are
        drawn from the cells of both sets.
        """
        return self._interpolate(
            set_a,
            set_b,
            n_points,
            n_cells,
            adata,
            batch,
            seed,
            batch_size,
            self._sampler_kwargs(n_steps, guidance_scale, guidance_interval),
        )

    def _interpolate(
        self,
        set_a: str,
        set_b: str,
        n_points: int,
        n_cells: int,
        adata: AnnData | None,
        batch: str | None,
        seed: int | None,
        batch_size: int,
        sampler_kwargs: dict,
    ) -> AnnData:
        """:meth:`interpolate` with the decoder's own sampler options."""
        if n_points < 2:
            raise ValueError("n_points must be at least 2 (the two ends).")
        src = self.adata if adata is None else adata
        emb = self.get_distribution_embeddings(src, sets=[set_a, set_b], key_added=None)
        z_a, z_b = emb.loc[str(set_a)].to_numpy(), emb.loc[str(set_b)].to_numpy()
        weights = np.linspace(0.0, 1.0, n_points)
        z = (1 - weights)[:, None] * z_a + weights[:, None] * z_b
        ctx_a, ctx_b = self._set_context(src, [str(set_a), str(set_b)])
        context = dict(ctx_a)
        batch_code = self._batch_code(batch)
        if batch_code is not None:
            context["batch"] = batch_code
        if "log_library" in context:
            context["log_library"] = np.concatenate(
                [ctx_a["log_library"], ctx_b["log_library"]], axis=0
            )
        labels = [f"{set_a}->{set_b} point {k}" for k in range(n_points)]
        out = self._generate(
            z, labels, [context] * n_points, n_cells, seed, batch_size, **sampler_kwargs
        )
        out.obs["point"] = np.repeat(np.arange(n_points), n_cells)
        out.uns["interpolation"] = {
            "set_a": str(set_a),
            "set_b": str(set_b),
            "set_key": self.set_key,
        }
        out.obs["weight"] = np.repeat(weights, n_cells)
        return out

    def _sampler_kwargs(
        self,
        n_steps: int | None,
        guidance_scale: float,
        guidance_interval: tuple[float, float] | None = None,
    ) -> dict:
        """The diffusion sampler's options, checked before any work.

        Refused without a diffusion decoder, or with a bad ``guidance_interval``.
        """
        if not hasattr(self.module, "noise_schedule"):
            if n_steps is not None or guidance_scale != 1.0 or guidance_interval is not None:
                raise ValueError(
                    "n_steps, guidance_scale and guidance_interval apply to decoder='ddpm' "
                    "only; this model uses the CVAE decoder."
                )
            return {}
        self.module.noise_schedule.steps_within(guidance_interval)
        return {
            "n_steps": n_steps,
            "guidance_scale": guidance_scale,
            "guidance_interval": guidance_interval,
        }
