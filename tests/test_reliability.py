"""The reliability catalogue (issue 8): every fault and bad input we know of, tried against the real library.

Each case asserts either a clear error (naming the input and what would be right) or a correct recovery, and
that nothing already saved is lost or changed (files compared by hash before and after). Runs use the tiny T5
and the built-in `toy` task; FPT_CR over 6 steps has stages of 1, 1, 1 and 3 steps, so checkpoints are written
at steps 1, 2, 3 and 6 (two kept). A few cases run `run_experiment` in a real subprocess, to kill it.

Cases marked `xfail(strict=True)` are library defects found by this catalogue: the test states the right
behaviour; the reason says what happens instead and where. Remove the mark with the fix.
"""
import errno, gzip, hashlib, json, os, pathlib, pickle, re, shutil, signal, subprocess, sys, time
from contextlib import contextmanager
from pathlib import Path
import pytest, torch
import fpt_nb.checkpoint as ckpt
from fpt_nb.checkpoint import latest_checkpoint, load_checkpoint, load_prompt, read_json, prompt_step
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.scores import NeuronScores, activation_scores, save_scores, load_scores
from fpt_nb.partial import FULL, Stage, layer_dropping
from fpt_nb.tasks import load_examples
from fpt_nb.batches import encode, batches
from fpt_nb.train import Trainer, TrainConfig, Phase, NonFiniteLoss
from fpt_nb.run import run_experiment, evaluate_run

RUN = dict(task='toy', model='tiny', method='fpt_cr', steps=6, batch_size=4, prompt_length=4, train_limit=32, eval_limit=8,
           score_examples=16, device='cpu', progress=False)
STEP = lambda n: f'step-{n:07d}'


# ---------------------------------------------------------------------------------------------------------------
# Helpers

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Bit-for-bit comparisons need the same CPU thread count in this process and in the child processes (1 in both),
    whatever an earlier test (e.g. the CLI's) left torch set to."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope='module')
def reference(tmp_path_factory, one_thread) -> Path:
    "An uninterrupted run: what every recovery must reproduce bit for bit."
    d = tmp_path_factory.mktemp('reference')/'run'
    run_experiment(out_dir=str(d), **RUN)
    return d

def copy_run(src:Path, dst:Path) -> Path:
    "A copy of the run folder `src` at `dst`, as if it had been run there."
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('tb'))
    ckpt.write_json(dst/'config.json', {**read_json(dst/'config.json'), 'out_dir': str(dst)})
    return dst

def snapshot(d:Path) -> dict[str, str]:
    "Hash of every file under `d` (TensorBoard's append-only event files left out)."
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob('*')) if p.is_file() and 'tb' not in p.relative_to(d).parts}

def assert_kept(before:dict, after:dict, allow=()):
    "Every file saved before is still there with the same bytes, and nothing was added (`allow`: known exceptions)."
    changed = sorted(k for k in before if k not in allow and after.get(k) != before[k])
    added = sorted(k for k in set(after) - set(before) if k not in allow)
    assert not changed and not added, f"saved files changed or lost: {changed}; files added: {added}"


def log_records(run:Path, kind:str) -> list[dict]:
    drop = ('wall', 'eval_seconds', 'seconds')
    return [{k: v for k, v in r.items() if k not in drop} for r in map(json.loads, (run/'log.jsonl').read_text().splitlines()) if r['kind'] == kind]

def assert_same_result(run:Path, ref:Path):
    "`run` ended exactly where the uninterrupted reference did: prompts, scores, log, summary and last checkpoint."
    for f in ('prompt.safetensors', 'best_prompt.safetensors'):
        assert (run/f).read_bytes() == (ref/f).read_bytes(), f"{f} differs from the uninterrupted run's"
    a, b = load_scores(run/'scores.safetensors'), load_scores(ref/'scores.safetensors')   # metadata order in the header may vary
    assert all(torch.equal(a.scores[s], b.scores[s]) for s in b.scores) and (a.kind, a.n_tokens) == (b.kind, b.n_tokens)
    a, b = [{k: v for k, v in read_json(d/'best.json').items() if k not in ('wall', 'eval_seconds')} for d in (run, ref)]
    assert a == b, "best.json differs from the uninterrupted run's"
    for kind in ('step', 'eval'): assert log_records(run, kind) == log_records(ref, kind), kind   # 'expand': see test_resume_logs_expansions_once
    s, r = read_json(run/'summary.json'), read_json(ref/'summary.json')
    for k in ('steps', 'total_flops', 'final_metrics', 'best', 'stopped'): assert s[k] == r[k], k
    assert [(x['name'], x['steps'], x['flops']) for x in s['stages']] == [(x['name'], x['steps'], x['flops']) for x in r['stages']]
    assert latest_checkpoint(run/'checkpoints').name == STEP(6)
    assert (run/'checkpoints'/STEP(6)/'prompt.safetensors').read_bytes() == (ref/'checkpoints'/STEP(6)/'prompt.safetensors').read_bytes()
    a, b = [read_json(d/'checkpoints'/STEP(6)/'state.json') for d in (run, ref)]   # the optimizer's and schedule's states too
    for k in ('optimizer', 'scheduler', 'step', 'flops', 'best_step', 'best_last_step'): assert a[k] == b[k], f"checkpoint's {k} differs"
    assert not (run/'run.lock').exists()

def assert_loadable(run:Path, step:int) -> torch.Tensor:
    "The latest checkpoint of `run` is step `step`, complete, and holds a finite prompt."
    c = latest_checkpoint(run/'checkpoints')
    assert c is not None and c.name == STEP(step), f"latest checkpoint is {c}, expected {STEP(step)}"
    prompt, state, tensors = load_checkpoint(c)
    assert state['step'] == step and prompt.shape == (RUN['prompt_length'], 64) and torch.isfinite(prompt).all()
    return prompt

def hidden_files(run:Path) -> list[str]:
    "Temporary files and folders (dot names) a failed write left behind."
    return sorted(p.relative_to(run).as_posix() for p in run.rglob('.*'))

def resume(run:Path, **kw) -> dict: return run_experiment(out_dir=str(run), **{**RUN, **kw})

def enospc(path) -> OSError: return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

class SimulatedCrash(Exception): "The process dies here (raised in-process by a monkeypatched function)."


# A subprocess that runs `run_experiment` and holds still at a chosen point until told to go on (or killed):
# `step N` holds inside step N after the backward pass, before the optimizer update; `save N` holds inside the
# checkpoint of step N, after its prompt file is written and before its state file is; `score 0` holds before the
# neuron scores are computed (FPT_FR/CR), before the run has written anything but its lock.
CHILD = r'''
import json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)   # the same float reduction order as the reference (see `one_thread`)
import fpt_nb.checkpoint as ckpt
from fpt_nb.run import run_experiment
kw, (where, n), flags = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
def hold():
    (flags/'held').write_text(str(os.getpid()))
    for _ in range(1200):
        if (flags/'go').exists(): return
        time.sleep(0.05)
    raise SystemExit('never told to go on')
if where == 'step':
    clip, calls = torch.nn.utils.clip_grad_norm_, [0]
    def clip_and_hold(*a, **k):
        calls[0] += 1
        if calls[0] == n: hold()
        return clip(*a, **k)
    torch.nn.utils.clip_grad_norm_ = clip_and_hold
elif where == 'score':
    import fpt_nb.run as run
    scores = run.activation_scores
    def hold_then_score(*a, **k):
        hold()
        return scores(*a, **k)
    run.activation_scores = hold_then_score
else:
    save = ckpt.save_file
    def save_and_hold(tensors, fn, *a, **k):
        if f'step-{n:07d}' in fn and fn.endswith('state.safetensors'): hold()
        return save(tensors, fn, *a, **k)
    ckpt.save_file = save_and_hold
run_experiment(**kw)
'''

