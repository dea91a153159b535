"""Stage 3: the site's search, offline from `file://` and from any web server.

At build time every rendered page is cut into sections, one per heading with an id (an API entry is the section of
its `show_doc` heading); each section keeps its heading, the page's title and description, and the prose under it
(markdown cells, docstrings and parameter tables; code and cell outputs are left out). The sections go into
`search-index.js`, a script that sets `window.FPT_SEARCH_INDEX`: a script tag loads it from `file://`, where
Chromium refuses `fetch()` of a JSON file. In the browser `_static/search.js` (ours) indexes them with MiniSearch,
a maintained full-text search library taken from the npm registry at build time (pinned version and checksum,
cached in `.cache/docsite/`), and shows the best hits under the search box in the site header.
"""
from __future__ import annotations
import base64, hashlib, json, re, shutil, subprocess, tarfile
from html.parser import HTMLParser
from pathlib import Path

MINISEARCH = dict(name='minisearch', version='7.2.0',
                  integrity='sha512-dqT2XBYUOZOiC5t2HRnwADjhNS2cecp9u+TJRiJ1Qp/f5qjkeT5APcGPjHw+bz89Ms8Jp+cG4AlE+QZ/QnDglg==')
#: files of the npm package copied into the site, and their names there (under `_static/vendor/minisearch/`)
VENDORED = {'package/dist/umd/index.js': 'minisearch.js', 'package/dist/umd/index.js.map': 'index.js.map',
            'package/LICENSE.txt': 'LICENSE.txt'}
INDEX_FILE = 'search-index.js'
INDEX_VAR = 'FPT_SEARCH_INDEX'
CACHE = Path(__file__).resolve().parents[2]/'.cache'/'docsite'

# ---- the package, from the npm registry

def _check_integrity(data:bytes, integrity:str) -> bool:
    algo, _, want = integrity.partition('-')
    return base64.b64encode(hashlib.new(algo, data).digest()).decode() == want

def minisearch_tarball(cache:Path=CACHE, log=print) -> Path:
    "MiniSearch's npm tarball, checked against its pinned checksum; `npm pack` fetches it once into `cache`."
    name, version = MINISEARCH['name'], MINISEARCH['version']
    tgz = Path(cache)/f'{name}-{version}.tgz'
    if not tgz.is_file():
        npm = shutil.which('npm')
        if not npm:
            raise SystemExit(f"docs: the search needs {name}@{version} from the npm registry, but `npm` is not installed: "
                             f"apt-get install npm (or put {tgz.name} from the registry into {cache}/)")
        Path(cache).mkdir(parents=True, exist_ok=True)
        log(f"docs: fetching {name}@{version} with npm pack into {cache}/")
        r = subprocess.run([npm, 'pack', f'{name}@{version}', '--pack-destination', str(cache), '--silent'],
                           capture_output=True, text=True)
        if r.returncode != 0 or not tgz.is_file():
            raise SystemExit(f"docs: `npm pack {name}@{version}` failed (is the npm registry reachable?): {r.stderr.strip()[-500:]}")
    if not _check_integrity(tgz.read_bytes(), MINISEARCH['integrity']):
        tgz.unlink()
        raise SystemExit(f"docs: {tgz} does not match the pinned checksum of {name}@{version}; removed it, build again to refetch")
    return tgz

def vendor_minisearch(dst:Path, log=print) -> list[Path]:
    "Copy MiniSearch's browser build (UMD), its source map and licence into folder `dst`."
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(minisearch_tarball(log=log)) as tf:
        for member, name in VENDORED.items():
            (dst/name).write_bytes(tf.extractfile(member).read())
            out.append(dst/name)
    return out

# ---- the sections of a page

_VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr'}
_HEADING = re.compile(r'^h[1-6]$')
_BLOCK = {'p', 'li', 'td', 'th', 'dt', 'dd', 'div', 'tr', 'br', 'blockquote', 'table', 'ul', 'ol', 'hr'}

class _Sections(HTMLParser):
    "Cuts a page body into sections at each heading with an id; keeps prose and API entries, skips code and outputs."
    def __init__(self, first:dict):
        super().__init__(convert_charrefs=True)
        self.sections, self.stack, self.heading = [first], [], None

    def _flag(self, name) -> bool: return any(f.get(name) for _, f in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = set((a.get('class') or '').split())
        f = {}
        if 'celltag_api-entry' in cls: f['api'] = True
        if tag in ('pre', 'script', 'style', 'svg', 'math') or 'input' in cls: f['skip'] = True
        elif 'output_wrapper' in cls and not self._flag('api'): f['skip'] = True   # outputs, except show_doc's
        elif tag == 'a' and 'float:right' in (a.get('style') or '').replace(' ', ''): f['skip'] = True   # show_doc's "source"
        if _HEADING.match(tag) and a.get('id') and not self._flag('skip'):
            api = self._flag('api')
            self.heading = dict(anchor=a['id'], title='', kind='api' if api else 'section', text=[])
            self.sections.append(self.heading)
            f['heading'] = True
        if tag in _BLOCK: self._text(' ')
        if tag not in _VOID: self.stack.append((tag, f))

    def handle_endtag(self, tag):
        if tag in _VOID: return
        for i in range(len(self.stack) - 1, -1, -1):   # close `tag` and anything left open inside it
            if self.stack[i][0] == tag:
                if any(f.get('heading') for _, f in self.stack[i:]): self.heading = None
                del self.stack[i:]
                break
        if tag in _BLOCK: self._text(' ')

    def handle_data(self, data): self._text(data)

    def _text(self, s):
        if self._flag('skip'): return
        if self.heading is not None: self.heading['title'] += s
        else: self.sections[-1]['text'].append(s)

def _squash(s:str) -> str: return re.sub(r'\s+', ' ', s).strip()

def page_sections(body:str, page:str, title:str, title_id:str, description:str|None=None) -> list[dict]:
    """The search documents of one page: its top (the title and the prose before the first heading), then one per
    heading with an id. Each: page, anchor, title, page title, kind ('page', 'section' or 'api'), description, text."""
    top = dict(anchor=title_id, title=title, kind='page', text=[])
    p = _Sections(top)
    p.feed(body); p.close()
    out = []
    for s in p.sections:
        text = _squash(''.join(s['text']))
        t = _squash(s['title']).removesuffix('¶').strip()
        if s is not top and not t: continue
        out.append(dict(page=page, anchor=s['anchor'], title=t, page_title=title, kind=s['kind'],
                        description=_squash(description or '') if s is top else '', text=text))
    return out

def write_index(sections:list[dict], dst:Path) -> Path:
    "`search-index.js`: the sections, numbered, as a script that sets `window.FPT_SEARCH_INDEX`."
    docs = [dict(id=i, **s) for i, s in enumerate(sections)]
    payload = json.dumps(dict(version=1, docs=docs), ensure_ascii=True, separators=(',', ':'))
    dst.write_text(f"// The docs site's search index, made by tools/docsite/search.py.\nwindow.{INDEX_VAR} = {payload};\n",
                   encoding='utf-8')
    return dst

def read_index(path:Path) -> dict:
    "The sections written by `write_index` (for tests)."
    text = Path(path).read_text(encoding='utf-8')
    return json.loads(text[text.index('=') + 1:].strip().rstrip(';'))
