"""Markdown -> HTML for notebook cells and `show_doc` outputs, with the Pandoc/Quarto extensions nbdev notebooks use.

markdown-it-py (CommonMark + tables) with mdit-py-plugins for `$math$` (rendered to MathML by latex2mathml, so
no JavaScript and no download), footnotes, definition lists, task lists and `{...}` attributes. Quarto-only syntax
is rewritten first: fenced divs (`::: {.callout-note}` ... `:::`) become HTML divs, callouts get a title bar, and
heading attributes (`## Title {#id}`) become ids. Headings get Pandoc-style ids and are collected for the page's
table of contents; every link goes through the page's `href` hook (notebook links -> pages, site links -> relative).
"""
from __future__ import annotations
import html, re
from dataclasses import dataclass, field
from typing import Callable

from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.attrs import attrs_block_plugin, attrs_plugin
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight as _pyg
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

CALLOUTS = {'note': 'Note', 'tip': 'Tip', 'warning': 'Warning', 'important': 'Important', 'caution': 'Caution'}

def slugify(text:str) -> str:
    "A heading's id as Pandoc/Quarto make it (lower case, spaces -> '-', keep letters, digits, `_-.`), as nbdev's doc links expect."
    s = re.sub(r'[^\w\s.-]', '', text.strip().lower())
    return re.sub(r'\s+', '-', s) or 'section'

def math_html(tex:str, display:bool) -> str:
    "LaTeX -> MathML (Chromium and Firefox draw it natively); the source in `<code>` if it does not parse."
    try:
        from latex2mathml.converter import convert
        return convert(tex.strip(), display='block' if display else 'inline')
    except Exception: return f'<code class="math-src">{html.escape(tex)}</code>'

def highlight_code(code:str, lang:str, attrs=None) -> str:
    lang = (lang or '').strip().strip('{}').split()[0].lstrip('.') if (lang or '').strip() else ''
    try: lexer = get_lexer_by_name(lang or 'text')
    except ClassNotFound: lexer = get_lexer_by_name('text')
    body = _pyg(code, lexer, HtmlFormatter(nowrap=True))
    return f'<pre class="highlight"><code>{body}</code></pre>\n'

# ---- Quarto/Pandoc syntax -> CommonMark + HTML

_FENCE = re.compile(r'^\s{0,3}(`{3,}|~{3,})')
_DIV_OPEN = re.compile(r'^:{3,}\s*(\{[^}]*\}|[\w-]+)\s*(.*?)\s*:*\s*$')
_DIV_CLOSE = re.compile(r'^:{3,}\s*$')
_HEAD_ATTR = re.compile(r'^(#{1,6}\s+.*?)\s*\{([^{}]*)\}\s*$')
_ATTR = re.compile(r'''([#.][\w:-]+)|([\w-]+)=("[^"]*"|'[^']*'|\S+)''')

def parse_attrs(s:str) -> tuple[str|None, list[str], dict]:
    "Pandoc attributes `{#id .a .b key=val}` (or a bare class name) -> (id, classes, keyvals)."
    s = s.strip()
    if not s.startswith('{'): return None, [s] if s else [], {}
    id_, classes, kv = None, [], {}
    for m in _ATTR.finditer(s[1:-1]):
        if m.group(1):
            if m.group(1)[0] == '#': id_ = m.group(1)[1:]
            else: classes.append(m.group(1)[1:])
        else: kv[m.group(2)] = m.group(3).strip('"\'')
    return id_, classes, kv

def quarto_to_commonmark(src:str) -> str:
    "Rewrite Pandoc/Quarto-only block syntax (fenced divs, callouts, heading attributes) to CommonMark + HTML."
    out, stack, fence = [], [], None
    lines = src.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]; i += 1
        if fence:
            out.append(line)
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == '': fence = None
            continue
        if m := _FENCE.match(line):
            fence = m.group(1); out.append(line); continue
        if stack and _DIV_CLOSE.match(line):
            out += ['', stack.pop(), '']; continue
        if m := _DIV_OPEN.match(line):
            id_, classes, kv = parse_attrs(m.group(1))
            idattr = f' id="{html.escape(id_)}"' if id_ else ''
            kind = next((c[8:] for c in classes if c.startswith('callout-') and c[8:] in CALLOUTS), None)
            if kind is None:
                out += ['', f'<div class="{html.escape(" ".join(classes))}"{idattr}>', '']
                stack.append('</div>'); continue
            title = kv.get('title')
            if not title:   # Quarto takes a callout's title from a heading on its first line
                j = i
                while j < len(lines) and not lines[j].strip(): j += 1
                if j < len(lines) and re.match(r'^#{1,6}\s', lines[j]): title, i = lines[j].lstrip('#').strip(), j + 1
            out += ['', f'<div class="callout callout-{kind}"{idattr}>',
                    f'<div class="callout-title">{html.escape(title or CALLOUTS[kind])}</div>', '<div class="callout-body">', '']
            stack.append('</div>\n</div>'); continue
        if m := _HEAD_ATTR.match(line):
            attrs = ' '.join(a for a in m.group(2).split() if a not in ('-', '.unnumbered', '.unlisted'))
            if attrs: out.append('{' + attrs + '}')
            out.append(m.group(1)); continue
        out.append(line)
    out += [c for s in reversed(stack) for c in ('', s, '')]   # close divs left open
    return '\n'.join(out)

# ---- the renderer

@dataclass
class PageContext:
    "What one page's markdown needs: a link rewriter, and the ids and headings seen so far (for uniqueness and the TOC)."
    href: Callable[[str], str] = lambda u: u
    ids: set = field(default_factory=set)
    toc: list = field(default_factory=list)   # (level, id, text)

    def unique(self, base:str) -> str:
        i, s = 0, base
        while s in self.ids: i += 1; s = f'{base}-{i}'
        self.ids.add(s)
        return s

class Markdown:
    "Renders markdown for one page at a time (`ctx`)."
    def __init__(self):
        md = MarkdownIt('commonmark', {'html': True, 'highlight': highlight_code})
        md.enable(['table', 'strikethrough'])
        md.use(dollarmath_plugin, double_inline=True, allow_space=False, allow_digits=False,
               renderer=lambda tex, opts: math_html(tex, opts.get('display_mode', False)))
        md.use(amsmath_plugin, renderer=lambda tex: math_html(tex, True))
        md.use(footnote_plugin).use(deflist_plugin).use(tasklists_plugin)
        md.use(attrs_plugin, spans=True).use(attrs_block_plugin)
        self.md, self.ctx = md, PageContext()

    def __call__(self, text:str, toc:bool=True) -> str:
        env = {}
        tokens = self.md.parse(quarto_to_commonmark(text or ''), env)
        for i, t in enumerate(tokens):
            if t.type == 'heading_open':
                inline = tokens[i+1]
                plain = ''.join(c.content for c in (inline.children or []) if c.type in ('text', 'code_inline'))
                hid = t.attrs.get('id') or self.ctx.unique(slugify(plain))
                if t.attrs.get('id'): self.ctx.ids.add(hid)
                t.attrSet('id', hid)
                t.attrSet('class', (str(t.attrs.get('class', '')) + ' anchored').strip())
                if toc and t.tag in ('h2', 'h3'): self.ctx.toc.append((int(t.tag[1]), hid, plain))
            elif t.type == 'inline':
                for c in t.children or []:
                    if c.type == 'link_open': c.attrSet('href', self.ctx.href(str(c.attrs.get('href', ''))))
                    elif c.type == 'image': c.attrSet('src', self.ctx.href(str(c.attrs.get('src', ''))))
        return self.md.renderer.render(tokens, self.md.options, env)
