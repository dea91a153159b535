"""JupyterLab as a user meets it: the project's notebooks opened and run top to bottom through its UI, in headless Chromium.

A JupyterLab server is started from this environment on 127.0.0.1 with a token, its config, data, runtime and
settings in a temporary folder (nothing reaches ~/.jupyter), serving a temporary folder that holds a copy of
`nbs/index.ipynb` and of `nbs/experiments/table2.ipynb` with a short tiny-model run on real MNLI put into its
parameters cell (progress bars on). Each notebook is opened, run with Run > Run All Cells, and fails the test on a
kernel dialog ("Select Kernel"), a kernel other than `python3`, an error output, or a cell still running at its time
limit; table2 must show its tqdm bars as rendered ipywidgets progress bars. Screenshots go to `_docs_artifacts/`
beside the docs' ones. The server is shut down (kernels included) whatever happens.
"""
from __future__ import annotations
import json, os, re, secrets, signal, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

import nbformat, pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import ROOT
from test_docs import CHROMIUM_FLAGS, _chromium

sys.path.insert(0, str(ROOT/'tools'))
import kernelspec   # noqa: E402  (tools/kernelspec.py)

ARTIFACTS = ROOT/'_docs_artifacts'
TABLE2_METHODS = ['pt', 'fpt_cr']
TABLE2_STEPS = 20
#: the short run put into table2's parameters cell: tiny T5, real MNLI, progress bars on (widgets in JupyterLab)
TABLE2_PARAMS = dict(task='mnli', model='tiny', methods=TABLE2_METHODS, out_dir='runs/table2', steps=TABLE2_STEPS,
                     batch_size=4, train_limit=80, eval_limit=16, eval_every=10, score_examples=16, progress=True)
#: seconds a notebook may take to run all its cells, after its kernel is ready
LIMITS = {'index.ipynb': 120, 'table2.ipynb': 300}
SERVER_START_S = 90
KERNEL_START_S = 60
#: text that means a widget did not render (raw repr, a missing front-end model, tqdm's text fallback)
WIDGET_FAILURES = ['Error displaying widget', 'model not found', 'HBox(children=', 'FloatProgress(', 'IProgress not found',
                   'Loading widget...']

# ---- without a server

def test_every_notebook_has_the_kernelspec():
    "JupyterLab opens a notebook without a kernelspec with a 'Select Kernel' dialog: every notebook names `python3`."
    missing = [str(p.relative_to(ROOT)) for p in kernelspec.notebooks(ROOT/'nbs')
               if not kernelspec.has_kernelspec(json.loads(p.read_text(encoding='utf-8')))]
    assert not missing, f"notebooks without the kernelspec {kernelspec.KERNELSPEC}: {missing}; run python tools/kernelspec.py"

def test_kernelspec_tool_is_idempotent(tmp_path):
    "The tool adds exactly the kernelspec to a notebook in nbdev_clean's format, and leaves it alone the second time."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# x')])
    nb.metadata = {'jupytext': {'main_language': 'python'}}
    f = tmp_path/'a.ipynb'
    f.write_text(kernelspec.dumps(nb))
    assert kernelspec.fix(f) and not kernelspec.fix(f)
    after = json.loads(f.read_text())
    assert after['metadata'] == {'jupytext': {'main_language': 'python'}, 'kernelspec': kernelspec.KERNELSPEC}
    assert after['cells'] == json.loads(kernelspec.dumps(nb))['cells']
    g = tmp_path/'b.ipynb'
    g.write_text(json.dumps(nb, indent=2))   # not nbdev_clean's format: refused, not rewritten
    with pytest.raises(SystemExit, match='nbdev_clean'): kernelspec.fix(g)
    assert g.read_text() == json.dumps(nb, indent=2)

