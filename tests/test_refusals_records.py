"""Refusals and fallbacks a coverage run found no test reached: a check of bad input, or a record that cannot be read, whose
line could be deleted or broken with every other test still passing. Each test below calls the real function with the input
that reaches the line and holds the error it names, or the fallback's exact value; each failed with its line broken."""
import argparse, io, json, os, shutil
from pathlib import Path
from types import SimpleNamespace
import pytest, torch
from fpt_nb.plots import read_log
from safetensors.torch import save_file
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.tasks import toy_examples, get_task
from fpt_nb.batches import encode
from fpt_nb.partial import FULL, layer_dropping
from fpt_nb.train import Trainer, TrainConfig, Phase
from fpt_nb.checkpoint import save_prompt, write_json

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

TOK = load_t5('tiny')[1]
ITEMS = encode('toy', TOK, toy_examples('train', 8))
CFG = dict(batch_size=4, prompt_length=4, seed=1)

def tiny() -> PromptT5: return PromptT5(load_t5('tiny')[0], prompt_length=4)

def files(d:Path) -> dict:
    "Every file under `d`, by path, with its bytes."
    return {p: p.read_bytes() for p in sorted(Path(d).rglob('*')) if p.is_file()}

@pytest.fixture(scope='module')
def fitted(tmp_path_factory) -> Path:
    "A run folder of 2 steps on the full model (a checkpoint at its end, no evaluation), trained once for the tests that read one."
    d = tmp_path_factory.mktemp('fitted')/'run'
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), d, progress=False).fit()
    finally: torch.set_num_threads(n)
    return d

# ---- run.py: the records a run writes and reads back

def test_data_read_from_the_hub_records_its_hub_dataset_and_split(monkeypatch):
    """run.py: rows read with no data_dir and no FPT_DATA_DIR came from the hub, and the run records the hub dataset and
    the hub's name of the split (MNLI's validation is validation_matched there), not a local file."""
    from fpt_nb.run import data_ref, _sha
    monkeypatch.delenv('FPT_DATA_DIR', raising=False)
    rows = [dict(premise='a', hypothesis='b', label=0)]
    assert data_ref('mnli', 'validation', None, rows) == dict(source='hub nyu-mll/glue/mnli validation_matched', rows=1, sha=_sha(rows))
    assert data_ref('squad2', 'validation', None, rows)['source'] == 'hub rajpurkar/squad_v2 validation'   # (no config name: none said)

def test_a_torn_summary_is_not_a_finished_run(fitted, tmp_path):
    """run.py: a run whose checkpoint is at its last step but whose summary.json cannot be read (torn) has not finished:
    `_finished` gives None, so the run goes on from its checkpoint and writes the summary again; a readable one is finished,
    unless it describes another end (another step, or a stop the checkpoint does not record)."""
    from fpt_nb.run import _finished
    d = tmp_path/'run'; shutil.copytree(fitted, d)
    tr = Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), d, progress=False)
    (d/'summary.json').write_text(json.dumps(dict(steps=2, stopped=None)))
    assert _finished(tr, d)['step'] == 2   # (the same folder with its summary whole: finished)
    (d/'summary.json').write_text('{"steps": 2, "sto')
    assert _finished(tr, d) is None
    for other in (dict(steps=1, stopped=None), dict(steps=2, stopped='signal 15 at step 2')):   # a summary of another end
        (d/'summary.json').write_text(json.dumps(other))
        assert _finished(tr, d) is None, other

def _summary_of(run_dir:Path, best_step:int) -> dict:
    from fpt_nb.run import _summary
    st = dict(step=4, stage_flops=[10], stage_seconds=[1.0], flops=10, wall=1.0, best_step=best_step, best_last_step=None,
              stopped=None, resumed_at=[])
    return _summary(get_task('toy'), 'tiny', 'pt', 0, 1, [Phase(FULL, 4)], st, {}, None, 'cpu', 0.0, run_dir, {})

