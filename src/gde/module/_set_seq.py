"""Set module for sequences: featurizer + set encoder, and a prefix-conditioned AR decoder."""

from __future__ import annotations

import numpy as np
import torch
from scvi.module.base import LossOutput, auto_move_data

from gde._constants import GDE_KEYS
from gde.nn import FIRST_LETTER, PrefixDecoder, SequenceFeaturizer, kmer_frequencies

from ._base import SetModuleBase


def default_kmer_ks(n_letters: int, max_features: int = 512) -> tuple[int, ...]:
    """k-mer lengths ``1..K`` with the largest ``K <= 3`` giving at most ``max_features``."""
    ks = [1]
    for k in (2, 3):
        if sum(n_letters**j for j in (*ks, k)) <= max_features:
            ks.append(k)
    return tuple(ks)


def reference_features(
    tokens: torch.Tensor, n_letters: int, kmer_ks: tuple[int, ...], fixed_length: bool
) -> torch.Tensor:
    """Fixed features of token rows ``(..., width)`` (see :class:`SetSeqModule`).

    Aligned reads (``fixed_length``): the call at each position, +1 for letter ``1``
    (methylated), -1 for ``0``, 0 for no call. Free sequences: k-mer frequencies for each
    k in ``kmer_ks`` (:func:`gde.nn.kmer_frequencies`) and the log length.
    """
    lead = tokens.shape[:-1]
    t = tokens.reshape(-1, tokens.shape[-1]).long()
    if fixed_length:
        calls = torch.zeros(t.shape, device=t.device)
        calls = calls.masked_fill(t == FIRST_LETTER, -1.0)
        calls = calls.masked_fill(t == FIRST_LETTER + 1, 1.0)
        return calls.reshape(*lead, -1)
    kmers = kmer_frequencies(t, n_letters, kmer_ks)
    length = (t >= FIRST_LETTER).sum(-1, keepdim=True).clamp_min(1).float().log()
    return torch.cat([kmers, length], dim=-1).reshape(*lead, -1)


