#!/usr/bin/env python
"""Give every notebook under nbs/ the project's kernelspec, so JupyterLab opens it on the venv's `python3` kernel
instead of asking "Select Kernel". Idempotent: a notebook that already has it is not rewritten.

    python tools/kernelspec.py           # fix every notebook in nbs/ (recursively)
    python tools/kernelspec.py --check   # only list the notebooks that lack it; exit 1 if any

Only `metadata.kernelspec` changes; the file is written back the way nbdev_clean writes it (sorted keys, indent 1,
UTF-8 unescaped, trailing newline), and a file whose text would not round-trip that way is refused rather than
reformatted. `make install` registers the kernel as `python3` in the venv; the display name is the one nbdev_clean
writes for it.
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path

KERNELSPEC = {'display_name': 'python3', 'language': 'python', 'name': 'python3'}
ROOT = Path(__file__).resolve().parents[1]

def dumps(nb:dict) -> str:
    "A notebook's text as nbdev_clean writes it."
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + '\n'

def notebooks(nbs:Path) -> list[Path]:
    return sorted(p for p in Path(nbs).rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)

def has_kernelspec(nb:dict) -> bool: return nb.get('metadata', {}).get('kernelspec') == KERNELSPEC

def fix(path:Path) -> bool:
    "Give notebook `path` the kernelspec; True if the file changed."
    text = path.read_text(encoding='utf-8')
    nb = json.loads(text)
    if has_kernelspec(nb): return False
    if dumps(nb) != text:
        raise SystemExit(f"{path}: not in nbdev_clean's format (sorted keys, indent 1), so adding the kernelspec would "
                         f"reformat the whole file: run `nbdev_clean --fname {path}` first")
    nb.setdefault('metadata', {})['kernelspec'] = dict(KERNELSPEC)
    path.write_text(dumps(nb), encoding='utf-8')
    return True

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='list notebooks without the kernelspec; exit 1 if any')
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='folder of notebooks (default: nbs/)')
    a = ap.parse_args(argv)
    nbs = notebooks(Path(a.nbs))
    if a.check:
        missing = [str(p) for p in nbs if not has_kernelspec(json.loads(p.read_text(encoding='utf-8')))]
        for m in missing: print(f"{m}: no kernelspec {KERNELSPEC['name']!r} (run python tools/kernelspec.py)")
        sys.exit(1 if missing else 0)
    changed = [p for p in nbs if fix(p)]
    print(f"kernelspec {KERNELSPEC['name']!r}: {len(changed)} of {len(nbs)} notebooks updated")

if __name__ == '__main__': main()
