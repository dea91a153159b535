"The Table 2 papermill notebook end to end: a tiny T5 on real MNLI data, all four methods, a few dozen steps."
import json, sys
from pathlib import Path
import nbformat, papermill, pytest
from PIL import Image
from conftest import ROOT

NB = ROOT/'nbs'/'experiments'/'table2.ipynb'
METHODS = ['pt', 'fpt_ld', 'fpt_fr', 'fpt_cr']

RUN_PARAMS = ('task', 'model', 'out_dir', 'data_dir', 'steps', 'stage_steps', 'batch_size', 'micro_batch_size', 'loss_group', 'seed', 'device', 'preset')
RECIPE = ('decoder', 'max_target_length', 'score_split')   # None (the paper's recipe) unless given
NOTEBOOK_PARAMS = dict(table2=RUN_PARAMS + ('methods',) + RECIPE, table1=RUN_PARAMS + ('methods', 'levels') + RECIPE,
                       scores=('task', 'model', 'out_dir', 'data_dir', 'score_examples', 'score_split', 'score_sampling',
                               'score_aggregation', 'seed', 'device'),
                       tables=('root', 'out_dir', 'score', 'scoring'))

@pytest.mark.parametrize('name', list(NOTEBOOK_PARAMS))
def test_parameters_cell_is_tagged(name):
    "papermill finds the parameters by the cell tag; the raw frontmatter keeps the notebook out of `nbdev_test`."
    nb = nbformat.read(ROOT/'nbs'/'experiments'/f'{name}.ipynb', as_version=4)
    tagged = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(tagged) == 1, f"{name}.ipynb needs exactly one cell tagged 'parameters' (keep 'tags' in allowed_cell_metadata_keys)"
    for p in NOTEBOOK_PARAMS[name]: assert f'\n{p} = ' in '\n' + tagged[0].source, f"{name}.ipynb: parameter {p!r} missing"
    assert nb.cells[0].cell_type == 'raw' and 'skip_exec: true' in nb.cells[0].source
    assert nb.metadata.kernelspec.name == 'python3'

def test_kernel_is_this_environment():
    "papermill runs the notebook in the kernel named `python3`: it must be this venv's python (`make install` installs it)."
    from jupyter_client.kernelspec import KernelSpecManager
    exe = Path(KernelSpecManager().get_kernel_spec('python3').argv[0])
    assert exe.parent == Path(sys.executable).parent, \
        f"kernel python3 runs {exe}, not this environment's {sys.executable}: run `make install` (python -m ipykernel install --sys-prefix --name python3)"

def test_table2_notebook(tmp_path, data_dir):
    out = tmp_path/'mnli'
    papermill.execute_notebook(str(NB), str(tmp_path/'table2.ipynb'), kernel_name='python3', cwd=str(tmp_path), progress_bar=False,
                               parameters=dict(task='mnli', model='tiny', data_dir=str(data_dir), out_dir=str(out), steps=30,
                                               batch_size=8, train_limit=240, eval_limit=48, eval_every=10, score_examples=48,
                                               progress=False))
    summaries = {m: json.loads((out/m/'summary.json').read_text()) for m in METHODS}
    for m, s in summaries.items():
        assert (s['task'], s['model'], s['method'], s['steps']) == ('mnli', 'tiny', m, 30)
        assert s['n_train'] == 240 and s['n_eval'] == 48
        assert len(s['stages']) == (1 if m == 'pt' else 4)
        assert sum(st['steps'] for st in s['stages']) == 30
        assert all(st['flops'] > 0 and st['seconds'] > 0 and 'spec' in st for st in s['stages'])
        assert s['total_flops'] == sum(st['flops'] for st in s['stages'])
        assert s['wall_seconds'] >= s['train_seconds'] > 0
        evals = [json.loads(l) for l in (out/m/'log.jsonl').read_text().splitlines() if '"kind": "eval"' in l]
        meta = ('kind', 'step', 'stage', 'flops', 'wall', 'eval_seconds')
        assert s['final_metrics'] == {k: v for k, v in evals[-1].items() if k not in meta} and s['final_metrics']['total'] == 48
        best = max(reversed(evals), key=lambda r: r['paper_mean'])   # the paper's rule: the highest mean, the later of equals
        assert (s['best']['step'], s['best']['value']) == (best['step'], best['paper_mean'])
        assert (out/m/'prompt.safetensors').is_file() and (out/m/'log.jsonl').is_file()
        with Image.open(out/m/'stages.png') as im:
            im.verify()
            assert im.format == 'PNG' and im.size[0] > 500
    assert summaries['fpt_cr']['total_flops'] < summaries['fpt_fr']['total_flops'] < summaries['pt']['total_flops']
    assert summaries['fpt_ld']['total_flops'] < summaries['pt']['total_flops']
    assert (out/'fpt_fr'/'scores.safetensors').is_file()   # computed once, then shared with fpt_cr
    rows = (out/'table2.md').read_text().splitlines()[4:]   # under the line saying which score it shows, and the header
    assert [r.split('|')[3].strip() for r in rows] == ['PT', 'FPT_LD', 'FPT_FR', 'FPT_CR']
    assert (out/'table2.csv').is_file()

    agg = tmp_path/'aggregated'   # the tables notebook over the same folders gives the same Table 2
    papermill.execute_notebook(str(NB.parent/'tables.ipynb'), str(tmp_path/'tables.ipynb'), kernel_name='python3', cwd=str(tmp_path),
                               progress_bar=False, parameters=dict(root=str(out), out_dir=str(agg), unfinished=True))   # (all finished: the same runs)
    assert (agg/'table2.md').read_text() == (out/'table2.md').read_text()
    assert (agg/'table1.csv').is_file()

