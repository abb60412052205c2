"""The API reference lists every public name; the tutorials are valid notebooks."""

import re
from pathlib import Path

import nbformat
import pytest

import gde

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["data", "datasets", "metrics", "module", "nn", "pl", "seq", "tl"]


def documented() -> set[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    return set(re.findall(r"^   ([\w.]+)$", text, flags=re.M))


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_every_public_name_is_in_the_api_reference(sub):
    names = {f"{sub}.{n}" for n in getattr(gde, sub).__all__}
    missing = sorted(names - documented())
    assert not missing, f"add these to docs/api.md: {missing}"


def test_the_api_reference_lists_only_public_names():
    public = {f"{sub}.{n}" for sub in SUBPACKAGES for n in getattr(gde, sub).__all__}
    listed = {n for n in documented() if n.split(".")[0] in SUBPACKAGES}
    stale = sorted(listed - public)
    assert not stale, f"not public (not in __all__), remove from docs/api.md: {stale}"


def test_model_is_documented():
    assert "GDEModel" in documented()


def test_tutorials_are_listed_and_have_outputs():
    listed = re.findall(r"^tutorials/(\w+)$", (ROOT / "docs" / "tutorials.md").read_text(), re.M)
    notebooks = sorted(p.stem for p in (ROOT / "tutorials").glob("*.ipynb"))
    assert sorted(listed) == notebooks
    for name in notebooks:
        nb = nbformat.read(ROOT / "tutorials" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        # stored outputs, so the docs show them: every code cell was executed, in order
        counts = [c.execution_count for c in code]
        assert all(counts) and counts == sorted(counts), f"{name}: run tutorials/execute.py"
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name} stores an error output"
