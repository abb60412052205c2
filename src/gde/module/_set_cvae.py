"""Set encoder + conditional VAE with a count likelihood."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from scvi.nn import Encoder
from torch.distributions import Normal, kl_divergence

from gde._constants import GDE_KEYS
from gde.nn import CountDecoder, SetEncoder
from gde.nn._count_decoder import CountLikelihood, Dispersion
from gde.nn._pooling import Pooling

InputTransform = Literal["log1p_cp10k", "log1p"]

ChunkIter = Callable[[], Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]]


class SetCVAE(BaseModuleClass):
    """Generative distribution embedding of sets of cells with a count CVAE decoder.

    A set encoder maps the cells of a set to one vector ``z_set``. Each cell then has its
    own latent ``u ~ q(u | x, z_set)`` with a standard-normal prior, and the decoder models
    ``p(x | u, z_set, batch, covariates)`` with a negative-binomial, zero-inflated NB or
    Poisson likelihood whose mean scales with the cell's observed library size (as in
    scVI). Encoder and decoder train end to end on the evidence lower bound.

    Tensors in training carry a set axis: counts are ``(n_sets, set_size, n_genes)`` and
    per-cell covariates ``(n_sets, set_size, k)``.

    Parameters
    ----------
    n_input
        Number of genes.
    n_batch
        Number of batches (1 if none).
    n_latent
        Dimension of the set embedding.
    n_latent_cell
        Dimension of the per-cell latent ``u``.
    n_hidden, n_layers
        Size of the cell encoder and the decoder.
    n_set_hidden, n_set_blocks, pooling
        Size, depth and pooling of the set encoder (see :class:`gde.nn.SetEncoder`).
    likelihood
        ``"nb"``, ``"zinb"`` or ``"poisson"``.
    dispersion
        ``"gene"``, ``"gene-batch"`` or ``"gene-cell"``.
    n_continuous_cov
        Number of continuous covariates (given to the decoder).
    n_cats_per_cov
        Number of categories of each extra categorical covariate (given to the decoder).
    encode_covariates
        Also give batch and covariates to the set encoder and the cell encoder.
    dropout_rate
        Dropout in the cell encoder.
    input_transform
        Transform of counts before the encoders: ``"log1p_cp10k"`` (log1p of counts per
        10,000) or ``"log1p"``.
    set_kl_weight
        If positive, the set embedding is a Gaussian posterior ``q(z_set | set)`` with a
        standard-normal prior, its KL weighted by this factor (per set, shared by its
        cells); the embedding reported is the posterior mean. ``0``: a point embedding.
    correct_encoder_input
        Divide out the decoder's per-batch gene fold changes before encoding.
    library_log_means, library_log_vars
        Per-batch mean and variance of the log library size, ``(n_batch,)``, used to draw
        library sizes when generating cells.
    batch_offset_init
        Initial per-batch gene log fold changes of the decoder, ``(n_batch, n_genes)``.
    """

    def __init__(
        self,
        n_input: int,
        n_batch: int = 1,
        n_latent: int = 64,
        n_latent_cell: int = 10,
        n_hidden: int = 128,
        n_layers: int = 1,
        n_set_hidden: int = 128,
        n_set_blocks: int = 2,
        pooling: Pooling = "mean",
        likelihood: CountLikelihood = "nb",
        dispersion: Dispersion = "gene",
        n_continuous_cov: int = 0,
        n_cats_per_cov: Sequence[int] | None = None,
        encode_covariates: bool = False,
        dropout_rate: float = 0.1,
        input_transform: InputTransform = "log1p_cp10k",
        set_kl_weight: float = 0.0,
        correct_encoder_input: bool = True,
        library_log_means: np.ndarray | None = None,
        library_log_vars: np.ndarray | None = None,
        batch_offset_init: np.ndarray | None = None,
    ):
        super().__init__()
        if input_transform not in ("log1p_cp10k", "log1p"):
            raise ValueError(
                f"input_transform must be 'log1p_cp10k' or 'log1p', got {input_transform!r}."
            )
        self.n_input = n_input
        self.n_batch = n_batch
        self.n_latent = n_latent
        self.n_latent_cell = n_latent_cell
        self.likelihood = likelihood
        self.input_transform = input_transform
        self.encode_covariates = encode_covariates
        self.n_continuous_cov = n_continuous_cov
        self.set_kl_weight = set_kl_weight
        self.correct_encoder_input = correct_encoder_input
        self.variational_set = set_kl_weight > 0
        cat_list = [n_batch, *(n_cats_per_cov or [])]
        encoder_cats = cat_list if encode_covariates else []
        encoder_cont = n_continuous_cov if encode_covariates else 0
        self.set_encoder = SetEncoder(
            n_input,
            2 * n_latent if self.variational_set else n_latent,
            n_hidden=n_set_hidden,
            n_blocks=n_set_blocks,
            pooling=pooling,
            n_cat_list=encoder_cats,
            n_cont=encoder_cont,
        )
        self.cell_encoder = Encoder(
            n_input + n_latent + encoder_cont,
            n_latent_cell,
            n_cat_list=encoder_cats,
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=dropout_rate,
            return_dist=True,
            use_batch_norm=False,
            use_layer_norm=True,
        )
        self.decoder = CountDecoder(
            n_latent_cell + n_latent,
            n_input,
            likelihood=likelihood,
            dispersion=dispersion,
            n_batch=n_batch,
            n_cat_list=cat_list,
            n_cont=n_continuous_cov,
            n_layers=n_layers,
            n_hidden=n_hidden,
        )
        if batch_offset_init is not None and self.decoder.batch_offset is not None:
            with torch.no_grad():
                self.decoder.batch_offset.copy_(torch.as_tensor(batch_offset_init))
        means = np.zeros(n_batch) if library_log_means is None else library_log_means
        log_vars = np.ones(n_batch) if library_log_vars is None else library_log_vars
        self.register_buffer("library_log_means", torch.as_tensor(means).float().reshape(-1))
        self.register_buffer("library_log_vars", torch.as_tensor(log_vars).float().reshape(-1))

    # ----------------------------------------------------------------- helpers
    def transform(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Counts to encoder input (``log1p`` of counts per 10k by default).

        With several batches, the decoder's per-batch gene fold changes are divided out
        first (without gradient), so the encoders see batch-corrected expression.
        """
        offset = self.decoder.batch_offset
        if offset is not None and self.correct_encoder_input:
            # (n_batch, n_genes)[batch codes] -> (..., n_genes)
            fold = torch.exp(-offset.detach())[batch_index.squeeze(-1).long()]
            x = x * fold
        if self.input_transform == "log1p_cp10k":
            library = x.sum(-1, keepdim=True).clamp_min(1e-8)
            return torch.log1p(x / library * 1e4)
        return torch.log1p(x)

    @staticmethod
    def _split_cats(
        batch_index: torch.Tensor, cat_covs: torch.Tensor | None
    ) -> list[torch.Tensor]:
        # (..., k) -> k tensors of shape (..., 1)
        cats = [batch_index]
        if cat_covs is not None:
            cats += list(torch.split(cat_covs, 1, dim=-1))
        return [c.long() for c in cats]

    def _encoder_covariates(
        self, cats: list[torch.Tensor], cont_covs: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if not self.encode_covariates:
            return [], None
        return cats, cont_covs if self.n_continuous_cov else None

    # --------------------------------------------------------------- embedding
    @auto_move_data
    def embed(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed sets given as ``(n_sets, set_size, n_genes)`` counts."""
        cats, cont = self._encoder_covariates(self._split_cats(batch_index, cat_covs), cont_covs)
        return self.set_encoder(self.transform(x, batch_index), cats, cont)[..., : self.n_latent]

    @torch.no_grad()
    def embed_chunked(self, chunks: ChunkIter, n_sets: int) -> torch.Tensor:
        """Embed sets of any size from chunks of cells, in bounded memory.

        Parameters
        ----------
        chunks
            Called once per pass over the data; yields ``(tensors, set_index)`` with
            registry tensors of shape ``(n, ...)`` and ``set_index`` of shape ``(n,)``.
        n_sets
            Number of sets.
        """
        device = self.device

        def encoder_chunks():
            for tensors, set_index in chunks():
                x = tensors[GDE_KEYS.X_KEY].to(device)
                batch_index = tensors[GDE_KEYS.BATCH_KEY].to(device)
                cats = self._split_cats(
                    batch_index,
                    _maybe_to(tensors.get(GDE_KEYS.CAT_COVS_KEY), device),
                )
                cats, cont = self._encoder_covariates(
                    cats, _maybe_to(tensors.get(GDE_KEYS.CONT_COVS_KEY), device)
                )
                yield self.transform(x, batch_index), set_index.to(device), cats, cont

        return self.set_encoder.forward_chunked(encoder_chunks, n_sets)[..., : self.n_latent]

    # ---------------------------------------------------- inference/generative
    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict:
        return {
            "x": tensors[GDE_KEYS.X_KEY],
            "batch_index": tensors[GDE_KEYS.BATCH_KEY],
            "cat_covs": tensors.get(GDE_KEYS.CAT_COVS_KEY),
            "cont_covs": tensors.get(GDE_KEYS.CONT_COVS_KEY),
        }

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Encode sets, then each cell given its set's embedding.

        ``x`` is ``(n_sets, set_size, n_genes)``; per-cell outputs are flattened to
        ``(n_sets * set_size, ...)``.
        """
        if x.dim() != 3:
            raise ValueError(
                f"SetCVAE expects counts shaped (n_sets, set_size, n_genes), got {tuple(x.shape)}."
            )
        n_sets, set_size, n_genes = x.shape
        x_in = self.transform(x, batch_index)
        cats, cont = self._encoder_covariates(self._split_cats(batch_index, cat_covs), cont_covs)
        out = {}
        z_set = self.set_encoder(x_in, cats, cont)
        if self.variational_set:
            mean, log_var = z_set.split(self.n_latent, dim=-1)
            q_set = Normal(mean, torch.exp(0.5 * log_var.clamp(-12, 8)))
            z_set = q_set.rsample() if self.training else mean
            out["q_set"] = q_set
        # (n_sets, n_latent) -> (n_sets * set_size, n_latent)
        z_cells = z_set.unsqueeze(1).expand(n_sets, set_size, -1).reshape(-1, self.n_latent)
        # (n_sets, set_size, n_genes) -> (n_sets * set_size, n_genes)
        encoder_in = [x_in.reshape(-1, n_genes), z_cells]
        if cont is not None:
            encoder_in.append(cont.reshape(n_sets * set_size, -1))
        flat_cats = [c.reshape(-1, 1) for c in cats]
        qu, u = self.cell_encoder(torch.cat(encoder_in, dim=-1), *flat_cats)
        library = torch.log(x.sum(-1).reshape(-1, 1).clamp_min(1.0))
        out.update({"z_set": z_set, "z_cells": z_cells, "qu": qu, "u": u, "library": library})
        return out

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict[str, torch.Tensor]
    ) -> dict:
        return {
            "u": inference_outputs["u"],
            "z_cells": inference_outputs["z_cells"],
            "library": inference_outputs["library"],
            "batch_index": tensors[GDE_KEYS.BATCH_KEY],
            "cat_covs": tensors.get(GDE_KEYS.CAT_COVS_KEY),
            "cont_covs": tensors.get(GDE_KEYS.CONT_COVS_KEY),
        }

    @auto_move_data
    def generative(
        self,
        u: torch.Tensor,
        z_cells: torch.Tensor,
        library: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> dict:
        """Count distribution of each cell given ``u``, its set's embedding and covariates."""
        n = u.shape[0]
        # (..., 1) -> (n_cells, 1) per covariate
        cats = [c.reshape(n, 1) for c in self._split_cats(batch_index, cat_covs)]
        cont = cont_covs.reshape(n, -1) if self.n_continuous_cov else None
        px = self.decoder(torch.cat([u, z_cells], dim=-1), library, *cats, cont=cont)
        pu = Normal(torch.zeros_like(u), torch.ones_like(u))
        return {"px": px, "pu": pu}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """Negative ELBO per cell: reconstruction plus weighted KL of ``u``."""
        x = tensors[GDE_KEYS.X_KEY]
        # (n_sets, set_size, n_genes) -> (n_cells, n_genes)
        x = x.reshape(-1, x.shape[-1])
        reconstruction = -generative_outputs["px"].log_prob(x).sum(-1)
        kl_u = kl_divergence(inference_outputs["qu"], generative_outputs["pu"]).sum(-1)
        loss = torch.mean(reconstruction + kl_weight * kl_u)
        extra = {}
        if self.variational_set:
            q_set = inference_outputs["q_set"]
            kl_set = kl_divergence(q_set, Normal(0.0, 1.0)).sum(-1)  # (n_sets,)
            # the set's KL is shared by its cells: per cell, divide by the set size
            set_size = tensors[GDE_KEYS.X_KEY].shape[1]
            loss = loss + self.set_kl_weight * kl_weight * kl_set.mean() / set_size
            extra["kl_set"] = kl_set.mean().detach()
        return LossOutput(
            loss=loss, reconstruction_loss=reconstruction, kl_local=kl_u, extra_metrics=extra
        )

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1) -> torch.Tensor:
        """Posterior predictive counts for the cells in ``tensors``.

        Returns ``(n_cells, n_genes)``, or ``(n_samples, n_cells, n_genes)`` if
        ``n_samples > 1``.
        """
        _, generative_outputs = self.forward(tensors, compute_loss=False)
        counts = generative_outputs["px"].sample((n_samples,))
        return counts[0] if n_samples == 1 else counts

    @torch.no_grad()
    def generate(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate counts of ``n_cells`` new cells for each embedding in ``z_set``.

        Parameters
        ----------
        z_set
            Set embeddings, ``(n_sets, n_latent)``.
        n_cells
            Cells per set.
        batch_index
            Batch of each generated cell, ``(n_sets * n_cells, 1)``; batch 0 by default.
        library
            Log library size of each cell, ``(n_sets * n_cells, 1)``; drawn from the
            batch's log-normal library distribution by default.
        cat_covs, cont_covs
            Covariates of each generated cell, ``(n_sets * n_cells, k)``.

        Returns
        -------
        Counts, ``(n_sets * n_cells, n_genes)``, set by set.
        """
        device = self.device
        z_set = z_set.to(device)
        n = z_set.shape[0] * n_cells
        if batch_index is None:
            batch_index = torch.zeros(n, 1, dtype=torch.long, device=device)
        batch_index = batch_index.to(device).reshape(n, 1)
        if library is None:
            b = batch_index.squeeze(-1)
            mean = self.library_log_means[b]
            std = self.library_log_vars[b].sqrt()
            library = Normal(mean, std).sample().reshape(n, 1)
        # (n_sets, n_latent) -> (n_sets * n_cells, n_latent)
        z_cells = z_set.repeat_interleave(n_cells, dim=0)
        u = torch.randn(n, self.n_latent_cell, device=device)
        outputs = self.generative(
            u,
            z_cells,
            library.to(device),
            batch_index,
            _maybe_to(cat_covs, device),
            _maybe_to(cont_covs, device),
        )
        return outputs["px"].sample()


def _maybe_to(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device)
