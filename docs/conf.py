"""Sphinx configuration for gde."""

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, os.path.abspath("../src"))

# The tutorials live in ../tutorials with their stored outputs; the docs show copies.
_here = Path(__file__).resolve().parent
(_here / "tutorials").mkdir(exist_ok=True)
for _nb in sorted((_here.parent / "tutorials").glob("*.ipynb")):
    shutil.copy2(_nb, _here / "tutorials" / _nb.name)

project = "gde"
author = "The gde authors"
copyright = "2026, The gde authors"
try:
    release = importlib.metadata.version("gde-embeddings")
except importlib.metadata.PackageNotFoundError:  # building from a bare checkout
    release = "0.1.0"
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # tutorials are stored with their outputs
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header"]
nitpicky = False

html_theme = "sphinx_book_theme"
html_title = "gde"
html_theme_options = {
    "repository_url": "https://github.com/gde-embeddings/gde",
    "use_repository_button": False,
}
