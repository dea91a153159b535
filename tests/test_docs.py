"""The docs site: built offline (`make docs`), served on 127.0.0.1 and checked page by page in headless Chromium.

Fails on a page that does not load, a broken internal link or anchor, a missing image, a JavaScript or console
error, a failed request, or an exported module whose page shows no `show_doc` entry for one of its names.
Screenshots go to `_docs_artifacts/`. Needs Debian's `chromium` (`.ci/run` installs it) and `playwright`.
"""
from __future__ import annotations
import ast, functools, http.server, json, os, posixpath, shutil, subprocess, sys, tempfile, threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from docsite import proc, site as docsite   # noqa: E402
from docsite.markdown import Markdown, quarto_to_commonmark   # noqa: E402
from docsite.results import render_results   # noqa: E402
from docsite import search   # noqa: E402

DOCS = ROOT/'_docs'
ARTIFACTS = ROOT/'_docs_artifacts'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']

# ---- the pieces, without a browser

def test_quarto_markdown_renders():
    "Callouts, fenced divs, heading ids and math come out as HTML; `:::` inside a code block is left alone."
    md = Markdown()
    out = md("::: {.callout-warning}\n## Mind the gap\nText with $x^2$.\n:::\n\n```\n::: not a div\n```\n\n## Part two {#two}\n\n::: {.column-margin}\nside\n:::\n")
    assert '<div class="callout callout-warning">' in out and '<div class="callout-title">Mind the gap</div>' in out
    assert '<math' in out and '$x^2$' not in out
    assert '::: not a div' in out and out.count('<div') == 4   # callout + title + body + column-margin
    assert '<h2 id="two"' in out and ':::' not in out.replace('::: not a div', '')
    assert md.ctx.toc == [(2, 'two', 'Part two')]
    assert quarto_to_commonmark('::: {.callout-note}\nunclosed').rstrip().endswith('</div>')

def test_doc_links_fall_back_to_the_nearest_anchor():
    "nbdev links a method to `page#class.method`; with no show_doc of its own it lands on the class, and is made relative."
    ids = {'prompt.html': {'promptt5'}, 'experiments/demo.html': set()}
    html = '<a href="doclink:prompt.html#promptt5.embed">x</a> <a href="doclink:prompt.html#promptt5">y</a> <a href="https://x.org/">z</a>'
    out = docsite._resolve_links(html, 'experiments/demo.html', ids, warn=print)
    assert out == '<a href="../prompt.html#promptt5">x</a> <a href="../prompt.html#promptt5">y</a> <a href="https://x.org/">z</a>'
    warned = []
    docsite._resolve_links('<a href="doclink:gone.html#a">', 'prompt.html', ids, warned.append)
    assert warned and 'gone.html' in warned[0]

def test_results_page(tmp_path):
    "No results -> a clear message; a run folder -> its summary, markdown and CSV tables and plots."
    md, hooks = Markdown(), []
    def hook_for(d):
        hooks.append(d)
        return lambda url: url
    assert 'No results yet' in render_results(tmp_path/'results', md.ctx, md, hook_for)
    run = tmp_path/'results'/'mnli-fpt'
    run.mkdir(parents=True)
    (run/'summary.json').write_text(json.dumps({'task': 'mnli', 'final': {'accuracy': 0.8123456}}))
    (run/'stages.md').write_text('| stage | steps |\n|---|---|\n| 1 | 100 |\n')
    (run/'log.csv').write_text('step,loss\n1,2.5\n2,2.25\n')
    (run/'loss.png').write_bytes(b'\x89PNG\r\n\x1a\n')
    out = render_results(tmp_path/'results', md.ctx, md, hook_for)
    assert 'No results yet' not in out and 'results/mnli-fpt' in out
    assert '<th>final.accuracy</th><td>0.8123</td>' in out
    assert '<td>100</td>' in out and '<td>2.25</td>' in out and 'src="loss.png"' in out
    assert hooks[-1] == run

def _nb(*cells) -> str:
    return json.dumps(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[
        dict(cell_type='code', id=f'c{i}', metadata={}, execution_count=None, outputs=[], source=src) for i, src in enumerate(cells)]))

