"""What the CVAE and the diffusion module share: each cell's latent and its decoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scvi.nn import Encoder
from torch.distributions import Distribution, Normal, kl_divergence

from gde.nn import COUNT_LIKELIHOODS, CountDecoder, Dispersion, NormalDecoder, log_library

from ._base import SetModuleBase


class CellModelBase(SetModuleBase):
    """A set module that also models each cell: cell encoder, decoder, batch offsets.

    Each cell can have its own latent ``u ~ q(u | x, c, covariates)``, where ``c`` is
    what the subclass conditions it on (the set embedding for :class:`gde.module.SetCVAE`,
    nothing for :class:`gde.module.SetDDPM`), and a decoder ``p(x | u, c, covariates)``:
    negative binomial, zero-inflated NB or Poisson for counts, with a mean that scales
    with the cell's library size (as in scVI) and per-batch gene log fold changes
    (:meth:`count_batch_offset`, divided out of the encoder input), or Gaussian on
    standardised continuous features. A subclass builds them with :meth:`_build_cells`.

    Parameters
    ----------
    n_input
        Number of features (genes).
    likelihood
        One of :data:`gde.nn.COUNT_LIKELIHOODS` for counts; anything else (``"normal"``,
        ``None``) means continuous data.
    n_latent_cell
        Dimension of the per-cell latent ``u``.
    n_hidden, n_layers
        Size of the cell encoder and the decoder.
    dispersion
        NB dispersion: ``"gene"``, ``"gene-batch"`` or ``"gene-cell"``.
    dropout_rate
        Dropout in the cell encoder.
    batch_offset_init
        Initial per-batch gene log fold changes of the count decoder,
        ``(n_batch, n_genes)``.
    log_theta_init
        For counts: initial log inverse dispersion of each feature in the count decoder
        (a moment estimate on the data, computed by the model); random by default.
    linear_set_effect
        Let what the decoder is conditioned on (the set embedding of
        :class:`gde.module.SetCVAE`) also act linearly on every gene's log rate (on the
        mean, for continuous data), past the hidden layers (:class:`gde.nn.LinearSkip`).
        Set embeddings that add up (a combination predicted as the sum of its parts'
        shifts) then give log expression changes that add up, and the hidden layers are
        left to what depends on the cell. ``"only"``: the set embedding reaches the
        decoder through that linear map alone (the hidden layers see the cell's latent
        and covariates only), so a set moves every cell's log rates by the same gene-wise
        amounts. Recommended for perturbation screens (see the perturbation page); off
        by default.
    **kwargs
        Passed to :class:`gde.module.SetModuleBase` (set encoder, covariates, input
        transform and statistics, W2-matching term).
    """

    #: the cell decoder is conditioned on the set embedding (``linear_set_effect`` needs it)
    set_conditioned_decoder = True

    def __init__(
        self,
        n_input: int,
        *,
        likelihood: str | None,
        n_latent_cell: int,
        n_hidden: int = 128,
        n_layers: int = 1,
        dispersion: Dispersion = "gene",
        dropout_rate: float = 0.1,
        batch_offset_init: np.ndarray | None = None,
        log_theta_init: np.ndarray | None = None,
        linear_set_effect: bool | str = False,
        **kwargs,
    ):
        if linear_set_effect not in (True, False, "only"):
            raise ValueError(
                f"linear_set_effect is True, False or 'only'; got {linear_set_effect!r}."
            )
        if linear_set_effect and not self.set_conditioned_decoder:
            raise ValueError(
                f"linear_set_effect needs a cell decoder conditioned on the set embedding; "
                f"{type(self).__name__}'s is not. Use decoder='cvae'."
            )
        is_counts = likelihood in COUNT_LIKELIHOODS
        super().__init__(n_input, data_kind="counts" if is_counts else "continuous", **kwargs)
        self.likelihood = likelihood
        self.n_latent_cell = n_latent_cell
        self.n_hidden, self.n_layers = n_hidden, n_layers
        self._cell_options = {
            "dispersion": dispersion,
            "dropout_rate": dropout_rate,
            "batch_offset_init": batch_offset_init,
            "linear_set_effect": linear_set_effect,
        }
        self._log_theta_init = log_theta_init

    def _build_cells(self, n_condition: int) -> None:
        """Build the cell encoder, then the decoder, each also taking ``n_condition`` inputs."""
        opts = self._cell_options
        n_linear = n_condition if opts["linear_set_effect"] else 0
        linear_only = opts["linear_set_effect"] == "only"
        self.cell_encoder = Encoder(
            self.n_input + n_condition + self.encoder_cont,
            self.n_latent_cell,
            n_cat_list=self.encoder_cats,
            n_layers=self.n_layers,
            n_hidden=self.n_hidden,
            dropout_rate=opts["dropout_rate"],
            return_dist=True,
            use_batch_norm=False,
            use_layer_norm=True,
        )
        n_in = self.n_latent_cell + n_condition
        if self.data_kind == "continuous":
            self.decoder = NormalDecoder(
                n_in,
                self.n_input,
                n_cat_list=self.cat_list,
                n_cont=self.n_continuous_cov,
                n_layers=self.n_layers,
                n_hidden=self.n_hidden,
                n_linear=n_linear,
                linear_only=linear_only,
            )
        else:
            self.decoder = self.make_count_decoder(
                n_in,
                self.likelihood,
                opts["dispersion"],
                self.n_layers,
                self.n_hidden,
                opts["batch_offset_init"],
                n_linear,
                linear_only,
            )

    def make_count_decoder(
        self,
        n_in: int,
        likelihood: str,
        dispersion: str,
        n_layers: int,
        n_hidden: int,
        batch_offset_init: np.ndarray | None = None,
        n_linear: int = 0,
        linear_only: bool = False,
    ) -> CountDecoder:
        """Count decoder from ``n_in`` inputs to the genes.

        A :class:`gde.nn.CountDecoder` conditioned on batch and covariates, with its
        per-batch gene offsets set to ``batch_offset_init`` and its last ``n_linear``
        inputs also acting linearly on the gene logits (only linearly with
        ``linear_only``).
        """
        decoder = CountDecoder(
            n_in,
            self.n_input,
            likelihood=likelihood,
            dispersion=dispersion,
            n_batch=self.n_batch,
            n_cat_list=self.cat_list,
            n_cont=self.n_continuous_cov,
            n_layers=n_layers,
            n_hidden=n_hidden,
            segments=self.modality_sizes,
            n_linear=n_linear,
            linear_only=linear_only,
        )
        theta0 = self._log_theta_init
        if theta0 is not None and dispersion in ("gene", "gene-batch") and likelihood != "poisson":
            with torch.no_grad():  # (n_genes,) or (n_genes, n_batch)
                theta0 = torch.as_tensor(np.asarray(theta0), dtype=torch.float32)
                decoder.log_theta.copy_(
                    theta0.reshape(-1, *([1] * (decoder.log_theta.dim() - 1))).expand_as(
                        decoder.log_theta
                    )
                )
        if batch_offset_init is not None and decoder.batch_offset is not None:
            with torch.no_grad():
                decoder.batch_offset.copy_(torch.as_tensor(batch_offset_init))
        return decoder

    def count_batch_offset(self) -> torch.Tensor | None:
        """Per-batch gene log fold changes of the count decoder, if it has them."""
        decoder = getattr(self, "decoder", None)  # none for diffusion on continuous data
        return getattr(decoder, "batch_offset", None)  # none in a Gaussian decoder

    def log_library(self, x: torch.Tensor) -> torch.Tensor:
        """Log library size of each cell, per modality: ``(n_cells, n_modalities)``."""
        return log_library(x.reshape(-1, x.shape[-1]), self.modality_sizes)

    def draw_library(self, batch_index: torch.Tensor) -> torch.Tensor:
        """Log library sizes ``(n, n_modalities)`` from each batch's log-normal distribution."""
        b = batch_index.reshape(-1).long()
        mean = self.library_log_means[b]
        std = self.library_log_vars[b].sqrt()
        return Normal(mean, std).sample()

    # ------------------------------------------------------------- training
    def encode_cells(
        self, out: dict, x: torch.Tensor, condition: torch.Tensor | None = None
    ) -> dict:
        """Add each cell's ``qu``, ``u`` and log ``library`` to the output of ``_prepare``.

        ``x`` is the data, ``(n_sets, set_size, n_features)``; ``condition`` what the cell
        encoder also takes, ``(n_sets * set_size, n_condition)``.
        """
        encoder_in = [out["x_in"]] if condition is None else [out["x_in"], condition]
        if self.encoder_cont:
            encoder_in.append(out["cont"])
        enc_cats = out["cats"] if self.encode_covariates else []
        qu, u = self.cell_encoder(torch.cat(encoder_in, dim=-1), *enc_cats)
        out.update({"qu": qu, "u": u, "library": self.log_library(x)})
        return out

    def cell_likelihood(
        self,
        h: torch.Tensor,
        library: torch.Tensor | None,
        cats: Sequence[torch.Tensor],
        cont: torch.Tensor | None,
    ) -> Distribution:
        """The decoder's distribution of each cell given its input ``h`` and covariates."""
        if self.data_kind == "continuous":
            return self.decoder(h, *cats, cont=cont)
        return self.decoder(h, library, *cats, cont=cont)

    def cell_prior(self, u: torch.Tensor, z_cells: torch.Tensor | None = None) -> Distribution:
        """Prior of the per-cell latents ``u``: standard normal."""
        return Normal(torch.zeros_like(u), torch.ones_like(u))

    def reconstruction_loss(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict, generative_outputs: dict
    ) -> torch.Tensor:
        """Negative log-likelihood of each cell under the decoder, ``(n_cells,)``."""
        if self.data_kind == "continuous":
            x = inference_outputs["x_in"]  # standardised features
        else:
            x = self.input_counts(tensors)
            # (n_sets, set_size, n_genes) -> (n_cells, n_genes)
            x = x.reshape(-1, x.shape[-1])
        return -generative_outputs["px"].log_prob(x).sum(-1)

    @staticmethod
    def cell_kl(inference_outputs: dict, generative_outputs: dict) -> torch.Tensor:
        """KL of each cell's latent posterior from its prior, ``(n_cells,)``.

        Closed form for a Gaussian prior; a one-sample estimate otherwise (a mixture has
        no closed-form KL).
        """
        qu, pu = inference_outputs["qu"], generative_outputs["pu"]
        if isinstance(pu, Normal):
            return kl_divergence(qu, pu).sum(-1)
        u = inference_outputs["u"]
        return qu.log_prob(u).sum(-1) - pu.log_prob(u)

    # ----------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
        **sampler_kwargs,
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
            Log library size of each cell, ``(n_sets * n_cells, n_modalities)``; drawn
            from the batch's log-normal library distribution by default (counts only).
        cat_covs, cont_covs
            Covariates of each generated cell, ``(n_sets * n_cells, k)``.
        **sampler_kwargs
            Options of the sampler: for :class:`gde.module.SetDDPM`, ``n_steps`` (``None``:
            ancestral sampling over all diffusion steps; an integer: DDIM with that many
            steps), ``guidance_scale`` (classifier-free guidance, 1: plain conditional
            sampling), ``guidance_interval`` (the part of the diffusion time guided) and
            ``eta`` (DDIM stochasticity); ignored by
            :class:`gde.module.SetCVAE`.

        Returns
        -------
        Counts or features on the data's scale, ``(n_sets * n_cells, n_features)``, set by
        set.
        """
        z_cells, batch_index, cats, cont = self._generation_inputs(
            z_set, n_cells, batch_index, cat_covs, cont_covs
        )
        h = self._draw_decoder_input(z_cells, cats, cont, **sampler_kwargs)
        return self.decode_sample(h, batch_index, library, cats, cont)

    def _draw_decoder_input(
        self, z_cells: torch.Tensor, cats: list[torch.Tensor], cont: torch.Tensor | None, **kwargs
    ) -> torch.Tensor:
        """What the decoder turns into new cells, drawn for cells with these set embeddings."""
        raise NotImplementedError

    def decode_sample(
        self,
        h: torch.Tensor,
        batch_index: torch.Tensor,
        library: torch.Tensor | None,
        cats: Sequence[torch.Tensor],
        cont: torch.Tensor | None,
    ) -> torch.Tensor:
        """Cells drawn from the decoder at ``h``, on the data's scale.

        ``library``: log library sizes ``(n, n_modalities)``, drawn from each batch's
        log-normal distribution if ``None`` (counts only). Without a decoder (diffusion
        on continuous data), ``h`` are the standardised features themselves.
        """
        if self.data_kind == "continuous":
            if hasattr(self, "decoder"):
                h = self.cell_likelihood(h, None, cats, cont).sample()
            return self.to_data_scale(h, batch_index)
        if library is None:
            library = self.draw_library(batch_index)
        return self.cell_likelihood(h, library.to(h.device), cats, cont).sample()