def test_a_summary_is_refused_where_the_best_prompt_file_is_of_another_step(tmp_path):
    """run.py: the run chose its best prompt at step 2 (best.json agrees), but best_prompt.safetensors holds step 3's (a
    kill left a later step's file): the summary is refused, naming both steps, and nothing is written; with the file of step 2
    the summary names step 2."""
    d = tmp_path/'run'; d.mkdir()
    write_json(d/'best.json', dict(kind='eval', step=2, stage=0, flops=5, wall=0.0, accuracy=50.0, rule='best', metric='accuracy'))
    save_prompt(torch.zeros(4, 8), d/'best_prompt.safetensors', step=3)
    before = files(d)
    with pytest.raises(ValueError, match='best_prompt.safetensors holds the prompt of step 3, but the run chose its best prompt at step 2'):
        _summary_of(d, 2)
    assert files(d) == before
    save_prompt(torch.zeros(4, 8), d/'best_prompt.safetensors', step=2)
    assert _summary_of(d, 2)['best'] == dict(step=2, stage=0, stage_name='full', value=50.0, metric='accuracy', rule='best',
                                             metrics=dict(accuracy=50.0))

def test_a_data_dir_that_is_a_file_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    """run.py: data_dir naming a file (not a folder of task folders) is refused by name before the model loads or the run
    folder is made (reading the data refuses it too, as a FileNotFoundError, but only once the model is loaded)."""
    import fpt_nb.run as run_mod
    from fpt_nb.run import run_experiment
    monkeypatch.setattr(run_mod, 'setup', lambda *a, **k: pytest.fail('the model was loaded before data_dir was refused'))
    f = tmp_path/'data.jsonl'; f.write_text('{}\n')
    with pytest.raises(ValueError, match=f'data_dir {f} is a file: expected a folder holding mnli/'):
        run_experiment(task='mnli', model='tiny', method='pt', out_dir=str(tmp_path/'r'), data_dir=str(f), steps=2, progress=False)
    assert not (tmp_path/'r').exists()

def test_an_unreadable_evaluation_file_holds_no_data_hash(tmp_path):
    """run.py: an eval-*.json that is not valid JSON (torn) says nothing of the rows it scored: `_held_sha` gives None;
    a whole one gives its data hash."""
    from fpt_nb.run import _held_sha
    f = tmp_path/'eval-validation.json'
    f.write_text(json.dumps(dict(accuracy=50.0, data=dict(sha='abc123', rows=8))))
    assert _held_sha(f) == 'abc123'
    f.write_text('{"accuracy": 50.0, "data": {"sha": "abc1')
    assert _held_sha(f) is None

@pytest.mark.parametrize('limit', [0, -3, True, 2.5, '8'])
def test_an_evaluation_limit_that_is_not_a_count_is_refused(tmp_path, limit):
    """run.py: `evaluate_run`'s limit must be a whole number of at least 1 (or None): 0, a negative, a bool, a float or a
    string is refused by name before any prompt or model is read."""
    from fpt_nb.run import evaluate_run
    d = tmp_path/'run'; d.mkdir()
    write_json(d/'summary.json', dict(config=dict(task='toy', model='tiny'), stages=[]))
    with pytest.raises(ValueError, match=f'limit must be a whole number of at least 1, or None for the whole split, got {limit!r}'):
        evaluate_run(d, limit=limit, progress=False)

# ---- train.py: the trainer's refusals

@pytest.mark.parametrize('batch, micro, hint', [(12, 4, ', e.g. 6'), (9, None, ', with a batch_size that 2 divides')])
def test_a_batch_two_processes_cannot_share_is_refused(tmp_path, monkeypatch, batch, micro, hint):
    """train.py: in a data-parallel run of 2 processes, a batch of 12 in micro-batches of 4 (3 a step), or a batch of 9 with no
    micro-batch size (1 a step), cannot be split evenly: refused, naming a micro-batch size that would do, before anything is
    written. The process state is a stand-in for accelerate's (rank 0 of 2), as in test_cli."""
    import fpt_nb.train as train_mod
    state = SimpleNamespace(num_processes=2, process_index=0, is_main_process=True, device=torch.device('cpu'),
                            wait_for_everyone=lambda: None)
    monkeypatch.setattr(train_mod, 'distributed_state', lambda *a, **k: state)
    n = batch // (micro or batch)
    with pytest.raises(ValueError, match=f"batch_size {batch} in micro-batches of {micro or batch} is {n} micro-batch{'es' if n > 1 else ''} "
                                         f"a step, which 2 processes cannot share evenly: .*multiple of 2{hint}$"):
        cfg = TrainConfig(batch_size=batch, micro_batch_size=micro, prompt_length=4)
        Trainer(tiny(), [Phase(FULL, 2)], ITEMS * 2, cfg, tmp_path/'r', progress=False)
    assert not (tmp_path/'r').exists()