def test_scores_notebook(tmp_path, data_dir):
    from safetensors.torch import load_file
    papermill.execute_notebook(str(NB.parent/'scores.ipynb'), str(tmp_path/'scores.ipynb'), kernel_name='python3', cwd=str(tmp_path),
                               progress_bar=False, parameters=dict(task='mnli', model='tiny', data_dir=str(data_dir), out_dir='sc', score_examples=16))
    sc = load_file(str(tmp_path/'sc'/'scores.safetensors'))
    assert {k: tuple(v.shape) for k, v in sc.items()} == {'encoder': (4, 128), 'decoder': (4, 128)}
    assert all(v.min() >= 0 and v.max() > 0 for v in sc.values())   # mean absolute activations
    with Image.open(tmp_path/'sc'/'scores.png') as im: assert im.format == 'PNG'
    def again(out, **kw):   # the notebook into a folder that holds scores: refused before anything loads, unless force
        return papermill.execute_notebook(str(NB.parent/'scores.ipynb'), str(tmp_path/'again.ipynb'), kernel_name='python3', cwd=str(tmp_path),
                                          progress_bar=False, parameters=dict(task='mnli', model='tiny', data_dir=str(data_dir),
                                                                              out_dir=out, score_examples=8, **kw))
    before = (tmp_path/'sc'/'scores.safetensors').read_bytes()
    with pytest.raises(papermill.PapermillExecutionError, match='already holds a scores.safetensors: pass -p force True'): again('sc')
    assert (tmp_path/'sc'/'scores.safetensors').read_bytes() == before
    run = tmp_path/'run'; run.mkdir()   # a run folder's scores are its run's: never written over
    (run/'config.json').write_text(json.dumps(dict(task='mnli', model='tiny', method='fpt_fr', steps=2, out_dir=str(run))))
    (run/'scores.safetensors').write_bytes(before)
    with pytest.raises(papermill.PapermillExecutionError, match='is a run folder: its scores.safetensors is the one its run trained'):
        again(str(run), force=True)
    assert (run/'scores.safetensors').read_bytes() == before
    again('sc', force=True)   # 8 examples now: other scores
    assert (tmp_path/'sc'/'scores.safetensors').read_bytes() != before

