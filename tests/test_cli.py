"""The command line: gde demo and gde fit."""

import json

import anndata as ad
import numpy as np
import pytest

from conftest import small_sets
from gde.cli import main


def test_demo_writes_plot_and_summary(tmp_path):
    out = tmp_path / "demo"
    assert (
        main(["demo", "--out", str(out), "--n-sets", "12", "--max-steps", "4", "--no-progress"])
        == 0
    )
    for name in ("sets.png", "embeddings.csv", "summary.json", "model/model.pt"):
        assert (out / name).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert -1 <= summary["gde"]["spearman_w2_held_out"] <= 1
    assert summary["held_out_sets"] == 3


def test_fit_writes_embeddings(tmp_path):
    adata = small_sets()
    adata.layers["counts"] = adata.X.copy()
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "cells_gde.h5ad"
    args = [
        "fit",
        str(path),
        "--set-key",
        "set",
        "--layer",
        "counts",
        "--batch-key",
        "batch",
        "--n-latent",
        "4",
        "--max-steps",
        "2",
        "--set-size",
        "16",
        "--out",
        str(out),
        "--save-model",
        str(tmp_path / "model"),
        "--no-progress",
    ]
    assert main(args) == 0
    result = ad.read_h5ad(out)
    assert result.obsm["X_gde"].shape == (adata.n_obs, 4)
    assert result.uns["X_gde"]["table"].shape == (10, 5)
    assert not any(c.startswith("_scvi") for c in result.obs.columns)
    assert np.isfinite(result.obsm["X_gde"]).all()
    assert (tmp_path / "model" / "model.pt").exists()
    with pytest.raises(SystemExit, match="exists"):
        main(args)
