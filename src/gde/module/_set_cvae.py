"""Set encoder + conditional VAE (count or Gaussian likelihood)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scvi.module.base import LossOutput, auto_move_data
from scvi.nn import Encoder
from torch.distributions import Distribution, Normal, kl_divergence

from gde._constants import GDE_KEYS
from gde.nn import NormalDecoder, SetMixturePrior
from gde.nn._count_decoder import COUNT_LIKELIHOODS, Dispersion
from gde.nn._pooling import Pooling
from gde.nn._prior import mmd_to_standard_normal

from ._base import InputTransform, SetModuleBase

Likelihood = Literal["nb", "zinb", "poisson", "normal"]


class SetCVAE(SetModuleBase):
    """Generative distribution embedding of sets of cells with a conditional VAE decoder.

    A set encoder maps the cells of a set to one vector ``z_set``. Each cell then has its
    own latent ``u ~ q(u | x, z_set)`` with a standard-normal prior, and the decoder models
    ``p(x | u, z_set, batch, covariates)``: negative binomial, zero-inflated NB or Poisson
    for counts, with a mean that scales with the cell's observed library size (as in
    scVI), or Gaussian for continuous features. Encoder and decoder train end to end on
    the evidence lower bound.

    Tensors in training carry a set axis: data are ``(n_sets, set_size, n_features)`` and
    per-cell covariates ``(n_sets, set_size, k)``.

    Parameters
    ----------
    n_input
        Number of features (genes).
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
        ``"nb"``, ``"zinb"``, ``"poisson"`` (counts) or ``"normal"`` (continuous data).
    dispersion
        NB dispersion: ``"gene"``, ``"gene-batch"`` or ``"gene-cell"``.
    n_continuous_cov
        Number of continuous covariates (given to the decoder).
    n_cats_per_cov
        Number of categories of each extra categorical covariate (given to the decoder).
    encode_covariates
        Also give batch and covariates to the set encoder and the cell encoder.
    dropout_rate
        Dropout in the cell encoder.
    batch_offset_init
        Initial per-batch gene log fold changes of the count decoder,
        ``(n_batch, n_genes)``.
    prior
        Prior of the per-cell latent ``u``: ``"normal"`` (standard normal) or
        ``"mixture"`` (:class:`gde.nn.SetMixturePrior`: shared Gaussian components whose
        weights depend on the set embedding, so the embedding carries the set's
        composition).
    n_prior_components
        Components of the mixture prior.
    aggregate_weight
        Weight of the aggregate-posterior term: the squared MMD between each set's
        per-cell latents and the prior ``N(0, I)`` (:func:`gde.nn.mmd_to_standard_normal`),
        averaged over the minibatch's sets. It keeps the set-level distribution of ``u``
        the same for every set, so that what differs between sets (their composition)
        has to be carried by the set embedding. ``0`` disables it.
    **kwargs
        Passed to :class:`gde.module.SetModuleBase` (input transform, variational set
        embedding, feature statistics, library-size statistics).
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
        likelihood: Likelihood = "nb",
        dispersion: Dispersion = "gene",
        n_continuous_cov: int = 0,
        n_cats_per_cov: Sequence[int] | None = None,
        encode_covariates: bool = False,
        dropout_rate: float = 0.1,
        input_transform: InputTransform = "log1p_cp10k",
        batch_offset_init: np.ndarray | None = None,
        prior: Literal["normal", "mixture"] = "normal",
        n_prior_components: int = 16,
        aggregate_weight: float = 0.0,
        **kwargs,
    ):
        if prior not in ("normal", "mixture"):
            raise ValueError(f"prior must be 'normal' or 'mixture', got {prior!r}.")
        if likelihood not in (*COUNT_LIKELIHOODS, "normal"):
            raise ValueError(
                f"likelihood must be one of {(*COUNT_LIKELIHOODS, 'normal')}, got {likelihood!r}."
            )
        super().__init__(
            n_input,
            n_batch=n_batch,
            n_latent=n_latent,
            data_kind="continuous" if likelihood == "normal" else "counts",
            n_set_hidden=n_set_hidden,
            n_set_blocks=n_set_blocks,
            pooling=pooling,
            n_continuous_cov=n_continuous_cov,
            n_cats_per_cov=n_cats_per_cov,
            encode_covariates=encode_covariates,
            input_transform=input_transform,
            **kwargs,
        )
        self.likelihood = likelihood
        self.n_latent_cell = n_latent_cell
        if aggregate_weight < 0:
            raise ValueError(f"aggregate_weight must be >= 0, got {aggregate_weight}.")
        self.aggregate_weight = aggregate_weight
        self.prior = (
            SetMixturePrior(n_latent, n_latent_cell, n_prior_components, n_hidden)
            if prior == "mixture"
            else None
        )
        self.cell_encoder = Encoder(
            n_input + n_latent + self.encoder_cont,
            n_latent_cell,
            n_cat_list=self.encoder_cats,
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=dropout_rate,
            return_dist=True,
            use_batch_norm=False,
            use_layer_norm=True,
        )
        if likelihood == "normal":
            self.decoder = NormalDecoder(
                n_latent_cell + n_latent,
                n_input,
                n_cat_list=self.cat_list,
                n_cont=n_continuous_cov,
                n_layers=n_layers,
                n_hidden=n_hidden,
            )
        else:
            self.decoder = self.make_count_decoder(
                n_latent_cell + n_latent,
                likelihood,
                dispersion,
                n_layers,
                n_hidden,
                batch_offset_init,
            )

    def count_batch_offset(self) -> torch.Tensor | None:
        """Per-batch gene log fold changes of the count decoder."""
        return getattr(self.decoder, "batch_offset", None)

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> dict:
        """Encode sets, then each cell given its set's embedding.

        ``x`` is ``(n_sets, set_size, n_features)``; per-cell outputs are flattened to
        ``(n_sets * set_size, ...)``.
        """
        out = self._prepare(x, batch_index, cat_covs, cont_covs)
        encoder_in = [out["x_in"], out["z_cells"]]
        if self.encoder_cont:
            encoder_in.append(out["cont"])
        enc_cats = out["cats"] if self.encode_covariates else []
        qu, u = self.cell_encoder(torch.cat(encoder_in, dim=-1), *enc_cats)
        library = self.log_library(x)
        out.update({"qu": qu, "u": u, "library": library})
        return out

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
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
        """Distribution of each cell given ``u``, its set's embedding and covariates."""
        cats, cont = self._flat_covariates(u.shape[0], batch_index, cat_covs, cont_covs)
        z = torch.cat([u, z_cells], dim=-1)
        if self.likelihood == "normal":
            px = self.decoder(z, *cats, cont=cont)
        else:
            px = self.decoder(z, library, *cats, cont=cont)
        return {"px": px, "pu": self.cell_prior(u, z_cells)}

    def cell_prior(self, u: torch.Tensor, z_cells: torch.Tensor) -> Distribution:
        """Prior of the per-cell latents given their sets' embeddings."""
        if self.prior is None:
            return Normal(torch.zeros_like(u), torch.ones_like(u))
        return self.prior(z_cells)

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """Negative ELBO per cell: reconstruction plus weighted KL of ``u``."""
        if self.likelihood == "normal":
            x = inference_outputs["x_in"]  # standardised features
        else:
            x = self.input_counts(tensors)
            # (n_sets, set_size, n_genes) -> (n_cells, n_genes)
            x = x.reshape(-1, x.shape[-1])
        reconstruction = -generative_outputs["px"].log_prob(x).sum(-1)
        qu, pu = inference_outputs["qu"], generative_outputs["pu"]
        if self.prior is None:
            kl_u = kl_divergence(qu, pu).sum(-1)
        else:  # one-sample estimate: the mixture has no closed-form KL
            u = inference_outputs["u"]
            kl_u = qu.log_prob(u).sum(-1) - pu.log_prob(u)
        loss = torch.mean(reconstruction + kl_weight * kl_u)
        extra = {}
        if self.aggregate_weight > 0:
            u = inference_outputs["u"]
            # (n_sets * set_size, d) -> (n_sets, set_size, d)
            u = u.reshape(-1, inference_outputs["set_size"], u.shape[-1])
            mmd = mmd_to_standard_normal(u).mean()
            loss = loss + self.aggregate_weight * mmd
            extra["aggregate_mmd"] = mmd.detach()
        set_term, set_metrics = self.set_terms(
            inference_outputs, kl_weight, tensors.get(GDE_KEYS.W2_TARGET_KEY)
        )
        loss = loss + set_term
        extra.update(set_metrics)
        return LossOutput(
            loss=loss, reconstruction_loss=reconstruction, kl_local=kl_u, extra_metrics=extra
        )

    @torch.no_grad()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1) -> torch.Tensor:
        """Posterior predictive data for the cells in ``tensors``.

        Returns ``(n_cells, n_features)``, or ``(n_samples, n_cells, n_features)``.
        """
        _, generative_outputs = self.forward(tensors, compute_loss=False)
        draws = generative_outputs["px"].sample((n_samples,))
        if self.likelihood == "normal":
            b = tensors[GDE_KEYS.BATCH_KEY].reshape(-1, 1).to(draws.device)
            draws = torch.stack([self.to_data_scale(d, b) for d in draws])
        return draws[0] if n_samples == 1 else draws

    @torch.no_grad()
    def generate(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Generate ``n_cells`` new cells for each embedding in ``z_set``.

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
            batch's log-normal library distribution by default (counts only).
        cat_covs, cont_covs
            Covariates of each generated cell, ``(n_sets * n_cells, k)``.
        **kwargs
            Ignored (sampler options of diffusion modules).

        Returns
        -------
        Counts or features on the data's scale, ``(n_sets * n_cells, n_features)``, set by
        set.
        """
        z_cells, batch_index, cats, cont = self._generation_inputs(
            z_set, n_cells, batch_index, cat_covs, cont_covs
        )
        if self.prior is None:
            u = torch.randn(z_cells.shape[0], self.n_latent_cell, device=z_cells.device)
        else:
            u = self.prior(z_cells).sample()
        z = torch.cat([u, z_cells], dim=-1)
        if self.likelihood == "normal":
            return self.to_data_scale(self.decoder(z, *cats, cont=cont).sample(), batch_index)
        if library is None:
            library = self.draw_library(batch_index)
        return self.decoder(z, library.to(z.device), *cats, cont=cont).sample()
