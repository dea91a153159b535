"""The offline docs build for fpt_nb: notebooks -> `_proc/` (nbdev's processors, executed) -> static site in `_docs/`.

Quarto renders the same `_proc/` notebooks for anyone who has it (`nbdev_docs`); this package is the path for
machines without it; it adds an offline search box (`search.py`). Entry point: `tools/build_docs.py` (`make docs`,
`make readme`).
Why our own renderer rather than mkdocs-material + mkdocs-jupyter or Sphinx + myst-nb: results/docs_tools/README.md.
"""