@contextmanager
def held_run(tmp:Path, out:Path, where:str, n:int, **kw):
    "A subprocess running `RUN` into `out`, held at (`where`, `n`); yields the process and a function that lets it go on."
    flags = tmp/'flags'; flags.mkdir()
    log = open(tmp/'child.log', 'w')
    p = subprocess.Popen([sys.executable, '-c', CHILD, json.dumps({**RUN, **kw, 'out_dir': str(out)}), json.dumps([where, n]), str(flags)],
                         stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        deadline = time.time() + 120
        while not (flags/'held').exists():
            assert p.poll() is None, f"the run ended before reaching {where} {n}:\n{(tmp/'child.log').read_text()[-3000:]}"
            assert time.time() < deadline, f"the run did not reach {where} {n} in 120 s"
            time.sleep(0.05)
        yield p, lambda: (flags/'go').touch()
    finally:
        if p.poll() is None: p.kill()
        p.wait(); log.close()

def child_output(tmp:Path) -> str: return (tmp/'child.log').read_text()


# ---------------------------------------------------------------------------------------------------------------
# 1. A killed process

def test_sigkill_mid_step_then_resume_is_bit_identical(reference, tmp_path):
    "SIGKILL inside step 5: the step-3 checkpoint survives, the dead run's lock is taken over, the resumed run ends bit for bit where an uninterrupted one does."
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'step', 5) as (p, go):
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait() == -signal.SIGKILL
    assert (out/'run.lock').read_text() == str(p.pid)          # left behind by the dead process
    assert_loadable(out, 3)
    assert [r['step'] for r in log_records(out, 'step')] == [1, 2, 3, 4]
    assert not (out/'summary.json').exists() and not (out/'prompt.safetensors').exists()
    resume(out)
    assert_same_result(out, reference)


def test_sigkill_mid_checkpoint_write_keeps_previous_checkpoint(reference, tmp_path):
    "SIGKILL while the step-3 checkpoint is half written: `latest` still names the complete step-2 one, and the resume is exact."
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'save', 3) as (p, go):
        before = (out/'checkpoints'/STEP(2)/'prompt.safetensors').read_bytes()
        os.kill(p.pid, signal.SIGKILL); p.wait()
    assert_loadable(out, 2)
    assert (out/'checkpoints'/STEP(2)/'prompt.safetensors').read_bytes() == before
    assert not (out/'checkpoints'/STEP(3)).exists()               # only the hidden temporary folder of the torn write
    assert [p.name.split('.')[1] for p in (out/'checkpoints').glob('.step-*')] == [STEP(3)]
    resume(out)
    assert_same_result(out, reference)


@pytest.mark.parametrize('point', ['after_rename_before_latest', 'after_latest_before_prune'])
def test_crash_between_checkpoint_files(point, reference, tmp_path, monkeypatch):
    "The process dies between the steps of writing the step-3 checkpoint: whatever `latest` names is complete, and the resume is exact."
    out = tmp_path/'run'
    if point == 'after_rename_before_latest':
        real = ckpt.tempfile.mkstemp
        def mkstemp(*a, prefix='', dir=None, **k):
            if prefix == '.latest.' and (Path(dir)/STEP(3)).exists(): raise SimulatedCrash(point)
            return real(*a, prefix=prefix, dir=dir, **k)
        monkeypatch.setattr(ckpt.tempfile, 'mkstemp', mkstemp)
    else:
        real = ckpt.shutil.rmtree
        def rmtree(path, *a, **k):
            if Path(path).name == STEP(1): raise SimulatedCrash(point)
            return real(path, *a, **k)
        monkeypatch.setattr(ckpt.shutil, 'rmtree', rmtree)
    with pytest.raises(SimulatedCrash): resume(out)
    monkeypatch.undo()
    assert_loadable(out, 2 if point == 'after_rename_before_latest' else 3)
    for n in (1, 2, 3): load_checkpoint(out/'checkpoints'/STEP(n))   # all complete, whichever is latest
    resume(out)
    assert_same_result(out, reference)
    assert sorted(p.name for p in (out/'checkpoints').glob('step-*')) == [STEP(3), STEP(6)]


def crash_in_step(out:Path, n:int, monkeypatch):
    "Run `RUN` into `out` and let the process 'die' inside step `n` (before its update), in this process."
    clip, calls = torch.nn.utils.clip_grad_norm_, [0]
    def crash(*a, **k):
        calls[0] += 1
        if calls[0] == n: raise SimulatedCrash(f'step {n}')
        return clip(*a, **k)
    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', crash)
    with pytest.raises(SimulatedCrash): resume(out)
    monkeypatch.undo()


def test_torn_log_line_does_not_block_resume(reference, tmp_path, monkeypatch):
    "The process dies while appending step 5's record to log.jsonl, leaving half a line: the resume drops it and finishes exactly."
    out = tmp_path/'run'
    crash_in_step(out, 5, monkeypatch)
    with open(out/'log.jsonl', 'a') as f: f.write('{"kind": "step", "step": 5, "stage": 3, "lo')
    resume(out)
    assert_same_result(out, reference)


@pytest.mark.parametrize('damaged', ['state.safetensors', 'state.json'])
def test_damaged_latest_checkpoint_is_refused_naming_the_one_before(damaged, reference, tmp_path, monkeypatch):
    """A latest checkpoint damaged on disk (a bad sector, an edit by hand: a killed run cannot do it) is refused, nothing
    changed, naming the checkpoint before it; following that advice resumes from it and ends exactly as uninterrupted."""
    out = tmp_path/'run'
    crash_in_step(out, 5, monkeypatch)
    last = latest_checkpoint(out/'checkpoints')
    older = sorted(p.name for p in (out/'checkpoints').glob('step-*') if p.name < last.name)[-1]
    f = last/damaged
    f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    before = snapshot(out)
    with pytest.raises((ValueError, FileNotFoundError)) as e: resume(out)
    assert str(f) in str(e.value) and f"write '{older}' into {out/'checkpoints'/'latest'}" in str(e.value), str(e.value)
    assert 'nothing was changed' in str(e.value)
    assert_kept(before, snapshot(out))
    (out/'checkpoints'/'latest').write_text(older)
    resume(out)
    assert_same_result(out, reference)


def test_a_checkpoints_prompt_swapped_by_hand_is_refused(reference, tmp_path, monkeypatch):
    """checkpoint_prompt_unchecked (an adversarial review): the latest checkpoint's prompt.safetensors replaced with the one of
    the checkpoint before it (a whole, readable file) was resumed from: the run went on from another step's prompt and ended
    elsewhere, unsaid. Each checkpoint records its prompt's digest; the swap is refused, naming the checkpoint before it."""
    out = tmp_path/'run'
    crash_in_step(out, 5, monkeypatch)
    last = latest_checkpoint(out/'checkpoints')
    older = sorted(p.name for p in (out/'checkpoints').glob('step-*') if p.name < last.name)[-1]
    (last/'prompt.safetensors').write_bytes((out/'checkpoints'/older/'prompt.safetensors').read_bytes())
    before = snapshot(out)
    with pytest.raises(ValueError) as e: resume(out)
    assert f"checkpoint file {last/'prompt.safetensors'} is not the prompt its checkpoint saved" in str(e.value), str(e.value)
    assert f"write '{older}' into {out/'checkpoints'/'latest'}" in str(e.value) and 'nothing was changed' in str(e.value)
    assert_kept(before, snapshot(out))


def test_a_damaged_scores_file_is_named_and_deleting_it_recovers(reference, tmp_path, monkeypatch, capsys):
    """damaged_scores_called_foreign: a scores.safetensors cut short was refused as 'another run's (its model differs)'. It is
    named damaged; deleted, the run computes the same scores again and ends exactly as uninterrupted; a finished run whose
    file was deleted gets it back (scores_not_restored), and says so (scores_restored_unsaid, the thirteenth audit)."""
    out = tmp_path/'run'
    crash_in_step(out, 3, monkeypatch)
    (out/'scores.safetensors').write_bytes((out/'scores.safetensors').read_bytes()[:100])
    with pytest.raises(ValueError, match=r'is not a safetensors file of scores .*: it is damaged; delete it, and the run computes the same scores again'):
        resume(out)
    (out/'scores.safetensors').unlink()
    resume(out)
    assert_same_result(out, reference)
    (out/'scores.safetensors').unlink()
    capsys.readouterr()
    resume(out)
    assert (f"note: {out}'s scores.safetensors was gone: computed again, the same as the run's (its checkpoint says so)\n"
            in capsys.readouterr().out)
    a, b = load_scores(out/'scores.safetensors'), load_scores(reference/'scores.safetensors')   # (header order may vary)
    assert all(torch.equal(a.scores[k], b.scores[k]) for k in b.scores) and a.source == b.source