def test_a_step_past_the_schedule_is_of_its_last_phase(tmp_path):
    """train.py: `phase_at` of a step at or past the schedule's end (4 steps in two phases of 2) is the last phase, 1; the steps
    inside it are of their own phases. (`fit` asks only for steps inside it: the public method is the only way here.)"""
    tr = Trainer(tiny(), [Phase(layer_dropping(1), 2), Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/'r', progress=False)
    assert [tr.phase_at(s) for s in range(6)] == [0, 0, 1, 1, 1, 1]

def test_a_checkpoint_prompt_of_another_shape_is_refused_and_nothing_changed(fitted, tmp_path):
    """train.py: a checkpoint of an earlier version (no prompt digest in its state) whose prompt file holds a prompt of 8 tokens
    where the run's is 4 is refused on resume, naming both shapes, before the prompt, the log or any file is touched."""
    d = tmp_path/'run'; shutil.copytree(fitted, d)
    ckpt = d/'checkpoints'/'step-0000002'
    state = json.loads((ckpt/'state.json').read_text()); state.pop('prompt_digest')
    (ckpt/'state.json').write_text(json.dumps(state))
    width = tiny().prompt.weight.shape[1]
    save_file({'prompt': torch.zeros(8, width)}, str(ckpt/'prompt.safetensors'))
    before = files(d)
    tr = Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), d, progress=False)
    with pytest.raises(ValueError, match=rf"checkpoint {ckpt} holds a prompt of shape \(8, {width}\), this run's is \(4, {width}\)"):
        tr.fit()
    assert files(d) == before

@pytest.mark.parametrize('gave, metric, says', [
    (dict(accuracy=50.0), 'rouge', r"the evaluation gave \['accuracy'\]: the best prompt is chosen by 'rouge', which is not among them"),
    ({}, None, r"the evaluation gave no metrics: it must return a dict of them")])
def test_an_evaluation_without_the_metric_the_best_prompt_is_chosen_by_is_refused(tmp_path, gave, metric, says):
    """train.py: a trainer told to choose its best prompt by 'rouge' whose evaluation gives only accuracy is refused at that
    evaluation, naming the metrics it gave, not failed with a bare KeyError; one that gives no metrics at all is said as such (it
    was a bare StopIteration). Neither is logged as an evaluation the run made."""
    tr = Trainer(tiny(), [Phase(FULL, 1)], ITEMS, TrainConfig(**CFG), tmp_path/'r', evaluate=lambda pt: gave,
                 metric=metric, progress=False)
    with pytest.raises(ValueError, match=says):
        tr.fit()
    assert [r for r in read_log(tmp_path/'r')['eval']] == []

# ---- checkpoint.py

@pytest.mark.parametrize('status', [None, 'Name:\tpython\nState:\tR (running)\n'])
def test_the_umask_without_proc_is_read_and_left_as_it_was(tmp_path, monkeypatch, status):
    """checkpoint.py: where /proc/self/status cannot be opened (not Linux), or has no Umask line (an old kernel), the mask is
    read by setting it and putting it back: `umask` gives the process's mask (027 here), leaves it 027, and a file written
    atomically gets 0640. /proc's absence is faked by the module's `open`; the mask is the real one."""
    import fpt_nb.checkpoint as ck
    def fake_open(path, *a, **k):
        if str(path) != '/proc/self/status': return open(path, *a, **k)
        if status is None: raise FileNotFoundError(2, 'No such file or directory', path)
        return io.StringIO(status)
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(ck, 'open', fake_open, raising=False)
        assert ck.umask() == 0o027
        assert os.umask(0o027) == 0o027   # (reads the mask as it is now, and sets it to the same)
        f = ck.write_atomic(tmp_path/'x.json', '{}')
        assert f.stat().st_mode & 0o777 == 0o640
    finally: os.umask(old)

def test_a_state_with_an_object_a_checkpoint_cannot_hold_is_refused():
    """checkpoint.py: `flatten_state` refuses a value it cannot write as JSON or a tensor (a set, an object), naming its type
    and its path in the state; it was not dropped or written as None."""
    from fpt_nb.checkpoint import flatten_state
    with pytest.raises(TypeError, match=r"cannot save a set at 'optimizer\.state\.1' in a checkpoint: only tensors, numbers"):
        flatten_state(dict(state=[0.5, {1, 2}]), 'optimizer')
    with pytest.raises(TypeError, match=r"cannot save a object at 'rng\.x' in a checkpoint"):
        flatten_state(dict(x=object()), 'rng')

