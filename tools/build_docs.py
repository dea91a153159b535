#!/usr/bin/env python
"""Build the fpt_nb docs site offline, without Quarto: `python tools/build_docs.py` (what `make docs` runs).

    python tools/build_docs.py             # nbs/ -> _proc/ (nbdev processors, notebooks executed) -> _docs/
    python tools/build_docs.py --readme    # README.md from nbs/index.ipynb (what `make readme` runs)
    python tools/build_docs.py --sidebar   # only rewrite nbs/sidebar.yml

Run from the repository root inside the project's venv. See tools/docsite/ for the stages.
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--readme', action='store_true', help='write README.md from the front-page notebook')
    ap.add_argument('--sidebar', action='store_true', help='only write nbs/sidebar.yml')
    ap.add_argument('--force', action='store_true', help='reprocess every notebook, ignoring the _proc/ cache')
    ap.add_argument('--render-only', action='store_true', help='render _docs/ from the notebooks already in _proc/ (for work on the templates)')
    ap.add_argument('--keep-going', action='store_true', help='build the site even if a notebook fails to run (its page shows it unexecuted)')
    ap.add_argument('--results', default=None, help='folder of experiment results (default: results/, or $FPT_RESULTS_DIR)')
    ap.add_argument('--proc-one', nargs=2, metavar=('SRC', 'DST'), help=argparse.SUPPRESS)
    ap.add_argument('--no-exec', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--proc-many', metavar='JOBS', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    from docsite import proc
    if a.proc_one:
        proc.proc_one(Path(a.proc_one[0]), Path(a.proc_one[1]), execute=not a.no_exec)
        return
    if a.proc_many:
        proc.proc_many(Path(a.proc_many))
        return
    if a.sidebar:
        print(proc.write_sidebar())
        return
    from docsite import site
    t0 = time.time()
    if a.readme: print(f"wrote {site.build_readme(force=a.force)} in {time.time()-t0:.0f}s")
    else: site.build_site(force=a.force, results=a.results, reuse=a.render_only, keep_going=a.keep_going)

if __name__ == '__main__': main()