def test_scores_are_written_atomically(tmp_path, monkeypatch):
    "scores_written_in_place: a write cut short (here: the disk fills after half the bytes) leaves the file before it, not half a new one."
    import fpt_nb.scores as sc
    from fpt_nb.scores import NeuronScores, save_scores
    f = save_scores(NeuronScores({'encoder': torch.ones(2, 8)}), tmp_path/'scores.safetensors')
    before = f.read_bytes()
    real = sc.save_file
    def half(tensors, path, metadata=None):
        real(tensors, path, metadata=metadata)
        Path(path).write_bytes(Path(path).read_bytes()[:50]); raise OSError(28, 'No space left on device')
    monkeypatch.setattr(sc, 'save_file', half)
    with pytest.raises(OSError, match='No space left'): save_scores(NeuronScores({'encoder': torch.zeros(2, 8)}), f)
    assert f.read_bytes() == before and hidden_files(tmp_path) == []

def test_the_log_is_rewound_atomically(reference, tmp_path, monkeypatch):
    """log_rewound_in_place: a resume rewinds log.jsonl to its checkpoint (the steps logged after it run again). The disk
    filling halfway through writing the rewound log leaves the log as it was, not cut in half (a cut log is refused at the
    next resume, and the plots, tables and summary read it), and no temporary file; a rerun with space ends exactly."""
    out = tmp_path/'run'
    crash_in_step(out, 5, monkeypatch)   # logged to step 4, checkpointed at step 3
    before = snapshot(out)
    real = pathlib.Path.write_text
    def half_then_full(self, data, *a, **k):
        if self.name == 'log.jsonl' or self.name.startswith('.log.jsonl.'):
            real(self, data[:len(data) // 2], *a, **k); raise enospc(self)
        return real(self, data, *a, **k)
    monkeypatch.setattr(pathlib.Path, 'write_text', half_then_full)
    with pytest.raises(OSError) as e: resume(out)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and (out/'log.jsonl').read_bytes() and hidden_files(out) == []
    assert_kept(before, snapshot(out), allow=('config.json',))
    assert [r['step'] for r in log_records(out, 'step')] == [1, 2, 3, 4]
    resume(out)
    assert_same_result(out, reference)

def test_resume_logs_expansions_once(reference, tmp_path, monkeypatch):
    "A run that dies in step 3 and resumes from the step-2 checkpoint logs the same expansions as an uninterrupted run."
    out = tmp_path/'run'
    crash_in_step(out, 3, monkeypatch)
    resume(out)
    assert_same_result(out, reference)
    assert log_records(out, 'expand') == log_records(reference, 'expand')


# ---------------------------------------------------------------------------------------------------------------
# 2. SIGTERM and Ctrl-C

def test_sigterm_checkpoints_then_resume(reference, tmp_path):
    "SIGTERM inside step 5 (not a checkpoint step): the step finishes, is checkpointed, the process exits cleanly; the resume is exact."
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'step', 5) as (p, go):
        os.kill(p.pid, signal.SIGTERM); go()
        assert p.wait(timeout=60) == 0, child_output(tmp_path)
    assert '(SIGTERM): stopping after step 5, once it is checkpointed' in child_output(tmp_path), child_output(tmp_path)
    prompt = assert_loadable(out, 5)
    s = read_json(out/'summary.json')
    assert (s['steps'], s['stopped']) == (5, f'signal {int(signal.SIGTERM)} at step 5')
    assert torch.equal(load_prompt(out/'prompt.safetensors'), prompt)
    assert not (out/'run.lock').exists()
    resume(out)
    assert_same_result(out, reference)

def test_sigterm_says_it_stops_and_a_second_stops_at_once(reference, tmp_path, monkeypatch, capfd):
    """sigterm_silent: SIGTERM in a long step said nothing until the step ended (minutes on a large model), and a second
    SIGTERM did nothing more. Now the first says which step the run stops after; the second (in the same step 4) stops at
    once with status 143: nothing of step 4 is summarized or saved, checkpoint 3 is kept, and the resume is exact."""
    from conftest import sigterm_in_step
    out = tmp_path/'run'
    sigterm_in_step(monkeypatch, 4, times=2)
    with pytest.raises(SystemExit) as e: resume(out)
    monkeypatch.undo()
    assert e.value.code == 128 + signal.SIGTERM
    err = capfd.readouterr().err
    assert err.count('(SIGTERM): stopping after step 4, once it is checkpointed') == 1, err
    assert not (out/'summary.json').exists() and not (out/'prompt.safetensors').exists() and not (out/'run.lock').exists()
    assert [r['step'] for r in log_records(out, 'step')] == [1, 2, 3]
    assert_loadable(out, 3)
    resume(out)
    assert_same_result(out, reference)

def test_sigterm_in_an_evaluation_says_the_step_it_stops_at(tmp_path, monkeypatch, capfd):
    "SIGTERM in the evaluation that ends stage 2 (step 2): the run stops at step 2, and says so, not 'after step 3'."
    from fpt_nb.train import Trainer
    real, calls = Trainer._eval, [0]
    def ev(self, phase):
        calls[0] += 1
        if calls[0] == 2: os.kill(os.getpid(), signal.SIGTERM)
        return real(self, phase)
    monkeypatch.setattr(Trainer, '_eval', ev)
    assert resume(tmp_path/'run')['stopped'] == f'signal {int(signal.SIGTERM)} at step 2'
    assert "(SIGTERM): stopping after step 2's evaluation, once it is checkpointed" in capfd.readouterr().err

def test_a_stopped_runs_summary_goes_when_it_trains_on(reference, tmp_path, monkeypatch):
    """stale_summary_kept: a run stopped by SIGTERM at step 2 has a summary of step 2. Resumed, then killed in step 4, it kept
    that summary beside the prompts and log of later steps: a record of a state the folder no longer held (and whose prompt
    digests disowned the newer files). The summary goes when training goes on; the killed run has none, like any killed
    run, and the next resume ends exactly as the uninterrupted run."""
    out = tmp_path/'run'
    from conftest import sigterm_in_step
    sigterm_in_step(monkeypatch, 2)
    assert resume(out)['stopped'] == f'signal {int(signal.SIGTERM)} at step 2' and (out/'summary.json').is_file()
    monkeypatch.undo()
    crash_in_step(out, 2, monkeypatch)   # the resume's second step: step 4
    assert not (out/'summary.json').exists() and [r['step'] for r in log_records(out, 'step')] == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match='has no summary: it was stopped before writing one'): evaluate_run(out, limit=4, progress=False)
    resume(out)
    assert_same_result(out, reference)

def test_a_stopped_run_without_its_checkpoints_starts_again_without_its_old_records(reference, tmp_path, monkeypatch, capsys):
    """earlier_attempt_records_kept (an adversarial review): a run stopped at step 3 whose checkpoints were then deleted starts
    again at step 0 (nothing to go on from), but kept the earlier attempt's best.json, best prompts and final prompt until
    the new attempt wrote its own: killed before that, the folder held a log of 1 step beside a best prompt of step 3. They
    are removed, saying so, when training starts again; the new attempt then ends as the uninterrupted run."""
    out = tmp_path/'run'
    from conftest import sigterm_in_step
    sigterm_in_step(monkeypatch, 3)
    assert resume(out)['stopped'] == f'signal {int(signal.SIGTERM)} at step 3' and (out/'best.json').is_file()
    monkeypatch.undo()
    shutil.rmtree(out/'checkpoints')
    crash_in_step(out, 1, monkeypatch)   # killed in the new attempt's first step, before its first evaluation
    assert [r['step'] for r in log_records(out, 'step')] == [] and not (out/'summary.json').exists()
    left = [n for n in ('best.json', 'best_last.json', 'best_prompt.safetensors', 'best_last_prompt.safetensors', 'prompt.safetensors')
            if (out/n).exists()]
    assert not left, f"the earlier attempt's {left} are still there beside the new attempt's log"
    said = capsys.readouterr().out   # (several files: "were removed", the sixteenth audit's earlier_files_was_removed)
    assert "training starts again at step 0, and the earlier attempt's best.json" in said
    assert re.search(r"the earlier attempt's best\.json, \S+(, \S+)* were removed", said), said
    resume(out)
    assert_same_result(out, reference)