def table2_copy(dst:Path, data_dir:Path) -> Path:
    "nbs/experiments/table2.ipynb with the short run's values appended to its parameters cell, written to `dst`."
    nb = nbformat.read(ROOT/'nbs'/'experiments'/'table2.ipynb', as_version=4)
    cell = next(c for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
    lines = [f'{k} = {v!r}' for k, v in dict(TABLE2_PARAMS, data_dir=str(data_dir)).items()]
    cell.source += '\n\n# tests/test_jupyterlab.py: a short run\n' + '\n'.join(lines)
    nbformat.write(nb, dst)
    return dst

# ---- the server

def _server_url(runtime:Path, pid:int) -> str|None:
    "The url the server `pid` listens on, from the file it writes into its runtime folder once it has bound its port; else None."
    try: info = json.loads((runtime/f'jpserver-{pid}.json').read_text())
    except (OSError, ValueError): return None   # not written yet, or half written
    return f"http://127.0.0.1:{info['port']}/"

def _children(pid:int) -> list[int]:
    "Every process under `pid` (Linux /proc), the kernels included: they run in sessions of their own."
    kids, found = {}, []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo = [pid]
    while todo:
        for c in kids.get(todo.pop(), []): found.append(c); todo.append(c)
    return found

def _settings(d:Path):
    "JupyterLab user settings for the test: no news or update checks (they would reach out), no pop-ups, every cell in the page."
    files = {'@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'fetchNews': 'false', 'checkForUpdates': False},
             # JupyterLab 4 leaves cells scrolled out of view out of the page ('defer', 'full'): the test reads every cell's prompt
             '@jupyterlab/notebook-extension/tracker.jupyterlab-settings': {'windowingMode': 'none'}}
    for name, value in files.items():
        (d/name).parent.mkdir(parents=True, exist_ok=True)
        (d/name).write_text(json.dumps(value))

@pytest.fixture(scope='module')
def lab(data_dir):
    "A JupyterLab server on a copy of the notebooks: (base url, token, its root folder)."
    with tempfile.TemporaryDirectory(prefix='fpt-jlab-', ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        root = tmp/'notebooks'
        root.mkdir()
        (root/'index.ipynb').write_bytes((ROOT/'nbs'/'index.ipynb').read_bytes())
        table2_copy(root/'table2.ipynb', data_dir)
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp/'config'), JUPYTER_DATA_DIR=str(tmp/'data'),
                   JUPYTER_RUNTIME_DIR=str(tmp/'runtime'), IPYTHONDIR=str(tmp/'ipython'),
                   JUPYTERLAB_SETTINGS_DIR=str(tmp/'settings'), JUPYTERLAB_WORKSPACES_DIR=str(tmp/'workspaces'),
                   FPT_DATA_DIR=str(data_dir), OMP_NUM_THREADS='1', JUPYTER_PLATFORM_DIRS='1')
        env.pop('JUPYTER_PATH', None)
        _settings(tmp/'settings')
        token = secrets.token_hex(16)
        # port 0: the system gives the server a free port as it binds, so two test sessions on one machine cannot both take one
        cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', '--port=0', '--port-retries=0',
               f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}', '--LabApp.news_url=None',
               '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.extension_manager=readonly']
        if os.geteuid() == 0: cmd.append('--allow-root')   # CI runs as root
        log = open(tmp/'server.log', 'w+')
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = None
        try:
            t0 = time.time()
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"jupyter lab exited with {proc.returncode} at start:\n{_tail(log)}")
                base = base or _server_url(tmp/'runtime', proc.pid)
                if base:
                    try:
                        with urllib.request.urlopen(f'{base}api/status?token={token}', timeout=2) as r:
                            if r.status == 200: break
                    except OSError: pass
                if time.time() - t0 > SERVER_START_S:
                    pytest.fail(f"jupyter lab did not answer on {base or 'a port'} within {SERVER_START_S}s:\n{_tail(log)}")
                time.sleep(0.25)
            print(f"jupyter lab up in {time.time() - t0:.1f}s")
            yield dict(base=base, token=token, root=root, log=log)
        finally:
            _stop(proc, base, token)
            log.close()

