"""Per-gene moments of generated against real cells."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes

from gde import tl

from ._utils import finish

_PANELS = (("mean", "mean"), ("var", "variance"))


def generated_vs_real(
    real: AnnData,
    generated: AnnData,
    *,
    set_key: str,
    set_name: str | None = None,
    layer: str | None = None,
    normalize: bool | None = None,
    size: float = 6.0,
    axes: Sequence[Axes] | None = None,
    show: bool | None = None,
    save: str | None = None,
) -> np.ndarray:
    """Scatter of per-gene mean and variance, real against generated cells.

    Values are those of :func:`gde.tl.generated_vs_real`: ``log1p`` of counts per 10,000
    (continuous features as they are). Each panel has the identity line and the Pearson
    correlation in its title.

    Parameters
    ----------
    real
        Real cells × genes, counts in ``layer`` (or ``X``).
    generated
        Generated cells as returned by :meth:`gde.GDEModel.sample`.
    set_key
        Column of ``real.obs`` naming each cell's set.
    set_name
        One set to compare; ``None`` draws every (set, gene) pair of all sets present
        in both AnnData in the same panels.
    layer
        Layer of ``real`` with the counts; ``None`` uses ``real.X``.
    normalize
        See :func:`gde.tl.generated_vs_real`.
    size
        Marker size.
    axes
        Two Axes to draw on (mean, variance); a new figure by default.
    show
        Show the figure (default: when no ``axes`` are given, not saving, and
        matplotlib is in interactive mode).
    save
        Write the figure to this path.

    Returns
    -------
    Array of the two Axes (mean, variance).
    """
    if axes is not None and len(axes) != 2:
        raise ValueError(f"`axes` must hold two Axes (mean, variance), got {len(axes)}.")
    sets = None if set_name is None else [set_name]
    table = tl.generated_vs_real(
        real, generated, set_key=set_key, sets=sets, layer=layer, normalize=normalize
    )
    created = axes is None
    if created:
        _, axes = plt.subplots(1, 2, figsize=(8.0, 3.8), layout="constrained")
    axes = np.asarray(axes, dtype=object)
    label = set_name if set_name is not None else f"{table['set'].nunique()} sets"
    # Pearson r over every (set, gene) pair drawn: all of them as one group
    r = tl.generated_vs_real_summary(table.assign(set=label)).iloc[0]
    for ax, (column, name) in zip(axes, _PANELS, strict=True):
        x = table[f"{column}_real"].to_numpy()
        y = table[f"{column}_generated"].to_numpy()
        ax.scatter(x, y, s=size, alpha=0.6, linewidths=0, rasterized=len(x) > 5000)
        finite = np.concatenate([x, y])
        finite = finite[np.isfinite(finite)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, zorder=0)
        ax.set_xlabel(f"{name}, real")
        ax.set_ylabel(f"{name}, generated")
        ax.set_title(f"{name} per gene ({label}), r = {r[f'r_{column}']:.3f}", fontsize="medium")
    finish(axes[0].figure, show=show, save=save, created=created)
    return axes