def test_sigterm_while_scoring_leaves_no_folder(tmp_path):
    """sigterm_kills_outside_training: SIGTERM while the neuron scores are computed, before the run has begun (no config.json).
    It used to kill the process outright: the new run folder stayed behind holding only a stale run.lock. Now the run
    exits with status 143, frees its lock and removes the folder it made."""
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'score', 0) as (p, go):
        assert (out/'run.lock').exists()
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(timeout=60) == 128 + signal.SIGTERM, child_output(tmp_path)
    assert not out.exists(), sorted(x.name for x in out.iterdir())
    assert 'stopped by signal 15 (SIGTERM) outside training (loading, scoring neurons or evaluating)' in child_output(tmp_path)

def test_sigterm_in_the_last_step_leaves_a_finished_run(reference, tmp_path):
    """signal_stop_at_the_end: SIGTERM inside the last step (6 of 6): the run is finished, and its summary says so. It used to
    say 'stopped: signal 15 at step 6', and every rerun of `fpt run` then printed the stop and exited 143, with no plot drawn.
    finished_run_signal_dropped (session 22): the process itself stops (143), as a data-parallel run's does, so that a command of
    several methods does not start the next one; before, it exited 0 and went on. A rerun has nothing to do."""
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'step', 6) as (p, go):
        os.kill(p.pid, signal.SIGTERM); go()
        assert p.wait(timeout=60) == 143, child_output(tmp_path)
    assert 'stopped by signal 15 (SIGTERM) after the run had finished: its summary says so' in child_output(tmp_path), child_output(tmp_path)
    assert_same_result(out, reference)
    assert read_json(out/'summary.json')['stopped'] is None
    before = read_json(out/'summary.json')
    assert resume(out) == before   # nothing to do

def test_a_summary_older_than_the_checkpoint_is_written_again(reference, tmp_path):
    """stale_summary_taken_as_final: a run stopped by SIGTERM at step 3 writes a summary of 3 steps; its resume reaches step
    6 and is killed before it writes the new summary. The rerun took the old summary as final ('nothing to do'), for good:
    tables left the run out, and `fpt evaluate --prompt final` scored the step-6 prompt on step 3's partial model."""
    out = copy_run(reference, tmp_path/'run')
    s = read_json(out/'summary.json')
    ckpt.write_json(out/'summary.json', dict(s, steps=3, stopped=f'signal {int(signal.SIGTERM)} at step 3'))
    resume(out)
    assert_same_result(out, reference)

def test_ctrl_c_checkpoints_its_step_then_stops_and_resumes(reference, tmp_path):
    """SIGINT (Ctrl-C) inside step 5: the step finishes and is checkpointed, the run's summary says it stopped there (as a
    SIGTERM stop's does), then KeyboardInterrupt ends the process; the resume is exact."""
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'step', 5) as (p, go):
        os.kill(p.pid, signal.SIGINT); go()
        assert p.wait(timeout=60) in (1, -signal.SIGINT), child_output(tmp_path)   # an uncaught KeyboardInterrupt
    assert 'KeyboardInterrupt: interrupted at step 5, which is checkpointed' in child_output(tmp_path), child_output(tmp_path)
    prompt = assert_loadable(out, 5)
    assert [r['step'] for r in log_records(out, 'step')] == [1, 2, 3, 4, 5]
    s = read_json(out/'summary.json')
    assert (s['steps'], s['stopped']) == (5, 'interrupted (Ctrl-C) at step 5') and not (out/'run.lock').exists()
    assert torch.equal(load_prompt(out/'prompt.safetensors'), prompt)
    resume(out)
    assert_same_result(out, reference)

def ctrl_c_in_step(monkeypatch, n:int, times:int=1):
    "Ctrl-C (SIGINT to this process) inside the `n`-th training step from now, `times` times in that step."
    clip, calls = torch.nn.utils.clip_grad_norm_, [0]
    def interrupt(*a, **k):
        calls[0] += 1
        if calls[0] == n:
            for _ in range(times): os.kill(os.getpid(), signal.SIGINT)
        return clip(*a, **k)
    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', interrupt)

def test_ctrl_c_stop_is_tabulated_and_evaluated_as_unfinished(reference, tmp_path, monkeypatch, capsys):
    """ctrl_c_unsummarized: a run stopped by one Ctrl-C wrote no summary, so `fpt tables --unfinished` named it only and
    `fpt evaluate` refused it, though its step was checkpointed and its prompts saved. It is now summarized as a SIGTERM
    stop is: the tables take it with --unfinished (and say why not without), evaluate scores its best prompt. At the Ctrl-C
    the run says at once what it will do (ctrl_c_unsaid, the thirteenth audit): a step can take minutes on a large model."""
    from fpt_nb.tables import collect_runs
    out = tmp_path/'runs'/'fpt_cr'
    ctrl_c_in_step(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt, match='interrupted at step 4, which is checkpointed'): resume(out)
    assert ("\ninterrupted: stopping after this step, once it is checkpointed (Ctrl-C again to stop at once)\n"
            in capsys.readouterr().err)
    monkeypatch.undo()
    s = read_json(out/'summary.json')
    assert (s['steps'], s['planned_steps'], s['stopped']) == (4, 6, 'interrupted (Ctrl-C) at step 4')
    assert s['prompts']['prompt.safetensors'] == ckpt.prompt_digest(assert_loadable(out, 4))
    with pytest.raises(ValueError, match=r'unfinished at step 4 of 6 \(interrupted \(Ctrl-C\) at step 4\)'): collect_runs(tmp_path/'runs')
    assert [r['steps'] for r in collect_runs(tmp_path/'runs', unfinished=True)] == [4]
    assert evaluate_run(out, limit=4, progress=False)['prompt_step'] == s['best']['step']
    resume(out)
    assert_same_result(out, reference)

def test_ctrl_c_in_the_last_step_leaves_a_finished_run(reference, tmp_path, monkeypatch):
    "Ctrl-C inside the last step (6 of 6): the run is finished, its summary says so (not stopped), and a rerun has nothing to do."
    out = tmp_path/'run'
    ctrl_c_in_step(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt): resume(out)
    monkeypatch.undo()
    assert_same_result(out, reference)
    before = snapshot(out)
    resume(out)
    assert_kept(before, snapshot(out), allow=('summary.json',))

def test_a_second_ctrl_c_stops_at_once_without_a_summary(reference, tmp_path, monkeypatch):
    "Two Ctrl-C in step 4: the second stops the step where it is; nothing of it is summarized or saved, and the resume is exact."
    out = tmp_path/'run'
    ctrl_c_in_step(monkeypatch, 4, times=2)
    with pytest.raises(KeyboardInterrupt): resume(out)
    monkeypatch.undo()
    assert not (out/'summary.json').exists() and not (out/'prompt.safetensors').exists()
    assert_loadable(out, 3)
    resume(out)
    assert_same_result(out, reference)


# ---------------------------------------------------------------------------------------------------------------
# 3. The disk refuses a write (ENOSPC)

def _fsync_fails_for(name_part:str):
    real = os.fsync
    def fsync(fd):
        if name_part in os.readlink(f'/proc/self/fd/{fd}'): raise enospc(os.readlink(f'/proc/self/fd/{fd}'))
        return real(fd)
    return fsync

# where the write fails -> (run folder to start from, what to patch)
DISK_FULL = ['checkpoint_state_file', 'checkpoint_latest_pointer', 'best_prompt', 'final_prompt', 'summary']

