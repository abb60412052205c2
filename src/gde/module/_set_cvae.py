"""Set encoder + conditional VAE (count or Gaussian likelihood)."""

from __future__ import annotations

from typing import Literal

import torch
from scvi.module.base import LossOutput, auto_move_data
from torch.distributions import Distribution

from gde._constants import GDE_KEYS
from gde.nn import COUNT_LIKELIHOODS, SetMixturePrior, mmd_to_standard_normal

from ._cells import CellModelBase

Likelihood = Literal["nb", "zinb", "poisson", "normal"]


class SetCVAE(CellModelBase):
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
    likelihood
        ``"nb"``, ``"zinb"``, ``"poisson"`` (counts) or ``"normal"`` (continuous data).
    n_latent_cell
        Dimension of the per-cell latent ``u``.
    prior
        Prior of the per-cell latent ``u``: ``"normal"`` (standard normal) or
        ``"mixture"`` (:class:`gde.nn.SetMixturePrior`: shared Gaussian components whose
        weights depend on the set embedding, so the embedding carries the set's
        composition).
    n_prior_components
        Components of the mixture prior.
    aggregate_weight
        Weight of the aggregate-posterior term: the squared MMD between each set's
        per-cell latents and the prior ``N(0, I)`` (a closed-form MMD with Gaussian kernels),
        averaged over the minibatch's sets. It keeps the set-level distribution of ``u``
        the same for every set, so that what differs between sets (their composition)
        has to be carried by the set embedding. ``0`` disables it.
    **kwargs
        The cell encoder and decoder (``n_hidden``, ``n_layers``, ``dispersion``,
        ``dropout_rate``, ``batch_offset_init``, ``log_theta_init``; see
        :class:`~gde.module._cells.CellModelBase`), and the set encoder, covariates, input
        statistics and W2-matching term (``n_batch``, ``n_latent``, ``n_set_hidden``,
        ``pooling``, ``n_cats_per_cov``, ``encode_covariates``, ``w2_weight``, ...; see
        :class:`gde.module.SetModuleBase`). With ``encode_covariates``, batch and
        covariates also enter the cell encoder; they always condition the decoder.
    """

    def __init__(
        self,
        n_input: int,
        *,
        likelihood: Likelihood = "nb",
        n_latent_cell: int = 10,
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
        if aggregate_weight < 0:
            raise ValueError(f"aggregate_weight must be >= 0, got {aggregate_weight}.")
        super().__init__(n_input, likelihood=likelihood, n_latent_cell=n_latent_cell, **kwargs)
        self.aggregate_weight = aggregate_weight
        self.prior = (
            SetMixturePrior(self.n_latent, n_latent_cell, n_prior_components, self.n_hidden)
            if prior == "mixture"
            else None
        )
        # the cell encoder and the decoder also take the set embedding
        self._build_cells(n_condition=self.n_latent)

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
        return self.encode_cells(out, x, condition=out["z_cells"])

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
        px = self.cell_likelihood(torch.cat([u, z_cells], dim=-1), library, cats, cont)
        return {"px": px, "pu": self.cell_prior(u, z_cells)}

    def cell_prior(self, u: torch.Tensor, z_cells: torch.Tensor | None = None) -> Distribution:
        """Prior of the per-cell latents given their sets' embeddings."""
        if self.prior is None:
            return super().cell_prior(u)
        return self.prior(z_cells)

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """Negative ELBO per cell: reconstruction plus weighted KL of ``u``."""
        reconstruction = self.reconstruction_loss(tensors, inference_outputs, generative_outputs)
        kl_u = self.cell_kl(inference_outputs, generative_outputs)
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

    @torch.inference_mode()
    def counterfactual(
        self,
        x: torch.Tensor,
        z_source: torch.Tensor,
        z_target: torch.Tensor,
        batch_index: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cells of one set decoded under other set embeddings (counterfactual cells).

        Each cell keeps its own latent ``u`` (the mean of ``q(u | x, z_source)``), its
        library size and its covariates; only the set embedding changes, to each row of
        ``z_target`` in turn.

        Parameters
        ----------
        x
            The cells, ``(n_cells, n_features)``, on the data's scale.
        z_source
            The embedding of the set they come from, ``(n_latent,)``.
        z_target
            Embeddings to decode them under, ``(n_targets, n_latent)``.
        batch_index, cat_covs, cont_covs
            The cells' batch ``(n_cells, 1)`` and covariates ``(n_cells, k)``.

        Returns
        -------
        ``(n_targets * n_cells, n_features)`` on the data's scale, target by target.
        """
        n = x.shape[0]
        z_cells, batch_index, cats, cont = self._generation_inputs(
            z_source.reshape(1, -1), n, batch_index, cat_covs, cont_covs
        )
        x = x.to(self.device)
        out = {"x_in": self.transform(x, batch_index), "cats": cats, "cont": cont}
        out = self.encode_cells(out, x, condition=z_cells)
        u = out["qu"].loc
        library = out["library"] if self.data_kind == "counts" else None
        cells = [
            self.decode_sample(
                torch.cat([u, z.to(u.device).expand(n, -1)], dim=-1),
                batch_index,
                library,
                cats,
                cont,
            )
            for z in z_target
        ]
        return torch.cat(cells)

    def _draw_decoder_input(
        self, z_cells: torch.Tensor, cats: list[torch.Tensor], cont: torch.Tensor | None, **kwargs
    ) -> torch.Tensor:
        """Per-cell latents from the prior, with their set embeddings (``kwargs`` ignored)."""
        if self.prior is None:
            u = torch.randn(z_cells.shape[0], self.n_latent_cell, device=z_cells.device)
        else:
            u = self.prior(z_cells).sample()
        return torch.cat([u, z_cells], dim=-1)
