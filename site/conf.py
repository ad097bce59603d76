"""Sphinx configuration of the course website: `make site` → build/site/html/index.html.

The book is the student notebooks of course/ (reached through the symlink site/course → ../course),
executed by myst-nb in the `tiny` tier (and the packaged tier where it is installed), cached by
jupyter-cache in build/site/.jupyter_cache: a rebuild re-executes only the notebooks that changed.
Everything a page needs is bundled (MathJax, the theme's CSS, JS and icon fonts), so the site works
from file:// with no network. The course's own hooks are in site/mmcourse_site.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
REPO = SITE.parent
sys.path.insert(0, str(SITE))

# The kernels inherit this process's environment: this checkout's mmcourse, offline, one thread each,
# figures as PNGs (mmcourse.viz draws Figures as PNG under Agg, as in the tests).
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "mmcourse"
author = "the mmcourse authors"
copyright = "the mmcourse authors, MIT licence"
html_title = "mmcourse — multimodal LLMs, done right"
language = "en"

extensions = ["myst_nb", "sphinx-mathjax-offline", "mmcourse_site"]
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# The notebooks' headings are their own (a `###` under a `#` is common in them); not the site's business.
suppress_warnings = ["myst.header"]

# --- executing the notebooks ---
nb_execution_mode = "cache"            # jupyter-cache: only a changed notebook runs again
nb_execution_timeout = 600             # seconds per cell (the training cells take tens of seconds on 2 cores)
nb_execution_allow_errors = True       # the exercise stubs raise NotImplementedError ...
nb_execution_raise_on_error = True     # ... but a dead kernel or a timeout stops the build,
nb_execution_show_tb = True            # and mmcourse_site.replace_stub_errors stops it on any other error
nb_merge_streams = True

# --- the pages ---
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["mmcourse.css"]      # CJK font fallbacks, the stub note
html_copy_source = False               # no _sources/ copy of the notebooks
html_show_sourcelink = False
html_last_updated_fmt = None
# The one place for the language note, shown on top of every page.
LANGUAGE_NOTE = ("中文：本课程的标题与练习说明为中英双语；每个带练习的笔记本开头都用中英文给出它回答的面试题。"
                 " · Headings and exercise instructions are in Chinese and English; every graded notebook "
                 "opens with its interview question in both.")
html_theme_options = {
    "announcement": LANGUAGE_NOTE,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