def _disk_full(case, reference, tmp_path, monkeypatch) -> tuple[Path, dict]:
    "Run into a full disk at `case`; returns the run folder and its snapshot from before the run (empty: a new run)."
    out, before = tmp_path/'run', {}
    real_save, real_write = ckpt.save_file, pathlib.Path.write_text
    def save_file(tensors, fn, *a, **k):
        hit = {'checkpoint_state_file': STEP(3) in fn and fn.endswith('state.safetensors'),
               'best_prompt': Path(fn).name.startswith('.best_prompt.safetensors.'),
               'final_prompt': Path(fn).name.startswith('.prompt.safetensors.')}.get(case)
        if hit: raise enospc(fn)
        return real_save(tensors, fn, *a, **k)
    def write_text(self, data, *a, **k):
        if self.name.startswith('.latest.') and data == STEP(3): raise enospc(self)
        return real_write(self, data, *a, **k)
    monkeypatch.setattr(ckpt, 'save_file', save_file)
    if case == 'checkpoint_latest_pointer': monkeypatch.setattr(pathlib.Path, 'write_text', write_text)
    if case == 'summary': monkeypatch.setattr(os, 'fsync', _fsync_fails_for('.summary.json.'))
    with pytest.raises(OSError) as e: resume(out)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and 'No space left on device' in str(e.value)
    assert not (out/'run.lock').exists()
    return out, before

@pytest.mark.parametrize('case', DISK_FULL)
def test_disk_full_keeps_saved_state(case, reference, tmp_path, monkeypatch):
    "ENOSPC at each kind of write: the error is the OSError itself, what was saved is intact, and a rerun with space recovers exactly."
    out, before = _disk_full(case, reference, tmp_path, monkeypatch)
    if case == 'best_prompt':   # the paper's rule keeps a best prompt from the first evaluation (step 1), before the first checkpoint
        assert not (out/'best_prompt.safetensors').exists() and latest_checkpoint(out/'checkpoints') is None
    elif case in ('final_prompt', 'summary'): assert_loadable(out, 6)   # every checkpoint is saved: only the last writes failed
    else: assert_loadable(out, 2)
    assert not (out/'summary.json').exists()
    if case != 'summary': assert not (out/'prompt.safetensors').exists()
    resume(out)
    assert_same_result(out, reference)

@pytest.mark.parametrize('case', DISK_FULL)
def test_disk_full_leaves_no_temporary_files(case, reference, tmp_path, monkeypatch):
    "A write the disk refused leaves no half-written temporary file in the run folder."
    out, _ = _disk_full(case, reference, tmp_path, monkeypatch)
    assert hidden_files(out) == []


# ---------------------------------------------------------------------------------------------------------------
# 4. Two runs on one folder

def test_second_run_on_same_folder_is_refused(reference, tmp_path):
    "While a run is alive in a folder, a second run there refuses, names the folder and the owner, and changes nothing; the first run ends normally."
    out = tmp_path/'run'
    with held_run(tmp_path, out, 'step', 2) as (p, go):
        before = snapshot(out)
        with pytest.raises(RuntimeError) as e: resume(out)
        assert f'run folder {out} is in use by process {p.pid}' in str(e.value) and 'pick another out_dir' in str(e.value)
        assert_kept(before, snapshot(out))
        assert (out/'run.lock').read_text() == str(p.pid)
        go()
        assert p.wait(timeout=60) == 0, child_output(tmp_path)
    assert_same_result(out, reference)


# ---------------------------------------------------------------------------------------------------------------
# 5. A checkpoint from another run

OTHER_RUNS = [
    pytest.param(dict(model='tiny-bert'), 'model', id='other_model_architecture'),
    pytest.param(dict(model='tiny-relu'), 'model', id='other_model_same_shapes'),
    pytest.param(dict(stage_steps=[2, 1, 1, 2]), 'phases', id='other_stage_steps'),
    pytest.param(dict(method='fpt_ld'), 'phases', id='other_method'),
    pytest.param(dict(steps=8), 'phases', id='other_total_steps'),
    pytest.param(dict(prompt_length=5), 'prompt_length', id='other_prompt_length'),
    pytest.param(dict(batch_size=8), 'batch_size', id='other_batch_size'),
    pytest.param(dict(seed=1), 'seed', id='other_seed'),
    pytest.param(dict(lr=0.1), 'lr', id='other_lr'),
    pytest.param('scores', 'scores', id='other_scores'),
]

@pytest.mark.parametrize('change,what', OTHER_RUNS)
def test_checkpoint_from_another_run_is_refused(change, what, reference, tmp_path):
    "A run folder whose checkpoints come from another model, schedule or setup refuses the new run, says what differs, and keeps its files."
    out = copy_run(reference, tmp_path/'run')
    if change == 'scores':
        save_scores(NeuronScores({s: torch.rand(4, 128, generator=torch.Generator().manual_seed(1)) for s in ('encoder', 'decoder')}), tmp_path/'other.safetensors')
        change = dict(score_file=str(tmp_path/'other.safetensors'))
    before = snapshot(out)
    with pytest.raises(ValueError) as e: resume(out, **change)
    msg = str(e.value)   # refused as another run's checkpoint, or (finished in this run's schedule) as another finished run
    refused = (f"checkpoint {out/'checkpoints'/STEP(6)} was written by a run with other settings or inputs" in msg
               or f"run folder {out} holds a finished run with other settings" in msg)
    assert refused and what in msg.split('differ')[0], msg
    assert 'use a new out_dir' in msg
    assert_kept(before, snapshot(out))


@pytest.mark.parametrize('change', [dict(stage_steps=[2, 1, 1, 2]), dict(score_file='nan'), dict(train_limit=2)],
                         ids=['other_schedule', 'bad_score_file', 'too_little_data'])
def test_refused_run_keeps_config_json(change, reference, tmp_path):
    "Bad input is refused before anything is written over: the finished run's config.json still describes it."
    out = copy_run(reference, tmp_path/'run')
    if change.get('score_file') == 'nan':
        save_scores(NeuronScores({'encoder': torch.full((4, 128), float('nan')), 'decoder': torch.rand(4, 128)}), tmp_path/'nan.safetensors')
        change = dict(score_file=str(tmp_path/'nan.safetensors'))
    before = snapshot(out)
    with pytest.raises(ValueError): resume(out, **change)
    assert_kept(before, snapshot(out))


# ---------------------------------------------------------------------------------------------------------------
# 6. Score files

def _scores(shape_enc=(4, 128), shape_dec=(4, 128), fill=None) -> NeuronScores:
    g = torch.Generator().manual_seed(0)
    t = {s: torch.rand(*shape, generator=g) for s, shape in (('encoder', shape_enc), ('decoder', shape_dec)) if shape}
    if fill is not None: t['decoder'][2, 5] = fill
    return NeuronScores(t)

def _scores_of_model(name, **config) -> NeuronScores:
    "Real activation scores of another model, as its own run would have saved them."
    m, tok = load_t5(name, **config)
    items = encode('toy', tok, load_examples('toy', 'train', limit=8))
    return activation_scores(PromptT5(m, prompt_length=4), batches(items, 8, shuffle=False), progress=False)['abs_mean']

SHAPE = 'the model has 4 {} layers of 128 FFN neurons'
BAD_SCORES = [  # id -> (how to write the file at path p, what the error must say)
    ('narrow', lambda p: save_scores(_scores((4, 64)), p), ['encoder scores have shape (4, 64)', SHAPE.format('encoder')]),
    ('too_many_layers', lambda p: save_scores(_scores_of_model('tiny', num_layers=6), p), ['encoder scores have shape (6, 128)', SHAPE.format('encoder')]),
    ('encoder_only', lambda p: save_scores(_scores(shape_dec=None), p), ['decoder scores have shape None', SHAPE.format('decoder')]),
    ('nan', lambda p: save_scores(_scores(fill=float('nan')), p), ['contain NaN or infinite values in the decoder scores']),
    ('inf', lambda p: save_scores(_scores(fill=float('inf')), p), ['contain NaN or infinite values in the decoder scores']),
    ('a_prompt_file', lambda p: ckpt.save_prompt(torch.zeros(4, 64), p), ['encoder scores have shape None', SHAPE.format('encoder')]),
    ('truncated', lambda p: p.write_bytes(save_scores(_scores(), p).read_bytes()[:600]), ['is not a safetensors file of scores']),
    ('csv_rows', lambda p: p.with_suffix('.csv').write_text('\n'.join([','.join(['0.5'] * 128)] * 7)),
     ['has 7 rows of [128] values; the model needs 4 encoder + 4 decoder rows of 128']),
    ('csv_text', lambda p: p.with_suffix('.csv').write_text('0.5,abc\n'), ['is not a CSV of numbers']),
    ('missing', lambda p: None, ['does not exist']),
]

