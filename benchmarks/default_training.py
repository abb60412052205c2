"""Shared by the benchmark scripts: a set model trained by its default ``train()``, timed,
and the results written."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class ElapsedTime(Callback):
    """Seconds of training over the runs of a resumed training, kept in a JSON file.

    Rewritten after every validation pass (before the training checkpoint is), so a run
    resumed from the checkpoint adds its seconds to those of the runs before it.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.before = json.loads(self.path.read_text())["seconds"] if self.path.exists() else 0.0
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.path.write_text(json.dumps({"seconds": self.seconds}))


def train_default(
    model,
    max_steps: int | None,
    unit: str,
    untrained=None,
    resume: Path | None = None,
    **train_kwargs,
) -> tuple[dict, object]:
    """Train ``model`` (set up, untrained) with ``train(max_steps=max_steps)``, timed.

    Parameters
    ----------
    model
        A gde set model built on its training AnnData.
    max_steps
        ``None`` for the default budget.
    unit
        What the set elements are (``"sequences"``, ``"images"``) for the throughput key.
    untrained
        AnnData to embed *before* training (the mean path's start), or ``None``.
    resume
        Folder to keep the training checkpoint in (``train(checkpoint_path=...)``) and
        the seconds trained so far: a run cut short resumes there when called again.
    **train_kwargs
        Further ``train()`` arguments of a benchmark's stated recipe (none by default).

    Returns
    -------
    The training record (seconds, steps, why it stopped, elements per second) and the
    untrained embedding (``None`` without ``untrained``).
    """
    start_emb = None
    if untrained is not None:  # the embedding of the untrained model, on purpose
        model.is_trained_ = True
        start_emb = model.get_distribution_embeddings(untrained, key_added=None)
        model.is_trained_ = False
    clock = None
    if resume is not None:
        clock = ElapsedTime(resume / "elapsed.json")
        train_kwargs["checkpoint_path"] = resume / "training.ckpt"
        train_kwargs["callbacks"] = [*train_kwargs.get("callbacks", []), clock]
    start = time.perf_counter()
    model.train(max_steps=max_steps, enable_progress_bar=False, **train_kwargs)
    seconds = time.perf_counter() - start
    stop = model.history["stop"].iloc[-1]
    steps = int(stop["steps"])
    # the speed of this call's steps (a resumed run counts from its checkpoint)
    run_here = steps - int(stop["resumed_from_step"])
    seen = run_here * int(stop["n_sets_per_batch"]) * int(stop["set_size"])
    info = {
        "train_seconds": round(clock.seconds if clock is not None else seconds, 1),
        "steps": steps,
        "stop": str(stop["reason"]),
        f"train_{unit}_per_s": round(seen / seconds, 1),
    }
    if clock is not None:
        clock.path.unlink(missing_ok=True)
    return info, start_emb


def device_name() -> str:
    """The device a benchmark runs on, for its results file: the GPU, or the CPU's threads."""
    import platform

    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name()}"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def command(script: str, argv=None) -> str:
    """The command line that reproduces a run, for its results file.

    Without the options that name this machine's folders and change no figure
    (``--out``, ``--models``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    for option in ("--out", "--models"):
        if option in args:
            i = args.index(option)
            del args[i : i + 2]
    return " ".join(["python", script, *args])


def write_results(results: dict, out: str, markdown) -> None:
    """Write ``results`` to ``out.json`` and ``markdown(results)`` to ``out.md``; print it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