def test_a_log_whose_last_line_is_torn_is_a_run_stopped_before_its_summary(tmp_path):
    """checkpoint.py: a run folder with no summary whose log.jsonl ends in a torn line (a kill mid-write) is a run stopped
    before its summary, not one that failed: `_last_record` gives {} for it, and `stopped_before_summary` says to run it again."""
    from fpt_nb.checkpoint import _last_record, stopped_before_summary
    d = tmp_path/'run'; d.mkdir()
    write_json(d/'config.json', dict(task='toy', model='tiny', method='pt', steps=4, out_dir=str(d)))
    (d/'log.jsonl').write_text(json.dumps(dict(kind='step', step=1, loss=1.0)) + '\n{"kind": "error", "st')
    assert _last_record(d/'log.jsonl') == {}
    assert stopped_before_summary(d) == (f"run {d} has no summary: it was stopped before writing one (with no checkpoint); run its "
                                         f"command again to finish it")
    # last_record_skips_first (the twelfth audit): a log of one record gives that record, not {} as if it had none
    (d/'log.jsonl').write_text(json.dumps(dict(kind='error', step=1, error='loss is nan')) + '\n')
    assert _last_record(d/'log.jsonl') == dict(kind='error', step=1, error='loss is nan')
    assert stopped_before_summary(d).startswith(f"run {d} has no summary: it failed at step 1 (loss is nan; no checkpoint)")

# ---- cli.py

def test_a_hub_host_that_resolves_is_not_called_unreachable(monkeypatch):
    """cli.py: with no proxy set, the hub is called unreachable only where its host name does not resolve: an endpoint on a
    host that resolves (localhost) gives None; one that does not gives why."""
    from huggingface_hub import constants
    from fpt_nb.cli import _hub_host_unreachable
    for k in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'): monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(constants, 'ENDPOINT', 'http://localhost:9')
    assert _hub_host_unreachable() is None
    monkeypatch.setattr(constants, 'ENDPOINT', 'https://no-such-host.invalid')
    assert _hub_host_unreachable().startswith('the hub cannot be reached from here (no-such-host.invalid does not resolve: ')

def test_check_run_leaves_a_model_family_it_does_not_build_to_loading(tmp_path):
    """cli.py: a model folder whose config is neither a T5 nor a decoder-only family fpt builds (GPT-2 here) has no stage
    shapes to check before loading: `check_run` passes it (loading says what is wrong), and does not fail on it itself."""
    from fpt_nb.cli import check_run
    m = tmp_path/'gpt2'; m.mkdir()
    (m/'config.json').write_text(json.dumps(dict(model_type='gpt2', n_layer=2, n_embd=32, n_head=2, vocab_size=100)))
    assert check_run('toy', str(m), 'fpt_cr', 40) is None

@pytest.mark.parametrize('methods, got', [('', '[]'), (3, '3'), (['pt', 3], "['pt', 3]"), ([], '[]')])
def test_notebook_methods_that_are_not_a_list_of_names_are_refused(methods, got):
    """cli.py: the notebook's `methods` parameter must be a non-empty list of names (or a string of them): an empty string or
    list, a number, or a list holding a number is refused by name, not passed on (an empty list would run nothing)."""
    from fpt_nb.cli import check_params
    with pytest.raises(ValueError, match=r"parameter methods must be a list of names like \['pt', 'fpt_cr'\] \(or the string 'pt fpt_cr'\), "
                                         rf"got {__import__('re').escape(got)}$"):
        check_params(dict(methods=methods))

def test_a_parameters_cell_that_is_not_python_checks_no_injected_names():
    """cli.py: where the notebook's parameters cell is not plain Python (`_assigned` gives None), the names papermill injected
    cannot be held to it, and none is refused; where it is, an injected name it does not define is."""
    from fpt_nb.cli import _assigned, check_injected
    assert _assigned('%matplotlib inline\nsteps = 4') is None
    injected = '# Parameters\nsteps = 8\n'
    assert check_injected(dict(In=['', '%matplotlib inline\ntask = "toy"', injected])) is None
    with pytest.raises(ValueError, match=r"unknown parameter 'steps' given to this notebook .*its parameters are task"):
        check_injected(dict(In=['', 'task = "toy"', injected]))

