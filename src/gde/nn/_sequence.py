"""Sequence networks: a featurizer of token rows, and a causal decoder with a prefix."""

from __future__ import annotations

import torch
from torch import nn

#: token codes shared with :mod:`gde.seq`: padding, end of sequence, first letter
PAD, END, FIRST_LETTER = 0, 1, 2


class SequenceFeaturizer(nn.Module):
    """One vector per sequence: token and position embeddings, dilated convolutions, pooling.

    Each residual block is a 1-D convolution (dilation doubling per block, so motifs and
    their spacing up to ``kernel_size * 2**n_layers`` positions apart are seen together)
    followed by LayerNorm over channels, which acts on each position alone. Positions
    after a sequence's end are masked throughout; the masked mean and max over positions
    and the log length go through a linear layer. Sequences of any length up to
    ``max_length`` are read.

    Parameters
    ----------
    n_tokens
        Number of token codes (padding, end, letters).
    max_length
        Longest token row read (for the position embedding).
    n_output
        Dimension of the output vector.
    n_channels
        Channels of the convolutions.
    n_layers
        Number of residual convolution blocks.
    kernel_size
        Width of each convolution (odd).
    """

    def __init__(
        self,
        n_tokens: int,
        max_length: int,
        n_output: int = 64,
        n_channels: int = 64,
        n_layers: int = 3,
        kernel_size: int = 5,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}.")
        self.max_length = max_length
        self.tokens = nn.Embedding(n_tokens, n_channels, padding_idx=PAD)
        self.positions = nn.Embedding(max_length, n_channels)
        self.convs = nn.ModuleList(
            nn.Conv1d(
                n_channels,
                n_channels,
                kernel_size,
                padding=(kernel_size // 2) * 2**i,
                dilation=2**i,
            )
            for i in range(n_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(n_channels) for _ in range(n_layers))
        self.out = nn.Linear(2 * n_channels + 1, n_output)
        self.n_output = n_output

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Vectors ``(..., n_output)`` of token rows ``(..., length)``."""
        lead, length = tokens.shape[:-1], tokens.shape[-1]
        if length > self.max_length:
            raise ValueError(
                f"Sequences of {length} tokens are longer than the {self.max_length} this "
                "featurizer reads."
            )
        t = tokens.reshape(-1, length).long()
        mask = (t >= FIRST_LETTER).unsqueeze(-1)  # letters only, not end or padding
        pos = torch.arange(length, device=t.device)
        h = (self.tokens(t) + self.positions(pos)) * mask
        for conv, norm in zip(self.convs, self.norms, strict=True):
            # (n, length, channels) -> (n, channels, length) and back
            r = conv(h.transpose(1, 2)).transpose(1, 2)
            h = (h + nn.functional.gelu(norm(r))) * mask
        n_letters = mask.sum(1).clamp_min(1)
        mean = h.sum(1) / n_letters
        top = h.masked_fill(~mask, float("-inf")).amax(1)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        out = self.out(torch.cat([mean, top, n_letters.float().log()], dim=-1))
        return out.reshape(*lead, self.n_output)


class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention and a key/value cache.

    Parameters
    ----------
    d_model
        Width.
    n_heads
        Attention heads (``d_model`` must be divisible by it).
    dropout_rate
        Dropout on the attention weights and the block outputs.
    """

    def __init__(self, d_model: int, n_heads: int, dropout_rate: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        self.n_heads, self.dropout_rate = n_heads, dropout_rate
        self.norm_attention = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, h: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """Update ``h`` ``(n, t, d_model)``, the positions after those in ``cache``.

        ``cache`` (a dict, filled here) holds the keys and values of earlier positions;
        with it, one new position at a time costs attention over the past only.
        """
        n, t, d = h.shape
        # (n, t, 3 d) -> three (n, heads, t, d / heads)
        q, k, v = (
            self.qkv(self.norm_attention(h))
            .reshape(n, t, 3, self.n_heads, d // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        if past == 0:  # all positions at once: each sees itself and those before
            a = nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout_rate if self.training else 0.0
            )
        elif t == 1:  # one new position sees every earlier one
            a = nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            raise ValueError("With a cache, add one position at a time.")
        h = h + self.dropout(self.out(a.transpose(1, 2).reshape(n, t, d)))
        return h + self.dropout(self.mlp(self.norm_mlp(h)))


class PrefixDecoder(nn.Module):
    """Causal transformer over tokens whose first positions are a condition vector.

    The condition (the set embedding, with covariates) is mapped to ``n_prefix`` vectors
    that precede the tokens; each token is predicted from the prefix and the tokens
    before it (next-token cross-entropy). Sequences end with the end token, so lengths
    are learned and generated, unless ``fixed_length`` (aligned reads).

    Parameters
    ----------
    n_tokens
        Number of token codes (padding, end, letters).
    n_condition
        Dimension of the condition vector.
    max_length
        Longest token row (letters and end token).
    d_model, n_heads, n_layers
        Width, attention heads and depth of the transformer.
    n_prefix
        Number of prefix positions made from the condition.
    dropout_rate
        Dropout in the transformer.
    """

    def __init__(
        self,
        n_tokens: int,
        n_condition: int,
        max_length: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        n_prefix: int = 1,
        dropout_rate: float = 0.0,
    ):
        super().__init__()
        self.n_tokens, self.max_length = n_tokens, max_length
        self.d_model, self.n_prefix = d_model, n_prefix
        self.prefix = nn.Linear(n_condition, n_prefix * d_model)
        self.tokens = nn.Embedding(n_tokens, d_model)
        self.positions = nn.Embedding(max_length + n_prefix, d_model)
        self.blocks = nn.ModuleList(
            CausalBlock(d_model, n_heads, dropout_rate) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_tokens)

    def _hidden(
        self,
        condition: torch.Tensor | None,
        tokens: torch.Tensor,
        caches: list[dict] | None = None,
    ) -> torch.Tensor:
        """Hidden states of the prefix (if ``condition`` is given) and ``tokens``.

        With ``caches`` (one dict per block), positions continue those already cached.
        """
        past = 0 if not caches or "k" not in caches[0] else caches[0]["k"].shape[2]
        parts = []
        if condition is not None:
            n = condition.shape[0]
            parts.append(self.prefix(condition).reshape(n, self.n_prefix, self.d_model))
        if tokens.shape[1]:
            parts.append(self.tokens(tokens.long()))
        h = torch.cat(parts, dim=1)
        h = h + self.positions(torch.arange(past, past + h.shape[1], device=h.device))
        for i, block in enumerate(self.blocks):
            h = block(h, None if caches is None else caches[i])
        return self.norm(h)

    def logits(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, length, n_tokens)`` of each token of ``tokens`` ``(n, length)``."""
        h = self._hidden(condition, tokens[:, :-1])
        # the last prefix position predicts the first token
        return self.head(h[:, self.n_prefix - 1 :])

    def nll(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each token row, in nats, ``(n,)`` (padding excluded)."""
        logits = self.logits(condition, tokens)
        target = tokens.long()
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        return (ce * (target != PAD)).sum(-1)

    @torch.no_grad()
    def generate(
        self,
        condition: torch.Tensor,
        max_length: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        fixed_length: bool = False,
    ) -> torch.Tensor:
        """Draw one token row per condition, ``(n, length)``, padded after the end token.

        ``temperature`` scales the logits (below 1: more typical sequences); ``top_k``
        keeps only the k most likely letters at each step. With ``fixed_length``, exactly
        ``max_length`` letters are drawn and no end token.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        n_letters = self.n_tokens - FIRST_LETTER
        if top_k is not None and not 1 <= top_k:
            raise ValueError(f"top_k must be a positive integer or None, got {top_k}.")
        length = self.max_length if max_length is None else min(max_length, self.max_length)
        n = condition.shape[0]
        out = torch.zeros(n, 0, dtype=torch.long, device=condition.device)
        done = torch.zeros(n, dtype=torch.bool, device=condition.device)
        caches: list[dict] = [{} for _ in self.blocks]
        h = self._hidden(condition, out, caches)[:, -1]  # the prefix, cached
        for step in range(length):
            logits = self.head(h) / temperature
            logits[:, PAD] = float("-inf")
            last = step == length - 1
            if fixed_length or step == 0:
                logits[:, END] = float("-inf")  # no end (reads), no empty sequence
            elif last:
                logits[:, FIRST_LETTER:] = float("-inf")  # the row is full: end here
            if top_k is not None and top_k < n_letters:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            token = torch.distributions.Categorical(logits=logits).sample()
            token = torch.where(done, torch.full_like(token, PAD), token)
            out = torch.cat([out, token[:, None]], dim=1)
            done = done | (token == END)
            if done.all() or last:
                break
            h = self._hidden(None, token[:, None], caches)[:, -1]
        return out


def kmer_frequencies(tokens: torch.Tensor, n_letters: int, ks: tuple[int, ...] = (1, 2, 3)):
    """Frequencies of the k-mers of each token row, for each k in ``ks``, concatenated.

    Parameters
    ----------
    tokens
        Token rows ``(n, length)`` (letters from ``FIRST_LETTER``; padding and end
        tokens are not letters).
    n_letters
        Size of the alphabet.
    ks
        k-mer lengths.

    Returns
    -------
    ``(n, sum(n_letters**k))``: for each k, the counts of every k-mer (in lexicographic
    order of letter codes) in the row, divided by the row's number of k-mers.
    """
    t = tokens.long()
    letters = (t - FIRST_LETTER).clamp_min(0)
    valid = t >= FIRST_LETTER
    out = []
    for k in ks:
        counts = torch.zeros(t.shape[0], n_letters**k, device=t.device)
        if t.shape[-1] >= k:
            windows = letters.unfold(-1, k, 1)  # (n, length - k + 1, k)
            ok = valid.unfold(-1, k, 1).all(-1).float()
            place = n_letters ** torch.arange(k - 1, -1, -1, device=t.device)
            counts.scatter_add_(1, (windows * place).sum(-1), ok)
        out.append(counts / counts.sum(-1, keepdim=True).clamp_min(1.0))
    return torch.cat(out, dim=-1)
