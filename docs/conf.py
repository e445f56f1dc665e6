"""Sphinx configuration of the eye2eye_jax manual (MyST markdown, as flax, optax and orbax)."""

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / '_ext')]

project = 'eye2eye_jax'
author = 'the eye2eye_jax authors'
extensions = ['myst_parser', 'sphinx.ext.autodoc', 'eye2eye_docs']
source_suffix = {'.md': 'markdown'}
exclude_patterns = ['_build', 'results']
myst_heading_anchors = 3  # [text](page.md#a-heading) links, as GitHub renders them

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'

html_theme = 'sphinx_book_theme'
html_title = 'eye2eye_jax'
html_theme_options = {'show_toc_level': 2}