def test_a_flag_that_is_not_a_whole_number_is_refused_by_name(capsys):
    """cli.py: a whole-number flag given text (`--steps`-like flags such as --batch-size) is refused with 'expected a whole
    number', exit code 2, not argparse's bare 'invalid whole value'."""
    from fpt_nb.cli import _at_least, main
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a whole number, got '4\.5'$"): _at_least(1)('4.5')
    with pytest.raises(SystemExit) as e: main(['run', '--batch-size', 'four'])
    assert e.value.code == 2 and "argument --batch-size: expected a whole number, got 'four'" in capsys.readouterr().err

@pytest.mark.parametrize('command, args, says', [('tables', ['tables', 'runs'], 'fpt tables: interrupted\n'),
    ('run', ['run'], 'fpt run: interrupted; what the run checkpointed is kept: run the same command to go on from it\n')])
def test_ctrl_c_in_a_command_exits_130_saying_so(monkeypatch, capsys, command, args, says):
    """cli.py: Ctrl-C in a command ends `fpt` with 130 and one line (for `run`, that its checkpoints are kept), not a
    traceback."""
    import fpt_nb.cli as cli
    def interrupted(a): raise KeyboardInterrupt
    monkeypatch.setattr(cli, f'cmd_{command}', interrupted)
    assert cli.main(args) == 130
    assert capsys.readouterr().err == says

# ---- tables.py

def test_an_unreadable_choice_record_is_no_evidence_of_an_edit(tmp_path):
    """tables.py: with the log gone, a summary's best is held to best.json; a best.json that cannot be read (torn) says nothing
    either way, so the run is not called edited; one that reads another step is."""
    from fpt_nb.tables import _choice_records_disagree
    s = dict(run_dir=str(tmp_path), best=dict(step=10, metrics=dict(accuracy=70.0)))
    (tmp_path/'best.json').write_text('{"step": 10, "accur')
    assert _choice_records_disagree(s) is None
    (tmp_path/'best.json').write_text(json.dumps(dict(step=8, accuracy=70.0)))
    assert "its summary's best step is 10, where its best.json has step 8" in _choice_records_disagree(s)

def test_a_log_line_that_is_not_json_is_named_by_its_number(tmp_path):
    "log_line_from_zero (`enumerate(..., 0)`): a run log whose second line is torn was said to be torn at line 1."
    (tmp_path/'log.jsonl').write_text('{"kind": "step", "step": 1}\n{"kind": "st\n{"kind": "step", "step": 3}\n')
    with pytest.raises(ValueError, match=r'log.jsonl: line 2 is not valid JSON'): read_log(tmp_path)

def test_a_checkpoint_written_without_a_gpu_resumes_on_one(monkeypatch):
    """cuda_state_demanded (`'cuda' in st or cuda available`): a checkpoint written on a CPU (no CUDA generator states) failed
    to resume where CUDA is available (KeyError 'cuda'); the CUDA generators are set only from states the checkpoint holds."""
    from fpt_nb.checkpoint import rng_state, set_rng_state
    st, calls = rng_state(), []
    assert 'cuda' not in st   # (this machine has no GPU)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_rng_state_all', lambda states: calls.append(states))
    set_rng_state(st)
    assert calls == []
    set_rng_state(dict(st, cuda=[torch.zeros(4, dtype=torch.uint8)]))
    assert len(calls) == 1 and torch.equal(calls[0][0], torch.zeros(4, dtype=torch.uint8))

def test_a_best_record_of_an_earlier_version_is_of_the_last_stage(tmp_path):
    """run.py: a best.json written before records named their stage and rule is taken as chosen on the last stage (the full
    model, where an earlier version chose), and its rule says so, with the step and the stage counted from 1."""
    from fpt_nb.run import _prompt_stage
    write_json(tmp_path/'best.json', dict(step=3, metric='accuracy', accuracy=50.0))
    summary = dict(steps=4, stages=[dict(steps=2), dict(steps=1), dict(steps=1)])
    assert _prompt_stage(tmp_path, summary, 'best') == (2, 3, 'recorded without its rule (an earlier version): chosen at step 3, stage 3 of 3')
    summary['best'] = dict(step=3, rule='the best paper_mean of any stage')   # the summary says the best prompt's rule: that one
    assert _prompt_stage(tmp_path, summary, 'best')[2] == 'the best paper_mean of any stage'
    write_json(tmp_path/'best_last.json', dict(step=4, stage=2))   # (the summary's rule is the best prompt's, not the last stage's)
    assert _prompt_stage(tmp_path, summary, 'best_last')[2].startswith('recorded without its rule')

