"""Choosing the image sampler's classifier-free guidance on sets the model did not train on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from gde._anndata_utils import group_cells_by_set
from gde._pca import pca, project
from gde.metrics import sinkhorn_divergence

# (scale, interval) before any choice: guidance 2 over the middle half of the diffusion time
DEFAULT_GUIDANCE = (2.0, (0.25, 0.75))
# what :meth:`ImageGDEModel.tune_guidance` compares by default: none, the middle half,
# the middle and the noisiest quarter, all of the diffusion time
CANDIDATES = (
    (1.0, None),
    (2.0, (0.25, 0.75)),
    (3.0, (0.25, 0.75)),
    (2.0, (0.25, 1.0)),
    (2.0, None),
)
_N_COMPS = 50
_MAX_REAL = 200  # real images per set compared


def describe(scale: float, interval) -> str:
    """``"2 over (0.25, 0.75)"``, ``"2 throughout"``, ``"none"``: a guidance setting."""
    if scale == 1.0:
        return "none"
    if interval is None:
        return f"{scale:g} throughout"
    return f"{scale:g} over ({interval[0]:g}, {interval[1]:g})"


def check_candidates(candidates) -> list[tuple[float, tuple[float, float] | None]]:
    """Candidates as ``(scale, interval)`` pairs; a clear error for anything else."""
    out = []
    for c in candidates:
        try:
            scale, interval = c
            scale = float(scale)
            interval = None if interval is None else tuple(float(v) for v in interval)
        except (TypeError, ValueError):
            raise ValueError(
                f"Each guidance candidate is (guidance_scale, guidance_interval), e.g. "
                f"(2.0, (0.25, 0.75)) or (2.0, None); got {c!r}."
            ) from None
        if scale < 1.0:
            raise ValueError(f"A guidance candidate has a scale >= 1; got {c!r}.")
        out.append((scale, interval))
    if not out:
        raise ValueError("No guidance candidates given: pass at least one (scale, interval).")
    return out


def score_guidance(
    sample,
    real: dict[str, np.ndarray],
    candidates: Sequence[tuple[float, tuple[float, float] | None]],
    n_images: int,
    seed: int,
) -> pd.DataFrame:
    """Each candidate's mean Sinkhorn divergence from the sets' real images.

    Parameters
    ----------
    sample
        ``sample(sets, n_images, seed, guidance_scale, guidance_interval)`` returning one
        array of images per set, in the units of ``real``.
    real
        Each set's real images ``(n, ...)``.
    candidates, n_images, seed
        As in :meth:`gde.image.ImageGDEModel.tune_guidance`.

    Returns
    -------
    One row per candidate (named by :func:`describe`): ``guidance_scale``,
    ``guidance_interval`` and ``sinkhorn``, the debiased Sinkhorn divergence between the
    generated and the real images of each set, averaged over the sets, in the top 50
    principal components of the real images (squared pixel units).
    """
    rng = np.random.default_rng(seed)
    flat = {}
    for s, x in real.items():
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        flat[s] = x[rng.permutation(len(x))[:_MAX_REAL]]
    basis = pca(np.concatenate(list(flat.values())), _N_COMPS)
    targets = {s: project(x, *basis) for s, x in flat.items()}
    rows = {}
    for scale, interval in candidates:
        generated = sample(list(real), n_images, seed, scale, interval)
        divergences = [
            sinkhorn_divergence(
                project(np.asarray(g, dtype=np.float32).reshape(len(g), -1), *basis), targets[s]
            )
            for s, g in zip(real, generated, strict=True)
        ]
        rows[describe(scale, interval)] = {
            "guidance_scale": scale,
            "guidance_interval": interval,
            "sinkhorn": float(np.mean(divergences)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def resolve_guidance(chosen, scale: float | None, interval) -> tuple:
    """The sampler's ``(guidance_scale, guidance_interval)``: as given, or the chosen one.

    ``chosen``: the model's ``guidance_`` (``None``: :data:`DEFAULT_GUIDANCE`); ``scale``
    ``None`` and ``interval`` ``"auto"`` take its values.
    """
    chosen_scale, chosen_interval = DEFAULT_GUIDANCE if chosen is None else chosen
    if isinstance(interval, str):
        if interval != "auto":
            raise ValueError(
                f"guidance_interval is (start, end), None (all of the diffusion time) "
                f"or 'auto' (the chosen interval); got {interval!r}."
            )
        interval = chosen_interval
    return (chosen_scale if scale is None else scale), interval


def guidance_scores(
    model,
    sets: Sequence[str] | None,
    adata: AnnData | None,
    candidates,
    n_images: int,
    n_steps: int | None,
    seed: int,
    batch_size: int,
) -> pd.DataFrame:
    """:meth:`gde.image.ImageGDEModel.tune_guidance` without setting ``guidance_``."""
    candidates = check_candidates(candidates)
    for scale, interval in candidates:  # the sampler's own checks, before any sampling
        model._sampler_kwargs(n_steps, scale, interval)
    src = model.adata if adata is None else adata
    if sets is None:
        sets = [] if model.validation_sets_ is None else list(model.validation_sets_)
        if not sets:
            raise ValueError(
                "tune_guidance compares generated and real images of sets the model "
                "did not train on, and this model has no validation sets (not trained, "
                "or trained with validation_size=0). Pass `sets=` (and `adata=` if they "
                "are not in the training data)."
            )
    model._validate_anndata(src)
    rows = group_cells_by_set(src.obs[model.set_key])
    missing = [s for s in sets if s not in rows]
    if missing:
        raise ValueError(f"Sets not found in adata.obs[{model.set_key!r}]: {missing[:5]}.")
    real = {s: src.obsm[model.image_key][rows[s]] for s in sets}

    def sample(names, n, draw_seed, scale, interval):
        out = model.sample(
            names, n_images=n, adata=src, seed=draw_seed, n_steps=n_steps,
            guidance_scale=scale, guidance_interval=interval, batch_size=batch_size,
        )  # fmt: skip
        generated = group_cells_by_set(out.obs[model.set_key])
        return [out.obsm[model.image_key][generated[s]] for s in names]

    scores = score_guidance(sample, real, candidates, n_images, seed)
    scores["chosen"] = scores.index == scores["sinkhorn"].idxmin()
    return scores
