"""Execute the tutorials top to bottom and report how long each takes.

``python tutorials/execute.py`` runs every notebook in this folder in place, in full: the
outputs stored in the repository (and shown in the docs) come from this command.
``--quick`` runs every cell on less data and fewer training steps (the notebooks read
``GDE_TUTORIAL_QUICK=1`` from the environment), as continuous integration does;
``--out DIR`` writes the executed copies to ``DIR`` instead of in place. Exits non-zero if
any cell fails.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--out", type=Path, help="write executed copies here")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument(
        "--quick", action="store_true", help="less data and training (every cell still runs)"
    )
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick outputs are not the tutorials' stored outputs: pass --out DIR.")
    os.environ["GDE_TUTORIAL_QUICK"] = "1" if args.quick else "0"
    paths = [Path(p) for p in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    timings = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb,
            timeout=args.timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        timings[path.name] = round(time.perf_counter() - start, 1)
        target = path if args.out is None else args.out / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        print(f"{path.name}: {timings[path.name]} s", flush=True)
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
