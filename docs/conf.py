"""Sphinx configuration of deepcausal's API reference (build: see docs/README.md)."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepcausal import __version__  # noqa: E402

project = "deepcausal"
author = "the deepcausal maintainers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "README.md", "jupyter_execute"]
templates_path = ["_templates"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_enable_extensions = ["dollarmath"]
nb_execution_mode = "off"  # the committed notebooks were executed at full size; render their outputs
html_theme = "alabaster"
html_title = f"deepcausal {release}"
suppress_warnings = ["myst.header"]



def _skip_routing_boilerplate(app, what, name, obj, skip, options):
    """scikit-learn's metadata-routing methods (``set_fit_request`` ...) are not deepcausal's API."""
    if name == "get_metadata_routing" or (name.startswith("set_") and name.endswith("_request")):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_routing_boilerplate)


# The tutorials live in tutorials/ beside their percent-format sources; Sphinx reads only its source
# folder, so the committed notebooks are copied in at each build (docs/tutorials/ is not versioned).
_tutorials = Path(__file__).resolve().parent / "tutorials"
_tutorials.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.ipynb")):
    shutil.copyfile(notebook, _tutorials / notebook.name)