def test_failed_notebooks_are_named(tmp_path, monkeypatch):
    """`--keep-going`: a notebook that fails to run gets its page unexecuted; one that cannot be processed at all is
    named as LEFT OUT and has no page. Without it, the build stops naming both. (A project of three small notebooks.)"""
    nbs, lib = tmp_path/'nbs', tmp_path/'lib'
    nbs.mkdir(); lib.mkdir()
    (lib/'m.py').write_text('x = 1\n')
    (tmp_path/'settings.ini').write_text('[DEFAULT]\n')
    (nbs/'a_ok.ipynb').write_text(_nb('print(1 + 1)'))
    (nbs/'b_raises.ipynb').write_text(_nb('raise ValueError("planted in a cell")'))
    (nbs/'c_broken.ipynb').write_text(_nb('#| export\nimport no_such_module_fpt_planted'))
    class Cfg(dict):
        nbs_path, config_path, lib_path, config_file = nbs, tmp_path, lib, tmp_path/'settings.ini'
    monkeypatch.setattr(proc, 'cfg', lambda: Cfg(tst_flags=''))
    only = [Path('a_ok.ipynb'), Path('b_raises.ipynb'), Path('c_broken.ipynb')]
    with pytest.raises(RuntimeError) as e: proc.process_all(only=only, timeout=120, log=lambda s: None)
    assert 'b_raises.ipynb' in str(e.value) and 'c_broken.ipynb' in str(e.value) and 'a_ok.ipynb' not in str(e.value)
    assert 'planted in a cell' in str(e.value) and 'no_such_module_fpt_planted' in str(e.value)
    logged = []
    info = proc.process_all(only=only, timeout=120, log=logged.append, keep_going=True)
    assert set(info) == {'a_ok.ipynb', 'b_raises.ipynb'}   # the one that cannot be processed has no page
    assert info['a_ok.ipynb']['executed'] and not info['b_raises.ipynb']['executed'] and 'planted in a cell' in info['b_raises.ipynb']['error']
    assert (tmp_path/'_proc'/'b_raises.ipynb').exists() and not (tmp_path/'_proc'/'c_broken.ipynb').exists()
    unexecuted, left_out = [m for m in logged if 'unexecuted' in m], [m for m in logged if 'LEFT OUT' in m]
    assert len(unexecuted) == len(left_out) == 1
    assert 'b_raises.ipynb' in unexecuted[0] and 'c_broken.ipynb' not in unexecuted[0]
    assert 'c_broken.ipynb' in left_out[0] and 'b_raises.ipynb' not in left_out[0] and 'without running it' in left_out[0]

