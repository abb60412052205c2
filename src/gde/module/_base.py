"""What every set module shares: the set encoder, input transforms, chunked embedding."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
from scvi.module.base import BaseModuleClass, auto_move_data
from torch.distributions import Normal

from gde._constants import GDE_KEYS
from gde.nn import CountDecoder, KernelMeanEncoder, SetEncoder, log_library, one_hot_covariates
from gde.nn._count_decoder import split_segments
from gde.nn._ot import OTSolver, batch_w2_squared
from gde.nn._pooling import Pooling

DataKind = Literal["counts", "continuous"]
InputTransform = Literal["log1p_cp10k", "log1p"]
SetEncoderKind = Literal["deepsets", "kme"]
ChunkIter = Callable[[], Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]]


class SetModuleBase(BaseModuleClass):
    """Base of gde's modules: a set encoder over transformed cells, and covariate plumbing.

    Counts enter the encoders as ``log1p`` of counts per 10,000, after dividing out the
    decoder's per-batch gene fold changes (:meth:`count_batch_offset`). Continuous
    features are standardised with the training means and standard deviations and, with
    several batches, centred per batch.

    Parameters
    ----------
    n_input
        Number of features (genes).
    n_batch
        Number of batches (1 if none).
    n_latent
        Dimension of the set embedding.
    data_kind
        ``"counts"`` or ``"continuous"``.
    n_set_hidden, n_set_blocks, pooling
        Size, depth and pooling of the set encoder (see :class:`gde.nn.SetEncoder`).
    n_continuous_cov
        Number of continuous covariates.
    n_cats_per_cov
        Number of categories of each extra categorical covariate.
    encode_covariates
        Also give batch and covariates to the encoders.
    set_kl_weight
        If positive, the set embedding is a Gaussian posterior with a standard-normal
        prior, its KL weighted by this factor (shared by the set's cells); the embedding
        reported is the posterior mean. ``0``: a point embedding.
    input_transform
        For counts: ``"log1p_cp10k"`` or ``"log1p"``.
    correct_encoder_input
        Remove per-batch effects from the encoder input (see above).
    feature_mean, feature_std
        For continuous data: per-feature mean and standard deviation, ``(n_input,)``.
    batch_shift
        For continuous data: per-batch mean of the standardised features,
        ``(n_batch, n_input)``.
    library_log_means, library_log_vars
        For counts: per-batch mean and variance of the log library size, ``(n_batch,)``,
        used to draw library sizes when generating cells.
    set_encoder
        ``"deepsets"``: the learned :class:`gde.nn.SetEncoder`; ``"kme"``: a fixed kernel
        mean embedding (:class:`gde.nn.KernelMeanEncoder`, a baseline).
    kme_bandwidth
        Bandwidth of the kernel mean embedding, in encoder-input units; by default
        ``sqrt(n_input)`` (the typical distance between standardised elements).
    w2_weight
        Weight of the W2-matching term (see :meth:`w2_matching`); ``0`` disables it.
    w2_pairs
        Number of random pairs of the minibatch's sets the term compares per step.
    w2_solver
        ``"exact"``, ``"sinkhorn"`` or ``"auto"`` (see :func:`gde.nn.batch_w2_squared`).
    log_theta_init
        For counts: initial log inverse dispersion of each feature in the count decoder
        (e.g. :func:`gde.data.nb_log_theta`); random by default.
    modality_sizes
        For counts of several modalities (CITE-seq: genes, then surface proteins): the
        number of features of each, in the order they are concatenated. Each modality is
        normalised on its own for the encoders and has its own library size and softmax in
        the count decoder. ``None``: one modality.
    reference_components, reference_center
        The W2 space: the W2-matching term measures W2 between cells projected as
        ``(reference_input(x) - reference_center) @ reference_components[:, :w2_n_comps]``
        (e.g. the principal components of the cells, computed once from the data), and the
        mean path starts from the first ``n_latent`` components. ``None``: W2 on the
        encoder input itself (counts) or on the data (continuous).
    reference_batch_offset
        For counts: fixed per-batch gene log fold changes divided out before projecting
        on the W2 space, ``(n_batch, n_genes)``, so that the target is batch-free.
    log_batch_shift
        For counts: what is left of each batch's mean after dividing out the fold changes,
        in ``log1p`` counts per 10,000, ``(n_batch, n_input)``; subtracted from the
        encoder input and the W2 space so that neither sorts sets by batch.
    w2_n_comps
        Components of the W2 space used by the W2-matching term.
    mean_path
        Give the set encoder a linear path from the set mean of its input, initialised
        from ``reference_components`` (see :meth:`gde.nn.SetEncoder.init_mean_path`).
    """

    def __init__(
        self,
        n_input: int,
        n_batch: int = 1,
        n_latent: int = 64,
        data_kind: DataKind = "counts",
        n_set_hidden: int = 128,
        n_set_blocks: int = 2,
        pooling: Pooling = "mean",
        n_continuous_cov: int = 0,
        n_cats_per_cov: Sequence[int] | None = None,
        encode_covariates: bool = False,
        set_kl_weight: float = 0.0,
        input_transform: InputTransform = "log1p_cp10k",
        correct_encoder_input: bool = True,
        feature_mean: np.ndarray | None = None,
        feature_std: np.ndarray | None = None,
        batch_shift: np.ndarray | None = None,
        library_log_means: np.ndarray | None = None,
        library_log_vars: np.ndarray | None = None,
        set_encoder: SetEncoderKind = "deepsets",
        kme_bandwidth: float | None = None,
        w2_weight: float = 0.0,
        w2_pairs: int = 48,
        w2_solver: OTSolver = "auto",
        modality_sizes: Sequence[int] | None = None,
        log_theta_init: np.ndarray | None = None,
        reference_components: np.ndarray | None = None,
        reference_center: np.ndarray | None = None,
        reference_batch_offset: np.ndarray | None = None,
        log_batch_shift: np.ndarray | None = None,
        w2_n_comps: int = 50,
        mean_path: bool = False,
    ):
        super().__init__()
        self._log_theta_init = log_theta_init
        if modality_sizes is not None:
            modality_sizes = [int(k) for k in modality_sizes]
            if sum(modality_sizes) != n_input or min(modality_sizes) < 1:
                raise ValueError(
                    f"modality_sizes {modality_sizes} must be positive and add up to the "
                    f"{n_input} features."
                )
            if data_kind != "counts":
                raise ValueError("modality_sizes applies to count data only.")
            if len(modality_sizes) == 1:
                modality_sizes = None
        self.modality_sizes = modality_sizes
        n_mod = 1 if modality_sizes is None else len(modality_sizes)
        if data_kind not in ("counts", "continuous"):
            raise ValueError(f"data_kind must be 'counts' or 'continuous', got {data_kind!r}.")
        if input_transform not in ("log1p_cp10k", "log1p"):
            raise ValueError(
                f"input_transform must be 'log1p_cp10k' or 'log1p', got {input_transform!r}."
            )
        self.n_input = n_input
        self.n_batch = n_batch
        self.n_latent = n_latent
        self.data_kind = data_kind
        self.input_transform = input_transform
        self.encode_covariates = encode_covariates
        self.correct_encoder_input = correct_encoder_input
        self.n_continuous_cov = n_continuous_cov
        self.set_kl_weight = set_kl_weight
        self.variational_set = set_kl_weight > 0
        self.cat_list = [n_batch, *(n_cats_per_cov or [])]
        self.encoder_cats = self.cat_list if encode_covariates else []
        self.encoder_cont = n_continuous_cov if encode_covariates else 0
        if w2_weight < 0 or w2_pairs < 1:
            raise ValueError("Need w2_weight >= 0 and w2_pairs >= 1.")
        if w2_solver not in ("auto", "exact", "sinkhorn"):
            raise ValueError(
                f"w2_solver must be 'auto', 'exact' or 'sinkhorn', got {w2_solver!r}."
            )
        self.w2_weight, self.w2_pairs, self.w2_solver = w2_weight, w2_pairs, w2_solver
        if set_encoder == "deepsets":
            self.set_encoder = SetEncoder(
                n_input,
                2 * n_latent if self.variational_set else n_latent,
                n_hidden=n_set_hidden,
                n_blocks=n_set_blocks,
                pooling=pooling,
                n_cat_list=self.encoder_cats,
                n_cont=self.encoder_cont,
                mean_path=mean_path,
            )
        elif set_encoder == "kme":
            if self.variational_set or encode_covariates:
                raise ValueError(
                    "set_encoder='kme' is a fixed embedding: it takes neither "
                    "set_kl_weight > 0 nor encode_covariates=True."
                )
            self.set_encoder = KernelMeanEncoder(
                n_input, n_latent, bandwidth=kme_bandwidth or float(np.sqrt(n_input))
            )
        else:
            raise ValueError(f"set_encoder must be 'deepsets' or 'kme', got {set_encoder!r}.")
        mean = np.zeros(n_input) if feature_mean is None else feature_mean
        std = np.ones(n_input) if feature_std is None else feature_std
        shift = np.zeros((n_batch, n_input)) if batch_shift is None else batch_shift
        self.register_buffer("feature_mean", torch.as_tensor(mean).float().reshape(-1))
        self.register_buffer("feature_std", torch.as_tensor(std).float().reshape(-1))
        self.register_buffer("batch_shift", torch.as_tensor(shift).float())
        # (n_batch, n_modalities)
        lib_means = np.zeros((n_batch, n_mod)) if library_log_means is None else library_log_means
        lib_vars = np.ones((n_batch, n_mod)) if library_log_vars is None else library_log_vars
        self.register_buffer(
            "library_log_means", torch.as_tensor(lib_means).float().reshape(n_batch, n_mod)
        )
        self.register_buffer(
            "library_log_vars", torch.as_tensor(lib_vars).float().reshape(n_batch, n_mod)
        )
        self.has_reference = reference_components is not None
        comps = np.zeros((n_input, 1)) if reference_components is None else reference_components
        comps = torch.as_tensor(np.asarray(comps)).float()
        center = np.zeros(n_input) if reference_center is None else reference_center
        ref_offset = (
            np.zeros((n_batch, n_input))
            if reference_batch_offset is None
            else reference_batch_offset
        )
        log_shift = np.zeros((n_batch, n_input)) if log_batch_shift is None else log_batch_shift
        self.register_buffer(
            "log_batch_shift", torch.as_tensor(log_shift).float().reshape(n_batch, -1)
        )
        self.w2_n_comps = int(min(w2_n_comps, comps.shape[1]))
        self.register_buffer("reference_components", comps)
        self.register_buffer("reference_center", torch.as_tensor(center).float().reshape(-1))
        self.register_buffer(
            "reference_batch_offset", torch.as_tensor(ref_offset).float().reshape(n_batch, -1)
        )
        if mean_path:
            if set_encoder != "deepsets":
                raise ValueError("mean_path needs set_encoder='deepsets'.")
            if self.has_reference:
                comps, center = self.reference_components, self.reference_center
                if data_kind == "continuous":
                    # encoder input x_in = (x - mean) / std - shift, so the reference
                    # units are x_in * std + mean: fold std and mean into the projection
                    comps = comps * self.feature_std[:, None]
                    center = (center - self.feature_mean) / self.feature_std
                self.set_encoder.init_mean_path(comps, center)

    # ------------------------------------------------------------ transforms

    def make_count_decoder(
        self,
        n_in: int,
        likelihood: str,
        dispersion: str,
        n_layers: int,
        n_hidden: int,
        batch_offset_init: np.ndarray | None = None,
    ) -> CountDecoder:
        """Count decoder from ``n_in`` inputs to the genes.

        A :class:`gde.nn.CountDecoder` conditioned on batch and covariates, with its
        per-batch gene offsets set to ``batch_offset_init``.
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
        return None

    def transform(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Data to encoder input (see the class description)."""
        b = batch_index.squeeze(-1).long()
        if self.data_kind == "continuous":
            z = (x - self.feature_mean) / self.feature_std
            if self.correct_encoder_input and self.n_batch > 1:
                z = z - self.batch_shift[b]
            return z
        offset = self.count_batch_offset()
        correct = self.correct_encoder_input and self.n_batch > 1
        if offset is not None and self.correct_encoder_input:
            x = x * torch.exp(-offset.detach())[b]
        if self.input_transform == "log1p_cp10k":
            x = self._log_normalize(x)
            return x - self.log_batch_shift[b] if correct else x
        return torch.log1p(x)

    def _log_normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``log1p`` of counts per 10,000, per modality."""
        blocks = split_segments(x, self.modality_sizes)
        return torch.cat(
            [torch.log1p(p / p.sum(-1, keepdim=True).clamp_min(1e-8) * 1e4) for p in blocks],
            dim=-1,
        )

    def reference_input(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Data in the fixed, batch-free units of the W2 space, before projecting.

        Counts: ``log1p`` counts per 10,000 after dividing out the fixed per-batch fold
        changes; continuous: data units with the per-batch shifts removed.
        """
        b = batch_index.squeeze(-1).long()
        if self.data_kind == "continuous":
            if self.correct_encoder_input and self.n_batch > 1:
                x = x - self.batch_shift[b] * self.feature_std
            return x
        if self.n_batch > 1 and self.correct_encoder_input:
            x = x * torch.exp(-self.reference_batch_offset)[b]
            return self._log_normalize(x) - self.log_batch_shift[b]
        return self._log_normalize(x)

    def w2_space(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Cells in the space where the W2-matching term measures W2, ``(..., k)``."""
        ref = self.reference_input(x, batch_index)
        if not self.has_reference:
            return ref
        comps = self.reference_components[:, : self.w2_n_comps]
        return (ref - self.reference_center) @ comps

    @torch.no_grad()
    def w2_points(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The cells of ``tensors`` (``(n, ...)`` registry tensors) in the W2 space."""
        x = self.input_counts(tensors).to(self.device)
        return self.w2_space(x, tensors[GDE_KEYS.BATCH_KEY].to(self.device))

    def input_counts(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The modelled features of a minibatch: genes, then proteins if registered."""
        x = tensors[GDE_KEYS.X_KEY]
        if self.modality_sizes is not None and GDE_KEYS.PROTEIN_KEY in tensors:
            x = torch.cat([x, tensors[GDE_KEYS.PROTEIN_KEY].to(x)], dim=-1)
        return x

    def log_library(self, x: torch.Tensor) -> torch.Tensor:
        """Log library size of each cell, per modality: ``(n_cells, n_modalities)``."""
        return log_library(x.reshape(-1, x.shape[-1]), self.modality_sizes)

    def to_data_scale(self, h: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`transform` for continuous data."""
        if self.correct_encoder_input and self.n_batch > 1:
            h = h + self.batch_shift[batch_index.squeeze(-1).long()]
        return h * self.feature_std + self.feature_mean

    # ------------------------------------------------------------ covariates
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

    def covariate_vector(
        self, cats: Sequence[torch.Tensor], cont: torch.Tensor | None
    ) -> torch.Tensor | None:
        """One-hot categorical and raw continuous covariates, ``(n, k)``, or ``None``."""
        parts = one_hot_covariates(cats, self.cat_list)
        if self.n_continuous_cov and cont is not None:
            parts.append(cont)
        return torch.cat(parts, dim=-1) if parts else None

    @property
    def n_covariate_features(self) -> int:
        """Width of :meth:`covariate_vector`."""
        return sum(n for n in self.cat_list if n > 1) + self.n_continuous_cov

    # -------------------------------------------------------------- encoding
    def encode_sets(
        self,
        x_in: torch.Tensor,
        cats: list[torch.Tensor],
        cont: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Normal | None]:
        """Set embeddings ``(n_sets, n_latent)`` from transformed cells, and ``q(z_set)``."""
        cats, cont = self._encoder_covariates(cats, cont)
        out = self.set_encoder(x_in, cats, cont)
        if not self.variational_set:
            return out, None
        mean, log_var = out.split(self.n_latent, dim=-1)
        q_set = Normal(mean, torch.exp(0.5 * log_var.clamp(-12, 8)))
        return (q_set.rsample() if self.training else mean), q_set

    def set_kl(self, q_set: Normal | None, set_size: int) -> torch.Tensor:
        """KL of the set posterior per cell (the set's KL divided by its size)."""
        if q_set is None:
            return torch.zeros(())
        kl = torch.distributions.kl_divergence(q_set, Normal(0.0, 1.0)).sum(-1)
        return self.set_kl_weight * kl.mean() / set_size

    def set_terms(
        self,
        inference_outputs: dict,
        kl_weight: float,
        w2_target: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """Loss terms on the set embeddings shared by all decoders, and their metrics.

        The weighted KL of the set posterior (if variational) and the W2-matching term
        (``w2_target``: W2 between the minibatch's sets, if known in advance).
        """
        term, metrics = self.w2_matching(inference_outputs, w2_target)
        if inference_outputs["q_set"] is not None:
            kl_set = self.set_kl(inference_outputs["q_set"], inference_outputs["set_size"])
            term = term + kl_weight * kl_set
            metrics["kl_set"] = kl_set.detach()
        return term, metrics

    def w2_matching(
        self, inference_outputs: dict, w2_target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict]:
        """W2-matching term: latent distances between sets pulled towards their W2.

        For ``w2_pairs`` random pairs ``(i, j)`` of the minibatch's sets (all pairs in
        evaluation mode), the term is
        ``w2_weight * mean((||z_i - z_j|| - W2(X_i, X_j))²)``. The target W2 is taken
        from ``w2_target`` (``(n_sets, n_sets)``, NaN where unknown) when given, else
        computed without gradient between the two sets' cells in the minibatch, in the W2
        space (:meth:`w2_space`). It makes latent L2 distances calibrated to W2, while
        the generative loss keeps the embedding a description of the whole distribution.
        Returns the weighted term (0 if ``w2_weight`` is 0) and metrics.
        """
        z_set = inference_outputs["z_set"]
        n_sets = z_set.shape[0]
        if self.w2_weight == 0 or n_sets < 2:
            return torch.zeros((), device=z_set.device), {}
        # distinct pairs: (n_pairs,) first and second members
        i, j = torch.triu_indices(n_sets, n_sets, offset=1, device=z_set.device)
        if w2_target is not None:
            target = w2_target.to(z_set)[i, j]
            known = torch.isfinite(target)
            i, j, target = i[known], j[known], target[known]
        if self.training:  # a random subset of w2_pairs; in evaluation all pairs
            pick = torch.randperm(len(i), device=z_set.device)[: self.w2_pairs]
            i, j = i[pick], j[pick]
            target = target[pick] if w2_target is not None else None
        if len(i) == 0:
            return torch.zeros((), device=z_set.device), {}
        if w2_target is None:
            x = inference_outputs["x_ot"]
            target = batch_w2_squared(x[i], x[j], solver=self.w2_solver).clamp_min(0).sqrt()
        latent = (z_set[i] - z_set[j]).pow(2).sum(-1).add(1e-12).sqrt()
        mismatch = (latent - target).pow(2).mean()
        return self.w2_weight * mismatch, {"w2_mismatch": mismatch.detach()}

    @auto_move_data
    def embed(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed sets given as ``(n_sets, set_size, n_input)`` data."""
        cats, cont = self._encoder_covariates(self._split_cats(batch_index, cat_covs), cont_covs)
        out = self.set_encoder(self.transform(x, batch_index), cats, cont)
        return out[..., : self.n_latent]

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
                x = self.input_counts(tensors).to(device)
                batch_index = tensors[GDE_KEYS.BATCH_KEY].to(device)
                cats = self._split_cats(
                    batch_index, _maybe_to(tensors.get(GDE_KEYS.CAT_COVS_KEY), device)
                )
                cats, cont = self._encoder_covariates(
                    cats, _maybe_to(tensors.get(GDE_KEYS.CONT_COVS_KEY), device)
                )
                yield self.transform(x, batch_index), set_index.to(device), cats, cont

        return self.set_encoder.forward_chunked(encoder_chunks, n_sets)[..., : self.n_latent]

    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict:
        return {
            "x": self.input_counts(tensors),
            "batch_index": tensors[GDE_KEYS.BATCH_KEY],
            "cat_covs": tensors.get(GDE_KEYS.CAT_COVS_KEY),
            "cont_covs": tensors.get(GDE_KEYS.CONT_COVS_KEY),
        }

    def _prepare(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None,
        cont_covs: torch.Tensor | None,
    ) -> dict:
        """Encode sets and flatten per-cell tensors: the first half of ``inference``."""
        if x.dim() != 3:
            raise ValueError(
                f"{type(self).__name__} expects data shaped (n_sets, set_size, n_features), "
                f"got {tuple(x.shape)}."
            )
        n_sets, set_size, n_features = x.shape
        x_in = self.transform(x, batch_index)
        cats = self._split_cats(batch_index, cat_covs)
        z_set, q_set = self.encode_sets(x_in, cats, cont_covs)
        # (n_sets, n_latent) -> (n_sets * set_size, n_latent)
        z_cells = z_set.unsqueeze(1).expand(n_sets, set_size, -1).reshape(-1, self.n_latent)
        return {
            "z_set": z_set,
            "q_set": q_set,
            # what W2 is measured on: the W2 space, or data units / encoder input
            "x_ot": self.w2_space(x, batch_index)
            if self.has_reference
            else (x if self.data_kind == "continuous" else x_in),
            "z_cells": z_cells,
            # (n_sets, set_size, n_features) -> (n_sets * set_size, n_features)
            "x_in": x_in.reshape(-1, n_features),
            "cats": [c.reshape(-1, 1) for c in cats],
            "cont": cont_covs.reshape(n_sets * set_size, -1) if self.n_continuous_cov else None,
            "set_size": set_size,
        }

    def _flat_covariates(
        self,
        n: int,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None,
        cont_covs: torch.Tensor | None,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        # (..., 1) -> (n_cells, 1) per covariate
        cats = [c.reshape(n, 1) for c in self._split_cats(batch_index, cat_covs)]
        cont = cont_covs.reshape(n, -1) if self.n_continuous_cov else None
        return cats, cont

    def _generation_inputs(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None,
        cat_covs: torch.Tensor | None,
        cont_covs: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Per-cell set embeddings and covariates for generating ``n_cells`` per set."""
        device = self.device
        z_set = z_set.to(device)
        n = z_set.shape[0] * n_cells
        if batch_index is None:
            batch_index = torch.zeros(n, 1, dtype=torch.long, device=device)
        batch_index = batch_index.to(device).reshape(n, 1)
        if cat_covs is None and len(self.cat_list) > 1:
            cat_covs = torch.zeros(n, len(self.cat_list) - 1, dtype=torch.long, device=device)
        if cont_covs is None and self.n_continuous_cov:
            cont_covs = torch.zeros(n, self.n_continuous_cov, device=device)
        cats, cont = self._flat_covariates(
            n, batch_index, _maybe_to(cat_covs, device), _maybe_to(cont_covs, device)
        )
        # (n_sets, n_latent) -> (n_sets * n_cells, n_latent)
        z_cells = z_set.repeat_interleave(n_cells, dim=0)
        return z_cells, batch_index, cats, cont

    def draw_library(self, batch_index: torch.Tensor) -> torch.Tensor:
        """Log library sizes ``(n, n_modalities)`` from each batch's log-normal distribution."""
        b = batch_index.reshape(-1).long()
        mean = self.library_log_means[b]
        std = self.library_log_vars[b].sqrt()
        return Normal(mean, std).sample()


def _maybe_to(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device)
