"""Alphabets and tokens: sequences and aligned reads as integer matrices.

Shared by :mod:`gde.seq`, :mod:`gde.metrics` and :mod:`gde.tl`.
Token ``0`` pads a sequence to the matrix width, token ``1`` ends it, and the letters of
the alphabet are tokens ``2, 3, ...`` in alphabet order. An aligned read matrix (reads ×
positions, 0/1 calls with NaN where there is no call, as smftools writes it) is a set of
fixed-length sequences over the alphabet ``"01-"`` (``-``: no call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from gde.nn import END, FIRST_LETTER, kmer_frequencies

ALPHABETS = {
    "dna": "ACGT",
    "rna": "ACGU",
    "protein": "ACDEFGHIKLMNPQRSTVWY",
    "reads": "01-",
}


@dataclass(frozen=True)
class Alphabet:
    """The letters a model reads and writes, and whether sequences have a fixed length.

    Parameters
    ----------
    letters
        The letters, in token order.
    fixed_length
        Reads aligned to a region: every sequence has the same number of positions and
        generation writes exactly that many (no end token).
    """

    letters: str
    fixed_length: bool = False

    @property
    def n_tokens(self) -> int:
        """Pad and end tokens plus one token per letter."""
        return FIRST_LETTER + len(self.letters)

    def encode(self, sequences: pd.Series, width: int, where: str) -> np.ndarray:
        """Token matrix ``(n, width)``: letters, an end token, then padding.

        Raises a ``ValueError`` naming the first bad row if a sequence is empty, holds a
        letter outside the alphabet, or is too long for ``width`` (``len + 1`` tokens).
        """
        lookup = np.zeros(256, dtype=np.int16)
        for k, letter in enumerate(self.letters):
            lookup[ord(letter)] = FIRST_LETTER + k
        out = np.zeros((len(sequences), width), dtype=np.int16)
        for row, (name, seq) in enumerate(sequences.items()):
            if len(seq) == 0:
                raise ValueError(f"{where}: the sequence of row {name!r} is empty.")
            if len(seq) + 1 > width:
                raise ValueError(
                    f"{where}: the sequence of row {name!r} has {len(seq)} letters; the "
                    f"model reads at most {width - 1}."
                )
            raw = np.frombuffer(seq.encode("latin-1", errors="replace"), dtype=np.uint8)
            codes = lookup[raw]
            if (codes == 0).any():
                bad = seq[int(np.flatnonzero(codes == 0)[0])]
                raise ValueError(
                    f"{where}: the sequence of row {name!r} holds {bad!r}, which is not in "
                    f"the alphabet {self.letters!r}. Pass `alphabet=` with every letter "
                    "used (e.g. alphabet='ACGTN'), or clean the sequences."
                )
            out[row, : len(seq)] = codes
            out[row, len(seq)] = END
        return out

    def decode(self, tokens: np.ndarray) -> list[str]:
        """Strings from token rows (up to each row's end token)."""
        letters = np.array(["", "", *self.letters])
        out = []
        for row in np.asarray(tokens):
            stop = np.flatnonzero(row < FIRST_LETTER)
            out.append("".join(letters[row[: stop[0] if len(stop) else len(row)]]))
        return out


def resolve_alphabet(alphabet: str | Alphabet | None, sequences: pd.Series) -> Alphabet:
    """``"dna"``, ``"rna"``, ``"protein"``, an explicit string of letters, or inferred.

    Inference picks the first of DNA, RNA and protein that holds every letter used, else
    the sorted letters themselves. An :class:`Alphabet` is returned as it is.
    """
    if isinstance(alphabet, Alphabet):
        return alphabet
    if alphabet is not None:
        if not isinstance(alphabet, str) or len(alphabet) == 0:
            raise ValueError(
                f"alphabet must be 'dna', 'rna', 'protein' or a string of letters, got "
                f"{alphabet!r}."
            )
        letters = ALPHABETS.get(alphabet.lower(), alphabet)
        if len(set(letters)) != len(letters):
            raise ValueError(f"alphabet {alphabet!r} repeats a letter.")
        return Alphabet(letters)
    used = set()
    for seq in sequences:
        used.update(seq)
    for name in ("dna", "rna", "protein"):
        if used <= set(ALPHABETS[name]):
            return Alphabet(ALPHABETS[name])
    return Alphabet("".join(sorted(used)))


def check_sequence_column(adata, key: str) -> pd.Series:
    """The strings of ``adata.obs[key]``, refusing a missing column, NaN or non-strings."""
    if key not in adata.obs:
        raise KeyError(
            f"sequence_key '{key}' is not a column of adata.obs (columns: "
            f"{list(adata.obs.columns)[:20]})."
        )
    col = adata.obs[key]
    missing = col.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"adata.obs['{key}'] has {int(missing.sum())} missing sequence(s) (first at row "
            f"{col.index[int(np.flatnonzero(missing)[0])]!r}). Drop those rows first, e.g. "
            f"`adata = adata[adata.obs['{key}'].notna()].copy()`."
        )
    values = col.astype(object)
    not_str = np.array([not isinstance(v, str) for v in values])
    if not_str.any():
        first = int(np.flatnonzero(not_str)[0])
        raise ValueError(
            f"adata.obs['{key}'] must hold strings; row {col.index[first]!r} holds "
            f"{values.iloc[first]!r} ({type(values.iloc[first]).__name__})."
        )
    return values