@pytest.mark.parametrize('write,says', [pytest.param(w, s, id=i) for i, w, s in BAD_SCORES])
def test_bad_score_file_is_refused(write, says, tmp_path):
    "A score file of the wrong shape, with NaNs, from another model or not scores at all: load_scores and run_experiment name the file and the problem, before any training."
    p = tmp_path/'scores.safetensors'
    write(p)
    if p.with_suffix('.csv').exists(): p = p.with_suffix('.csv')
    model, _ = load_t5('tiny')
    for refuse in (lambda: load_scores(p, model), lambda: run_experiment(out_dir=str(tmp_path/'run'), score_file=str(p), **RUN)):
        with pytest.raises((ValueError, FileNotFoundError)) as e: refuse()
        assert f'score file {p}' in str(e.value) and all(s in str(e.value) for s in says), str(e.value)
    assert not (tmp_path/'run'/'checkpoints').exists() and not (tmp_path/'run'/'scores.safetensors').exists()


def test_score_file_of_another_model_with_the_same_shapes_is_refused(tmp_path):
    "Scores computed on 'tiny-relu' (same 4 x 128 shape, other activations) are refused for 'tiny', naming the file and the model."
    p = save_scores(_scores_of_model('tiny-relu'), tmp_path/'relu.safetensors')
    model, _ = load_t5('tiny')
    with pytest.raises(ValueError, match=f'score file {re.escape(str(p))}.*model'): load_scores(p, model)
    with pytest.raises(ValueError, match='model'): run_experiment(out_dir=str(tmp_path/'run'), score_file=str(p), **RUN)


def test_score_file_of_the_same_architecture_with_other_weights_is_refused(tmp_path):
    """signature_without_embedding: scores of a 'tiny' built with another seed (same class, FFN form and widths, other
    weights) are refused for 'tiny': the model signature holds an embedding checksum, not only the shapes."""
    model, _ = load_t5('tiny')
    load_scores(save_scores(_scores_of_model('tiny'), tmp_path/'own.safetensors'), model)   # its own scores fit
    p = save_scores(_scores_of_model('tiny', seed=1), tmp_path/'seed1.safetensors')
    with pytest.raises(ValueError, match=f'score file {re.escape(str(p))} come from another model: its embedding differ'):
        load_scores(p, model)


# ---------------------------------------------------------------------------------------------------------------
# 7. Bad data files

MNLI_ROW = dict(premise='A man is playing a guitar.', hypothesis='A man plays music.', label=0, idx=0)
def rows(n=16, **change) -> list[str]: return [json.dumps({**MNLI_ROW, 'label': i % 3, 'idx': i, **change}) for i in range(n)]
def lines(*ls) -> str: return '\n'.join(ls) + '\n'
TRAIN, VALID = 'mnli/train.jsonl', 'mnli/validation_matched.jsonl'

BAD_DATA = [  # id -> (files under the data dir, task, run_experiment arguments, what the error must say ({d}: the data dir), xfail reason)
    ('corrupt_json', {TRAIN: lines(*rows()[:2], '{"premise": "x", "hypothesis"', *rows()[3:])}, 'mnli', {},
     ['{d}/mnli/train.jsonl: line 3 is not valid JSON', 'expected one JSON object per line'], None),
    ('not_an_object', {TRAIN: lines(rows()[0], '[1, 2]', *rows()[2:])}, 'mnli', {}, ['{d}/mnli/train.jsonl: line 2 holds a list'], None),
    # json_error_skips_first (the twelfth audit): the bad line is the first
    ('corrupt_first_line', {TRAIN: lines('{"premise": ', *rows()[1:])}, 'mnli', {}, ['{d}/mnli/train.jsonl: line 1 is not valid JSON'], None),
    ('corrupt_validation', {VALID: lines(*rows()[:4], '{"premise": ')}, 'mnli', {}, ['{d}/mnli/validation_matched.jsonl: line 5 is not valid JSON'], None),
    ('missing_field', {TRAIN: lines(*rows()[:3], json.dumps({k: v for k, v in MNLI_ROW.items() if k != 'hypothesis'}), *rows()[4:])}, 'mnli', {},
     ["{d}/mnli/train.jsonl line 4: missing field 'hypothesis': a mnli row needs ['premise', 'hypothesis', 'label']"], None),
    ('null_field', {TRAIN: lines(*rows()[:3], json.dumps({**MNLI_ROW, 'premise': None}), *rows()[4:])}, 'mnli', {},
     ["{d}/mnli/train.jsonl line 4: missing field 'premise'"], None),
    ('field_in_no_row', {TRAIN: lines(*[json.dumps(dict(text='x', label=0))] * 8)}, 'mnli', {},
     ["{d}/mnli/train.jsonl: no row has field 'premise'"], None),
    ('unknown_label', {TRAIN: lines(*rows()[:4], json.dumps({**MNLI_ROW, 'label': 7}), *rows()[5:])}, 'mnli', {},
     ['{d}/mnli/train.jsonl line 5: unknown label 7: expected one of 0 entailment, 1 neutral, 2 contradiction'], None),
    ('unlabelled_row', {VALID: lines(rows()[0], json.dumps({**MNLI_ROW, 'label': -1}), *rows()[2:])}, 'mnli', {},
     ['{d}/mnli/validation_matched.jsonl line 2: unknown label -1: expected one of 0 entailment'], None),
    ('label_as_word', {TRAIN: lines(*rows(), json.dumps({**MNLI_ROW, 'label': 'neutral'}))}, 'mnli', {},
     ["{d}/mnli/train.jsonl line 17: unknown label 'neutral'"], None),
    ('fractional_label', {TRAIN: lines(*rows(), json.dumps({**MNLI_ROW, 'label': 1.5}))}, 'mnli', {},
     ['{d}/mnli/train.jsonl line 17: unknown label 1.5'], None),
    ('empty_file', {TRAIN: ''}, 'mnli', {}, ['{d}/mnli/train.jsonl is empty: expected one JSON object per line'], None),
    ('blank_lines_only', {TRAIN: '\n  \n\n'}, 'mnli', {}, ['{d}/mnli/train.jsonl is empty'], None),
    ('no_split_file', {TRAIN: None}, 'mnli', {},
     ["no file for split 'train' of task 'mnli': expected {d}/mnli/train.jsonl or .jsonl.gz (found ['validation_matched.jsonl'])"], None),
    ('no_task_folder', {TRAIN: None, VALID: None}, 'mnli', {}, ['found no folder {d}/mnli'], None),
    ('truncated_gzip', {TRAIN: None, TRAIN + '.gz': gzip.compress(lines(*rows(64)).encode())[:200]}, 'mnli', {},
     ['{d}/mnli/train.jsonl.gz'], None),
    ('not_utf8', {TRAIN: lines(*rows()).encode() + b'{"premise": "\xff\xfe", "hypothesis": "h", "label": 0, "idx": 99}\n'}, 'mnli', {},
     ['{d}/mnli/train.jsonl', 'line 17'], None),
    ('all_rows_skipped', {'xsum/validation.jsonl': lines(*[json.dumps(dict(document=' ', summary='s', id=str(i))) for i in range(8)]),
                          'xsum/test.jsonl': lines(*[json.dumps(dict(document='d', summary='s', id=str(i))) for i in range(8)])}, 'xsum', {},
     ['{d}/xsum/validation.jsonl'], None),
    # xsum_fields_dropped (the fourteenth audit): XSum's fields were not listed, so a file of documents without summaries
    # failed at the first formatted row with KeyError: 'summary'
    ('xsum_no_summary', {'xsum/validation.jsonl': lines(*[json.dumps(dict(document='d', id=str(i))) for i in range(8)]),
                         'xsum/test.jsonl': lines(*[json.dumps(dict(document='d', summary='s', id=str(i))) for i in range(8)])}, 'xsum', {},
     ["{d}/xsum/validation.jsonl: no row has field 'summary': a xsum row needs ['document', 'summary']"], None),
    ('train_limit_zero', {}, 'mnli', dict(train_limit=0), ['train_limit must be a whole number of at least 1', 'got 0'], None),
    ('eval_limit_zero', {}, 'mnli', dict(eval_limit=0), ['eval_limit must be a whole number of at least 1', 'got 0'], None),
    ('fewer_rows_than_a_batch', {TRAIN: lines(*rows(2))}, 'mnli', {}, ['2 training examples are fewer than one micro-batch of 4'], None),
]