def test_the_summarys_final_metrics_are_the_last_evaluations(tmp_path, monkeypatch):
    """run.py: summary.json's final_metrics are those of the run's last evaluation in its log, not an earlier one (each
    evaluation here scores differently: a counter stands in for the model's accuracy)."""
    import fpt_nb.run as run
    real = run.setup
    def counting(*a, **kw):
        pt, tok, encode_fn, make_eval, flops = real(*a, **kw)
        n = iter(range(1000))
        return pt, tok, encode_fn, (lambda items, rows: (lambda p: dict(accuracy=(a := float(next(n))), paper_mean=a, total=len(items)))), flops
    monkeypatch.setattr(run, 'setup', counting)
    s = run.run_experiment(task='toy', model='tiny', method='pt', steps=4, eval_every=1, batch_size=4, prompt_length=4, train_limit=16,
                           eval_limit=4, device='cpu', progress=False, out_dir=str(tmp_path/'run'))
    evals = read_log(tmp_path/'run')['eval']
    assert len({e['accuracy'] for e in evals}) > 1
    assert s['final_metrics'] == dict(accuracy=evals[-1]['accuracy'], paper_mean=evals[-1]['accuracy'], total=4)

def test_a_log_check_matches_a_nan_best_value_to_a_nan_evaluation_only():
    """train.py: on resume, the log must hold the evaluation that made the checkpoint's best prompt. A NaN score equals
    nothing, so a NaN best value is matched by a NaN in the log at its step, and not by a number there."""
    from fpt_nb.train import _log_problem
    nan = float('nan')
    recs = lambda v: [dict(kind='step', step=1), dict(kind='step', step=2), dict(kind='eval', step=2, stage=0, flops=9, rouge=v)]
    assert _log_problem(recs(nan), 2, None, ((2, nan),)) is None
    assert _log_problem(recs(0.5), 2, None, ((2, 0.5),)) is None
    assert _log_problem(recs(0.5), 2, None, ((2, nan),)).startswith("lacks the evaluation at step 2 that made the checkpoint's best prompt (nan)")
    assert _log_problem(recs(nan), 2, None, ((2, 0.5),)).startswith("lacks the evaluation at step 2")

def test_the_umask_is_read_without_being_set_where_proc_says_it(monkeypatch):
    """checkpoint.py: setting the umask to read it is process-wide (another thread's file made meanwhile would get 022): on
    Linux it is read from /proc/self/status, without calling os.umask; only where that cannot be read is it set and restored."""
    from fpt_nb.checkpoint import umask
    want = os.umask(0o027); os.umask(want)
    def no_set(m): raise AssertionError('os.umask called')
    with monkeypatch.context() as m:
        m.setattr(os, 'umask', no_set)
        assert umask() == want
    import builtins
    real_open = builtins.open
    monkeypatch.setattr(builtins, 'open', lambda f, *a, **k: (_ for _ in ()).throw(OSError('no /proc here')) if f == '/proc/self/status' else real_open(f, *a, **k))
    assert umask() == want and os.umask(want) == want   # (the fallback left it as it was)

def test_a_run_of_an_earlier_version_without_its_model_record_is_evaluated_by_its_config(tmp_path, monkeypatch):
    """run.py: a summary written before runs recorded `model_ref` names its model by the config alone; evaluated where that
    folder is gone, it says so as a model that cannot be loaded, not with an AttributeError from the missing record."""
    from fpt_nb.run import run_experiment, evaluate_run
    from fpt_nb.checkpoint import read_json
    model, tok = load_t5('tiny')
    model.save_pretrained(tmp_path/'tm'); tok.save_pretrained(tmp_path/'tm')
    monkeypatch.chdir(tmp_path)
    run_experiment('toy', 'tm', 'pt', 'run', steps=2, batch_size=4, prompt_length=4, train_limit=8, eval_limit=4, device='cpu', progress=False)
    s = read_json(tmp_path/'run'/'summary.json'); s.pop('model_ref')
    write_json(tmp_path/'run'/'summary.json', dict(s, config=dict(s['config'], model='tm'), model='tm'))
    assert evaluate_run('run', limit=4, device='cpu', progress=False)['n'] == 4   # the folder there: evaluated
    shutil.rmtree(tmp_path/'tm')
    with pytest.raises((ValueError, OSError), match="'tm'"): evaluate_run('run', limit=4, device='cpu', progress=False)
