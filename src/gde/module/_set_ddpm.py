"""Set encoder + diffusion decoder: on continuous features, or latent diffusion for counts."""

from __future__ import annotations

from typing import Literal

import torch
from scvi.module.base import LossOutput, auto_move_data

from gde._constants import GDE_KEYS
from gde.nn import COUNT_LIKELIHOODS, ConditionalDenoiser, NoiseSchedule, Schedule

from ._cells import CellModelBase


class SetDDPM(CellModelBase):
    """Generative distribution embedding with a diffusion model conditioned on the set.

    A set encoder maps the cells of a set to ``z_set``; a denoising diffusion model
    (DDPM, ε-prediction) learns the distribution of the set's cells conditioned on
    ``z_set`` and the cells' covariates. Set encoder and denoiser train end to end on the
    denoising loss.

    - Continuous features (``likelihood=None``): diffusion runs on the standardised
      features themselves.
    - Counts (``likelihood="nb"``, ``"zinb"`` or ``"poisson"``): diffusion runs in the
      per-cell latent space of an autoencoder whose count decoder (scVI's library size)
      maps latents back to counts. The autoencoder trains on its ELBO; the diffusion
      model learns the distribution of the latents of each set (latents enter the
      diffusion loss without gradient). Generated cells are counts.

    Parameters
    ----------
    n_input
        Number of features (genes).
    likelihood
        ``None`` for continuous data, or the count likelihood of the latent-diffusion
        decoder.
    n_latent_cell
        Dimension of the cell latent space (counts only).
    n_denoiser_hidden, n_denoiser_blocks
        Size of the denoiser (:class:`gde.nn.ConditionalDenoiser`).
    n_diffusion_steps
        Number of diffusion steps ``T``.
    noise_schedule
        ``"linear"`` (Ho et al.'s β range, scaled to ``T``; see
        :class:`gde.nn.NoiseSchedule`) or ``"cosine"``. With the
        cosine schedule, ᾱ_T is nearly 0 and few-step DDIM sampling amplifies the
        denoiser's error at the first step; the linear schedule keeps DDIM and ancestral
        sampling consistent.
    cond_dropout
        Probability of dropping the condition in training (for classifier-free guidance).
    clip_denoised
        Bound on the predicted clean sample at each reverse step, in standardised units
        (continuous data) or latent units (counts); ``None`` disables it.
    **kwargs
        The count autoencoder (``n_hidden``, ``n_layers``, ``dispersion``,
        ``dropout_rate``, ``batch_offset_init``, ``log_theta_init``; see
        :class:`~gde.module._cells.CellModelBase`), and the set encoder, covariates, input
        statistics and W2-matching term (``n_batch``, ``n_latent``, ``n_set_hidden``,
        ``pooling``, ``n_cats_per_cov``, ``encode_covariates``, ``w2_weight``, ...; see
        :class:`gde.module.SetModuleBase`). Covariates condition the denoiser and the count
        decoder.
    """

    #: the denoiser, not the cell decoder, reads the set embedding
    set_conditioned_decoder = False

    def __init__(
        self,
        n_input: int,
        *,
        likelihood: Literal["nb", "zinb", "poisson"] | None = None,
        n_latent_cell: int = 16,
        n_denoiser_hidden: int = 256,
        n_denoiser_blocks: int = 3,
        n_diffusion_steps: int = 400,
        noise_schedule: Schedule = "linear",
        cond_dropout: float = 0.1,
        clip_denoised: float | None = 10.0,
        **kwargs,
    ):
        if likelihood is not None and likelihood not in COUNT_LIKELIHOODS:
            raise ValueError(
                f"likelihood must be None (continuous data) or one of {COUNT_LIKELIHOODS}, "
                f"got {likelihood!r}."
            )
        super().__init__(n_input, likelihood=likelihood, n_latent_cell=n_latent_cell, **kwargs)
        if likelihood is None:
            self.n_diffused = n_input
        else:
            self.n_diffused = n_latent_cell
            self._build_cells(n_condition=0)
        self.denoiser = ConditionalDenoiser(
            self.n_diffused,
            self.n_latent + self.n_covariate_features,
            n_hidden=n_denoiser_hidden,
            n_blocks=n_denoiser_blocks,
            cond_dropout=cond_dropout,
        )
        self.noise_schedule = NoiseSchedule(n_diffusion_steps, schedule=noise_schedule)
        self.clip_denoised = clip_denoised

    #: Adam's ε for this module. The denoising loss has small gradients; scvi-tools'
    #: default ε = 0.01 damps them and slows diffusion training several-fold.
    default_adam_eps = 1e-8

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> dict:
        """Encode sets and, for counts, each cell into the latent space."""
        out = self._prepare(x, batch_index, cat_covs, cont_covs)
        if self.likelihood is None:
            out["target"] = out["x_in"]
            return out
        self.encode_cells(out, x)
        out["target"] = out["u"].detach()
        return out

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {
            "u": inference_outputs.get("u"),
            "library": inference_outputs.get("library"),
            "cats": inference_outputs["cats"],
            "cont": inference_outputs["cont"],
        }

    @auto_move_data
    def generative(self, u, library, cats, cont) -> dict:
        """Count distribution of each cell given its latent (counts only)."""
        if self.likelihood is None:
            return {}
        return {"px": self.cell_likelihood(u, library, cats, cont), "pu": self.cell_prior(u)}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """Denoising loss per cell, plus the autoencoder's negative ELBO for counts."""
        cond = self.condition(
            inference_outputs["z_cells"], inference_outputs["cats"], inference_outputs["cont"]
        )
        diffusion = self.noise_schedule.denoising_loss(
            self.denoiser, inference_outputs["target"], cond, fixed_noise=not self.training
        )
        extra = {}
        if self.likelihood is None:
            loss = diffusion.mean()
            rec, kl_u = {"diffusion": diffusion}, None
        else:
            nll = self.reconstruction_loss(tensors, inference_outputs, generative_outputs)
            kl_u = self.cell_kl(inference_outputs, generative_outputs)
            loss = torch.mean(nll + kl_weight * kl_u + diffusion)
            rec = {"reconstruction": nll, "diffusion": diffusion}
            extra["diffusion_loss"] = diffusion.mean().detach()
        set_term, set_metrics = self.set_terms(
            inference_outputs, kl_weight, tensors.get(GDE_KEYS.W2_TARGET_KEY)
        )
        loss = loss + set_term
        extra.update(set_metrics)
        return LossOutput(loss=loss, reconstruction_loss=rec, kl_local=kl_u, extra_metrics=extra)

    def _draw_decoder_input(
        self,
        z_cells: torch.Tensor,
        cats: list[torch.Tensor],
        cont: torch.Tensor | None,
        n_steps: int | None = None,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
        guidance_interval: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """Run the reverse diffusion: standardised features, or cell latents for counts.

        ``n_steps``: ``None`` for ancestral sampling over all diffusion steps, an integer
        for DDIM with that many steps; ``guidance_scale``: classifier-free guidance (1:
        plain conditional sampling), applied only within ``guidance_interval`` of the
        diffusion time (fractions, 1 = pure noise; ``None``: throughout;
        :meth:`gde.nn.NoiseSchedule.steps_within`); ``eta``: DDIM stochasticity.
        """
        guided_steps = self.noise_schedule.steps_within(guidance_interval)
        cond = self.condition(z_cells, cats, cont)
        eps_fn = self.denoiser.sampler(cond, guidance_scale, guided_steps)
        return self.noise_schedule.sample(
            eps_fn,
            (z_cells.shape[0], self.n_diffused),
            n_inference_steps=n_steps,
            eta=eta,
            device=z_cells.device,
            clip_x0=self.clip_denoised,
        )
