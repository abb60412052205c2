"""train(checkpoint_path=...): a run cut short resumes to the weights of one never stopped."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scvi
import torch
from lightning.pytorch.callbacks import Callback

import gde
from conftest import small_sets

KW = {
    "max_steps": 12,
    "steps_per_epoch": 3,
    "set_size": 16,
    "n_sets_per_batch": 4,
    "early_stopping_patience": 100,
    "weight_ema": 0.9,  # its average must survive the cut as well
    "enable_progress_bar": False,
}


class Cut(Callback):
    """Stop the process after ``at`` optimiser steps, as a job's time limit would."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.at:
            raise KeyError("time limit")


def _model(adata, n_latent=8):
    scvi.settings.seed = 0
    gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
    # few new W2 pairs per step: the targets' cache is still filling at the cut
    return gde.GDEModel(adata, n_latent=n_latent, n_hidden=32, n_set_hidden=32, w2_pairs=2)


@pytest.fixture(scope="module")
def data():
    return small_sets(n_sets=12)


@pytest.fixture(scope="module")
def uninterrupted(data):
    model = _model(data.copy())
    model.train(**KW)
    return model


def test_resumed_run_reaches_the_same_weights(data, uninterrupted, tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyError, match="time limit"):
        _model(data.copy()).train(checkpoint_path=path, callbacks=[Cut(7)], **KW)
    # the last state written is that of the last validation pass before the cut
    assert torch.load(path, weights_only=True)["global_step"] == 6

    resumed = _model(data.copy())
    resumed.train(checkpoint_path=path, **KW)
    expected = uninterrupted.module.state_dict()
    for name, value in resumed.module.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    stop = resumed.history["stop"].iloc[-1]
    assert stop["steps"] == 12 and stop["resumed_from_step"] == 6
    assert uninterrupted.history["stop"].iloc[-1]["resumed_from_step"] == 0
    # the validation history covers the whole run, the part before the cut included
    np.testing.assert_allclose(
        resumed.history["validation_loss"].to_numpy(float),
        uninterrupted.history["validation_loss"].to_numpy(float),
    )
    assert not path.exists()  # the run finished: its state is the model's


def test_checkpoint_of_another_run_is_refused(data, tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyError):
        _model(data.copy()).train(checkpoint_path=path, callbacks=[Cut(4)], **KW)
    other = _model(data.copy())
    with pytest.raises(ValueError, match=r"another training run \(max_steps: 12 there, 15 now"):
        other.train(checkpoint_path=path, **{**KW, "max_steps": 15})
    built_otherwise = _model(data.copy(), n_latent=4)
    with pytest.raises(ValueError, match="model parameters n_latent: 8 there, 4 now"):
        built_otherwise.train(checkpoint_path=path, **KW)
    assert path.exists()  # refused before any work: the checkpoint is kept


def test_unreadable_checkpoint_and_no_validation_are_refused(data, tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        _model(data.copy()).train(checkpoint_path=path, **KW)
    with pytest.raises(ValueError, match="`checkpoint_path` needs validation sets"):
        _model(data.copy()).train(
            checkpoint_path=tmp_path / "b.ckpt", validation_size=0.0, train_size=1.0, **KW
        )


# a run cut in one process, resumed by two forked processes (as in Jupyter)
TWO_PROCESSES = textwrap.dedent(
    """
    import json, os, sys
    import scvi
    from lightning.pytorch.callbacks import Callback
    import gde

    class Cut(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= 7:
                raise KeyError("time limit")

    def model():
        scvi.settings.seed = 0
        adata = gde.datasets.simulate_sets(
            n_sets=12, n_genes=40, n_cells_per_set=(30, 60), n_batches=2, seed=0
        )
        gde.GDEModel.setup_anndata(adata, set_key="set", batch_key="batch")
        return gde.GDEModel(adata, n_latent=8, n_hidden=32, n_set_hidden=32)

    if __name__ == "__main__":
        path = os.path.join(sys.argv[1], "run.ckpt")
        kw = dict(max_steps=12, steps_per_epoch=3, set_size=16, n_sets_per_batch=4,
                  accelerator="cpu", checkpoint_path=path, enable_progress_bar=False)
        try:
            model().train(callbacks=[Cut()], **kw)
        except KeyError:
            pass
        resumed = model()
        resumed.train(strategy="ddp_notebook", devices=2, **kw)
        stop = resumed.history["stop"].iloc[-1]
        with open(os.path.join(sys.argv[1], "stop.json"), "w") as f:
            json.dump({"steps": int(stop["steps"]), "from": int(stop["resumed_from_step"]),
                       "reason": stop["reason"], "kept": os.path.exists(path),
                       "validations": len(resumed.history["validation_loss"])}, f)
    """
)


def test_two_processes_resume_a_run(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(TWO_PROCESSES)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stop = json.loads((tmp_path / "stop.json").read_text())
    assert stop["steps"] == 12 and stop["from"] == 6
    assert stop["reason"].startswith("reached max_steps=12")
    assert stop["validations"] == 4 and not stop["kept"]