def test_quarto_config_is_consistent():
    "`nbs/_quarto.yml` (what nbdev_docs reads) is the top-level `_quarto.yml`; nbdev.yml and sidebar.yml match the project."
    top, nbs = ROOT/'_quarto.yml', ROOT/'nbs'/'_quarto.yml'
    assert nbs.exists() and nbs.read_text() == top.read_text(), "nbs/_quarto.yml must be the top-level _quarto.yml (a symlink)"
    q = yaml.safe_load(top.read_text())
    assert q['project']['type'] == 'website' and set(q['metadata-files']) == {'nbdev.yml', 'sidebar.yml'}
    assert (ROOT/'nbs'/q['format']['html']['css']).exists()
    from nbdev.quarto import _nbdev_yml
    c = proc.cfg()
    vals = {k: c[k] for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    assert (ROOT/'nbs'/'nbdev.yml').read_text() == _nbdev_yml.format(doc_path=c.doc_path.name, **vals), \
        "nbs/nbdev.yml differs from what nbdev_docs writes from settings.ini: run nbdev_docs or copy nbdev's output"
    assert (ROOT/'nbs'/'sidebar.yml').read_text() == proc.sidebar_text(), \
        "nbs/sidebar.yml is not up to date with the notebooks: run `make docs` (or python tools/build_docs.py --sidebar)"

def test_search_sections():
    "A page is cut at each heading with an id; show_doc entries are API sections; code, outputs and the source link are left out."
    body = """<div class="cell text_cell"><div class="text_cell_render"><p>Intro about <code>evenly</code> spacing.</p>
<h2 class="anchored" id="choosing">Choosing <em>layers</em></h2><p>Layer dropping keeps some.<br>Second line.</p></div></div>
<div class="cell code_cell"><div class="input"><pre>secret_code = 1</pre></div>
<div class="output_wrapper"><div class="output_area"><pre>printed output</pre></div></div></div>
<div class="cell code_cell celltag_api-entry"><div class="output_wrapper"><div class="output_area"><hr/>
<p><a href="https://x/y.py#L1" style="float:right; font-size:smaller">source</a></p>
<h3 class="anchored" id="select_layers">select_layers</h3><pre class="highlight"><code>def select_layers(k)</code></pre>
<p><em>Which <code>k</code> layers to keep.</em></p><table><tr><td>k</td><td>how many</td></tr></table></div></div></div>
<p>More prose about it.</p><h4>No id, so no section</h4>"""
    secs = search.page_sections(body, 'partial.html', 'Partial models', 'page-title', 'Layer dropping and FFN reduction.')
    assert [(s['anchor'], s['title'], s['kind']) for s in secs] == [
        ('page-title', 'Partial models', 'page'), ('choosing', 'Choosing layers', 'section'), ('select_layers', 'select_layers', 'api')]
    assert secs[0]['text'] == 'Intro about evenly spacing.' and secs[0]['description'] == 'Layer dropping and FFN reduction.'
    assert secs[1]['text'] == 'Layer dropping keeps some. Second line.'
    assert secs[2]['text'] == 'Which k layers to keep. k how many More prose about it. No id, so no section'
    assert not any(w in s['text'] for s in secs for w in ('secret_code', 'printed output', 'source', 'def select_layers'))

# ---- the built site

def _fresh_build() -> dict:
    """The manifest of `_docs/`, after building it if any input changed since the last full build.
    FPT_DOCS_NO_BUILD=1 takes `_docs/` as it is (for work on the templates with `build_docs.py --render-only`)."""
    m = DOCS/docsite.MANIFEST
    reuse = os.environ.get('FPT_DOCS_NO_BUILD') == '1' and m.exists()
    if not reuse and not (m.exists() and json.loads(m.read_text()).get('inputs') == docsite.inputs_key()):
        r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py')], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"the docs build (make docs) failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return json.loads(m.read_text())

@pytest.fixture(scope='module')
def manifest(): return _fresh_build()

@pytest.fixture(scope='module')
def server(manifest):
    handler = functools.partial(type('Quiet', (http.server.SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}),
                                directory=str(DOCS))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown(); httpd.server_close()

def _chromium() -> str:
    for name in (os.environ.get('FPT_CHROMIUM'), 'chromium', 'chromium-browser'):
        if name and (p := shutil.which(name)): return p
    pytest.fail("Debian's chromium is not installed, so the docs cannot be checked in a browser: "
                "apt-get install chromium (.ci/run installs it when missing)")

@pytest.fixture(scope='module')
def browser_context():
    exe = _chromium()
    try: from playwright.sync_api import sync_playwright
    except ImportError: pytest.fail("the python package `playwright` is missing: pip install -e '.[dev]' (settings.ini dev_requirements)")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=CHROMIUM_FLAGS,
                                                   viewport={'width': 1400, 'height': 1000})
        yield ctx
        ctx.close()

_PAGE_JS = """() => ({
  ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name')),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  badImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => (i.getAttribute('src') || '').slice(0, 120)),
  images: document.images.length,
  title: document.title,
  hasNav: !!document.querySelector('nav.sidebar a[href]'),
  text: document.querySelector('main') ? document.querySelector('main').innerText.length : 0,
})"""

@pytest.fixture(scope='module')
def visited(manifest, server, browser_context):
    "Every page of the site loaded in Chromium: {page: facts}, with the errors seen on each."
    pages = {}
    for entry in manifest['pages']:
        page = browser_context.new_page()
        errors = []
        page.on('console', lambda m, errors=errors: m.type == 'error' and errors.append(f'console: {m.text} ({m.location.get("url", "")})'))
        page.on('pageerror', lambda e, errors=errors: errors.append(f'javascript: {e}'))
        page.on('requestfailed', lambda r, errors=errors: errors.append(f'request failed: {r.url} {r.failure}'))
        page.on('response', lambda r, errors=errors: r.status >= 400 and errors.append(f'HTTP {r.status}: {r.url}'))
        resp = page.goto(server + entry['page'], wait_until='load')
        facts = page.evaluate(_PAGE_JS)
        facts.update(status=resp.status if resp else None, errors=errors, handle=page)
        pages[entry['page']] = facts
    yield pages
    for f in pages.values(): f['handle'].close()

def test_readme_is_made_from_the_front_page(manifest):
    "README.md is what `make readme` makes from nbs/index.ipynb now, and carries the two commands."
    from docsite.readme import notebook_to_markdown
    readme = (ROOT/'README.md').read_text()
    assert 'make run' in readme and 'make test' in readme
    nb = proc.cfg().get('readme_nb', 'index.ipynb')
    assert readme == notebook_to_markdown(ROOT/'_proc'/nb, Path(nb)), \
        f"README.md is out of date with nbs/{nb}: run `make readme` and commit README.md"