@pytest.mark.filterwarnings('ignore::fpt_nb.tasks.SkippedRows')
@pytest.mark.parametrize('files,task,kw,says', [pytest.param(f, t, k, s, id=i, marks=[pytest.mark.xfail(strict=True, reason=x)] if x else [])
                                                for i, f, t, k, s, x in BAD_DATA])
def test_bad_data_is_refused(files, task, kw, says, tmp_path):
    "Corrupt JSONL, missing fields, unknown labels, empty datasets: a ValueError or FileNotFoundError naming the file, the line and what was expected, before training."
    d = tmp_path/'data'; d.mkdir()
    for name, text in {TRAIN: lines(*rows()), VALID: lines(*rows()), **files}.items():
        if text is None: continue
        (d/name).parent.mkdir(parents=True, exist_ok=True)
        (d/name).write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path/'run'
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        run_experiment(out_dir=str(out), data_dir=str(d), **{**RUN, 'task': task, 'method': 'pt', **kw})
    for s in says: assert s.format(d=d) in str(e.value), str(e.value)
    assert not (out/'checkpoints').exists() and not (out/'log.jsonl').exists()


# ---------------------------------------------------------------------------------------------------------------
# 8. Bad schedules

def _trainer(phases, out:Path) -> Trainer:
    model, tok = load_t5('tiny')
    items = encode('toy', tok, load_examples('toy', 'train', limit=8))
    return Trainer(PromptT5(model, prompt_length=4), phases, items, TrainConfig(batch_size=4, prompt_length=4), out, progress=False)

SEQ = lambda **k: Stage(ffn_selection='sequence', **k)
BAD_SCHEDULES = [  # id -> (Trainer phases, or run_experiment arguments; what the error must say)
    ('shrinking_layers', [Phase(layer_dropping(3), 2), Phase(layer_dropping(2), 2), Phase(FULL, 2)],
     'stage 2 keeps 2 encoder layers but stage 1 kept 3: stages must grow'),
    ('shrinking_ffn', [Phase(SEQ(encoder_ffn=64), 2), Phase(SEQ(encoder_ffn=32), 2)],
     'stage 2 keeps 32 encoder FFN neurons but stage 1 kept 64: stages must grow'),
    ('full_then_partial', [Phase(FULL, 2), Phase(layer_dropping(2), 2)], 'stage 2 keeps 2 encoder layers but stage 1 kept 4'),
    ('more_layers_than_the_model', [Phase(layer_dropping(5), 2), Phase(FULL, 2)], 'stage 1 (enc 5L): the stage keeps 5 encoder layers, but the model has 4'),
    ('wider_ffn_than_the_model', [Phase(SEQ(encoder_ffn=256), 2)], "the stage keeps 256 encoder FFN neurons, but the model's layers have 128"),
    ('decoder_layers_past_the_end', [Phase(Stage(decoder_layers=(0, 4)), 2)], 'decoder layer indices [0, 4] must be increasing, without repeats, within 0..3'),
    ('zero_step_stage_trainer', [Phase(layer_dropping(2), 0), Phase(FULL, 2)], 'stage 1 (enc 2L) has 0 steps: every stage needs at least 1'),
    ('empty_schedule', [], 'the schedule is empty: give at least one phase'),
    ('zero_step_stage', dict(stage_steps=[2, 0, 2, 2]), 'stage 2 (enc 2L, enc ffn 64) has 0 steps: every stage needs at least 1'),
    ('negative_steps', dict(stage_steps=[-1, 3, 2, 2]), 'stage 1 (enc 1L, enc ffn 32) has -1 steps'),
    ('too_few_steps_for_four_stages', dict(steps=3), "steps=3 is too few for method 'fpt_cr': its 4 stages in the paper's proportions would get [1, 1, 1, 0] steps; give steps >= 4"),
    ('stage_steps_miscounted', dict(stage_steps=[3, 3]), "method 'fpt_cr' has 4 stages but 2 stage_steps were given"),
    ('stage_steps_do_not_add_up', dict(stage_steps=[1, 1, 1, 1]), 'stage_steps [1, 1, 1, 1] add up to 4, not steps=6'),
    ('level_out_of_range', dict(method='ld', level=4), "method 'ld' trains one partial stage: level must be 1, 2 or 3"),
    ('zero_steps', dict(steps=0), 'steps must be a whole number of at least 1, got 0'),
]

@pytest.mark.parametrize('schedule,says', [pytest.param(p, s, id=i) for i, p, s in BAD_SCHEDULES])
def test_bad_schedule_is_refused(schedule, says, tmp_path):
    "A schedule that shrinks, exceeds the model or has stages without steps is refused before the first step, naming the stage."
    out = tmp_path/'run'
    with pytest.raises(ValueError, match=re.escape(says)):
        _trainer(schedule, out) if isinstance(schedule, list) else run_experiment(out_dir=str(out), **{**RUN, **schedule})
    assert not (out/'checkpoints').exists() and not (out/'log.jsonl').exists()


# ---------------------------------------------------------------------------------------------------------------
# 9. NaN and infinite loss

@pytest.mark.parametrize('bad', ['nan', 'inf'])
def test_nonfinite_loss_stops_at_its_step_and_keeps_last_good_state(bad, reference, tmp_path, monkeypatch):
    "The loss of step 5 turns NaN/inf: NonFiniteLoss names step 5 and the step-3 checkpoint, which is intact; no final prompt or summary is written; a resume finishes exactly."
    real, calls = PromptT5.forward, [0]
    def forward(self, *a, **k):
        out = real(self, *a, **k)
        if torch.is_grad_enabled() and out.loss is not None:   # training forwards only (scoring and generation run without grad)
            calls[0] += 1
            if calls[0] == 5: out.loss = out.loss * float(bad)
        return out
    monkeypatch.setattr(PromptT5, 'forward', forward)
    out = tmp_path/'run'
    with pytest.raises(NonFiniteLoss) as e: resume(out)
    monkeypatch.undo()
    assert f"the loss became {bad} at step 5 (stage 4, full)" in str(e.value)
    assert f"the last good checkpoint is {out/'checkpoints'/STEP(3)}" in str(e.value)
    assert_loadable(out, 3)
    assert (out/'checkpoints'/STEP(3)/'prompt.safetensors').read_bytes() == (reference/'checkpoints'/STEP(3)/'prompt.safetensors').read_bytes()
    assert not (out/'prompt.safetensors').exists() and not (out/'summary.json').exists() and not (out/'run.lock').exists()
    last = json.loads((out/'log.jsonl').read_text().splitlines()[-1])
    assert (last['kind'], last['step'], last['loss']) == ('error', 5, bad)
    # what `fpt tables` and `fpt evaluate` say of it (nonfinite_said_as_stopped: "stopped; run its command again to finish it")
    assert ckpt.stopped_before_summary(out) == (f"run {out} has no summary: it failed at step 5 (the loss became {bad}; its last "
        f"checkpoint is {STEP(3)}); its command run again goes on from that checkpoint and, on the same settings, fails the same way: "
        f"change them (e.g. a lower --lr) in a new out_dir")
    resume(out)
    assert_same_result(out, reference)


def test_nonfinite_update_stops_at_its_step(tmp_path, monkeypatch):
    "Step 3's gradient is infinite though its loss is finite: training stops at step 3, and every prompt on disk stays finite."
    clip, calls = torch.nn.utils.clip_grad_norm_, [0]
    def inf_grad_at_3(params, *a, **k):
        params = list(params); calls[0] += 1
        if calls[0] == 3:
            for p in params: p.grad.fill_(float('inf'))
        return clip(params, *a, **k)
    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', inf_grad_at_3)
    out = tmp_path/'run'
    with pytest.raises(RuntimeError) as e: resume(out)
    monkeypatch.undo()
    assert re.search(r'\bstep 3\b', str(e.value)) and STEP(2) in str(e.value), str(e.value)
    assert_loadable(out, 2)
    for c in (out/'checkpoints').glob('step-*'): assert torch.isfinite(load_checkpoint(c)[0]).all(), c.name
    assert torch.isfinite(load_prompt(out/'best_prompt.safetensors')).all()   # the paper's rule kept one at the stage-1 evaluation
    assert not (out/'best_last_prompt.safetensors').exists()   # stopped in stage 3: nothing evaluated in the last stage yet


