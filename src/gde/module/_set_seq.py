"""Set module for sequences: featurizer + set encoder, and a prefix-conditioned AR decoder."""

from __future__ import annotations

import numpy as np
import torch

from gde._constants import GDE_KEYS
from gde.nn import FIRST_LETTER, PrefixDecoder, SequenceFeaturizer, kmer_frequencies

from ._elements import ElementSetModule


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


class SetSeqModule(ElementSetModule):
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
        super().__init__(
            n_reference,
            n_features,
            n_decode,
            reference_mean,
            reference_std,
            n_batch=n_batch,
            n_latent=n_latent,
            reference_components=reference_components,
            reference_center=reference_center,
            w2_n_comps=w2_n_comps,
            mean_path=mean_path,
            **kwargs,
        )
        self.n_tokens, self.width, self.fixed_length = n_tokens, width, fixed_length
        self.n_letters, self.kmer_ks = n_letters, kmer_ks
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

    def reference_input(self, x: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        """The reference features of token rows: what the W2 space projects."""
        return self.reference_features(x.to(self.feature_mean.device))

    # ------------------------------------------------------------ decoder
    def element_loss(self, target: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per sequence (nats)."""
        return self.decoder.nll(condition, target)

    def draw(
        self, condition: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
    ) -> torch.Tensor:
        """One token row ``(width,)`` per row of ``condition``, padded to the full width.

        ``temperature`` and ``top_k`` as in :meth:`gde.nn.PrefixDecoder.generate`; reached
        through :meth:`generate`, which takes them as keywords.
        """
        tokens = self.decoder.generate(
            condition, self.width, temperature, top_k, fixed_length=self.fixed_length
        )
        full = torch.zeros(tokens.shape[0], self.width, dtype=torch.long, device=tokens.device)
        full[:, : tokens.shape[1]] = tokens
        return full
