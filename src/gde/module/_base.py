"""What every set module shares: the set encoder and the set-embedding plumbing.

The input transforms and covariates live in :mod:`._inputs`, the W2 space and the
W2-matching term in :mod:`._w2`; :class:`SetModuleBase` brings them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch
from scvi.module.base import BaseModuleClass, auto_move_data
from torch.distributions import Normal

from gde._constants import GDE_KEYS
from gde.nn import KernelMeanEncoder, OTSolver, Pooling, SetEncoder

from ._inputs import DataKind, InputTransform, InputTransformMixin
from ._w2 import W2MatchingMixin

SetEncoderKind = Literal["deepsets", "kme"]
ChunkIter = Callable[[], Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]]


class SetModuleBase(InputTransformMixin, W2MatchingMixin, BaseModuleClass):
    """Base of gde's modules: a set encoder over transformed cells, and covariate plumbing.

    Counts enter the encoders as ``log1p`` of counts per 10,000, after dividing out the
    decoder's per-batch gene fold changes (:meth:`count_batch_offset`). Continuous
    features are standardised with the training means and standard deviations and, with
    several batches, centred per batch.

    Input transforms and covariates come from :class:`~gde.module._inputs.InputTransformMixin`,
    the W2 space and the W2-matching term from :class:`~gde.module._w2.W2MatchingMixin`.
    New cells are drawn from set embeddings with ``generate(z_set, n_cells, ...)``
    (:class:`gde.module.SetCVAE`, :class:`gde.module.SetDDPM`).

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
        ``"exact"`` (optimal transport), ``"sinkhorn"`` (debiased Sinkhorn divergence)
        or ``"auto"``.
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
    n_reference
        Width of :meth:`reference_input` (``None``: ``n_input``). A module whose encoder
        input starts with standardised fixed features and ends with learned ones (e.g.
        sequences) sets it to the number of fixed features; the mean path reads those.
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
        reference_components: np.ndarray | None = None,
        reference_center: np.ndarray | None = None,
        reference_batch_offset: np.ndarray | None = None,
        log_batch_shift: np.ndarray | None = None,
        w2_n_comps: int = 50,
        mean_path: bool = False,
        n_reference: int | None = None,
    ):
        super().__init__()
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
        if data_kind not in ("counts", "continuous"):
            raise ValueError(f"data_kind must be 'counts' or 'continuous', got {data_kind!r}.")
        if input_transform not in ("log1p_cp10k", "log1p"):
            raise ValueError(
                f"input_transform must be 'log1p_cp10k' or 'log1p', got {input_transform!r}."
            )
        self.modality_sizes = modality_sizes
        self.n_input = n_input
        self.n_reference = n_input if n_reference is None else int(n_reference)
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
        # buffers first (they draw no random numbers), then the set encoder's parameters
        self._register_input_stats(
            feature_mean,
            feature_std,
            batch_shift,
            library_log_means,
            library_log_vars,
            log_batch_shift,
        )
        self._init_w2_term(
            w2_weight,
            w2_pairs,
            w2_solver,
            w2_n_comps,
            reference_components,
            reference_center,
            reference_batch_offset,
        )
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
        if mean_path:
            if set_encoder != "deepsets":
                raise ValueError("mean_path needs set_encoder='deepsets'.")
            self._init_mean_path()

    def sample(self, *args, **kwargs):
        """Not a sampler: draw new cells with ``generate(z_set, n_cells, ...)``.

        (scvi-tools' :class:`~scvi.module.base.BaseModuleClass` declares ``sample``.)
        """
        raise NotImplementedError(
            f"{type(self).__name__} draws new cells with generate(z_set, n_cells, ...); "
            "embed sets with embed() or embed_chunked()."
        )

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

    @auto_move_data
    def embed(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed sets ``(n_sets, set_size, ...)`` of inputs as :meth:`input_counts` gives them."""
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
        if x.dim() < 3:
            raise ValueError(
                f"{type(self).__name__} expects data shaped (n_sets, set_size, ...), "
                f"got {tuple(x.shape)}."
            )
        n_sets, set_size = x.shape[:2]
        x_in = self.transform(x, batch_index)
        cats = self._split_cats(batch_index, cat_covs)
        z_set, q_set = self.encode_sets(x_in, cats, cont_covs)
        # (n_sets, n_latent) -> (n_sets * set_size, n_latent)
        z_cells = z_set.unsqueeze(1).expand(n_sets, set_size, -1).reshape(-1, self.n_latent)
        return {
            "z_set": z_set,
            "q_set": q_set,
            # what W2 is measured on, computed only when no precomputed target is given
            "ot_inputs": (x, x_in, batch_index),
            "z_cells": z_cells,
            # (n_sets, set_size, n_in) -> (n_sets * set_size, n_in)
            "x_in": x_in.reshape(-1, x_in.shape[-1]),
            "cats": [c.reshape(-1, 1) for c in cats],
            "cont": cont_covs.reshape(n_sets * set_size, -1) if self.n_continuous_cov else None,
            "set_size": set_size,
        }

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


def _maybe_to(t: torch.Tensor | None, device) -> torch.Tensor | None:
    return None if t is None else t.to(device)