def read_tokens(x, where: str) -> np.ndarray:
    """Token matrix of a read matrix: 0 and 1 calls, NaN where there is no call.

    Raises a ``ValueError`` naming the first bad value if any entry is not 0, 1 or NaN.
    """
    if hasattr(x, "toarray"):
        raise ValueError(
            f"{where} is sparse; a read matrix must be dense (NaN marks positions without "
            "a call, which a sparse matrix would read as 0). Pass `x.toarray()`."
        )
    x = np.asarray(x, dtype=np.float32)
    missing = np.isnan(x)
    bad = ~missing & (x != 0) & (x != 1)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{where} must hold 0/1 calls with NaN where there is no call; entry "
            f"({i}, {j}) is {float(x[i, j])} ({int(bad.sum())} such entries). Binarise the "
            "calls first (e.g. `(x > 0.5).astype(float)`, keeping NaN)."
        )
    if missing.all(axis=1).any():
        row = int(np.flatnonzero(missing.all(axis=1))[0])
        raise ValueError(f"{where}: read {row} has no call at any position; drop it.")
    calls = np.where(missing, 0, x).astype(np.int16)  # NaN never reaches the cast
    tokens = np.where(missing, FIRST_LETTER + 2, FIRST_LETTER + calls)
    return tokens.astype(np.int16)


def tokens_to_reads(tokens: np.ndarray) -> np.ndarray:
    """Read matrix (0/1, NaN for no call) from tokens over the ``"01-"`` alphabet."""
    tokens = np.asarray(tokens)
    out = np.full(tokens.shape, np.nan, dtype=np.float32)
    out[tokens == FIRST_LETTER] = 0.0
    out[tokens == FIRST_LETTER + 1] = 1.0
    return out


def kmer_profiles(
    sequences, ks: tuple[int, ...] = (1, 2, 3), alphabet: str | Alphabet | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence k-mer frequencies ``(n, sum(A**k))`` and numbers of letters ``(n,)``.

    ``sequences``: strings; ``alphabet`` as in :func:`resolve_alphabet` (inferred when
    ``None``). Frequencies are :func:`gde.nn.kmer_frequencies` of the token rows.
    """
    sequences = pd.Series(list(sequences), dtype=object)
    if len(sequences) == 0:
        raise ValueError("No sequences given.")
    letters = resolve_alphabet(alphabet, sequences)
    width = int(sequences.str.len().max()) + 1
    tokens = torch.as_tensor(letters.encode(sequences, width, "sequences"))
    freqs = kmer_frequencies(tokens, len(letters.letters), tuple(ks)).numpy()
    return freqs.astype(np.float64), sequences.str.len().to_numpy()
