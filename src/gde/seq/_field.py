"""AnnData field of sequence tokens: strings in ``obs`` or a read matrix, as token rows."""

from __future__ import annotations

from anndata import AnnData
from scvi.data.fields import ObsmField

from gde._anndata_utils import data_location, get_data
from gde._sequences import (
    ALPHABETS,
    Alphabet,
    check_sequence_column,
    read_tokens,
    resolve_alphabet,
)

#: where registration writes the token matrix of each row (int16, ``(n_obs, width)``)
TOKENS_KEY = "_gde_tokens"


class SequenceTokensField(ObsmField):
    """Token rows of each sequence, written to ``adata.obsm['_gde_tokens']`` at setup.

    Reads either strings in ``adata.obs[sequence_key]`` (variable length; an end token
    follows each) or a read matrix in ``adata.X`` / ``adata.layers[layer]`` (0/1 calls,
    NaN for no call; fixed length). The alphabet and width are fixed at registration
    and reused for every object transferred to (new sets to embed, a reloaded model), so
    tokens mean the same everywhere.

    Parameters
    ----------
    registry_key
        Key under which the field is registered.
    sequence_key
        Column of ``adata.obs`` with one sequence per row, or ``None`` for a read matrix.
    layer
        Layer with the read matrix (``None``: ``X``); used when ``sequence_key`` is None.
    alphabet
        ``"dna"``, ``"rna"``, ``"protein"``, a string of letters, or ``None`` (inferred).
    """

    LETTERS_KEY = "letters"
    FIXED_KEY = "fixed_length"
    WIDTH_KEY = "width"

    def __init__(
        self,
        registry_key: str,
        sequence_key: str | None,
        layer: str | None = None,
        alphabet: str | None = None,
    ):
        super().__init__(registry_key, TOKENS_KEY, correct_data_format=False)
        self.sequence_key, self.layer, self.alphabet = sequence_key, layer, alphabet

    @property
    def location(self) -> str:
        """Where the sequences are, in words."""
        if self.sequence_key is not None:
            return f"adata.obs['{self.sequence_key}']"
        return data_location(self.layer, None)

    def _tokens(self, adata: AnnData, alphabet: Alphabet | None, width: int | None):
        if self.sequence_key is None:
            tokens = read_tokens(get_data(adata, layer=self.layer), self.location)
            if width is not None and tokens.shape[1] != width:
                raise ValueError(
                    f"{self.location} has {tokens.shape[1]} positions; the model was "
                    f"trained on reads of {width}."
                )
            return tokens, Alphabet(ALPHABETS["reads"], fixed_length=True)
        sequences = check_sequence_column(adata, self.sequence_key)
        if alphabet is None:
            alphabet = resolve_alphabet(self.alphabet, sequences)
        if width is None:
            width = int(sequences.str.len().max()) + 1
        return alphabet.encode(sequences, width, self.location), alphabet

    def validate_field(self, adata: AnnData) -> None:
        """The token matrix exists once the field has written it."""
        if TOKENS_KEY not in adata.obsm:
            raise KeyError(
                f"adata.obsm['{TOKENS_KEY}'] is missing: register the object with "
                "SeqGDEModel.setup_anndata first."
            )

    def register_field(self, adata: AnnData) -> dict:
        """Tokenise the sequences into ``adata.obsm['_gde_tokens']`` and register them."""
        tokens, alphabet = self._tokens(adata, None, None)
        adata.obsm[TOKENS_KEY] = tokens
        state = super().register_field(adata)
        if alphabet.fixed_length:  # the reads' positions name the token columns
            state[self.COLUMN_NAMES_KEY] = adata.var_names.to_numpy().astype(str)
        state[self.LETTERS_KEY] = alphabet.letters
        state[self.FIXED_KEY] = alphabet.fixed_length
        state[self.WIDTH_KEY] = int(tokens.shape[1])
        return state

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        """Tokenise ``adata_target`` with the registered alphabet and width."""
        alphabet = Alphabet(state_registry[self.LETTERS_KEY], state_registry[self.FIXED_KEY])
        width = int(state_registry[self.WIDTH_KEY])
        tokens, _ = self._tokens(adata_target, alphabet, width)
        adata_target.obsm[TOKENS_KEY] = tokens
        state = super().transfer_field(state_registry, adata_target, **kwargs)
        state.update({k: state_registry[k] for k in (self.LETTERS_KEY, self.FIXED_KEY)})
        state[self.WIDTH_KEY] = width
        return state


def registered_alphabet(manager, registry_key: str) -> tuple[Alphabet, int]:
    """The alphabet and token width a manager registered."""
    state = manager.get_state_registry(registry_key)
    letters = state[SequenceTokensField.LETTERS_KEY]
    fixed = bool(state[SequenceTokensField.FIXED_KEY])
    return Alphabet(str(letters), fixed), int(state[SequenceTokensField.WIDTH_KEY])
