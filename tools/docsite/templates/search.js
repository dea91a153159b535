// The docs site's search box (see tools/docsite/search.py). Works from file:// as from a web server: the index and
// MiniSearch are loaded with script tags, on first use, from paths relative to this page.
(function () {
  'use strict';
  var MAX_HITS = 10;
  var input, list, root, engine = null, docs = null, loading = null, hits = [], selected = 0;

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = function () { reject(new Error('could not load ' + src)); };
      document.head.appendChild(s);
    });
  }

  // Words as a reader types them: letters, digits and underscores; `apply_stage` also yields `apply` and `stage`.
  function tokenize(text) {
    var words = text.match(/[\p{L}\p{N}_]+/gu) || [];
    var out = [];
    words.forEach(function (w) {
      out.push(w);
      if (w.indexOf('_') >= 0) w.split('_').forEach(function (p) { if (p) out.push(p); });
    });
    return out;
  }

  function ensureEngine() {
    if (!loading) {
      loading = loadScript(root + '_static/vendor/minisearch/minisearch.js')
        .then(function () { return loadScript(root + 'search-index.js'); })
        .then(function () {
          docs = window.FPT_SEARCH_INDEX.docs;
          engine = new window.MiniSearch({
            fields: ['name', 'title', 'description', 'text'],
            tokenize: tokenize,
            processTerm: function (t) { return t.toLowerCase(); },
            searchOptions: { boost: { name: 6, title: 3, description: 2 }, prefix: true,
                             fuzzy: function (term) { return term.length > 4 ? 0.2 : 0; } },
          });
          engine.addAll(docs.map(function (d) {
            return { id: d.id, name: d.kind === 'api' ? d.title : '', title: d.title, description: d.description, text: d.text };
          }));
        });
    }
    return loading;
  }

  // MiniSearch ranks by words; a section that holds the query as typed, as a phrase, comes first among equals.
  function rank(query) {
    var q = query.trim().toLowerCase();
    return engine.search(q).map(function (r) {
      var d = docs[r.id], score = r.score;
      if (q.indexOf(' ') > 0 || q.indexOf('_') > 0) {
        if (d.title.toLowerCase().indexOf(q) >= 0) score *= 3;
        else if ((d.description + ' ' + d.text).toLowerCase().indexOf(q) >= 0) score *= 2;
      }
      if (d.kind === 'api' && d.title.toLowerCase() === q) score *= 4;
      return { doc: d, score: score };
    }).sort(function (a, b) { return b.score - a.score; }).slice(0, MAX_HITS);
  }

  function snippet(d, query) {
    var text = d.description || d.text, lower = text.toLowerCase();
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var at = words.length ? lower.indexOf(words[0]) : -1;
    var start = at > 60 ? text.lastIndexOf(' ', at - 40) + 1 : 0;
    var s = text.slice(start, start + 160);
    return (start > 0 ? '… ' : '') + s + (start + 160 < text.length ? ' …' : '');
  }

  function href(d) { return root + d.page + '#' + encodeURIComponent(d.anchor); }

  function show(query) {
    list.textContent = '';
    list.dataset.query = query;   // which query the list answers (the browser test waits on it)
    if (!query.trim()) { list.hidden = true; hits = []; return; }
    hits = rank(query);
    selected = 0;
    if (!hits.length) {
      var none = document.createElement('li');
      none.className = 'search-none';
      none.textContent = 'No results for “' + query.trim() + '”';
      list.appendChild(none);
    }
    hits.forEach(function (h, i) {
      var d = h.doc, li = document.createElement('li'), a = document.createElement('a');
      li.setAttribute('role', 'option');
      a.href = href(d);
      a.className = 'search-hit search-kind-' + d.kind;
      var title = document.createElement(d.kind === 'api' ? 'code' : 'span');
      title.className = 'search-title';
      title.textContent = d.title;
      var where = document.createElement('span');
      where.className = 'search-page';
      where.textContent = d.kind === 'page' ? 'page' : d.page_title;
      var text = document.createElement('span');
      text.className = 'search-snippet';
      text.textContent = snippet(d, query);
      a.append(title, where, text);
      li.appendChild(a);
      list.appendChild(li);
    });
    list.hidden = false;
    highlight();
  }

  function highlight() {
    Array.prototype.forEach.call(list.querySelectorAll('li[role=option]'), function (li, i) {
      li.classList.toggle('selected', i === selected);
      li.setAttribute('aria-selected', i === selected ? 'true' : 'false');
    });
  }

  function update() {
    var query = input.value;
    ensureEngine().then(function () { if (input.value === query) show(query); },
                        function (err) { list.hidden = false; list.textContent = 'Search is unavailable: ' + err.message; });
  }

  document.addEventListener('DOMContentLoaded', function () {
    input = document.getElementById('search-input');
    list = document.getElementById('search-results');
    if (!input || !list) return;
    root = input.getAttribute('data-root') || '';
    input.addEventListener('focus', ensureEngine);
    input.addEventListener('input', update);
    input.addEventListener('keydown', function (e) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        if (!hits.length) return;
        selected = (selected + (e.key === 'ArrowDown' ? 1 : hits.length - 1)) % hits.length;
        highlight();
        e.preventDefault();
      } else if (e.key === 'Enter') {
        if (hits[selected]) window.location.href = href(hits[selected].doc);
        e.preventDefault();
      } else if (e.key === 'Escape') {
        list.hidden = true;
        input.blur();
      }
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === '/' && document.activeElement !== input && !/INPUT|TEXTAREA/.test(document.activeElement.tagName)) {
        input.focus();
        e.preventDefault();
      }
    });
    document.addEventListener('click', function (e) {
      if (!e.target.closest('.site-search') || e.target.closest('a.search-hit')) list.hidden = true;
    });
  });
})();