def _api(lab:dict, path:str, method:str='GET'):
    "A call to the server's REST API, with the token."
    req = urllib.request.Request(lab['base'] + path, method=method, headers={'Authorization': f"token {lab['token']}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        return json.loads(body) if body else None

def _tail(log, n=4000) -> str:
    log.flush(); log.seek(0)
    return log.read()[-n:]

def _stop(proc, base:str|None, token:str):
    "Shut the server down through its API (it stops its kernels), then make sure nothing it started is left."
    kids = _children(proc.pid)
    try:
        if base is None: raise OSError('the server never said which port it took')
        req = urllib.request.Request(f'{base}api/shutdown', method='POST', headers={'Authorization': f'token {token}'})
        urllib.request.urlopen(req, timeout=10).close()
    except OSError: pass
    try: proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(10)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    for pid in kids:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass

@pytest.fixture(scope='module')
def browser(lab):
    exe = _chromium()
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix='fpt-jlab-chromium-') as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=CHROMIUM_FLAGS,
                                                   viewport={'width': 1400, 'height': 1000})
        yield ctx
        ctx.close()

# ---- a notebook in the UI

#: the notebook panel in front (JupyterLab keeps other open panels in the DOM, hidden)
PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)'

_READY_JS = """panel => document.querySelector('.jp-Dialog') || (
  document.querySelector(panel + ' .jp-Notebook-ExecutionIndicator[data-status="idle"]') &&
  !['', 'No Kernel'].includes((document.querySelector(panel + ' .jp-KernelName') || {}).innerText || ''))"""

#: each code cell: its prompt (`[3]:`, `[*]:`, `[ ]:`), its first source line, and its error outputs. JupyterLab draws an
#: error as stderr text, so an error is a stderr output that ends in `SomeError: ...` and is not a warning.
_CELLS_JS = """panel => [...document.querySelectorAll(panel + ' .jp-Notebook .jp-CodeCell')].map(c => ({
  prompt: ((c.querySelector('.jp-InputPrompt') || {}).innerText || '').trim(),
  source: ((c.querySelector('.jp-InputArea-editor .cm-content') || {}).innerText || '').split('\\n')[0],
  errors: [...c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(o => o.innerText.trim()).filter(t => /^\\w*(Error|Exception|Interrupt)\\b.*$/m.test(t) && /Traceback|-{20}/.test(t)),
}))"""

_WIDGETS_JS = """panel => {
  const nb = document.querySelector(panel + ' .jp-Notebook');
  const bars = [...nb.querySelectorAll('.jp-OutputArea-output .widget-hprogress')];
  return {
    labels: bars.map(b => (b.closest('.widget-hbox') || b.parentElement).innerText.replace(/\\s+/g, ' ').trim()),
    drawn: bars.filter(b => b.getBoundingClientRect().width > 50 && b.querySelector('.progress-bar')).length,
    text: nb.innerText,
  };
}"""

