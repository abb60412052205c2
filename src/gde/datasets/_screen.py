"""Reading a perturbation screen stored in the common h5ad layout."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pandas as pd

from gde._perturbations import check_separator, split_perturbations


def read_perturbation_screen(
    path: str | Path,
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    separator: str = "+",
    backed: bool = False,
) -> ad.AnnData:
    """Read a perturbation screen: an h5ad with one perturbation label per cell.

    The layout pertpy and scPerturb write: cells × genes with raw counts, an ``obs``
    column naming each cell's perturbation, one label for control cells, and
    combinations as the perturbed genes joined by a separator (``"KLF1+CEBPE"``;
    scPerturb uses ``"_"`` in some files, GEARS ``"+"`` and ``"ctrl"``). The file is
    checked before anything else is done with it: the column exists with no missing
    labels, the control label occurs, and every part of a combination also occurs
    alone (else the separator is splitting gene names, e.g. ``"HLA-A"`` at ``"-"``).

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    perturbation_key
        ``obs`` column with the perturbation labels.
    control
        Label of the control cells (e.g. ``"control"``, ``"ctrl"``, ``"non-targeting"``).
    separator
        What joins the genes of a combination.
    backed
        Open the file backed (``"r"``) instead of reading it into memory.

    Returns
    -------
    The AnnData, with ``uns['perturbation_screen']``: the keys above and
    ``'perturbations'``, a table of each label's parts (``n_perturbed``, ``parts``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No file at {path}.")
    adata = ad.read_h5ad(path, backed="r" if backed else None)
    if perturbation_key not in adata.obs.columns:
        raise KeyError(
            f"'{perturbation_key}' is not a column of the file's obs (columns: "
            f"{', '.join(map(str, adata.obs.columns[:20]))}); pass `perturbation_key=`."
        )
    labels = adata.obs[perturbation_key]
    n_missing = int(labels.isna().sum())
    if n_missing:
        raise ValueError(
            f"obs['{perturbation_key}'] has {n_missing} cells without a label; label or "
            "drop them before reading."
        )
    labels = labels.astype(str)
    if control not in set(labels):
        common = labels.value_counts().index[:5].tolist()
        raise ValueError(
            f"No cell has the control label '{control}' in obs['{perturbation_key}'] "
            f"(most common labels: {common}); pass `control=`."
        )
    parts = split_perturbations(labels.unique(), control=control, separator=separator)
    check_separator(parts, separator)
    adata.uns["perturbation_screen"] = {
        "perturbation_key": perturbation_key,
        "control": control,
        "separator": separator,
        "perturbations": pd.DataFrame(
            {
                "n_perturbed": [len(p) for p in parts.values()],
                "parts": [separator.join(p) for p in parts.values()],
            },
            index=list(parts),
        ),
    }
    return adata
