"""Sphinx configuration of the pyrocrl documentation (MyST Markdown, tutorials by myst-nb).

Build it from the repository root with ``python -m sphinx -W --keep-going -b html docs
docs/_build/html`` (see ``docs/building.md``). The tutorials run during the build: at full
size by default, at their small smoke-test sizes when the environment variable ``CI`` is
set. ``PYROCRL_DOCS_EXECUTE=off`` skips running them (pages without outputs).
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import pyrocrl  # noqa: E402

# -- project ----------------------------------------------------------------------------------
project = "pyrocrl"
author = "pyrocrl developers"
copyright = "pyrocrl developers"
release = pyrocrl.__version__
version = release

# -- sources ----------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "pyrocrl_docs",  # _ext/pyrocrl_docs.py: the API pages and the tutorial gallery
]
# the tutorials are jupytext scripts in the percent format (docs/tutorials links to them)
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
exclude_patterns = ["_build", "_ext", "_generated", "conf.py", "jupyter_execute", ".jupyter_cache"]
root_doc = "index"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- executing the tutorials ------------------------------------------------------------------
nb_execution_mode = "off" if os.environ.get("PYROCRL_DOCS_EXECUTE") == "off" else "force"
nb_execution_timeout = 3 * 3600  # a full-size tutorial may train for many minutes
nb_execution_raise_on_error = False  # a failing tutorial is a warning: -W fails the build
nb_execution_show_tb = True
nb_execution_in_temp = True  # files a tutorial writes stay out of the source tree
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars and log lines; pages show what tutorials print

# -- API reference ----------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
python_maximum_signature_line_length = 88
autosummary_generate = False  # _ext/pyrocrl_docs.py writes the API pages itself

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"pyrocrl {release}"
html_static_path = ["_static"]
html_css_files = ["pyrocrl.css"]
html_show_sourcelink = False
html_favicon = "_static/favicon.svg"
html_theme_options = {"navigation_with_keys": True}

# -- references -------------------------------------------------------------------------------
# Every reference to a pyrocrl name must resolve (nitpicky), and _ext/pyrocrl_docs.py resolves
# re-exports and short names. Other libraries' names stay plain text: the build reads no
# inventories from the network.
nitpicky = True
EXTERNAL = (
    "arviz_base|arviz_plots|arviz_stats|collections|equinox|jax|jaxlib|matplotlib|numpy|"
    "numpyro|optax|os|pandas|pathlib|pyro|scipy|sklearn|torch|tqdm|types|typing|xarray"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({EXTERNAL})(\..*)?"),
    (r"py:.*", r"(Module|ArrayLike|Any|Path|PathLike|Callable|Sequence|Mapping|Iterator)"),
    (r"py:class", r"(list|dict|tuple|set)\[.*"),  # pieces of a generic annotation
    (r"py:.*", r"(.*\.)?_\w+"),  # private helpers named in docstrings
]
nitpick_ignore = [
    # the feature transform's docstring names the attribute an ILCM sets in __init__
    ("py:attr", "pyrocrl.models.ILCM.features"),
    # the anonymous NamedTuple that Schedule extends
    ("py:class", "pyrocrl.inference.svi_jax.Settings"),
]
