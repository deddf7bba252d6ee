"""Sphinx configuration of the emnist_dist documentation.

Build (from the repository root; warnings are errors, so a broken link, reference or missing object fails;
Sphinx >= 8.1 reports every warning before it stops, so --keep-going is not needed):

    python -m sphinx -W -b html docs docs/_build/html

Sphinx, not MkDocs: mkdocs-material has announced maintenance mode with an end date in 2027.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # autodoc documents this checkout, installed or not
sys.path.insert(0, str(DOCS / "_ext"))  # config_reference: the configuration table, generated from the dataclasses

import emnist_dist  # noqa: E402  (after the path is set)

project = "emnist_dist"
author = "emnist_dist contributors"
copyright = "emnist_dist contributors, MIT licence"
release = version = emnist_dist.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "config_reference",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links resolve (and fail the build when they do not)

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

intersphinx_mapping = {}  # offline builds: nothing is fetched

html_theme = "furo"
html_title = "emnist_dist"
html_static_path = []