def test_every_page_loads_with_navigation(manifest, visited):
    bad = {p: f['status'] for p, f in visited.items() if f['status'] != 200 or not f['hasNav'] or f['text'] < 50}
    assert not bad, f"pages that did not load, or load without the sidebar or content: {bad}"
    assert {'index.html', 'results.html'} <= set(visited)
    srcs = {e['source'] for e in manifest['pages'] if e['source']}
    assert srcs == {f'nbs/{p.as_posix()}' for p in proc.notebooks()}, "every notebook is a page, and no page is left over"

def test_no_javascript_or_console_errors(visited):
    bad = {p: f['errors'] for p, f in visited.items() if f['errors']}
    assert not bad, f"errors in the browser: {json.dumps(bad, indent=1)}"

def test_no_missing_images(visited):
    bad = {p: f['badImages'] for p, f in visited.items() if f['badImages']}
    assert not bad, f"images that did not load (naturalWidth 0): {bad}"

def test_internal_links_resolve(server, visited):
    "Every link to this site points at a page or file that exists, and at an id on that page when it names one."
    broken = []
    for page, f in visited.items():
        for href in f['links']:
            if not href.startswith(server): continue
            u = urlsplit(href)
            path = unquote(u.path)[1:] or 'index.html'
            target = posixpath.normpath(path)
            if not (DOCS/target).is_file(): broken.append(f'{page} -> {href} (no such file)'); continue
            if u.fragment and target in visited and unquote(u.fragment) not in visited[target]['ids']:
                broken.append(f'{page} -> {href} (no id {u.fragment!r} on {target})')
    assert not broken, "broken internal links:\n" + '\n'.join(broken)

def _exported_api() -> dict:
    "{module page: names} for every fpt_nb module: its `__all__` names that nbdev documents (functions and classes)."
    lib = Path(proc.cfg().lib_path)
    syms = _read_modidx(lib)['syms']
    out = {}
    for py in sorted(lib.glob('*.py')):
        if py.name.startswith('_'): continue
        mod = f'{lib.name}.{py.stem}'
        tree = ast.parse(py.read_text())
        alls = [n for node in tree.body if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == '__all__' for t in node.targets)
                for n in ast.literal_eval(node.value)]
        documented = {k[len(mod)+1:]: v[0] for k, v in syms.get(mod, {}).items() if '.' not in k[len(mod)+1:]}
        names = [n for n in alls if n in documented]
        if names: out[mod] = {n: documented[n] for n in names}
    return out

def _read_modidx(lib:Path) -> dict:
    ns = {}
    exec((lib/'_modidx.py').read_text(), ns)
    return ns['d']

def test_api_sections_are_not_empty(visited):
    "Each exported module's page shows a show_doc entry (name and signature) for every exported function and class."
    api = _exported_api()
    assert api, "found no exported functions or classes in the library"
    problems = []
    for mod, names in api.items():
        pages = {url.split('#')[0] for url in names.values()}
        for page in pages:
            if page not in visited: problems.append(f'{mod}: its page {page} is not in the site'); continue
            h = visited[page]['handle']
            n_entries = h.evaluate("() => document.querySelectorAll('.celltag_api-entry').length")
            if not n_entries: problems.append(f'{mod}: {page} has no API (show_doc) entries at all')
        for name, url in names.items():
            page, _, anchor = url.partition('#')
            if page not in visited: continue
            ok = visited[page]['handle'].evaluate("""([id, name]) => {
                const el = document.getElementById(id); if (!el) return 'no element with this id';
                const entry = el.closest('.celltag_api-entry'); if (!entry) return 'not inside a show_doc entry';
                if (!entry.innerText.includes(name)) return 'entry does not show the name';
                if (!entry.querySelector('pre') || entry.offsetHeight < 30) return 'entry shows no signature';
                return 'ok'; }""", [anchor, name])
            if ok != 'ok': problems.append(f'{mod}.{name} on {page}#{anchor}: {ok}')
    assert not problems, "API reference problems:\n" + '\n'.join(problems)

def test_screenshots(manifest, visited, browser_context):
    "The front page, one module page and the results page, saved for a person to look at."
    ARTIFACTS.mkdir(exist_ok=True)
    api_pages = {url.split('#')[0] for names in _exported_api().values() for url in names.values()}
    module_page = next(e['page'] for e in manifest['pages'] if e['page'] in api_pages)   # the first in reading order
    shots = {'front.png': 'index.html', 'module.png': module_page, 'results.png': 'results.html'}
    for fname, page in shots.items():
        visited[page]['handle'].screenshot(path=str(ARTIFACTS/fname))
        assert (ARTIFACTS/fname).stat().st_size > 10_000, f"screenshot of {page} looks empty"
    visited[module_page]['handle'].screenshot(path=str(ARTIFACTS/'module-full.png'), full_page=True)

