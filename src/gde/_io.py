"""Opening data that stays on disk."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
from anndata.io import read_elem, sparse_dataset


def read_lazy(path: str | Path) -> ad.AnnData:
    """Open an ``.h5ad`` file or a ``.zarr`` store with its counts left on disk.

    ``obs``, ``var`` and ``uns`` are read into memory; ``X`` (and sparse ``layers``) stay
    on disk and are read a minibatch at a time. Such an object can be registered
    (``setup_anndata``), trained on and embedded like one in memory: the model reads
    only the rows it needs, in order, and computes its initial statistics from a sample
    of cells (every cell is still checked for valid values, one block at a time).

    Reads are fastest when the matrix is CSR (compressed by rows) with the cells of each
    set next to each other, e.g. the file written after
    ``adata = adata[adata.obs[set_key].argsort()]``: a minibatch then reads a few
    contiguous runs of rows.

    Parameters
    ----------
    path
        An ``.h5ad`` file (opened with ``anndata.read_h5ad(path, backed="r")``) or a
        ``.zarr`` store (written by ``AnnData.write_zarr``).

    Returns
    -------
    An AnnData whose ``X`` is read from disk on access. It is read-only: write results
    with ``key_added=None`` or to a copy of ``obs``; ``get_distribution_embeddings``
    returns its result as a DataFrame either way.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No file or store at {path}.")
    if path.suffix == ".h5ad":
        return ad.read_h5ad(path, backed="r")
    if path.suffix != ".zarr":
        raise ValueError(
            f"read_lazy opens .h5ad files and .zarr stores, not {path.name!r}. Write the "
            "AnnData with `adata.write_h5ad(...)` or `adata.write_zarr(...)` first."
        )
    import zarr

    store = zarr.open(str(path), mode="r")
    parts = {key: read_elem(store[key]) for key in ("obs", "var", "obsm", "uns") if key in store}
    layers = {}
    if "layers" in store:
        for key in store["layers"]:
            layers[key] = _lazy(store["layers"][key], f"layers['{key}']")
    return ad.AnnData(X=_lazy(store["X"], "X") if "X" in store else None, layers=layers, **parts)


def _lazy(element, name: str):
    """A sparse matrix left on disk; a dense one read into memory, with a warning."""
    if hasattr(element, "attrs") and element.attrs.get("encoding-type") in (
        "csr_matrix",
        "csc_matrix",
    ):
        return sparse_dataset(element)
    warnings.warn(
        f"{name} is stored dense, so it is read into memory. Store it sparse (CSR) to "
        "leave it on disk: `adata.X = scipy.sparse.csr_matrix(adata.X)` before writing.",
        UserWarning,
        stacklevel=3,
    )
    return read_elem(element)