def open_notebook(browser, lab, name:str):
    "Open `name` in JupyterLab: (page, its JavaScript errors) once the kernel is idle. Fails on a kernel dialog or another kernel."
    page = browser.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(f"{lab['base']}lab/tree/{name}?reset&token={lab['token']}", wait_until='domcontentloaded')
    page.wait_for_selector(f'{PANEL} .jp-Notebook .jp-Cell', timeout=60_000)
    try: ready = bool(page.wait_for_function(_READY_JS, arg=PANEL, timeout=KERNEL_START_S * 1000))   # a dialog, or the kernel idle
    except PlaywrightTimeout: ready = False
    shot = ARTIFACTS/f'jupyterlab-{Path(name).stem}-not-ready.png'
    if dialog := page.query_selector('.jp-Dialog'):
        page.screenshot(path=str(shot))
        pytest.fail(f"{name} opened with a dialog instead of a running kernel: {dialog.inner_text()!r} "
                    "(a missing kernelspec or kernel: python tools/kernelspec.py; make install)")
    if not ready:
        shown = page.inner_text(f'{PANEL} .jp-KernelName').strip()
        status = page.get_attribute(f'{PANEL} .jp-Notebook-ExecutionIndicator', 'data-status')
        page.screenshot(path=str(shot))
        pytest.fail(f"{name}: kernel {shown!r} is {status!r} after {KERNEL_START_S}s, expected python3 idle (see {shot.name})")
    # the page can show the kernelspec's name and an idle indicator before the server has started the session: wait for it
    session = _session(lab, name, KERNEL_START_S)
    assert session is not None, f"{name}: the page shows a kernel, but the server has no session for it after {KERNEL_START_S}s"
    kernel = session['kernel'] or {}
    assert kernel.get('name') == kernelspec.KERNELSPEC['name'], f"{name} runs on kernel {kernel.get('name')!r}, not python3"
    assert kernel.get('execution_state') == 'idle', f"{name}: kernel is {kernel.get('execution_state')!r} after {KERNEL_START_S}s"
    page.wait_for_function(_READY_JS, arg=PANEL, timeout=KERNEL_START_S * 1000)
    exe = Path(_api(lab, 'api/kernelspecs')['kernelspecs']['python3']['spec']['argv'][0])
    assert exe.parent == Path(sys.executable).parent, \
        f"JupyterLab's python3 kernel runs {exe}, not this environment's python: make install (ipykernel install --sys-prefix)"
    return page, errors

def _session(lab:dict, name:str, timeout:float) -> dict|None:
    "The server's session for notebook `name`, once its kernel is idle or `timeout` seconds have passed (None: no session)."
    t0 = time.time()
    while True:
        session = next((s for s in _api(lab, 'api/sessions') if s['path'] == name), None)
        if (session and (session['kernel'] or {}).get('execution_state') == 'idle') or time.time() - t0 > timeout: return session
        time.sleep(0.25)

def _ran(prompt:str) -> bool: return re.fullmatch(r'\[\d+\]:', prompt) is not None

def run_all(page, name:str, limit:float) -> float:
    "Run > Run All Cells; wait until every code cell has run. Fails on an error output or a cell still running at `limit`."
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-item[data-command="runmenu:run-all"]')
    t0 = time.time()
    while True:
        cells = page.evaluate(_CELLS_JS, PANEL)
        if errs := [(i, c) for i, c in enumerate(cells) if c['errors']]:
            i, c = errs[0]
            page.screenshot(path=str(ARTIFACTS/f'jupyterlab-{Path(name).stem}-error.png'))
            pytest.fail(f"{name}: code cell {i} ({c['source'][:80]!r}) shows an error:\n{c['errors'][0][-2000:]}")
        idle = page.get_attribute(f'{PANEL} .jp-Notebook-ExecutionIndicator', 'data-status') == 'idle'
        if idle and all(_ran(c['prompt']) for c in cells): return time.time() - t0
        if time.time() - t0 > limit:
            page.screenshot(path=str(ARTIFACTS/f'jupyterlab-{Path(name).stem}-timeout.png'))
            waiting = [f"cell {i} {c['prompt']} {c['source'][:80]!r}" for i, c in enumerate(cells) if not _ran(c['prompt'])]
            pytest.fail(f"{name}: not finished after {limit}s; cells not run or still running: {waiting}")
        page.wait_for_timeout(500)   # polls the prompts: JupyterLab has no single event for "every cell ran"

def _close(page, lab):
    "Close the page and stop every kernel (each holds a torch import's worth of memory)."
    page.close()
    for s in _api(lab, 'api/sessions'): _api(lab, f"api/sessions/{s['id']}", method='DELETE')

# ---- the tests

