"""Shared by the benchmark scripts: a set model trained by its default ``train()``, timed,
and the results written."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def train_default(
    model, max_steps: int | None, unit: str, untrained=None, **train_kwargs
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
    start = time.perf_counter()
    model.train(max_steps=max_steps, enable_progress_bar=False, **train_kwargs)
    seconds = time.perf_counter() - start
    stop = model.history["stop"].iloc[-1]
    steps = int(stop["steps"])
    seen = steps * int(stop["n_sets_per_batch"]) * int(stop["set_size"])
    info = {
        "train_seconds": round(seconds, 1),
        "steps": steps,
        "stop": str(stop["reason"]),
        f"train_{unit}_per_s": round(seen / seconds, 1),
    }
    return info, start_emb


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