class SetSeqModule(SetModuleBase):
    """Sets of sequences: each sequence is featurized, the set encoder pools them.

    Each sequence enters the set encoder as two parts: fixed *reference features*
    (standardised) and learned features from :class:`gde.nn.SequenceFeaturizer`. The
    reference features are, for free sequences, the frequencies of their k-mers
    (``kmer_ks``) and the log length; for aligned reads, the call at each position
    (+1 methylated, -1 not, 0 no call). Their principal components, computed once from
    the data, are the W2 space of the W2-matching term and start the set encoder's mean
    path, so the untrained embedding is a k-mer (or per-position rate) pseudobulk and
    training adds what those miss: which motifs share a sequence, their order and
    spacing, co-occurring calls. A :class:`gde.nn.PrefixDecoder` generates sequences
    from the set embedding (and covariates) as a prefix.

    Parameters
    ----------
    n_tokens
        Number of token codes (padding, end, letters).
    width
        Token columns (longest sequence plus its end token, or the read length).
    fixed_length
        Aligned reads: every row has ``width`` letters and no end token.
    n_batch
        Number of batches (the decoder is conditioned on them).
    n_latent
        Dimension of the set embedding.
    n_features, n_channels, n_conv_layers, kernel_size
        Learned features per sequence, and the featurizer's convolutions.
    d_model, n_heads, n_decoder_layers
        Size of the decoder transformer.
    n_decode
        Sequences of each set in a minibatch that the decoder reconstructs (the set
        encoder reads all of them).
    kmer_ks
        k-mer lengths of the reference features of free sequences.
    reference_mean, reference_std
        Mean and standard deviation of each reference feature.
    reference_components, reference_center
        Principal axes ``(n_reference, k)`` and centre of the reference features.
    mean_path
        Start the set encoder from the reference features' set means projected on the
        principal axes.
    **kwargs
        Passed to :class:`gde.module.SetModuleBase` (set encoder, covariates, W2 term).
    """

    reference_leads_input = True

    def __init__(
        self,
        n_tokens: int,
        width: int,
        fixed_length: bool = False,
        *,
        n_batch: int = 1,
        n_latent: int = 32,
        n_features: int = 32,
        n_channels: int = 32,
        n_conv_layers: int = 3,
        kernel_size: int = 5,
        d_model: int = 64,
        n_heads: int = 4,
        n_decoder_layers: int = 2,
        n_decode: int = 8,
        kmer_ks: tuple[int, ...] | None = None,
        reference_mean: np.ndarray | None = None,
        reference_std: np.ndarray | None = None,
        reference_components: np.ndarray | None = None,
        reference_center: np.ndarray | None = None,
        w2_n_comps: int = 20,
        mean_path: bool = True,
        **kwargs,
    ):
        n_letters = n_tokens - FIRST_LETTER
        kmer_ks = tuple(kmer_ks or default_kmer_ks(n_letters))
        n_reference = width if fixed_length else sum(n_letters**k for k in kmer_ks) + 1
        # encoder input: the standardised reference features, then the learned ones
        feature_mean = np.zeros(n_reference + n_features)
        feature_std = np.ones(n_reference + n_features)
        if reference_mean is not None:
            feature_mean[:n_reference] = reference_mean
        if reference_std is not None:
            feature_std[:n_reference] = reference_std
        super().__init__(
            n_reference + n_features,
            n_batch=n_batch,
            n_latent=n_latent,
            data_kind="continuous",
            correct_encoder_input=False,
            feature_mean=feature_mean,
            feature_std=feature_std,
            reference_components=reference_components,
            reference_center=reference_center,
            n_reference=n_reference,
            w2_n_comps=w2_n_comps,
            mean_path=mean_path,
            **kwargs,
        )
        self.n_tokens, self.width, self.fixed_length = n_tokens, width, fixed_length
        self.n_letters, self.kmer_ks = n_letters, kmer_ks
        self.n_decode = int(n_decode)
        self.featurizer = SequenceFeaturizer(
            n_tokens, width, n_features, n_channels, n_conv_layers, kernel_size
        )
        self.decoder = PrefixDecoder(
            n_tokens,
            n_latent + self.n_covariate_features,
            width,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_decoder_layers,
        )

    # ------------------------------------------------------------ features
    def reference_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Fixed features of each token row ``(..., width)``: ``(..., n_reference)``."""
        return reference_features(tokens, self.n_letters, self.kmer_ks, self.fixed_length)

    def input_counts(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The token rows of a minibatch."""
        return tensors[GDE_KEYS.X_KEY]

    def transform(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """Token rows to set-encoder input: standardised reference + learned features."""
        n_ref = self.n_reference
        x = x.to(self.feature_mean.device)
        ref = (self.reference_features(x) - self.feature_mean[:n_ref]) / self.feature_std[:n_ref]
        return torch.cat([ref, self.featurizer(x)], dim=-1)

    def reference_input(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """The reference features of token rows: what the W2 space projects."""
        return self.reference_features(x.to(self.feature_mean.device))

    # ------------------------------------------------------------ training
    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
    ) -> dict:
        """Encode sets of token rows ``(n_sets, set_size, width)``."""
        out = self._prepare(x, batch_index, cat_covs, cont_covs)
        n_sets, set_size = x.shape[:2]
        n_decode, out["condition"] = self.decoded_condition(out, n_sets, set_size)
        out["decode_tokens"] = x[:, :n_decode].reshape(n_sets * n_decode, -1)
        return out

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def generative(self) -> dict:
        """Nothing beyond :meth:`inference`: the decoder is scored in :meth:`loss`."""
        return {}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """Negative log-likelihood per sequence (nats), plus the set terms."""
        nll = self.decoder.nll(inference_outputs["condition"], inference_outputs["decode_tokens"])
        return self.element_loss_output(nll, tensors, inference_outputs, kl_weight)

    # ---------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        z_set: torch.Tensor,
        n_cells: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """Draw ``n_cells`` token rows ``(n_sets * n_cells, width)`` per set embedding.

        ``library`` is ignored (a count model's argument); ``temperature`` and ``top_k``
        as in :meth:`gde.nn.PrefixDecoder.generate`.
        """
        z_cells, _, cats, cont = self._generation_inputs(
            z_set, n_cells, batch_index, cat_covs, cont_covs
        )
        condition = self.condition(z_cells, cats, cont)
        tokens = self.decoder.generate(
            condition, self.width, temperature, top_k, fixed_length=self.fixed_length
        )
        full = torch.zeros(tokens.shape[0], self.width, dtype=torch.long, device=tokens.device)
        full[:, : tokens.shape[1]] = tokens
        return full