def test_index_notebook_runs_in_jupyterlab(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page, js_errors = open_notebook(browser, lab, 'index.ipynb')
    try:
        took = run_all(page, 'index.ipynb', LIMITS['index.ipynb'])
        print(f"index.ipynb ran in {took:.1f}s")
        page.screenshot(path=str(ARTIFACTS/'jupyterlab-index.png'))
        assert not js_errors, f"JavaScript errors in JupyterLab: {js_errors}"
    finally: _close(page, lab)

_IMAGES_JS = "panel => [...document.querySelectorAll(panel + ' .jp-OutputArea-output img')].map(i => i.naturalWidth)"

def _settled(page, timeout:float=60):
    """(widgets report, plot widths) once every bar is drawn and full and every plot decoded, or after `timeout` s: the last
    cell's prompt can show before JupyterLab has drawn its widgets and decoded its images."""
    t0 = time.time()
    while True:
        rep, widths = page.evaluate(_WIDGETS_JS, PANEL), page.evaluate(_IMAGES_JS, PANEL)
        training = [l for l in rep['labels'] if l.startswith('prompt tuning')]
        done = (len(training) == len(TABLE2_METHODS) and rep['drawn'] == len(rep['labels'])
                and all(f'{TABLE2_STEPS}/{TABLE2_STEPS}' in l for l in training)
                and len(widths) == len(TABLE2_METHODS) and min(widths) > 500)
        if done or time.time() - t0 > timeout: return rep, widths
        page.wait_for_timeout(500)

def test_table2_notebook_runs_with_progress_widgets(lab, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page, js_errors = open_notebook(browser, lab, 'table2.ipynb')
    try:
        took = run_all(page, 'table2.ipynb', LIMITS['table2.ipynb'])
        print(f"table2.ipynb ran in {took:.1f}s")
        rep, widths = _settled(page)
        if bars := page.query_selector_all(f'{PANEL} .jp-OutputArea-output .widget-hprogress'): bars[0].scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS/'jupyterlab-table2.png'))
        bad = [t for t in WIDGET_FAILURES if t in rep['text']]
        assert not bad, f"progress bars not rendered as widgets: {bad} in the notebook"
        training = [l for l in rep['labels'] if l.startswith('prompt tuning')]
        assert len(training) == len(TABLE2_METHODS) and rep['drawn'] == len(rep['labels']), \
            f"expected one drawn 'prompt tuning' progress widget per method ({TABLE2_METHODS}), got {rep['labels']}"
        assert all(f'{TABLE2_STEPS}/{TABLE2_STEPS}' in l for l in training), f"a training bar did not reach the end: {training}"
        assert any(l.startswith('scoring neurons') for l in rep['labels']), f"no neuron-scoring bar (fpt_cr scores first): {rep['labels']}"
        out = lab['root']/'runs'/'table2'
        assert (out/'table2.md').is_file() and all((out/m/'summary.json').is_file() for m in TABLE2_METHODS)
        assert len(widths) == len(TABLE2_METHODS) and min(widths) > 500, f"the stage plots did not show: widths {widths}"
        page.locator(f'{PANEL} .jp-RenderedMarkdown table').first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS/'jupyterlab-table2-results.png'))
        assert not js_errors, f"JavaScript errors in JupyterLab: {js_errors}"
    finally: _close(page, lab)

def test_the_checks_catch_an_error_and_a_missing_kernelspec(lab, browser):
    "The checks above fail where they should: on a traceback (not on a warning), and on a notebook with no kernelspec."
    cells = [nbformat.v4.new_code_cell(c) for c in
             ["print('first')", "import warnings; warnings.warn('only a warning')", "1/0", "print('never')"]]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': kernelspec.KERNELSPEC})
    nbformat.write(nb, lab['root']/'fails.ipynb')
    page, _ = open_notebook(browser, lab, 'fails.ipynb')
    try:
        with pytest.raises(pytest.fail.Exception, match=r"code cell 2 \('1/0'\) shows an error:(.|\n)*ZeroDivisionError"):
            run_all(page, 'fails.ipynb', 60)
    finally: _close(page, lab)
    del nb.metadata['kernelspec']
    nbformat.write(nb, lab['root']/'nokernel.ipynb')
    with pytest.raises(pytest.fail.Exception, match='opened with a dialog'):
        page, _ = open_notebook(browser, lab, 'nokernel.ipynb')
    for p in browser.pages: p.close()
