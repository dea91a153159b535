"""The results page: whatever experiment outputs exist under the results folder, one section per run folder.

Generic on purpose: a folder with any of `summary.json`, `*.json`, markdown tables `*.md`, `*.csv` tables or plots
(`*.png`, `*.jpg`, `*.svg`) gets a section; other files are listed by name. No results -> a clear "no results yet".
"""
from __future__ import annotations
import csv, html, json
from pathlib import Path

IMAGES = ('.png', '.jpg', '.jpeg', '.svg', '.gif', '.webp')
SHOWN = IMAGES + ('.md', '.csv', '.json')
MAX_ROWS = 200
IGNORED_DIRS = {'.ipynb_checkpoints', '__pycache__', 'checkpoints', 'tensorboard', 'tb'}

def _fmt(v) -> str:
    if isinstance(v, float): return f'{v:.4g}'
    if isinstance(v, (dict, list)): return json.dumps(v)
    return str(v)

def _flatten(d:dict, prefix='') -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and len(out) < 400: out.update(_flatten(v, f'{prefix}{k}.'))
        else: out[f'{prefix}{k}'] = v
    return out

def _is_records(v) -> bool: return isinstance(v, list) and bool(v) and all(isinstance(r, dict) for r in v)

def _table(head:list[str], rows:list[list[str]], total:int, name:str) -> str:
    th = ''.join(f'<th>{html.escape(c)}</th>' for c in head)
    trs = ''.join('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in r) + '</tr>' for r in rows[:MAX_ROWS])
    more = f'<p class="results-more">{total - MAX_ROWS} more rows in {html.escape(name)}.</p>' if total > MAX_ROWS else ''
    return f'<div class="table-wrap"><table class="results-table"><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>{more}'

def _records(rows:list[dict], name:str) -> str:
    "A list of JSON objects (one per stage, per step...) as a table with a column per key."
    rows = [_flatten(r) for r in rows]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return _table(cols, [[_fmt(r.get(c, '')) for c in cols] for r in rows], len(rows), name)

def json_html(p:Path) -> str:
    """A JSON file as tables: its scalar fields (nested keys joined with '.') as key/value rows, and each list of
    objects in it as a table of its own; anything else pretty-printed."""
    try: data = json.loads(p.read_text(encoding='utf-8'))
    except (ValueError, UnicodeDecodeError) as e: return f'<p class="results-error">Could not read {html.escape(p.name)}: {html.escape(str(e))}</p>'
    if _is_records(data): return _records(data, p.name)
    if not isinstance(data, dict):
        txt = json.dumps(data, indent=1)
        return f'<pre class="results-json">{html.escape(txt[:20000])}</pre>'
    flat = _flatten(data)
    rows = ''.join(f'<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>' for k, v in flat.items() if not _is_records(v))
    out = [f'<table class="results-kv"><tbody>{rows}</tbody></table>'] if rows else []
    out += [f'<p class="results-sub"><code>{html.escape(k)}</code></p>' + _records(v, p.name) for k, v in flat.items() if _is_records(v)]
    return '\n'.join(out)

def csv_html(p:Path) -> str:
    "A CSV file as an HTML table (the first MAX_ROWS rows)."
    with p.open(newline='', encoding='utf-8', errors='replace') as f: rows = list(csv.reader(f))
    if not rows: return '<p><em>(empty)</em></p>'
    return _table(rows[0], rows[1:], len(rows) - 1, p.name)

def _folders(results:Path) -> list[tuple[Path, list[Path]]]:
    "Folders under `results` that hold something to show, with their files, in path order."
    out = []
    for d in sorted([results] + [p for p in results.rglob('*') if p.is_dir()]):
        if IGNORED_DIRS & set(d.relative_to(results).parts) or any(x.startswith('.') for x in d.relative_to(results).parts): continue
        files = sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith('.'))
        if any(f.suffix.lower() in SHOWN for f in files): out.append((d, files))
    return out

def _no_results(results:Path) -> str:
    return ('<div class="callout callout-note no-results" id="no-results">\n'
            '<div class="callout-title">No results yet</div>\n<div class="callout-body">\n'
            f'<p>No experiment results were found under <code>{html.escape(results.name)}/</code>. '
            'Each experiment run writes a folder there (its <code>summary.json</code>, tables and stage plots); '
            'run one, then rebuild the site with <code>make docs</code>.</p>\n</div>\n</div>\n')

def render_results(results:Path, ctx, md, hook_for) -> str:
    "The results page body; `md` renders markdown tables, `hook_for(folder)` gives the link rewriter for files in `folder`."
    results = Path(results)
    folders = _folders(results) if results.is_dir() else []
    if not folders: return _no_results(results)
    parts = [f'<p class="results-intro">{sum(len(f) for _, f in folders)} files in {len(folders)} folders under '
             f'<code>{html.escape(results.name)}/</code>.</p>']
    for d, files in folders:
        name = d.relative_to(results).as_posix()
        name = results.name + '/' + ('' if name == '.' else name)
        hid = ctx.unique('results-' + name.replace('/', '-'))
        ctx.toc.append((2, hid, name))
        parts.append(f'<section class="results-run">\n<h2 id="{hid}" class="anchored">{html.escape(name)}</h2>')
        hook = hook_for(d)
        ordered = sorted(files, key=lambda f: (f.name != 'summary.json', f.suffix.lower() in IMAGES, f.name))
        others = []
        for f in ordered:
            suf = f.suffix.lower()
            title = f'<h3 class="results-file">{html.escape(f.name)}</h3>'
            if suf == '.json': parts.append(title + json_html(f))
            elif suf == '.csv': parts.append(title + csv_html(f))
            elif suf == '.md':
                old, ctx.href = ctx.href, hook
                try: parts.append(title + f'<div class="results-md">{md(f.read_text(encoding="utf-8", errors="replace"), toc=False)}</div>')
                finally: ctx.href = old
            elif suf in IMAGES:
                src = hook(f.name)
                parts.append(f'<figure class="results-figure"><img src="{html.escape(src)}" alt="{html.escape(f.name)}">'
                             f'<figcaption>{html.escape(f.name)}</figcaption></figure>')
            else: others.append(f.name)
        if others: parts.append('<p class="results-others">Also here: ' + ', '.join(f'<code>{html.escape(o)}</code>' for o in others) + '</p>')
        parts.append('</section>')
    return '\n'.join(parts)