# ---------------------------------------------------------------------------------------------------------------
# 10. A pickle offered as a prompt, checkpoint or score file

class Payload:
    "Unpickling this runs code: it writes `marker`."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))

def write_pickle(path:Path, marker:Path, fmt:str):
    if fmt == 'pickle': path.write_bytes(pickle.dumps(Payload(marker)))
    else: torch.save(Payload(marker), path)   # torch's zip format: a pickle inside

def unpickle(path:Path, fmt:str):
    if fmt == 'pickle': pickle.loads(path.read_bytes())
    else: torch.load(path, weights_only=False)

PICKLE_TARGETS = {  # id -> (file to replace, relative to a finished run's folder, or None for a file of its own; how it is offered)
    'prompt_file': (None, lambda run, p: load_prompt(p)),
    'best_prompt_of_a_run': ('best_prompt.safetensors', lambda run, p: evaluate_run(run, split='validation', limit=8, device='cpu')),
    'checkpoint_prompt': (f'checkpoints/{STEP(6)}/prompt.safetensors', lambda run, p: resume(run)),
    'checkpoint_state': (f'checkpoints/{STEP(6)}/state.safetensors', lambda run, p: resume(run)),
    'score_file': (None, lambda run, p: resume(run, score_file=str(p))),
    'run_scores': ('scores.safetensors', lambda run, p: resume(run)),
}

@pytest.mark.parametrize('fmt', ['pickle', 'torch_save'])
@pytest.mark.parametrize('target', list(PICKLE_TARGETS))
def test_pickle_is_never_unpickled(target, fmt, reference, tmp_path):
    "A pickle whose loading would run code is refused as 'not a safetensors file', naming it, and its code never runs."
    control = tmp_path/'control'   # the payload is live: unpickling it does write its marker
    write_pickle(tmp_path/'control.pkl', control, fmt); unpickle(tmp_path/'control.pkl', fmt)
    assert control.read_text() == 'unpickled'
    marker, (inside, offer) = tmp_path/'UNPICKLED', PICKLE_TARGETS[target]
    run = copy_run(reference, tmp_path/'run')
    if inside and inside.startswith('checkpoints'): (run/'summary.json').unlink()   # unfinished: resuming reads the checkpoint
    p = run/inside if inside else tmp_path/'evil.safetensors'
    write_pickle(p, marker, fmt)
    before = snapshot(run)
    with pytest.raises(ValueError) as e: offer(run, p)
    assert str(p) in str(e.value) and 'not a safetensors file' in str(e.value), str(e.value)
    assert not marker.exists()
    assert_kept(before, snapshot(run))


# ---------------------------------------------------------------------------------------------------------------
# Best prompts written after the last checkpoint, whose own checkpoint is pruned (found by an adversarial review)

# 60 steps, evaluated and checkpointed every 3 (two checkpoints kept): its best prompt is step 24's, beaten first at step 57
LONG = "dict(task='toy', model='tiny', method='fpt_cr', steps=60, eval_every=3, eval_limit=None, progress=False, out_dir=sys.argv[1])"

# what the child process changes in fpt_nb.train (imported as T) before it runs LONG: where it dies, or is stopped
KILL_BEFORE_BEST_JSON_57 = """
orig = T.write_json
def wj(path, obj):   # dies right after best_prompt.safetensors of step 57 is written, before its best.json
    if str(path).endswith('best.json') and obj.get('step') == 57: os._exit(137)
    return orig(path, obj)
T.write_json = wj"""
KILL_BEFORE_CHECKPOINT_57 = """
orig = T.save_checkpoint
def sc(ckpt_dir, step, *a, **k):   # dies after step 57's best files, before its checkpoint
    if step == 57: os._exit(137)
    return orig(ckpt_dir, step, *a, **k)
T.save_checkpoint = sc"""
SIGTERM_AFTER_55 = """
oc = T.Trainer._count
def cnt(self, *a):   # SIGTERM after step 55, as a scheduler stops a run
    oc(self, *a)
    if self.state['step'] == 55: os.kill(os.getpid(), signal.SIGTERM)
T.Trainer._count = cnt"""

def _long_run(run_dir:Path, patch:str) -> int:
    "Run LONG into `run_dir` in a child process, `patch` applied first; its exit code."
    code = ("import os, sys, signal, torch; torch.set_num_threads(1)\nimport fpt_nb.train as T\nfrom fpt_nb.run import run_experiment\n"
            + patch + f"\nrun_experiment(**{LONG})")
    return subprocess.run([sys.executable, '-c', code, str(run_dir)], env=dict(os.environ, OMP_NUM_THREADS='1')).returncode

def test_best_prompt_of_a_step_never_reached_is_not_named_the_runs(tmp_path):
    """best_files_not_put_back_from_the_checkpoint: a kill between step 57's best_prompt.safetensors and its best.json, then
    the command again, stopped by SIGTERM at step 55: the summary named step 24's best prompt while the file held step 57's
    (step 24's checkpoint was pruned, so nothing put it back), and `fpt evaluate` scored it as step 24's. Each checkpoint now
    holds the run's best prompts, and a resume puts their files back from it."""
    d = tmp_path/'run'
    rc = _long_run(d, KILL_BEFORE_BEST_JSON_57)
    assert rc == 137
    rc = _long_run(d, SIGTERM_AFTER_55)
    s = read_json(d/'summary.json')
    assert s['steps'] == 55 and s['stopped'].startswith('signal')
    # the summary names the best prompt of step s['best']['step']; the file must hold that step's prompt, not one of a
    # step (57) this run never reached
    assert prompt_step(d/'best_prompt.safetensors') == s['best']['step'], \
        f"best_prompt.safetensors holds step {prompt_step(d/'best_prompt.safetensors')}'s prompt; summary names step {s['best']['step']}"

def test_stopped_resume_after_kill_between_best_files_and_checkpoint_is_summarized(tmp_path):
    """best_files_not_put_back_from_the_checkpoint: a kill after step 57's best files are written, before its checkpoint (the best step's own checkpoint, 24, pruned
    long ago); the command run again and stopped by SIGTERM at step 55 must summarize its stop (as any SIGTERM stop does),
    not fail with "restore the file" (there is no file to restore), leaving best.json of step 57 beside a log that ends at 55."""
    d = tmp_path/'run'
    rc = _long_run(d, KILL_BEFORE_CHECKPOINT_57)
    assert rc == 137 and read_json(d/'best.json')['step'] == 57
    rc = _long_run(d, SIGTERM_AFTER_55)
    assert (d/'summary.json').is_file(), "the SIGTERM stop at step 55 wrote no summary"
    s = read_json(d/'summary.json')
    assert read_json(d/'best.json')['step'] == s['best']['step'] == prompt_step(d/'best_prompt.safetensors')


def test_a_checkpoint_of_an_earlier_version_without_best_prompts_refuses_rather_than_misnames(tmp_path):
    """summary_best_prompt_step_unchecked: the same kill between step 57's best files, resumed from a checkpoint written by an
    earlier version (it holds no best prompts, and step 24's checkpoint is pruned): nothing can put step 24's prompt back, so
    the stopped resume must refuse to write a summary naming step 24 beside step 57's prompt, rather than write it."""
    from safetensors.torch import load_file, save_file
    d = tmp_path/'run'
    rc = _long_run(d, KILL_BEFORE_BEST_JSON_57)
    assert rc == 137 and prompt_step(d/'best_prompt.safetensors') == 57
    for c in (d/'checkpoints').glob('step-*'):   # as an earlier version wrote them
        t = load_file(c/'state.safetensors')
        assert {k for k in t if k.startswith('kept_prompt.')}
        save_file({k: v for k, v in t.items() if not k.startswith('kept_prompt.')}, c/'state.safetensors')
    rc = _long_run(d, SIGTERM_AFTER_55)
    assert rc != 0 and not (d/'summary.json').exists() and prompt_step(d/'best_prompt.safetensors') == 57
