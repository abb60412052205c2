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
        main(["demo", "--out", str(out), "--n-sets", "20", "--max-steps", "4", "--no-progress"])
        == 0
    )
    for name in ("sets.png", "embeddings.csv", "summary.json", "model/model.pt"):
        assert (out / name).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert -1 <= summary["gde"]["spearman_w2_held_out"] <= 1
    assert summary["held_out_sets"] == 5 and summary["held_out_pairs"] == 10


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
    # a second run refuses to overwrite, in one line
    assert main(args) == 2


def test_fit_checkpoint_reaches_training(h5ad, tmp_path, capsys):
    args = ["fit", str(h5ad), "--set-key", "set", "--layer", "counts", "--n-latent", "4"]
    args += ["--max-steps", "2", "--set-size", "16", "--no-progress"]
    state = tmp_path / "run.ckpt"
    state.write_text("not a training state")
    _one_line_error(capsys, [*args, "--checkpoint", str(state)], "is not a training checkpoint")
    state.unlink()
    assert main([*args, "--checkpoint", str(state), "--out", str(tmp_path / "o.h5ad")]) == 0
    assert (tmp_path / "o.h5ad").exists()
    assert not state.exists()  # the run finished: the state file is gone


def _one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    _, err = capsys.readouterr()
    errors = [line for line in err.strip().splitlines() if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == errors[0]  # the last thing printed
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def h5ad(tmp_path):
    adata = small_sets()
    adata.layers["counts"] = adata.X.copy()
    adata.X = np.log1p(adata.X.toarray())  # log-values in X, counts in a layer
    adata.obsm["X_pca"] = np.random.default_rng(0).normal(size=(adata.n_obs, 5))
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    return path


def test_user_errors_are_one_line_with_cli_hints(h5ad, capsys):
    base = ["fit", str(h5ad), "--n-latent", "4", "--max-steps", "2", "--no-progress"]
    _one_line_error(capsys, [*base, "--set-key", "clone"], "gde fit: error:", "--set-key 'clone'")
    _one_line_error(capsys, [*base, "--set-key", "set", "--likelihood", "nb"], "`--layer counts`")
    _one_line_error(capsys, ["fit", str(h5ad) + ".missing", "--set-key", "set"], "not exist")
    _one_line_error(
        capsys,
        ["fit", str(h5ad), "--set-key", "set", "--layer", "counts", "--max-steps", "0"],
        "random weights",
    )
    _one_line_error(capsys, ["demo", "--n-sets", "16"], "6 pairs", "--n-sets 20")


def test_version_and_help_with_defaults(capsys):
    import gde

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"gde {gde.__version__}"
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for option in ("--obsm-key", "--likelihood", "--set-size", "--n-latent"):
        assert option in text
    assert "(default: 128)" in text and "(default: 64)" in text


def test_continuous_input_and_piping(h5ad, tmp_path, capsys):
    out = tmp_path / "pca_gde.h5ad"
    argv = ["fit", str(h5ad), "--set-key", "set", "--obsm-key", "X_pca", "--n-latent", "4"]
    argv += ["--max-steps", "3", "--set-size", "16", "--out", str(out)]
    assert main(argv) == 0
    stdout, stderr = capsys.readouterr()
    assert stdout.strip() == str(out)  # only the result on stdout
    assert "Read" in stderr and "warning: Training stopped at the step cap" in stderr
    assert "Train longer: `--max-steps` with a larger value" in stderr  # CLI syntax
    assert "Seed set" not in stderr and "Traceback" not in stderr
    result = ad.read_h5ad(out)
    assert result.uns["X_gde"]["params"]["likelihood"] == "normal"