def test_table1_notebook(tmp_path, data_dir):
    """Table 1: PT and each reduction at level 1, one partial model for all the steps, into a table whose costs are below PT's.
    The folder's tables cover every run in it: an FPT_CR run there from before keeps its Table 2 row (it was dropped)."""
    from fpt_nb.run import run_experiment
    out = tmp_path/'t1'
    run_experiment('mnli', 'tiny', 'fpt_cr', out/'fpt_cr', data_dir=str(data_dir), steps=8, batch_size=8, train_limit=64, eval_limit=16,
                   score_examples=16, max_target_length=4, progress=False)
    papermill.execute_notebook(str(NB.parent/'table1.ipynb'), str(tmp_path/'table1.ipynb'), kernel_name='python3', cwd=str(tmp_path),
                               progress_bar=False, parameters=dict(task='mnli', model='tiny', data_dir=str(data_dir), out_dir=str(out),
                                                                   methods=['pt', 'ld', 'fr', 'cr'], levels=[1], steps=6, batch_size=8,
                                                                   train_limit=64, eval_limit=16, eval_every=3, score_examples=16,
                                                                   max_target_length=4, progress=False))
    summaries = {d.name: json.loads((d/'summary.json').read_text()) for d in out.iterdir() if (d/'summary.json').is_file()}
    assert sorted(summaries) == ['cr-L1', 'fpt_cr', 'fr-L1', 'ld-L1', 'pt']
    assert '| FPT_CR |' in (out/'table2.md').read_text()
    summaries.pop('fpt_cr')
    assert [s['stages'][0]['name'] for s in (summaries[k] for k in ('ld-L1', 'fr-L1', 'cr-L1'))] == ['enc 1L', 'enc ffn 32', 'enc 1L, enc ffn 32']
    assert all(len(s['stages']) == 1 and s['steps'] == 6 for s in summaries.values())
    rows = [r.split(' | ') for r in (out/'table1.md').read_text().splitlines()[4:]]
    assert [r[2] for r in rows] == ['PT', 'LD L1', 'FR L1', 'CR L1'], rows
    pct = [float(r[7].rstrip('%')) for r in rows]
    assert pct[0] == 100 and all(p < 100 for p in pct[1:]), pct

@pytest.mark.parametrize('params,says', [(dict(steps=4.5), 'parameter steps must be a whole number, got 4.5 (float)'),
                                         (dict(steps='ten'), "parameter steps must be a whole number, got 'ten' (str)"),
                                         (dict(methods='pt fpt'), "unknown method 'fpt'"),
                                         (dict(stepz=40), "unknown parameter 'stepz' given to this notebook (papermill only warns"),
                                         (dict(levels=[1]), "unknown parameter 'levels'"),   # table1's, not table2's
                                         (dict(methods=['pt', 'ld']), "'ld' is not a Table 2 method")])
def test_bad_parameters_stop_before_training(params, says, tmp_path, data_dir):
    out = tmp_path/'never'
    with pytest.raises(papermill.PapermillExecutionError) as e:
        papermill.execute_notebook(str(NB), str(tmp_path/'bad.ipynb'), kernel_name='python3', cwd=str(tmp_path), progress_bar=False,
                                   parameters=dict(task='mnli', model='tiny', data_dir=str(data_dir), out_dir=str(out), **params))
    assert says in str(e.value), str(e.value)
    assert not out.exists()

def test_table1_notebook_refuses_an_fpt_method(tmp_path, data_dir):
    "Before: methods=['fpt_cr'] trained the same four-stage run three times, into folders named fpt_cr-L1, -L2, -L3."
    out = tmp_path/'never'
    with pytest.raises(papermill.PapermillExecutionError) as e:
        papermill.execute_notebook(str(NB.parent/'table1.ipynb'), str(tmp_path/'bad.ipynb'), kernel_name='python3', cwd=str(tmp_path),
                                   progress_bar=False, parameters=dict(task='mnli', model='tiny', data_dir=str(data_dir), out_dir=str(out),
                                                                       methods=['pt', 'fpt_cr'], steps=4))
    assert "'fpt_cr' is not a Table 1 method" in str(e.value), str(e.value)
    assert not out.exists()

def test_table2_notebook_on_a_decoder_only_model(tmp_path):
    "The same notebook drives the built-in tiny Llama: no data, a few steps, PT against FPT_CR."
    out = tmp_path/'llama'
    papermill.execute_notebook(str(NB), str(tmp_path/'llama.ipynb'), kernel_name='python3', cwd=str(tmp_path), progress_bar=False,
                               parameters=dict(task='toy', model='tiny-llama', methods=['pt', 'fpt_cr'], out_dir=str(out), steps=8,
                                               batch_size=8, train_limit=64, eval_limit=16, eval_every=4, score_examples=16, progress=False))
    s = json.loads((out/'fpt_cr'/'summary.json').read_text())
    assert (s['model'], s['stages'][0]['name'], s['steps']) == ('tiny-llama', 'dec 1L, dec ffn 32', 8)
    rows = (out/'table2.md').read_text().splitlines()[4:]
    assert [r.split('|')[3].strip() for r in rows] == ['PT', 'FPT_CR']
