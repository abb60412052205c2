"""The likelihood of a cell model, checked against the values it will model."""

from __future__ import annotations

import warnings

import numpy as np

from gde._anndata_utils import check_counts, check_finite, is_count_matrix, negative_integers
from gde.nn import COUNT_LIKELIHOODS

from ._backed import iter_row_chunks


def _refuse_empty_cells(n_empty: int) -> None:
    if n_empty:
        raise ValueError(
            f"{n_empty} cells have no counts at all. Remove them before setup, e.g. "
            "`sc.pp.filter_cells(adata, min_counts=1)`."
        )


def resolve_likelihood(
    x, likelihood: str | None, decoder: str, where: str, warn_if_guessed: bool = True
) -> str:
    """Check a model's values ``x`` against its likelihood; return the likelihood.

    ``None`` picks ``"nb"`` for non-negative integers and ``"normal"`` otherwise (with a
    warning if ``warn_if_guessed``: continuous values in a layer are often a mistake), and
    refuses integers with some negative entries (corrupted counts).
    Raises, naming ``where``, on counts fitted with a Gaussian, non-counts fitted with
    a count likelihood, or cells without counts.
    """
    check_finite(x, where)
    is_counts = is_count_matrix(x)
    if likelihood is None:
        corrupt = None if is_counts else negative_integers(x)
        if corrupt is not None:
            n_negative, (row, col) = corrupt
            raise ValueError(
                f"{where} holds integers, but {n_negative} of them are negative (the first "
                f"in row {row}, column {col}); counts cannot be negative, so the matrix "
                "looks corrupted. Fix these entries, or pass likelihood='normal' if the "
                "values are continuous features rather than counts."
            )
        likelihood = "nb" if is_counts else "normal"
        if not is_counts and warn_if_guessed:
            warnings.warn(
                f"{where} is not raw counts (it has negative or non-integer values): "
                "modelling it as continuous features (likelihood='normal'). Pass "
                "likelihood='normal' to silence this, or register the raw-count layer "
                "(e.g. layer='counts') for a count model.",
                UserWarning,
                stacklevel=3,
            )
    if likelihood in COUNT_LIKELIHOODS:
        check_counts(x, where, likelihood)
        _refuse_empty_cells(int((np.asarray(x.sum(axis=1)).ravel() <= 0).sum()))
    elif likelihood == "normal":
        if is_counts:
            model = "a diffusion model on the raw values" if decoder == "ddpm" else "a Gaussian"
            raise ValueError(
                f"{where} holds raw counts, but likelihood='normal' would fit {model} and "
                "generate non-integer 'counts'. Use a count likelihood (likelihood='nb'"
                + (
                    "; decoder='ddpm' then diffuses in a latent space with a count decoder"
                    if decoder == "ddpm"
                    else ""
                )
                + "), or register continuous features: a log-normalised layer, or "
                "`obsm_key='X_pca'`."
            )
    else:
        raise ValueError(
            f"likelihood must be 'nb', 'zinb', 'poisson' or 'normal', got {likelihood!r}."
        )
    return likelihood


def scan_counts(x, likelihood: str, where: str) -> None:
    """Check every row of ``x`` for a count likelihood, one block of rows at a time.

    The count checks of :func:`resolve_likelihood` (non-negative integers, no empty
    cell) for a matrix that stays on disk and is never read whole. Finite values are
    checked once, by ``setup_anndata``.
    """
    n_empty = 0
    for _, block in iter_row_chunks(x):
        check_counts(block, where, likelihood)
        n_empty += int((np.asarray(block.sum(axis=1)).ravel() <= 0).sum())
    _refuse_empty_cells(n_empty)
