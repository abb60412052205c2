"""Set encoder + diffusion decoder: on continuous features, or latent diffusion for counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scvi.module.base import LossOutput, auto_move_data
from scvi.nn import Encoder
from torch.distributions import Normal, kl_divergence

from gde._constants import GDE_KEYS
from gde.nn import ConditionalDenoiser, NoiseSchedule
from gde.nn._count_decoder import COUNT_LIKELIHOODS, Dispersion
from gde.nn._diffusion import Schedule
from gde.nn._pooling import Pooling

from ._base import InputTransform, SetModuleBase


class SetDDPM(SetModuleBase):
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
    n_batch
        Number of batches (1 if none).
    n_latent
        Dimension of the set embedding.
    likelihood
        ``None`` for continuous data, or the count likelihood of the latent-diffusion
        decoder.
    n_latent_cell
        Dimension of the cell latent space (counts only).
    n_hidden, n_layers
        Size of the count autoencoder.
    n_set_hidden, n_set_blocks, pooling
        Size, depth and pooling of the set encoder.
    dispersion
        NB dispersion of the count decoder.
    n_continuous_cov, n_cats_per_cov
        Covariates; they condition the denoiser (and the count decoder).
    encode_covariates
        Also give covariates to the encoders.
    dropout_rate
        Dropout in the cell encoder.
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
    input_transform
        Encoder transform of counts.
    batch_offset_init
        Initial per-batch gene log fold changes of the count decoder.
    **kwargs
        Passed to :class:`gde.module.SetModuleBase`.
    """

    def __init__(
        self,
        n_input: int,
        n_batch: int = 1,
        n_latent: int = 64,
        likelihood: Literal["nb", "zinb", "poisson"] | None = None,
        n_latent_cell: int = 16,
        n_hidden: int = 128,
        n_layers: int = 1,
        n_set_hidden: int = 128,
        n_set_blocks: int = 2,
        pooling: Pooling = "mean",
        dispersion: Dispersion = "gene",
        n_continuous_cov: int = 0,
        n_cats_per_cov: Sequence[int] | None = None,
        encode_covariates: bool = False,
        dropout_rate: float = 0.1,
        n_denoiser_hidden: int = 256,
        n_denoiser_blocks: int = 3,
        n_diffusion_steps: int = 400,
        noise_schedule: Schedule = "linear",
        cond_dropout: float = 0.1,
        clip_denoised: float | None = 10.0,
        input_transform: InputTransform = "log1p_cp10k",
        batch_offset_init: np.ndarray | None = None,
        **kwargs,
    ):
        if likelihood is not None and likelihood not in COUNT_LIKELIHOODS:
            raise ValueError(
                f"likelihood must be None (continuous data) or one of {COUNT_LIKELIHOODS}, "
                f"got {likelihood!r}."
            )
        super().__init__(
            n_input,
            n_batch=n_batch,
            n_latent=n_latent,
            data_kind="continuous" if likelihood is None else "counts",
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
        if likelihood is None:
            self.n_diffused = n_input
        else:
            self.n_diffused = n_latent_cell
            self.cell_encoder = Encoder(
                n_input + self.encoder_cont,
                n_latent_cell,
                n_cat_list=self.encoder_cats,
                n_layers=n_layers,
                n_hidden=n_hidden,
                dropout_rate=dropout_rate,
                return_dist=True,
                use_batch_norm=False,
                use_layer_norm=True,
            )
            self.decoder = self.make_count_decoder(
                n_latent_cell, likelihood, dispersion, n_layers, n_hidden, batch_offset_init
            )
        self.denoiser = ConditionalDenoiser(
            self.n_diffused,
            n_latent + self.n_covariate_features,
            n_hidden=n_denoiser_hidden,
            n_blocks=n_denoiser_blocks,
            cond_dropout=cond_dropout,
        )
        self.noise_schedule = NoiseSchedule(n_diffusion_steps, schedule=noise_schedule)
        self.clip_denoised = clip_denoised

    #: Adam's ε for this module. The denoising loss has small gradients; scvi-tools'
    #: default ε = 0.01 damps them and slows diffusion training several-fold.
    default_adam_eps = 1e-8

    def count_batch_offset(self) -> torch.Tensor | None:
        """Per-batch gene log fold changes of the count decoder, if any."""
        decoder = getattr(self, "decoder", None)
        return None if decoder is None else decoder.batch_offset

    def condition(
        self, z_cells: torch.Tensor, cats: Sequence[torch.Tensor], cont: torch.Tensor | None
    ) -> torch.Tensor:
        """Denoiser condition of each cell: its set embedding and covariates."""
        covs = self.covariate_vector(cats, cont)
        return z_cells if covs is None else torch.cat([z_cells, covs], dim=-1)

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
        encoder_in = [out["x_in"]]
        if self.encoder_cont:
            encoder_in.append(out["cont"])
        enc_cats = out["cats"] if self.encode_covariates else []
        qu, u = self.cell_encoder(torch.cat(encoder_in, dim=-1), *enc_cats)
        library = self.log_library(x)
        out.update({"qu": qu, "u": u, "library": library, "target": u.detach()})
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
        px = self.decoder(u, library, *cats, cont=cont)
        return {"px": px, "pu": Normal(torch.zeros_like(u), torch.ones_like(u))}

    def diffusion_loss(
        self, target: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-cell denoising loss ``||ε - ε_θ(x_t, t, c)||²`` at random timesteps."""
        t = self.noise_schedule.sample_timesteps(target.shape[0], target.device, generator)
        noise = torch.randn(target.shape, device=target.device, generator=generator)
        x_t = self.noise_schedule.add_noise(target, noise, t)
        eps = self.denoiser(x_t, t, cond)
        return ((eps - noise) ** 2).sum(-1)

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
        target = inference_outputs["target"]
        generator = None
        if not self.training:  # the same noise at every validation step
            generator = torch.Generator(device=target.device).manual_seed(0)
        diffusion = self.diffusion_loss(target, cond, generator)
        extra = {}
        if self.likelihood is None:
            loss = diffusion.mean()
            rec, kl_u = {"diffusion": diffusion}, None
        else:
            x = self.input_counts(tensors)
            x = x.reshape(-1, x.shape[-1])  # (n_sets, set_size, n) -> (n_cells, n)
            nll = -generative_outputs["px"].log_prob(x).sum(-1)
            kl_u = kl_divergence(inference_outputs["qu"], generative_outputs["pu"]).sum(-1)
            loss = torch.mean(nll + kl_weight * kl_u + diffusion)
            rec = {"reconstruction": nll, "diffusion": diffusion}
            extra["diffusion_loss"] = diffusion.mean().detach()
        set_term, set_metrics = self.set_terms(
            inference_outputs, kl_weight, tensors.get(GDE_KEYS.W2_TARGET_KEY)
        )
        loss = loss + set_term
        extra.update(set_metrics)
        return LossOutput(loss=loss, reconstruction_loss=rec, kl_local=kl_u, extra_metrics=extra)

    @torch.no_grad()
    def generate(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
        n_steps: int | None = None,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Generate ``n_cells`` new cells for each embedding in ``z_set``.

        Parameters
        ----------
        z_set
            Set embeddings, ``(n_sets, n_latent)``.
        n_cells
            Cells per set.
        batch_index, library, cat_covs, cont_covs
            Per-cell batch, log library size (counts) and covariates,
            ``(n_sets * n_cells, k)``; defaults as in :meth:`gde.module.SetCVAE.generate`.
        n_steps
            ``None``: ancestral sampling over all diffusion steps; an integer: DDIM with
            that many steps.
        guidance_scale
            Classifier-free guidance scale (1: plain conditional sampling).
        eta
            DDIM stochasticity.

        Returns
        -------
        Counts or features on the data's scale, ``(n_sets * n_cells, n_features)``.
        """
        z_cells, batch_index, cats, cont = self._generation_inputs(
            z_set, n_cells, batch_index, cat_covs, cont_covs
        )
        cond = self.condition(z_cells, cats, cont)

        eps_fn = self.denoiser.sampler(cond, guidance_scale)
        h = self.noise_schedule.sample(
            eps_fn,
            (z_cells.shape[0], self.n_diffused),
            n_inference_steps=n_steps,
            eta=eta,
            device=z_cells.device,
            clip_x0=self.clip_denoised,
        )
        if self.likelihood is None:
            return self.to_data_scale(h, batch_index)
        if library is None:
            library = self.draw_library(batch_index)
        return self.decoder(h, library.to(h.device), *cats, cont=cont).sample()

    @torch.no_grad()
    def sample(self, tensors: dict[str, torch.Tensor], n_samples: int = 1, **kwargs):
        """New cells for the sets in ``tensors``: as many cells as each set holds.

        ``tensors`` are shaped ``(n_sets, set_size, ...)``; returns
        ``(n_sets * set_size, n_features)`` (with the cells' own batches and, for
        counts, library sizes), or a leading ``n_samples`` axis if ``n_samples > 1``.
        """
        x = self.input_counts(tensors).to(self.device)
        batch_index = tensors[GDE_KEYS.BATCH_KEY].to(self.device)
        z = self.embed(
            x, batch_index, tensors.get(GDE_KEYS.CAT_COVS_KEY), tensors.get(GDE_KEYS.CONT_COVS_KEY)
        )
        n_sets, set_size = x.shape[:2]
        library = None
        if self.likelihood is not None:
            library = self.log_library(x)
        cat = tensors.get(GDE_KEYS.CAT_COVS_KEY)
        cont = tensors.get(GDE_KEYS.CONT_COVS_KEY)
        draws = [
            self.generate(
                z,
                set_size,
                batch_index.reshape(-1, 1),
                library,
                None if cat is None else cat.reshape(n_sets * set_size, -1),
                None if cont is None else cont.reshape(n_sets * set_size, -1),
                **kwargs,
            )
            for _ in range(n_samples)
        ]
        return draws[0] if n_samples == 1 else torch.stack(draws)
