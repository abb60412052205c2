"""SeqGDEModel: one embedding per set of sequences (repertoires, reads, libraries)."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import rich.pretty  # noqa: F401  scvi-tools' view_anndata_setup uses rich.pretty unimported
import torch
from anndata import AnnData
from scvi import settings

from gde._anndata_utils import check_backed_view, check_obs_columns, check_set_column
from gde._constants import GDE_KEYS
from gde._pca import reference_rows, reference_statistics
from gde._sequences import Alphabet, tokens_to_reads
from gde.model import SetModelBase
from gde.module import SetSeqModule, default_kmer_ks, reference_features

from ._field import SequenceTokensField, registered_alphabet

# sequences whose reference features are summarised at setup (mean, sd, principal axes)
_N_REFERENCE = 20_000


class SeqGDEModel(SetModelBase):
    """Generative distribution embeddings of sets of sequences.

    Learns one vector per set of sequences (a patient's immune repertoire, a sample's
    methylation reads, a library of designed sequences) such that a decoder, given the
    vector, generates sequences distributed like the set's. Each sequence is featurized
    (k-mer frequencies and learned convolutions), the same mean-pooled set encoder as
    :class:`gde.GDEModel` pools them, and a small causal transformer generates sequences
    with the set embedding as its prefix. Embeddings are invariant to the order and to
    the replication of a set's sequences, sets of any size embed in chunks, and sets
    never seen in training embed without retraining.

    A default :meth:`train` draws 32 sequences per set, stops after 500 optimiser steps
    without improvement of the validation loss, and runs at most 25 steps per training
    set, between 1,500 and 5,000.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_latent
        Dimension of the set embedding.
    n_features
        Learned features per sequence (besides the fixed k-mer or per-position ones).
    n_set_hidden, n_set_blocks
        Width and number of pooled residual blocks of the set encoder.
    d_model, n_decoder_layers
        Width and depth of the decoder transformer.
    n_decode
        Sequences per set in a minibatch that the decoder learns to generate.
    w2_weight
        Weight of the W2-matching term: latent distances between sets are pulled towards
        the 2-Wasserstein distance between their sequences in a fixed space, the top
        ``w2_n_comps`` principal components of the reference features (k-mer frequencies
        and log length; per-position calls for reads). ``0``: the generative loss alone.
    w2_pairs, w2_solver, w2_n_comps, w2_n_cells
        Pairs of sets per step, OT solver, components and sequences per set of the W2
        term (as in :class:`gde.GDEModel`).
    w2_debias
        Subtract the sampling floor from the W2 targets (see :class:`gde.GDEModel`).
    mean_path
        Start the embedding at the set means of the reference features projected on their
        principal axes (a k-mer pseudobulk); training adds what they miss.
    kmer_ks
        k-mer lengths of the reference features; by default ``1..3`` for DNA and RNA,
        ``1..2`` for proteins.
    **module_kwargs
        Passed to :class:`gde.module.SetSeqModule` (e.g. ``n_channels``,
        ``n_conv_layers``, ``n_heads``, ``set_kl_weight``).

    Examples
    --------
    >>> adata = gde.datasets.motif_sets(n_sets=24)
    >>> gde.seq.SeqGDEModel.setup_anndata(adata, set_key="set", sequence_key="sequence")
    >>> model = gde.seq.SeqGDEModel(adata)
    >>> model.train()
    >>> emb = model.get_distribution_embeddings()
    >>> new = model.sample(sets=["set_00"], n_sequences=50)
    """

    _default_set_size = 32

    def _default_patience_steps(self) -> int:
        # a step reads ~16 x 32 sequences and costs ~0.5 s on one CPU thread; on the
        # motif sets held-out quality stops rising within ~1,000 steps
        return 500

    def _default_max_steps(self, n_train_sets: int) -> int:
        return int(np.clip(25 * n_train_sets, 1500, 5000))

    def __init__(
        self,
        adata: AnnData,
        n_latent: int = 32,
        n_features: int = 32,
        n_set_hidden: int = 128,
        n_set_blocks: int = 2,
        d_model: int = 64,
        n_decoder_layers: int = 2,
        n_decode: int = 8,
        w2_weight: float = 1.0,
        w2_pairs: int = 48,
        w2_solver: str = "auto",
        w2_n_comps: int = 20,
        w2_n_cells: int = 128,
        w2_debias: bool = False,
        mean_path: bool = True,
        kmer_ks: Sequence[int] | None = None,
        **module_kwargs,
    ):
        super().__init__(adata, w2_n_cells=w2_n_cells, w2_debias=w2_debias)
        alphabet, width = registered_alphabet(self.adata_manager, GDE_KEYS.X_KEY)
        n_letters = len(alphabet.letters)
        kmer_ks = tuple(kmer_ks or default_kmer_ks(n_letters))
        tokens = self.adata_manager.get_from_registry(GDE_KEYS.X_KEY)
        rows = reference_rows(len(tokens), _N_REFERENCE, settings.seed or 0, salt=11)
        reference = reference_features(
            torch.as_tensor(np.asarray(tokens)[rows]),
            n_letters,
            kmer_ks,
            alphabet.fixed_length,
        )
        stats = reference_statistics(
            reference.numpy(), max(w2_n_comps, n_latent), standardise=True
        )
        self.module = SetSeqModule(
            alphabet.n_tokens,
            width,
            alphabet.fixed_length,
            n_batch=self.summary_stats.n_batch,
            n_latent=n_latent,
            n_features=n_features,
            n_set_hidden=n_set_hidden,
            n_set_blocks=n_set_blocks,
            d_model=d_model,
            n_decoder_layers=n_decoder_layers,
            n_decode=n_decode,
            kmer_ks=kmer_ks,
            w2_weight=w2_weight,
            w2_pairs=w2_pairs,
            w2_solver=w2_solver,
            w2_n_comps=w2_n_comps,
            mean_path=mean_path,
            **{**stats, **module_kwargs},
        )
        what = (
            f"reads of {width} positions"
            if alphabet.fixed_length
            else f"sequences of up to {width - 1} letters over {alphabet.letters!r}"
        )
        reference = "per-position calls" if alphabet.fixed_length else f"k-mers k={kmer_ks}"
        self._model_summary_string = (
            f"SeqGDEModel: {self.summary_stats.n_set} sets of {what}; set embedding "
            f"n_latent={n_latent} (reference features: {reference}"
            + (", mean path" if mean_path else "")
            + (f", W2-matching weight {w2_weight}" if w2_weight else "")
            + f"); decoder: causal transformer ({n_decoder_layers} layers, d_model="
            f"{d_model}) with the embedding as prefix; n_batch={self.summary_stats.n_batch}."
        )
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        set_key: str,
        sequence_key: str | None = None,
        layer: str | None = None,
        alphabet: str | None = None,
        batch_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register an AnnData of sequences (one per row) for :class:`SeqGDEModel`.

        Either ``sequence_key`` names a column of strings (variable length), or the reads
        are a matrix in ``adata.X`` / ``adata.layers[layer]``: reads × positions, 0/1
        calls and NaN where there is no call (as smftools writes them), modelled as
        sequences over {0, 1, no call}. Registration writes the token matrix
        ``adata.obsm['_gde_tokens']`` (int16, one row per sequence), scvi-tools'
        ``adata.uns['_scvi_uuid']`` and ``adata.uns['_scvi_manager_uuid']`` and the code
        columns ``adata.obs['_scvi_set']`` and ``adata.obs['_scvi_batch']``; nothing else
        in ``adata`` changes.

        Parameters
        ----------
        adata
            One row per sequence (or read).
        set_key
            Column of ``adata.obs`` naming each sequence's set (patient, sample, library).
        sequence_key
            Column of ``adata.obs`` with the sequences as strings. For scirpy's AIRR
            AnnData, first copy a chain's CDR3 to obs, e.g.
            ``adata.obs["cdr3"] = ir.get.airr(adata, "junction_aa", "VJ_1")``.
        layer
            Layer with the read matrix (``None``: ``adata.X``); used without
            ``sequence_key``.
        alphabet
            ``"dna"``, ``"rna"``, ``"protein"`` or an explicit string of letters; by
            default the smallest of those holding every letter used.
        batch_key
            Column of ``adata.obs`` with each sequence's batch; the decoder conditions on
            it.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        check_backed_view(adata)
        check_set_column(adata, set_key)
        if sequence_key is not None and layer is not None:
            raise ValueError(
                "Pass either sequence_key (strings in adata.obs) or layer (a read matrix), "
                "not both."
            )
        if sequence_key is None and adata.n_vars == 0:
            raise ValueError(
                "No sequences: pass sequence_key (a column of strings in adata.obs), or "
                "keep a read matrix (reads × positions) in adata.X or a layer."
            )
        if sequence_key is None and alphabet is not None:
            raise ValueError("alphabet applies to sequence_key; reads use 0, 1 and no call.")
        check_obs_columns(adata, [batch_key] if batch_key else None, "batch_key")
        setup_method_args = cls._get_setup_method_args(**locals())
        field = SequenceTokensField(GDE_KEYS.X_KEY, sequence_key, layer, alphabet)
        cls._register_fields(adata, field, set_key, batch_key, setup_method_args, **kwargs)

    # ---------------------------------------------------------------- hooks
    @property
    def alphabet(self) -> Alphabet:
        """The alphabet the model reads and writes."""
        return registered_alphabet(self.adata_manager, GDE_KEYS.X_KEY)[0]

    @property
    def feature_names(self) -> pd.Index:
        """Positions of the reads (read matrices), or token columns (sequences)."""
        names = self.adata_manager.get_state_registry(GDE_KEYS.X_KEY)["column_names"]
        return pd.Index(np.asarray(names).astype(str))

    def _check_new_adata(self, adata: AnnData) -> None:
        check_set_column(adata, self.set_key)  # the sequences are checked as they tokenise

    def _result_params(self) -> dict:
        return {"sequence_key": self._setup_args.get("sequence_key")}

    def _generated_adata(self, x, obs: pd.DataFrame) -> AnnData:
        tokens = np.asarray(x).astype(np.int16)
        alphabet = self.alphabet
        if alphabet.fixed_length:
            var = pd.DataFrame(index=self.feature_names)
            return ad.AnnData(tokens_to_reads(tokens), obs=obs, var=var)
        out = ad.AnnData(np.zeros((len(obs), 0), dtype=np.float32), obs=obs)
        out.obs[self._setup_args["sequence_key"]] = alphabet.decode(tokens)
        return out

    # ------------------------------------------------------------ generation
    def sample(
        self,
        sets: Sequence[str] | None = None,
        embeddings: pd.DataFrame | np.ndarray | None = None,
        n_sequences: int = 100,
        *,
        adata: AnnData | None = None,
        batch: str | None = None,
        seed: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        batch_size: int = 4096,
    ) -> AnnData:
        """Generate new sequences from sets or from arbitrary points of the embedding space.

        Parameters
        ----------
        sets
            Names of sets to generate from (embedded from all their sequences); all sets
            of ``adata`` by default.
        embeddings
            Instead of ``sets``: vectors to decode, a DataFrame (its index names them) or
            an array ``(n, n_latent)``.
        n_sequences
            Sequences generated per set or embedding.
        adata
            AnnData holding ``sets``; the training data by default.
        batch
            Batch to generate in; by default each set's most common batch.
        seed
            Seed for reproducible draws (the global random state is left untouched).
        temperature
            Divides the decoder's logits: below 1 gives more typical sequences, above 1
            more diverse ones; 1 samples the learned distribution.
        top_k
            Draw each letter among the ``top_k`` most likely only (``None``: all).
        batch_size
            Sequences generated at once.

        Returns
        -------
        AnnData with one row per generated sequence: the sequences in
        ``obs[sequence_key]`` (strings) and an empty ``X``; for read matrices, the reads
        in ``X`` (0/1, NaN for no call) with the training positions as ``var_names``. The
        set column (named as at setup) names the source set or embedding.
        """
        options = {"temperature": temperature, "top_k": top_k}
        return self._sample(sets, embeddings, n_sequences, adata, batch, seed, batch_size, options)

    def interpolate(
        self,
        set_a: str,
        set_b: str,
        n_points: int = 5,
        n_sequences: int = 100,
        *,
        adata: AnnData | None = None,
        batch: str | None = None,
        seed: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        batch_size: int = 4096,
    ) -> AnnData:
        """Generate sequences along the straight line between two sets' embeddings.

        Parameters
        ----------
        set_a, set_b
            The two sets (embedded from all their sequences).
        n_points
            Number of points on the line, ends included.
        n_sequences
            Sequences generated per point.
        adata, batch, seed, temperature, top_k, batch_size
            As in :meth:`sample`.

        Returns
        -------
        AnnData as from :meth:`sample`, with ``obs['point']`` (0 at ``set_a`` to
        ``n_points - 1`` at ``set_b``) and ``obs['weight']`` (the weight of ``set_b``);
        ``uns['interpolation']`` records the two sets.
        """
        options = {"temperature": temperature, "top_k": top_k}
        return self._interpolate(
            set_a, set_b, n_points, n_sequences, adata, batch, seed, batch_size, options
        )