# ---- the search box

def _search_docs() -> list[dict]: return search.read_index(DOCS/search.INDEX_FILE)['docs']

def test_search_index_covers_pages_and_api(manifest):
    "Every page has its entry, every exported function and class has one at its show_doc anchor; MiniSearch is vendored."
    docs = _search_docs()
    assert {d['page'] for d in docs if d['kind'] == 'page'} == {e['page'] for e in manifest['pages']}
    api = {(d['page'], d['anchor']): d for d in docs if d['kind'] == 'api'}
    missing = [f'{name} ({url})' for names in _exported_api().values() for name, url in names.items()
               if tuple(url.split('#')) not in api or api[tuple(url.split('#'))]['title'] != name]
    assert not missing, f"exported names with no search entry at their show_doc anchor: {missing}"
    assert all(d['text'] or d['description'] for d in docs if d['kind'] == 'api'), "an API entry without its docstring"
    vendor = DOCS/'_static'/'vendor'/'minisearch'
    assert 'MiniSearch' in (vendor/'minisearch.js').read_text()[:2000] and 'MIT' in (vendor/'LICENSE.txt').read_text()

def _search(page, query:str) -> list[str]:
    "Type `query` into the search box as a reader would; the hits' links, best first."
    box = page.locator('#search-input')
    box.click()
    box.fill('')
    box.press_sequentially(query)
    page.wait_for_function("q => document.getElementById('search-results').dataset.query === q", arg=query)
    return page.eval_on_selector_all('#search-results li[role=option] a', 'as => as.map(a => a.href)')

def _section_has(page_path:str, anchor:str, phrase:str) -> bool:
    "Whether the search section at page#anchor talks about `phrase` (a symbol's underscores read as spaces)."
    for d in _search_docs():
        if (d['page'], d['anchor']) == (page_path, anchor):
            return phrase in ' '.join([d['title'], d['description'], d['text']]).lower().replace('_', ' ')
    return False

@pytest.mark.parametrize('origin', ['http', 'file'])
def test_search_box_finds_a_symbol_and_a_phrase(origin, server, browser_context):
    "From a page in a subfolder, served and from file://: a symbol and a phrase each lead, by the first hit, to the right section."
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    start = (server if origin == 'http' else DOCS.as_uri() + '/') + 'experiments/table2.html'
    page = browser_context.new_page()
    errors = []
    page.on('console', lambda m: m.type == 'error' and errors.append(f'console: {m.text}'))
    page.on('pageerror', lambda e: errors.append(f'javascript: {e}'))
    try:
        page.goto(start)
        hits = _search(page, 'apply_stage')
        page.keyboard.press('Enter')   # follows the first hit
        page.wait_for_url('**/partial.html#apply_stage')
        assert page.url == hits[0], f"Enter went to {page.url}, not the first hit {hits[0]}"
        assert page.evaluate("() => !!document.getElementById('apply_stage').closest('.celltag_api-entry')"), \
            "apply_stage's hit does not land on its show_doc entry"
        top = page.evaluate("() => document.getElementById('apply_stage').getBoundingClientRect().top")
        assert 0 <= top < 300, f"the page did not scroll to apply_stage (its heading is at {top}px)"

        hits = _search(page, 'layer dropping')
        if origin == 'http':
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS/'search.png'))
        page.locator('#search-results li[role=option] a').first.click()
        page.wait_for_url(lambda url: url == hits[0])
        u = urlsplit(page.url)
        target, anchor = posixpath.basename(unquote(u.path)), unquote(u.fragment)
        assert target == 'partial.html', f"'layer dropping' first leads to {page.url}, not the partial models page"
        assert page.evaluate("id => !!document.getElementById(id)", anchor), f"no element with id {anchor!r} on {target}"
        assert _section_has(target, anchor, 'layer dropping'), f"the section {target}#{anchor} does not mention layer dropping"

        assert not _search(page, 'zzqqxx'), "a query matching nothing shows hits"
    except PlaywrightTimeout as e:
        page.screenshot(path=str(ARTIFACTS/f'search-failed-{origin}.png'))
        pytest.fail(f"search from {origin}: {e}; errors in the page: {errors}")
    finally:
        page.close()
    assert not errors, f"errors in the browser while searching from {origin}: {errors}"
