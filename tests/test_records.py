"""Records that cannot lie (issue 13): what went into a prompt is fixed in its run folder, and every bad input gets one line.

Each case failed on the code before the fix: a resumed run silently trained on other data, a finished run rewrote its
summary, the tables pooled runs of different settings, `export-peft` overwrote an adapter, papermill took `steps=4.5`,
and a dozen bad inputs ended in a traceback or a misleading message. Runs use the tiny T5 and the built-in toy task
(or real MNLI rows from the data directory), a few steps each.
"""
import hashlib, json, math, os, re, shutil, time
from pathlib import Path
import pytest, torch
from fpt_nb.checkpoint import read_json, write_json, latest_checkpoint, load_prompt
from fpt_nb.cli import main
from fpt_nb.prompt import load_t5
from fpt_nb.run import run_experiment, evaluate_run
from fpt_nb.tables import collect_runs, table2

RUN = dict(task='toy', model='tiny', method='fpt_cr', steps=6, batch_size=4, prompt_length=4, train_limit=32, eval_limit=8,
           score_examples=16, device='cpu', progress=False)
STEP = lambda n: f'step-{n:07d}'

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

TOOK = {}   # seconds the module's runs took, as the test measured them

@pytest.fixture(scope='module')
def finished(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp('finished')/'run'
    t0 = time.perf_counter(); run_experiment(out_dir=str(d), **RUN); TOOK['finished'] = time.perf_counter() - t0
    return d

def test_a_summarys_seconds_are_the_seconds_the_run_took(finished):
    """summary_wall_clock_added: the summary's `wall_seconds` was the clock plus the run's start instead of minus; the run's
    training seconds are part of its wall clock, which is no more than the call took."""
    s = read_json(finished/'summary.json')
    assert 0 < s['train_seconds'] <= s['wall_seconds'] <= TOOK['finished'], (s['train_seconds'], s['wall_seconds'], TOOK)

def snapshot(d:Path) -> dict:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob('*')) if p.is_file() and 'tb' not in p.relative_to(d).parts}

def copy(src:Path, dst:Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('tb'))
    return dst

def unfinished(src:Path, dst:Path) -> Path:
    "A copy of a finished run as it was when killed after its step-3 checkpoint: no summary, step 3 the latest."
    d = copy(src, dst)
    shutil.rmtree(d/'checkpoints'/STEP(6)); (d/'summary.json').unlink()
    (d/'checkpoints'/'latest').write_text(STEP(3))
    return d

def fpt(*args, capsys) -> tuple[int, str, str]:
    try: code = main(list(map(str, args)))
    except SystemExit as e: code = e.code
    torch.set_num_threads(1)
    out = capsys.readouterr()
    return code, out.out, out.err

def one_line(code, err, says):
    "Exit code 2 and one line from fpt saying `says` (other lines are progress bars of the test's own set-up)."
    assert code == 2, err
    ours = [l for l in err.replace('\r', '\n').splitlines() if l.startswith('fpt ')]
    assert len(ours) == 1 and says in ours[0] and 'Traceback' not in err, err


# ---------------------------------------------------------------------------------------------------------------
# 1. The fingerprint covers the data, the limits, the lengths, the padding and the tokenizer

@pytest.mark.parametrize('change,says', [
    (dict(train_limit=16), "train_data.limit (32 there, 16 now), train_data.rows (32 there, 16 now)"),
    (dict(train_limit=64), "train_data.limit (32 there, 64 now)"),
    (dict(eval_limit=4), "evaluation.data.limit (8 there, 4 now)"),
    (dict(max_input_length=100), "max_input_length (492 there, 100 now)"),
    (dict(padding='max'), "padding ('dynamic' there, 'max' now)"),
    (dict(max_target_length=6), "max_target_length (8 there, 6 now)"),
    (dict(eval_every=2), "evaluation.every (0 there, 2 now)"),
    (dict(bf16=True), "precision ('fp32' there, 'bf16' now)"),
    (dict(method='fpt_ld'), "method ('fpt_cr' there, 'fpt_ld' now)"),
    (dict(steps=8), "steps (6 there, 8 now)"),
    (dict(early_stop=2), "early_stop (0 there, 2 now)"),
    (dict(fast=True), "fast (False there, True now)"),
    (dict(score_examples=8, score_sampling='first'), "score_settings.examples (16 there, 8 now), score_settings.sampling ('random' there, 'first' now)"),
    # score_settings_aggregation_dropped (the fourteenth audit): the scores' averaging is a setting too
    (dict(score_aggregation='token'), "score_settings.aggregation ('example' there, 'token' now)"),
    (dict(micro_batch_size=2), "micro_batch_size (4 there, 2 now)"),   # the loss is a token mean per micro-batch: it changes
    # another backbone of the same shapes and tokenizer (the fourteenth audit): refused, naming the model and its scores
    (dict(model='tiny-relu'), "its model differs from this one's (score file "),
], ids=['smaller_train_limit', 'larger_train_limit', 'other_eval_limit', 'other_input_length', 'other_padding', 'other_target_length',
        'other_eval_cadence', 'other_precision', 'other_method', 'other_steps', 'other_early_stop', 'fast_step', 'other_score_settings',
        'other_score_aggregation', 'other_micro_batch', 'other_model'])
def test_resume_with_other_data_or_settings_is_refused(change, says, finished, tmp_path):
    "A killed run resumed with another limit, length, padding or cadence is refused, naming what differs, and nothing changes."
    d = unfinished(finished, tmp_path/'run')
    before = snapshot(d)
    with pytest.raises(ValueError) as e: run_experiment(out_dir=str(d), **{**RUN, **change})
    assert f"checkpoint {d/'checkpoints'/STEP(3)} was written by a run with other settings or inputs" in str(e.value) and says in str(e.value), str(e.value)
    assert snapshot(d) == before

def test_a_checkpoint_written_before_the_later_entries_still_resumes(finished, tmp_path):
    """A checkpoint whose fingerprint lacks the entries added later (precision, fast, early stop, score settings) is compared
    without them; one without its prompt's digest or the best prompts (added in session 21) resumes as before them."""
    from safetensors.torch import load_file, save_file
    from fpt_nb.train import LATER_ENTRIES
    d = unfinished(finished, tmp_path/'run')
    state = read_json(d/'checkpoints'/STEP(3)/'state.json')
    state['fingerprint'] = {k: v for k, v in state['fingerprint'].items() if k not in LATER_ENTRIES}
    write_json(d/'checkpoints'/STEP(3)/'state.json', {k: v for k, v in state.items() if k != 'prompt_digest'})
    t = load_file(d/'checkpoints'/STEP(3)/'state.safetensors')
    save_file({k: v for k, v in t.items() if not k.startswith('kept_prompt.')}, d/'checkpoints'/STEP(3)/'state.safetensors')
    s = run_experiment(out_dir=str(d), **RUN)
    assert s['steps'] == 6 and s['best'] == read_json(finished/'summary.json')['best']
    # the best prompts are held by the checkpoints written after the resume, as by any run's (the case where only the resume put
    # them there: test_an_earlier_versions_checkpoint_puts_back_its_best_and_later_checkpoints_hold_it)
    kept = load_file(d/'checkpoints'/STEP(6)/'state.safetensors')
    for k in ('best', 'best_last'):
        assert torch.equal(load_prompt(d/f'{k}_prompt.safetensors'), load_prompt(finished/f'{k}_prompt.safetensors'))
        assert torch.equal(kept[f'kept_prompt.{k}'], load_prompt(finished/f'{k}_prompt.safetensors')), k

@pytest.mark.parametrize('damage', ['missing', 'cut'])
def test_resume_with_its_log_gone_or_cut_is_refused(damage, finished, tmp_path):
    "Before: the run resumed and its log, plot and Improve started at the checkpoint, the steps before it silently gone."
    d = unfinished(finished, tmp_path/'run')
    if damage == 'missing': (d/'log.jsonl').unlink()
    else: (d/'log.jsonl').write_text(''.join(l + '\n' for l in (d/'log.jsonl').read_text().splitlines() if json.loads(l)['step'] < 2))
    before = snapshot(d)
    says = 'is missing, and its checkpoint is at step 3' if damage == 'missing' else 'ends before step 3, where its checkpoint is'
    with pytest.raises(ValueError, match=f'its log.jsonl {says}: the log of the steps before it is lost'): run_experiment(out_dir=str(d), **RUN)
    assert snapshot(d) == before

@pytest.mark.parametrize('damage', ['gap', 'repeat', 'other run', 'best evaluation'])
def test_resume_with_its_log_edited_is_refused(damage, finished, tmp_path):
    """Before: a log with a step deleted in the middle, a line repeated, another run's steps, or the best prompt's evaluation
    deleted was taken as the run's own, and its plots, Improve and best evaluation came from it."""
    d = unfinished(finished, tmp_path/'run')
    recs = [json.loads(l) for l in (d/'log.jsonl').read_text().splitlines()]
    is_step = lambda r, n: r['kind'] == 'step' and r['step'] == n
    if damage == 'gap': recs = [r for r in recs if not is_step(r, 2)]
    if damage == 'repeat': recs.insert(1, next(r for r in recs if is_step(r, 1)))
    if damage == 'other run': recs = [dict(r, flops=r['flops'] + 1) if r['kind'] == 'step' else r for r in recs]
    if damage == 'best evaluation':
        best = read_json(d/'checkpoints'/STEP(3)/'state.json')['best_step']
        recs = [r for r in recs if not (r['kind'] == 'eval' and r['step'] == best)]
    (d/'log.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs))
    before = snapshot(d)
    says = {'gap': 'does not hold each step up to its checkpoint (step 3) once, in order: it lacks 2; it was edited',
            'repeat': 'it repeats 1; it was edited', 'other run': "FLOPs at step 3, its checkpoint",
            'best evaluation': "lacks the evaluation at step 3 that made the checkpoint's best prompt"}[damage]
    with pytest.raises(ValueError) as e: run_experiment(out_dir=str(d), **RUN)
    assert says in str(e.value) and 'nothing was changed' in str(e.value), str(e.value)
    assert snapshot(d) == before

@pytest.mark.parametrize('given', ['its own file', 'a copy'])
def test_a_run_given_back_its_own_scores_goes_on(given, finished, tmp_path, capsys):
    """Before: `--score-file` naming the scores a run computed itself was refused on resume ("score_settings differ"), and on
    the finished run too. It is the same run: it resumes (the same prompt as the uninterrupted run), or is left as it is."""
    d = unfinished(finished, tmp_path/'run')
    f = d/'scores.safetensors' if given == 'its own file' else Path(shutil.copy(d/'scores.safetensors', tmp_path/'copy.safetensors'))
    s = run_experiment(out_dir=str(d), score_file=str(f), **RUN)
    assert s['steps'] == 6 and s['best'] == read_json(finished/'summary.json')['best'] and s['scores']['file'] == 'scores.safetensors'
    assert torch.equal(load_prompt(d/'prompt.safetensors'), load_prompt(finished/'prompt.safetensors'))
    assert 'holds the neuron scores this run computed itself' in capsys.readouterr().out
    before = snapshot(d)
    run_experiment(out_dir=str(d), score_file=str(f), **RUN)   # finished: nothing to do
    assert snapshot(d) == before

def test_a_run_given_other_scores_is_still_refused(finished, tmp_path):
    "Scores that are not the run's own (here: its own, edited) make another run: refused, nothing changed."
    from fpt_nb.scores import load_scores, save_scores
    d = unfinished(finished, tmp_path/'run')
    sc = load_scores(d/'scores.safetensors')
    sc.scores = {k: v.flip(-1) for k, v in sc.scores.items()}
    save_scores(sc, tmp_path/'other.safetensors')
    before = snapshot(d)
    with pytest.raises(ValueError, match='differ'): run_experiment(out_dir=str(d), score_file=str(tmp_path/'other.safetensors'), **RUN)
    assert snapshot(d) == before

def test_resume_on_changed_data_is_refused(data_dir, tmp_path):
    "The same file name with other rows in it is other data: refused, naming the training data's hash."
    for name in ('a', 'b'):
        (tmp_path/name/'mnli').mkdir(parents=True)
    lines = (data_dir/'mnli'/'train.jsonl').read_text().splitlines()[:16]
    val = (data_dir/'mnli'/'validation_matched.jsonl').read_text().splitlines()[:8]
    for name, rows in (('a', lines), ('b', lines[:15] + [lines[15].replace('"label": 0', '"label": 1').replace('"label": 2', '"label": 0')])):
        (tmp_path/name/'mnli'/'train.jsonl').write_text('\n'.join(rows) + '\n')
        (tmp_path/name/'mnli'/'validation_matched.jsonl').write_text('\n'.join(val) + '\n')
    kw = dict(RUN, task='mnli', method='pt', steps=2, max_target_length=4)
    d = tmp_path/'run'
    run_experiment(out_dir=str(d), data_dir=str(tmp_path/'a'), **kw)
    with pytest.raises(ValueError) as e: run_experiment(out_dir=str(d), data_dir=str(tmp_path/'b'), **kw)
    assert 'holds a finished run with other settings: its train_data.sha' in str(e.value), str(e.value)

@pytest.mark.parametrize('also_gone', [(), ('checkpoints', 'log.jsonl'), 'all but config.json'])
def test_scores_gone_and_computed_again_on_changed_data_say_so(data_dir, tmp_path, also_gone):
    """scores_gone_called_foreign: a run's scores.safetensors deleted, then the run resumed on data whose scoring rows changed:
    the scores computed again differ, and the refusal said the checkpoint "was written by another run". It says the file is
    gone and what to do; nothing is written. The same when its checkpoints and one of its records are gone too: any record
    left says a run is there to lose. With nothing but its config.json left (a kill before any record), the refusal is the one
    for a folder of another run's settings without checkpoints: its config.json records other scores."""
    from fpt_nb.run import RECORDS
    (tmp_path/'a'/'mnli').mkdir(parents=True)
    train = (data_dir/'mnli'/'train.jsonl').read_text().splitlines()[:16]
    val = (data_dir/'mnli'/'validation_matched.jsonl').read_text().splitlines()[:8]
    (tmp_path/'a'/'mnli'/'train.jsonl').write_text('\n'.join(train) + '\n')
    (tmp_path/'a'/'mnli'/'validation_matched.jsonl').write_text('\n'.join(val) + '\n')
    kw = dict(RUN, task='mnli', method='fr', steps=4, max_target_length=4, checkpoint_every=2, score_examples=4, data_dir=str(tmp_path/'a'))
    d = tmp_path/'run'
    run_experiment(out_dir=str(d), **kw)
    (d/'scores.safetensors').unlink()
    for n in (('checkpoints', *RECORDS) if also_gone == 'all but config.json' else also_gone):
        if (d/n).is_dir(): shutil.rmtree(d/n)
        elif (d/n).exists(): (d/n).unlink()
    (tmp_path/'a'/'mnli'/'validation_matched.jsonl').write_text('\n'.join(reversed(val)) + '\n')   # other rows sampled for scoring
    before = snapshot(d)
    with pytest.raises(ValueError, match=r"holds a run \(config.json\) without checkpoints, with other settings: its scores" if also_gone == 'all but config.json'
                       else r"scores.safetensors is gone, and the neuron scores computed again differ from those the run trained with"):
        run_experiment(out_dir=str(d), **kw)
    assert snapshot(d) == before

def test_task_change_is_reported_as_a_task_change(finished, tmp_path, data_dir):
    d = unfinished(finished, tmp_path/'run')
    with pytest.raises(ValueError) as e: run_experiment(out_dir=str(d), **{**RUN, 'task': 'mnli', 'data_dir': str(data_dir), 'max_target_length': 8})
    msg = str(e.value)
    assert "its task ('toy' there, 'mnli' now)" in msg and 'model' not in msg.split('differ')[0], msg


# ---------------------------------------------------------------------------------------------------------------
# 2. A finished run is not run again

def test_rerunning_a_finished_run_changes_nothing(finished, tmp_path, capsys):
    d = copy(finished, tmp_path/'run')
    before = snapshot(d)
    s = run_experiment(out_dir=str(d), **RUN)
    assert s == read_json(d/'summary.json') and snapshot(d) == before
    code, out, err = fpt('run', '--task', 'toy', '--method', 'fpt_cr', '--out-dir', d, '--steps', 6, '--batch-size', 4, '--prompt-length', 4,
                         '--train-limit', 32, '--eval-limit', 8, '--eval-every', 0, '--score-examples', 16, '--no-progress', capsys=capsys)
    assert code == 0, err
    assert 'is finished: nothing to do' in out
    assert {k: v for k, v in snapshot(d).items() if k != 'stages.png'} == before

def test_a_run_without_its_checkpoints_is_not_written_over(finished, tmp_path):
    "Before: a finished run whose checkpoints were deleted (to save space) was trained again from scratch by any command, with other settings too."
    d = copy(finished, tmp_path/'run'); shutil.rmtree(d/'checkpoints')
    before = snapshot(d)
    with pytest.raises(ValueError) as e: run_experiment(out_dir=str(d), **{**RUN, 'lr': 0.1, 'seed': 3})
    assert f"run folder {d} holds a run (log.jsonl, summary.json" in str(e.value), str(e.value)
    assert "without checkpoints, with other settings: its seed (0 there, 3 now), lr (0.3 there, 0.1 now)" in str(e.value), str(e.value)
    assert snapshot(d) == before
    s = run_experiment(out_dir=str(d), **RUN)   # the same settings: it is finished, nothing to do
    assert s == read_json(d/'summary.json') and snapshot(d) == before
    config = read_json(d/'config.json'); del config['fingerprint']; write_json(d/'config.json', config)   # as an earlier version wrote it
    with pytest.raises(ValueError, match='no record of its settings'): run_experiment(out_dir=str(d), **RUN)

def test_rerunning_a_finished_run_says_which_of_its_prompts_are_gone(finished, tmp_path, capsys):
    "best_pair_gone_unsaid: best.json deleted with its prompt went unsaid (the note read the .json to know a best was chosen)."
    d = copy(finished, tmp_path/'run'); (d/'best_prompt.safetensors').unlink()
    run_experiment(out_dir=str(d), **RUN)
    assert f"note: {d}'s best_prompt.safetensors is gone (deleted or moved)" in capsys.readouterr().out
    (d/'best.json').unlink()
    run_experiment(out_dir=str(d), **RUN)
    assert f"note: {d}'s best.json, best_prompt.safetensors are gone (deleted or moved)" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='the run chose one, but the file is gone'):   # not "it ran no evaluation"
        evaluate_run(d, limit=4, device='cpu', progress=False)

def test_a_resume_whose_best_prompt_is_gone_is_refused(finished, tmp_path):
    """resume_over_lost_best_files: best.json and best_prompt.safetensors deleted while a run was stopped: the resume went on
    and the run ended with a summary of no best prompt (the table showed '–', `fpt evaluate` said it 'ran no evaluation')."""
    d = unfinished(finished, tmp_path/'run')
    st = read_json(d/'checkpoints'/STEP(3)/'state.json')
    assert st['best'] is not None
    for f in ('best.json', 'best_prompt.safetensors'): (d/f).unlink()
    before = snapshot(d)
    with pytest.raises(ValueError, match=re.escape(f"run folder {d}: its best.json, best_prompt.safetensors are gone, and its checkpoint "
                                                   f"{STEP(3)} counts on them (best prompts of step")) as e:
        run_experiment(out_dir=str(d), **RUN)
    assert snapshot(d) == before
    # held_checkpoints_skip_first (the twelfth audit): a checkpoint that holds a best prompt's step is named, to restore it from
    steps = sorted({st[f'{k}_step'] for k in ('best', 'best_last') if st.get(k) is not None})
    held = [d/'checkpoints'/STEP(n)/'prompt.safetensors' for n in steps if (d/'checkpoints'/STEP(n)).is_dir()]
    assert held and f"({', '.join(map(str, held))} holds the prompt of that step)" in str(e.value), (steps, str(e.value))

def test_a_resume_whose_best_files_are_not_its_checkpoints_is_refused(finished, tmp_path):
    """stale_best_files_resumed: best.json and best_prompt.safetensors put back as they were before the checkpoint (an older copy
    of the folder): the resume went on, and the summary, the tables and `fpt evaluate` named that prompt the run's best, though
    its log and checkpoint had a better one. A record of a step after the checkpoint (a kill after it) is the run's own."""
    d = unfinished(finished, tmp_path/'run')
    st, rec = read_json(d/'checkpoints'/STEP(3)/'state.json'), read_json(d/'best.json')
    older = next(n for n in (1, 2, 3) if n != st['best_step'])
    for edit in (dict(step=older), {rec['metric']: st['best'] + 1, 'step': st['best_step']}):   # another step; the step, another value
        write_json(d/'best.json', dict(rec, **edit))
        before = snapshot(d)
        with pytest.raises(ValueError, match=re.escape(f"run folder {d}: its best.json is of step {edit['step']}")) as e:
            run_experiment(out_dir=str(d), **RUN)
        assert f"but its checkpoint {STEP(3)} recorded the best prompt at step {st['best_step']} ({st['best']}): best.json" in str(e.value), str(e.value)
        assert snapshot(d) == before
    write_json(d/'best.json', dict(rec, step=st['best_step']))   # as the checkpoint has it: resumed
    assert run_experiment(out_dir=str(d), **RUN)['resumed_at'] == [3]

def test_a_run_whose_checkpoint_pointer_is_gone_resumes_from_its_newest_checkpoint(finished, tmp_path):
    """checkpoints_lost_without_pointer: with checkpoints/latest gone (a kill between the first checkpoint's folder and its
    pointer, or deleted), the run started again from step 0, deleted its log and pruned its saved checkpoints, unsaid."""
    d = unfinished(finished, tmp_path/'run')
    (d/'checkpoints'/'latest').unlink()
    s = run_experiment(out_dir=str(d), **RUN)
    assert s['resumed_at'] == [3] and s['prompts'] == read_json(finished/'summary.json')['prompts']

def test_a_stopped_runs_evaluations_go_when_it_trains_on(finished, tmp_path, capsys):
    """stale_eval_file_kept: `fpt evaluate` on a run stopped by SIGTERM wrote eval-validation-N.json of its best prompt then; the
    run resumed, finished with another best prompt, and the file stayed, describing a prompt no longer in the folder."""
    d = unfinished(finished, tmp_path/'run')
    write_json(d/'eval-validation-4.json', dict(prompt='best_prompt.safetensors', prompt_step=1, n=4))
    run_experiment(out_dir=str(d), **RUN)
    assert not (d/'eval-validation-4.json').exists()
    assert f"note: {d}'s eval-validation-4.json scored the stopped run's prompts, which it trains on now: removed" in capsys.readouterr().out

def test_a_run_told_relative_folders_is_evaluated_on_them_from_anywhere(tmp_path, data_dir, monkeypatch):
    """relative_data_dir_recorded, relative_model_from_cwd: `--data-dir D1 --model tm`, relative, were recorded as typed,
    and `fpt evaluate` from another folder read the D1/ and tm/ found there: another data folder's rows scored silently,
    another model folder said 'changed'."""
    from fpt_nb.peft import source_prompt
    model, tok = load_t5('tiny')
    model.save_pretrained(tmp_path/'tm'); tok.save_pretrained(tmp_path/'tm')
    (tmp_path/'D1').symlink_to(data_dir)
    monkeypatch.chdir(tmp_path)
    run_experiment('mnli', 'tm', 'pt', 'run', data_dir='D1', steps=2, batch_size=4, prompt_length=4, train_limit=8, eval_limit=4,
                   device='cpu', progress=False)
    assert read_json(tmp_path/'run'/'config.json')['data_dir'] == str(tmp_path/'D1')
    (tmp_path/'sub'/'D1'/'mnli').mkdir(parents=True)   # folders of the same names, elsewhere: not the run's
    load_t5('tiny-relu')[0].save_pretrained(tmp_path/'sub'/'tm'); tok.save_pretrained(tmp_path/'sub'/'tm')
    monkeypatch.chdir(tmp_path/'sub')
    ev = evaluate_run('../run', limit=4, device='cpu', progress=False)
    assert ev['data_dir'] == str(tmp_path/'D1') and ev['n'] == 4
    assert ev['prompt_digest'] == read_json(tmp_path/'run'/'summary.json')['prompts']['best_prompt.safetensors']   # which prompt it scored
    assert source_prompt('../run')[1]['model'] == str((tmp_path/'tm').resolve())   # export-peft's backbone: the run's folder

def test_a_runs_files_have_the_modes_its_folder_gives(finished):
    """owner_only_records: summary, config, prompts and checkpoints were written 0600 (tempfile's and safetensors' mode), the
    log 0644 (the umask's): in a group-shared runs folder a colleague could read the log but not the summary or prompts."""
    from fpt_nb.checkpoint import umask
    m = umask()
    files = {p.relative_to(finished).as_posix(): os.stat(p).st_mode & 0o777 for p in finished.rglob('*') if 'tb' not in p.relative_to(finished).parts}
    want = {k: (0o777 if (finished/k).is_dir() else 0o666) & ~m for k in files}
    assert files == want and {'summary.json', 'best_prompt.safetensors', 'scores.safetensors', f'checkpoints/{STEP(6)}/state.safetensors'} <= set(files)

def test_a_run_that_loses_the_lock_of_a_new_folder_leaves_it_to_the_winner(tmp_path, monkeypatch):
    """lock_loser_removes_folder: two runs into the same new folder at once: the one that lost the lock removed the folder,
    the winner's run.lock with it, and the winner trained on unlocked (a third run could then train there too)."""
    from contextlib import contextmanager
    from fpt_nb import run
    d = tmp_path/'new'
    @contextmanager
    def taken(run_dir):   # the other run made the folder and holds its lock, between this run's look and its lock
        run_dir.mkdir(parents=True); (run_dir/'run.lock').write_text('4242')
        raise RuntimeError(f"run folder {run_dir} is in use by process 4242")
        yield
    monkeypatch.setattr(run, 'run_lock', taken)
    with pytest.raises(RuntimeError, match='in use by process 4242'): run_experiment(out_dir=str(d), **RUN)
    assert (d/'run.lock').read_text() == '4242'

def test_a_resume_under_other_evaluation_batches_says_so(finished, tmp_path):
    """resumed_settings_unsaid: a run resumed with another --eval-batch-size (or --checkpoint-every, device) recorded only the
    last command's value, as if every evaluation had used it; each change is now recorded with its step."""
    d = unfinished(finished, tmp_path/'run')
    s = run_experiment(out_dir=str(d), **dict(RUN, eval_batch_size=7))
    assert s['resumed_with'] == [dict(step=3, eval_batch_size=[64, 7])] == read_json(d/'config.json')['resumed_with']
    assert 'resumed_with' not in read_json(finished/'summary.json')   # (a run of one command: nothing to say)
    d = copy(finished, tmp_path/'again'); shutil.rmtree(d/'checkpoints'); (d/'summary.json').unlink()   # no checkpoint: from step 0
    s = run_experiment(out_dir=str(d), **dict(RUN, eval_batch_size=7))
    assert s['resumed_at'] == [] and 'resumed_with' not in s and 'resumed_with' not in read_json(d/'config.json')   # a new start, not a resume

def test_a_run_records_its_software_and_a_resume_under_other_versions_says_so(finished, tmp_path):
    """versions_unrecorded (an adversarial review): no run file said which fpt_nb, torch or transformers trained it, so a
    run resumed under an upgraded library (whose numbers can differ) read as one command's. Config and summary record the
    versions; a resume under others records the change with its step, as for the other settings a resume may change."""
    import platform, transformers, fpt_nb
    now = read_json(finished/'summary.json')['versions']
    assert re.fullmatch('[0-9a-f]{12}', now.pop('fpt_nb_source'))   # (a digest of the library's source)
    assert now == dict(fpt_nb=fpt_nb.__version__, torch=torch.__version__, transformers=transformers.__version__, python=platform.python_version(),
                       cpu_capability=torch.backends.cpu.get_cpu_capability())
    now = read_json(finished/'summary.json')['versions']
    assert read_json(finished/'config.json')['versions'] == now
    d = unfinished(finished, tmp_path/'run')
    cfg = read_json(d/'config.json'); write_json(d/'config.json', dict(cfg, versions=dict(now, fpt_nb='0.0.1')))   # as an older release wrote it
    s = run_experiment(out_dir=str(d), **RUN)
    assert s['resumed_with'] == [dict(step=3, versions=[dict(now, fpt_nb='0.0.1'), now])] == read_json(d/'config.json')['resumed_with']
    assert s['versions'] == now
    d = unfinished(finished, tmp_path/'kernels')   # begun on a CPU whose kernels torch picked otherwise (rounding differs)
    other = dict(now, cpu_capability='AVX2' if now['cpu_capability'] != 'AVX2' else 'AVX512')
    cfg = read_json(d/'config.json'); write_json(d/'config.json', dict(cfg, versions=other))
    assert run_experiment(out_dir=str(d), **RUN)['resumed_with'] == [dict(step=3, versions=[other, now])]
    d = unfinished(finished, tmp_path/'older')   # begun by a version that recorded none: the resume says it does not know them
    write_json(d/'config.json', {k: v for k, v in read_json(d/'config.json').items() if k != 'versions'})
    assert run_experiment(out_dir=str(d), **RUN)['resumed_with'] == [dict(step=3, versions=[None, now])]


def test_other_evaluation_of_a_finished_run_goes_to_its_own_file(finished, tmp_path):
    d = copy(finished, tmp_path/'run')
    before = snapshot(d)
    s = run_experiment(out_dir=str(d), **{**RUN, 'eval_limit': 4})
    assert s == read_json(d/'summary.json')
    ev = read_json(d/'eval-validation-4.json')
    assert ev['n'] == 4 and ev['prompt'] == 'best_prompt.safetensors'
    assert {k: v for k, v in snapshot(d).items() if k != 'eval-validation-4.json'} == before


# ---------------------------------------------------------------------------------------------------------------
# 3. Tables pool only runs that differ in the seed

def test_tables_do_not_pool_other_settings(tmp_path, capsys):
    small = dict(task='toy', model='tiny', steps=4, batch_size=4, prompt_length=4, train_limit=16, eval_limit=8, eval_every=2, progress=False)
    run_experiment(method='pt', out_dir=str(tmp_path/'pt-a'), **small)
    run_experiment(method='pt', out_dir=str(tmp_path/'pt-b'), lr=0.1, **small)
    run_experiment(method='fpt_ld', out_dir=str(tmp_path/'ld-a'), **small)
    rows = table2(collect_runs(tmp_path))
    assert [(r['method'], r['seeds'], r['setting']) for r in rows] == [('PT', 1, 'lr=0.1'), ('PT', 1, 'lr=0.3'), ('FPT_LD', 1, 'lr=0.3')]
    assert rows[2]['flops_pct'] < 100 and rows[0]['flops_pct'] == rows[1]['flops_pct'] == 100
    code, out, err = fpt('tables', tmp_path, capsys=capsys)
    assert code == 0 and '| lr=0.1 | PT | 1 |' in out and 'seeds 2' not in out, out


@pytest.fixture(scope='module')
def pt_beside(finished, tmp_path_factory) -> Path:
    "A finished PT run of the settings of `finished` (FPT_CR), beside a copy of it: what Table 2 compares."
    root = tmp_path_factory.mktemp('pt_beside')
    run_experiment(out_dir=str(root/'pt'), **dict(RUN, method='pt'))
    copy(finished, root/'fpt_cr')
    return root

@pytest.mark.parametrize('damage,says', [('gone', 'log.jsonl does not exist'), ('cut', 'is not valid JSON'),
                                         ('lines', 'its summary says PT trained: it was cut short')])
def test_tables_without_pts_curve_leave_out_only_improve(damage, says, pt_beside, tmp_path, capsys):
    """Before: PT's log.jsonl gone or damaged ended `fpt tables` in an error, no table at all, while a damaged summary is only left out;
    and one cut at a line's end was read as it was, its last value carried forward: Improve changed (-0.5 to +5.5), unsaid."""
    root = copy(pt_beside, tmp_path/'runs')
    code, out, _ = fpt('tables', root, capsys=capsys)
    # tables_wrote_skips_first (the twelfth audit): the files it wrote, every one named
    assert f"wrote {', '.join(str(root/n) for n in ('table1.md', 'table1.csv', 'table2.md', 'table2.csv'))}" in out.splitlines(), out
    good = [r for r in table2(collect_runs(root, say=lambda *a: None)) if r['method'] == 'FPT_CR'][0]
    assert code == 0 and math.isfinite(good['improve']) and good['pt_curve'] == '', out
    log = root/'pt'/'log.jsonl'
    if damage == 'gone': log.unlink()
    elif damage == 'cut': log.write_text(log.read_text()[:-40])   # a line cut short
    else:   # whole lines, its first third: read as it was, PT's curve would carry its value at that step to every budget
        lines = log.read_text().splitlines(keepends=True); log.write_text(''.join(lines[:len(lines) // 3]))
    code, out, err = fpt('tables', root, capsys=capsys)
    rows = table2(collect_runs(root, say=lambda *a: None))
    fc = [r for r in rows if r['method'] == 'FPT_CR'][0]
    assert code == 0 and 'Traceback' not in err, err
    assert math.isnan(fc['improve']) and says in fc['pt_curve'], fc
    assert (fc['score'], fc['flops_pct'], fc['wall_pct']) == (good['score'], good['flops_pct'], good['wall_pct'])   # the rest of the row stays
    note = [l for l in out.splitlines() if l.startswith('Improve of FPT_CR')]
    assert len(note) == 1 and "PT's curve cannot be read" in note[0] and says in note[0], out
    assert says in (root/'table2.md').read_text()

@pytest.mark.parametrize('entry', ['best', 'final_metrics'])
def test_tables_leave_out_a_summary_its_log_contradicts(pt_beside, tmp_path, capsys, entry):
    """summary_edit_believed: a summary whose best score was changed by hand (99.9 where the run's best.json and log say
    otherwise) was tabulated as the run's, with an Improve to match; now it is left out, saying which score and step.
    final_edit_believed: the same for its final score, which `fpt tables --score final` shows (the log's last evaluation)."""
    root = copy(pt_beside, tmp_path/'runs')
    s = read_json(root/'fpt_cr'/'summary.json'); key = s['paper_metric'] or s['metric']
    edited = dict(s['best'], metrics=dict(s['best']['metrics'], **{key: 99.9})) if entry == 'best' else dict(s['final_metrics'], **{key: 99.9})
    write_json(root/'fpt_cr'/'summary.json', dict(s, **{entry: edited}))
    step = s['best']['step'] if entry == 'best' else s['steps']
    code, out, err = fpt('tables', root, *(['--score', 'final'] if entry == 'final_metrics' else []), capsys=capsys)
    assert code == 0 and f"left out: run {root/'fpt_cr'}: its summary's {entry} {key} is 99.9 at step {step}, where its log.jsonl" in out, out
    assert '99.9' not in (root/'table2.md').read_text() and 'FPT_CR' not in (root/'table2.md').read_text()

@pytest.mark.parametrize('log', ['gone', 'torn'])
def test_tables_hold_an_edited_summary_to_its_best_json_when_its_log_is_unreadable(pt_beside, tmp_path, capsys, log):
    """summary_edit_believed_without_log (an adversarial review): with its log.jsonl gone, or one torn line at its end, an
    edited best score was tabulated (no log to hold it to, so no check at all); best.json, written beside the best prompt,
    holds the evaluation that chose it, and the summary is held to that instead."""
    root = copy(pt_beside, tmp_path/'runs')
    run = root/'fpt_cr'
    s = read_json(run/'summary.json'); key = s['paper_metric'] or s['metric']
    write_json(run/'summary.json', dict(s, best=dict(s['best'], metrics=dict(s['best']['metrics'], **{key: 99.9}))))
    if log == 'gone': (run/'log.jsonl').unlink()
    else:
        with open(run/'log.jsonl', 'a') as f: f.write('{"kind": "st')
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and f"left out: run {run}: its summary's best {key} is 99.9, where its best.json has" in out, out
    assert '99.9' not in (root/'table2.md').read_text() and 'FPT_CR' not in (root/'table2.md').read_text()
    write_json(run/'summary.json', s)   # the summary as the run wrote it: tabulated, log or no log
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and 'left out' not in out and 'FPT_CR' in (root/'table2.md').read_text(), out

@pytest.mark.parametrize('step', [1, 2])
def test_tables_leave_out_a_run_whose_log_holds_a_step_twice(pt_beside, tmp_path, capsys, step):
    """two_runs_in_one_log_tabulated (an adversarial review): two runs trained in one folder at once (its run.lock deleted by
    hand while the first ran) logged every step twice and wrote one summary: the tables took it as one run.
    log_steps_skip_first (the twelfth audit): the first step's record counts too."""
    root = copy(pt_beside, tmp_path/'runs')
    log = root/'fpt_cr'/'log.jsonl'
    lines = log.read_text().splitlines()
    again = next(l for l in lines if json.loads(l).get('kind') == 'step' and json.loads(l)['step'] == step)
    log.write_text('\n'.join(lines + [again]) + '\n')
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and f"left out: run {root/'fpt_cr'}: its log.jsonl holds step {step} twice: two runs trained in this folder at once" in out, out
    assert 'FPT_CR' not in (root/'table2.md').read_text()

@pytest.mark.parametrize('edit', ['log_best', 'total_flops', 'train_seconds'])
def test_tables_leave_out_a_summary_whose_best_or_flops_its_log_contradicts(pt_beside, tmp_path, capsys, edit):
    """log_best_unchecked: an evaluation in the log above the summary's best (the log edited, or the summary's best put back
    from another copy) was tabulated, though the run's rule picks the log's best. flops_edit_believed: a summary's total_flops
    edited (the FLOPs % PT column) was tabulated, though the log's last step says otherwise."""
    root = copy(pt_beside, tmp_path/'runs'); d = root/'fpt_cr'
    s = read_json(d/'summary.json'); key = s['best']['metric']
    if edit in ('total_flops', 'train_seconds'):   # seconds_edit_believed: wall % PT of a hand-edited train_seconds (session 19)
        write_json(d/'summary.json', dict(s, **{edit: s[edit] / 10}))
        says = f"its summary's {edit} is {s[edit] / 10!r} at step {s['steps']}, where its log.jsonl has {s[edit]!r}"
    else:
        recs = [json.loads(l) for l in (d/'log.jsonl').read_text().splitlines()]
        other = next(r for r in recs if r['kind'] == 'eval' and r['step'] != s['best']['step'])
        other[key] = 1000.0
        (d/'log.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in recs))
        says = f"its summary's best is step {s['best']['step']} ({key} {s['best']['value']!r}), where its log.jsonl's best evaluation by the run's rule is step {other['step']} (1000.0)"
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and f"left out: run {d}: {says}" in out, out
    assert 'FPT_CR' not in (root/'table2.md').read_text()

def test_the_best_of_the_last_stage_is_held_to_the_last_stages_evaluations(tmp_path):
    """disagrees_best_last_over_every_stage: an FPT run whose best evaluation of all came in a partial stage was left out of
    the tables, its (sound) best_last_stage said to contradict its log, as if the last stage's best were the best of all."""
    from fpt_nb.tables import summary_disagrees
    evs = [dict(kind='eval', step=2, stage=0, acc=0.9), dict(kind='eval', step=4, stage=1, acc=0.6), dict(kind='eval', step=6, stage=1, acc=0.7)]
    (tmp_path/'log.jsonl').write_text(''.join(json.dumps(e) + '\n' for e in evs))
    rec = lambda e: dict(step=e['step'], stage=e['stage'], metric='acc', value=e['acc'], metrics=dict(acc=e['acc']))
    s = dict(run_dir=str(tmp_path), steps=6, stages=[{}, {}], best=rec(evs[0]), best_last_stage=rec(evs[2]))
    assert summary_disagrees(s) is None
    assert summary_disagrees(dict(s, best_last_stage=rec(evs[1]))) == (
        "its summary's best_last_stage is step 4 (acc 0.6), where its log.jsonl's best evaluation by the run's rule is step 6 (0.7): "
        "a record was changed after the run (restore it, or run it again)")
    assert summary_disagrees(dict(s, best=rec(evs[2]))).startswith("its summary's best is step 6 (acc 0.7), where its log.jsonl's best "
                                                                    "evaluation by the run's rule is step 2 (0.9)")

def test_wall_time_of_runs_on_other_hardware_is_not_compared(pt_beside, tmp_path, capsys):
    """wall_compared_across_hardware: `--threads` was recorded nowhere, and wall % PT set a 2-thread PT's seconds against a 1-thread FPT
    run's (4% of PT, unsaid). Each summary records its threads; a row whose device, processes or threads are not PT's has its
    wall % PT left out, saying why."""
    root = copy(pt_beside, tmp_path/'runs'); d = root/'fpt_cr'
    s = read_json(d/'summary.json')
    assert isinstance(s['threads'], int) and s['threads'] >= 1 and s['threads'] == read_json(root/'pt'/'summary.json')['threads']
    write_json(d/'summary.json', dict(s, threads=s['threads'] + 1))
    code, out, err = fpt('tables', root, capsys=capsys)
    row = next(l for l in (root/'table2.md').read_text().splitlines() if '| FPT_CR |' in l)
    assert code == 0 and row.split('|')[9].strip() == '–', row   # wall % PT
    assert (f"wall % PT of FPT_CR ({d}) is left out: it trained on other hardware than PT (threads {s['threads'] + 1} vs PT's "
            f"{s['threads']})") in out, out

def test_a_run_resumed_on_other_threads_says_so_and_its_wall_clock_is_not_compared(pt_beside, finished, tmp_path, capsys):
    """threads_of_the_last_command: a run stopped on 1 thread and resumed on 2 recorded `threads: 2` as the whole run's, and
    wall % PT set its seconds against PT's as alike. The change is recorded with its step, and its wall % PT left out."""
    root = copy(pt_beside, tmp_path/'runs'); shutil.rmtree(root/'fpt_cr')
    d = unfinished(finished, root/'fpt_cr')
    torch.set_num_threads(2)
    try: s = run_experiment(out_dir=str(d), **RUN)
    finally: torch.set_num_threads(1)
    assert s['threads'] == 2 and s['resumed_with'] == [dict(step=3, threads=[1, 2])] == read_json(d/'config.json')['resumed_with']
    code, out, err = fpt('tables', root, capsys=capsys)
    row = next(l for l in (root/'table2.md').read_text().splitlines() if '| FPT_CR |' in l)
    assert code == 0 and row.split('|')[9].strip() == '–', row   # wall % PT
    assert f"wall % PT of FPT_CR ({d}) is left out: it trained on other hardware than PT (threads changed on a resume (1 to 2))" in out, out

def test_wall_time_on_another_gpu_or_cpu_kernels_is_not_compared(pt_beside, tmp_path, capsys):
    """hardware_gpu_dropped, hardware_versions_unrecorded_apart, hardware_versions_resume_ignored,
    hardware_resume_unrecorded_apart: a run's `versions` name its
    GPU and its CPU's vector kernels; wall % PT sets no H100 run's seconds against an H200 PT's, nor an AVX2 machine's
    against an AVX512 one's, and says why, as for a device or threads apart. Where one run recorded neither (summaries
    before they were recorded) nothing is claimed; a resume on another GPU is said, one that changed only a library is not."""
    from fpt_nb.tables import hardware_apart
    root = copy(pt_beside, tmp_path/'runs'); d = root/'fpt_cr'
    s, pt = read_json(d/'summary.json'), read_json(root/'pt'/'summary.json')
    v = pt['versions']
    assert s['versions'] == v and v['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    write_json(root/'pt'/'summary.json', dict(pt, versions=dict(v, gpu='NVIDIA H200')))
    write_json(d/'summary.json', dict(s, versions=dict(v, gpu='NVIDIA H100')))
    code, out, err = fpt('tables', root, capsys=capsys)
    row = next(l for l in (root/'table2.md').read_text().splitlines() if '| FPT_CR |' in l)
    assert code == 0 and row.split('|')[9].strip() == '–', row   # wall % PT
    assert f"wall % PT of FPT_CR ({d}) is left out: it trained on other hardware than PT (gpu NVIDIA H100 vs PT's NVIDIA H200)" in out, out
    run = lambda **versions: dict(device='cpu', processes=1, threads=1, versions=dict(v, **versions))
    assert hardware_apart(run(), run()) is None
    assert hardware_apart(run(cpu_capability='AVX2'), run(cpu_capability='AVX512')) == "cpu_capability AVX2 vs PT's AVX512"
    old = dict(device='cpu', processes=1, threads=1, versions={k: x for k, x in v.items() if k != 'cpu_capability'})
    assert hardware_apart(old, run(cpu_capability='AVX512')) is None and hardware_apart(run(), dict(old, versions=None)) is None
    resumed = lambda a, b: dict(run(**b), resumed_with=[dict(step=3, versions=[dict(v, **a), dict(v, **b)])])
    assert hardware_apart(resumed(dict(gpu='A'), dict(gpu='B')), run(gpu='B')) == 'gpu changed on a resume (A to B)'
    assert hardware_apart(run(gpu='B'), resumed(dict(gpu='A'), dict(gpu='B'))) == "PT's gpu changed on a resume (A to B)"
    assert hardware_apart(resumed(dict(transformers='5.0.0'), {}), run()) is None   # a library, not the hardware
    assert hardware_apart(dict(run(), resumed_with=[dict(step=3, versions=[None, v])]), run()) is None   # begun unrecorded
    assert hardware_apart(dict(run(), resumed_with=[dict(step=3, versions=[old['versions'], v])]), run()) is None   # kernels unrecorded

def test_scores_pooled_across_kernels_or_libraries_are_said(pt_beside, tmp_path, capsys):
    """rounding_apart_dropped, rounding_apart_skips_pt, rounding_resume_ignored, rounding_note_dropped: the same code, seed and packages scored PT 92.0 with
    torch's AVX512 kernels and 94.5 with its AVX2 ones (`results/default_run/`): a row whose seeds, or the PT runs they are set
    against, ran on other devices, libraries or kernels says so under the table, and its CSV names them. Runs that recorded
    nothing are not called apart."""
    from fpt_nb.tables import rounding_apart
    root = copy(pt_beside, tmp_path/'runs'); d = root/'fpt_cr'
    s = read_json(d/'summary.json'); v = s['versions']
    write_json(d/'summary.json', dict(s, versions=dict(v, transformers='5.24.0')))
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and (f"scores of FPT_CR ({d}) and the PT runs it is set against differ by rounding as well as by seed: they ran "
                          f"with other devices, libraries or kernels (transformers 5.24.0 (1 run), {v['transformers']} (1 run))") in out, out
    csv_row = next(l for l in (root/'table2.csv').read_text().splitlines() if ',FPT_CR,' in l)
    assert '5.24.0 (1 run)' in csv_row and 'scores of PT (' not in out   # (PT set against itself: nothing apart)
    run = lambda device='cpu', **versions: dict(device=device, versions=dict(v, **versions))
    assert rounding_apart([run(), run()]) is None and rounding_apart([run(), dict(device='cpu', versions=None)]) is None
    assert rounding_apart([run(cpu_capability='AVX2'), run(cpu_capability='AVX512'), run(cpu_capability='AVX512')]) == (
        'cpu_capability AVX2 (1 run), AVX512 (2 runs)')
    assert rounding_apart([run('cuda'), run()]) == 'device cuda (1 run), cpu (1 run)'
    resumed = dict(run(), resumed_with=[dict(step=3, versions=[dict(v, torch='2.12.0'), v])])
    assert rounding_apart([resumed, run()]) == 'torch changed on a resume of 1 run'

def test_an_fpt_row_names_no_stage(pt_beside):
    "tables_stage_name_of_fpt (session 19 audit): an FPT row (four stages) carried its first stage's name in the CSV's stage column."
    from fpt_nb.tables import table1
    pt, cr = table2(collect_runs(pt_beside, say=lambda m: None))
    assert (pt['method'], pt['stage']) == ('PT', 'full') and (cr['method'], cr['stage']) == ('FPT_CR', '')
    assert table1(collect_runs(pt_beside, say=lambda m: None))[0]['stage'] == 'full'

def test_tables_leave_out_a_stopped_run_whose_checkpoint_pointer_is_damaged(pt_beside, finished, tmp_path, capsys):
    """damaged_pointer_stops_tables: a stopped run (no summary) whose checkpoints/latest is a folder, or names one that is gone,
    ended `fpt tables` with that error: the other runs were not tabulated."""
    root = copy(pt_beside, tmp_path/'runs')
    d = unfinished(finished, root/'stopped')
    (d/'checkpoints'/'latest').unlink(); (d/'checkpoints'/'latest').mkdir()
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and f"left out: run {d} has no summary, and its checkpoints cannot be read: {d/'checkpoints'/'latest'} is not a file" in out, (out, err)
    assert 'FPT_CR' in (root/'table2.md').read_text()

def test_a_run_records_the_data_folder_the_environment_named(data_dir, tmp_path, monkeypatch):
    """env_data_dir_unrecorded: a run that read the folder FPT_DATA_DIR named recorded data_dir null, so `fpt evaluate` without
    that variable went to the hub (40 s of retries here; where the hub answers, the full GLUE set, not the rows the run read).
    Now the folder is recorded, and evaluate reads the run's own data."""
    monkeypatch.setenv('FPT_DATA_DIR', str(data_dir))
    d = tmp_path/'r'
    run_experiment(out_dir=str(d), **dict(RUN, task='mnli', method='pt', steps=2, train_limit=8, eval_limit=4, max_target_length=4))
    assert read_json(d/'config.json')['data_dir'] == str(data_dir)
    monkeypatch.delenv('FPT_DATA_DIR')
    ev = evaluate_run(d, limit=4, device='cpu', progress=False)
    assert ev['data_dir'] == str(data_dir) and ev['data']['source'] == 'local mnli/validation_matched.jsonl', ev

# ---------------------------------------------------------------------------------------------------------------
# 4. export-peft

def test_export_peft_refuses_to_overwrite(finished, tmp_path, capsys):
    out = tmp_path/'adapter'
    code, o, err = fpt('export-peft', finished, out, capsys=capsys)
    assert code == 0 and f'exporting best_last_prompt.safetensors of {finished}' in o, err
    before = snapshot(out)
    code, o, err = fpt('export-peft', finished, out, capsys=capsys)
    one_line(code, err, 'already holds a PEFT adapter: pass force=True (fpt export-peft --force)')
    assert snapshot(out) == before
    code, o, err = fpt('export-peft', finished, out, '--force', capsys=capsys)
    assert code == 0, err

def test_export_peft_of_a_runs_prompt_file_is_checked_as_the_run(finished, tmp_path, capsys):
    """export_file_unchecked: a prompt file in its run folder was exported for any model named (and skipped the warning of a
    prompt a partial stage trained), where the folder itself is refused; now the file gets the run's checks, and the run's model
    when none is named (before: "say which backbone")."""
    code, o, err = fpt('export-peft', finished/'best_prompt.safetensors', tmp_path/'a', '--model', 'tiny-llama', capsys=capsys)
    one_line(code, err, "trained its prompt on 'tiny', and 'tiny-llama' is another model")
    assert not (tmp_path/'a').exists()
    code, o, err = fpt('export-peft', finished/'best_prompt.safetensors', tmp_path/'b', capsys=capsys)
    assert code == 0 and read_json(tmp_path/'b'/'adapter_config.json')['base_model_name_or_path'] == 'tiny', err
    assert f"exporting best_prompt.safetensors of {finished} (from step" in o, o

def test_export_peft_of_a_run_without_its_config_takes_its_summarys_model(finished, tmp_path, capsys):
    """export_model_from_config_only: a run folder that lost its config.json was told to "export from a run folder", which it
    is, though its summary names the model; a prompt file alone is told to name its backbone with --model."""
    d = copy(finished, tmp_path/'run'); (d/'config.json').unlink()
    code, o, err = fpt('export-peft', d, tmp_path/'adapter', capsys=capsys)
    assert code == 0 and read_json(tmp_path/'adapter'/'adapter_config.json')['base_model_name_or_path'] == 'tiny', (o, err)
    loose = tmp_path/'elsewhere'/'prompt.safetensors'; loose.parent.mkdir(); shutil.copy(d/'prompt.safetensors', loose)
    code, _, err = fpt('export-peft', loose, tmp_path/'other', capsys=capsys)   # a prompt file out of its run
    one_line(code, err, f"{loose} is a prompt file; name it (fpt export-peft --model M")

def test_export_peft_from_an_unfinished_run_says_so(finished, tmp_path, capsys):
    d = unfinished(finished, tmp_path/'run')
    code, o, err = fpt('export-peft', d, tmp_path/'adapter', capsys=capsys)
    assert code == 0 and f'run {d} is unfinished: it has no summary.json yet; exporting best_last_prompt.safetensors as it is' in o, (o, err)

def test_export_peft_keeps_a_prompt_to_its_kind_of_model(finished, tmp_path, capsys):
    "A T5 prompt is not exported for a decoder-only backbone of the same width, nor an encoder classifier's prompt at all."
    code, _, err = fpt('export-peft', finished, tmp_path/'a', '--model', 'tiny-llama', capsys=capsys)
    one_line(code, err, "trained its prompt on 'tiny', and 'tiny-llama' is another model (a built-in model is only itself): leave model out to export it for the run's own")
    bert = tmp_path/'bert'
    run_experiment(out_dir=str(bert), **dict(RUN, model='tiny-bert', method='pt', steps=2))
    code, _, err = fpt('export-peft', bert, tmp_path/'b', capsys=capsys)
    one_line(code, err, 'trained its prompt on a BertModel: PEFT export is for prompts of T5 and decoder-only models')
    assert not (tmp_path/'a').exists() and not (tmp_path/'b').exists()


# ---------------------------------------------------------------------------------------------------------------
# 5. One clear line for each bad input

def test_bad_model_folders(tmp_path, capsys):
    empty = tmp_path/'empty'; empty.mkdir()
    code, _, err = fpt('run', '--model', empty, '--method', 'pt', '--out-dir', tmp_path/'r1', '--steps', 2, capsys=capsys)
    one_line(code, err, f'model folder {empty} has no config.json')
    assert not (tmp_path/'r1').exists()
    broken = tmp_path/'broken'; broken.mkdir(); (broken/'config.json').write_text('{"d_model": 64,')
    code, _, err = fpt('run', '--model', broken, '--method', 'pt', '--out-dir', tmp_path/'r2', '--steps', 2, capsys=capsys)
    one_line(code, err, f"model folder {broken}: {broken/'config.json'} is not valid JSON")
    assert not (tmp_path/'r2').exists()
    from fpt_nb.prompt import load_t5
    model, tok = load_t5('tiny')
    bare = tmp_path/'bare'; model.save_pretrained(bare)   # weights and config, no tokenizer files: transformers builds an empty one
    code, _, err = fpt('run', '--model', bare, '--method', 'pt', '--out-dir', tmp_path/'r3', '--steps', 2, capsys=capsys)
    one_line(code, err, f"the tokenizer of '{bare}' (T5Tokenizer, ")
    assert 'unknown tokens (<unk>) of' in err and "it is not this model's tokenizer; save the model's own tokenizer files" in err, err
    assert not (tmp_path/'r3').exists()
    tok.save_pretrained(bare)   # its own tokenizer beside it: the same folder trains
    code, _, err = fpt('run', '--model', bare, '--method', 'pt', '--out-dir', tmp_path/'r3', '--steps', 2, '--no-progress', capsys=capsys)
    assert code == 0, err

def test_out_dir_or_data_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path/'file'; f.write_text('x')
    code, _, err = fpt('run', '--method', 'pt', '--out-dir', f, '--steps', 2, '--no-progress', capsys=capsys)
    one_line(code, err, f'out_dir {f} is a file: expected a folder')
    code, _, err = fpt('run', '--task', 'mnli', '--data-dir', f, '--method', 'pt', '--out-dir', tmp_path/'r', '--steps', 2, capsys=capsys)
    one_line(code, err, f'data_dir {f} is a file: expected a folder holding mnli/')
    assert not (tmp_path/'r').exists()

@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a torch without CUDA')
def test_cuda_on_a_cpu_only_torch(tmp_path, capsys):
    code, _, err = fpt('run', '--method', 'pt', '--device', 'cuda', '--out-dir', tmp_path/'r', '--steps', 2, capsys=capsys)
    one_line(code, err, "device 'cuda' is not available: this torch")
    assert not (tmp_path/'r').exists()

def test_evaluate_bad_inputs(finished, tmp_path, capsys):
    d = copy(finished, tmp_path/'run')
    code, _, err = fpt('evaluate', d, '--limit', -1, capsys=capsys)   # (0 is all, as fpt run --eval-limit 0)
    one_line(code, err, 'argument --limit: must be at least 0 (0: all), got -1')
    (d/'best_prompt.safetensors').unlink()
    code, _, err = fpt('evaluate', d, '--prompt', 'best', capsys=capsys)
    one_line(code, err, f"run {d} has no best prompt (best_prompt.safetensors): the run chose one, but the file is gone")
    (d/'best.json').unlink()   # the summary still names the best evaluation: the run did choose one
    code, _, err = fpt('evaluate', d, '--prompt', 'best', capsys=capsys)
    one_line(code, err, f"run {d} has no best prompt (best_prompt.safetensors): the run chose one, but the file is gone")
    write_json(d/'summary.json', dict(read_json(d/'summary.json'), best=dict(step=None)))   # as a run without evaluations writes it
    code, _, err = fpt('evaluate', d, '--prompt', 'best', capsys=capsys)
    one_line(code, err, f'run {d} has no best prompt (best_prompt.safetensors): it ran no evaluation')
    write_json(d/'summary.json', {k: v for k, v in read_json(d/'summary.json').items() if k != 'config'})
    code, _, err = fpt('evaluate', d, capsys=capsys)
    one_line(code, err, "has no 'config' and 'stages': it was not written by run_experiment")

def test_evaluate_of_a_folder_of_runs_names_them(finished, tmp_path, capsys):
    "evaluate_folder_of_runs: `fpt evaluate runs/` (a folder of `fpt run --method pt fpt_cr`) said only 'summary.json does not exist'."
    root = tmp_path/'runs'; copy(finished, root/'fpt_cr'); copy(finished, root/'pt')
    code, _, err = fpt('evaluate', root, capsys=capsys)
    one_line(code, err, f"{root} is a folder of runs (fpt_cr, pt), not a run: evaluate one of them, e.g. {root/'fpt_cr'}")
    assert not (root/'run.lock').exists()
    code, _, err = fpt('export-peft', root, tmp_path/'adapter', capsys=capsys)   # (runs_in, shared with export-peft)
    one_line(code, err, f"{root} is a folder of runs (fpt_cr, pt), not a run: export one of them, e.g. {root/'fpt_cr'}")
    assert not (tmp_path/'adapter').exists()

def test_evaluate_of_a_stopped_run_says_what_stopped(finished, tmp_path, capsys):
    "evaluate_stopped_unsaid: a run killed before its summary got only 'summary.json does not exist', where `fpt tables` says why."
    d = unfinished(finished, tmp_path/'run')
    code, _, err = fpt('evaluate', d, capsys=capsys)
    one_line(code, err, f"run {d} has no summary: it was stopped before writing one (its last checkpoint is {STEP(3)}); run its "
                        f"command again to finish it, then evaluate it")

def test_tables_say_a_run_is_running_now(finished, tmp_path, capsys):
    """running_called_stopped: a run going on had the killed run's line, "stopped before writing one ..., or it is running; run
    its command again", which would meet the live run's lock; its lock now says it is running, and by which process."""
    import os
    from fpt_nb.run import run_lock
    copy(finished, tmp_path/'runs'/'done')
    d = unfinished(finished, tmp_path/'runs'/'live')
    with run_lock(d):   # as the run holds it, in this process
        code, out, err = fpt('tables', tmp_path/'runs', capsys=capsys)
    assert code == 0 and f"left out: run {d} is running now (process {os.getpid()} holds its run.lock; its last checkpoint is {STEP(3)})" in out, out
    code, out, err = fpt('tables', tmp_path/'runs', capsys=capsys)   # the run gone (its lock freed): stopped
    assert f"left out: run {d} has no summary: it was stopped before writing one" in out, out

def test_evaluate_holds_the_run_lock(finished, tmp_path, capsys, monkeypatch):
    """evaluate_unlocked: `fpt evaluate` of a stopped run, racing `fpt run` resuming it, wrote its eval file after the
    resume had removed the stopped run's: a file scoring a prompt the finished run no longer had. It now holds the run
    folder's lock: refused while another process holds it (a resume), and the resume refused while it evaluates."""
    import os
    from fpt_nb.run import run_lock, evaluate_run
    d = copy(finished, tmp_path/'run')
    with run_lock(d):   # as a resumed run holds it
        code, _, err = fpt('evaluate', d, '--limit', 4, '--no-progress', capsys=capsys)
        one_line(code, err, f"run folder {d} is in use by process {os.getpid()}: wait for it to end, then evaluate")
    assert not list(d.glob('eval-*.json'))
    import fpt_nb.run as R
    held = []
    real = R.load_examples
    def spy(*a, **k):   # while it evaluates: the lock is held
        with pytest.raises(RuntimeError, match='is in use by process'):
            with run_lock(d): pass
        held.append(True)
        return real(*a, **k)
    monkeypatch.setattr(R, 'load_examples', spy)
    evaluate_run(d, limit=4, progress=False)
    assert held and (d/'eval-validation-4.json').is_file() and not (d/'run.lock').exists()

def test_evaluate_says_where_the_best_prompt_came_from(finished, capsys, tmp_path):
    d = copy(finished, tmp_path/'run')
    code, out, err = fpt('evaluate', d, '--limit', 8, '--no-progress', capsys=capsys)
    best = read_json(d/'best.json')
    assert code == 0, err
    assert f"best prompt from step {best['step']} (the paper's: the highest selection metric over all evaluations" in out, out
    ev = read_json(d/'eval-validation-8.json')
    assert (ev['stage_index'], ev['paper_acc']) == (best['stage'], best['paper_acc'])   # the same prompt on the same model and rows
    code, out, err = fpt('evaluate', d, '--limit', 0, '--no-progress', capsys=capsys)   # 0: all, as fpt run --eval-limit 0
    from fpt_nb.tasks import TOY_SIZES
    assert code == 0 and read_json(d/'eval-validation.json')['n'] == TOY_SIZES['validation'], err

@pytest.mark.parametrize('content,says', [('[1, 2]', 'holds a list: expected a JSON object'), ('{"task": "toy"}', "lacks 'model', 'method'")])
def test_tables_on_a_bad_summary(content, says, tmp_path, capsys):
    (tmp_path/'run').mkdir(); (tmp_path/'run'/'summary.json').write_text(content)
    code, _, err = fpt('tables', tmp_path, capsys=capsys)
    one_line(code, err, says)

def test_short_runs_evaluate_on_fewer_examples(data_dir, tmp_path, capsys):
    code, out, err = fpt('run', '--task', 'mnli', '--data-dir', data_dir, '--method', 'pt', '--steps', 2, '--batch-size', 4, '--prompt-length', 4,
                         '--train-limit', 16, '--max-target-length', 4, '--out-dir', tmp_path/'r', '--no-progress', capsys=capsys)
    assert code == 0, err
    assert 'evaluating on the first 500 validation examples (--eval-limit 0 for all)' in out
    assert read_json(tmp_path/'r'/'summary.json')['n_eval'] == 500
    # eval_limit_zero_passed: --eval-limit 0, which that line offers, means every example (None), on short runs and long ones
    from fpt_nb.cli import run_defaults
    assert run_defaults('mnli', 2, None, 0) == (1, None) and run_defaults('mnli', 5000, None, 0) == (250, None)
    assert run_defaults('mnli', 2, None, None) == (1, 500) and run_defaults('mnli', 2, 3, 7) == (3, 7)
    # run_defaults_eval_every_zero, short_run_boundary: 20 evaluations a run, at least every step; 'short' is below 2,000 steps
    from fpt_nb.cli import SHORT_RUN
    assert SHORT_RUN == 2000 and run_defaults('mnli', 1999, None, None) == (99, 500) and run_defaults('mnli', 2000, None, None) == (100, None)
    assert run_defaults('toy', 2, None, None) == (1, None)   # a built-in task is small: all of it

def test_evaluation_shows_progress(capsys):
    from fpt_nb.prompt import PromptT5
    from fpt_nb.tasks import load_examples
    from fpt_nb.batches import encode
    from fpt_nb.train import generate_texts
    m, tok = load_t5('tiny')
    rows = load_examples('toy', 'validation', limit=8)
    generate_texts(PromptT5(m, prompt_length=4), tok, encode('toy', tok, rows), 2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert 'generating' in err and '/8 ' in err and 'ex/s' in err, err


# ---------------------------------------------------------------------------------------------------------------
# 6. Run folders that travel

def test_a_local_model_is_recorded_by_digest_and_found_again(tmp_path, capsys):
    m, tok = load_t5('tiny')
    here = tmp_path/'model-here'; m.save_pretrained(here); tok.save_pretrained(here)
    d = tmp_path/'run'
    s = run_experiment(out_dir=str(d), **{**RUN, 'model': str(here), 'method': 'pt'})
    assert s['model_ref']['path'] == str(here.resolve()) and len(s['model_ref']['digest']) == 16
    moved = tmp_path/'model-moved'; shutil.move(here, moved)
    code, _, err = fpt('evaluate', d, '--limit', 4, capsys=capsys)
    one_line(code, err, f"the run's model folder {here} is not on this machine: pass model=")
    code, out, err = fpt('evaluate', d, '--limit', 4, '--model', moved, '--no-progress', capsys=capsys)
    assert code == 0, err
    other = tmp_path/'other'; load_t5('tiny', seed=1)[0].save_pretrained(other); tok.save_pretrained(other)
    code, _, err = fpt('evaluate', d, '--limit', 4, '--model', other, capsys=capsys)
    one_line(code, err, f'model folder {other} is not the model run {d} was trained with')
    before = snapshot(d)   # the moved model is the same model: the finished run is found finished, nothing changes
    run_experiment(out_dir=str(d), **{**RUN, 'model': str(moved), 'method': 'pt'})
    assert snapshot(d) == before


def test_a_run_folders_changed_model_folder_is_refused_without_naming_it(tmp_path, capsys):
    """model_folder_changed_unchecked (a newcomer's audit): a run's own model folder given other weights in place was used by
    `fpt evaluate` and `export-peft` with no model named, and its score written as the run's (the same folder named with
    --model was refused by its digest). Both refuse it now, naming the way out; restored, it evaluates."""
    m, tok = load_t5('tiny')
    here = tmp_path/'model'; m.save_pretrained(here); tok.save_pretrained(here)
    d = tmp_path/'run'
    run_experiment(out_dir=str(d), **{**RUN, 'model': str(here), 'method': 'pt'})
    before = snapshot(d)
    load_t5('tiny', seed=1)[0].save_pretrained(here)   # other weights, same folder
    for args in (('evaluate', d, '--limit', 4), ('export-peft', d, tmp_path/'adapter')):
        code, _, err = fpt(*args, capsys=capsys)
        one_line(code, err, f"model folder {here} has changed since run {d} trained its prompt on it: its weights or config differ")
        one_line(code, err, f"name the run's model where it is now with model= (fpt {args[0]} --model)")   # the command that was run
    assert snapshot(d) == before and not (tmp_path/'adapter').exists()
    m.save_pretrained(here)
    assert evaluate_run(d, limit=4, progress=False)['n'] == 4

def test_a_replaced_prompt_or_edited_choice_record_is_refused(finished, tmp_path, capsys):
    """prompt_file_replaced, choice_record_edited (a newcomer's audit): a prompt file replaced by another prompt of the same
    shape (another run's, an edit) was evaluated and exported as the run's; a best.json edited to another step made the
    prompt be evaluated on another stage's model, under the wrong step. The summary records each prompt's digest and the
    steps chosen: both are refused, nothing written. A run whose chosen prompt file is gone is not exported from the next
    one down without a word (export_peft_falls_back)."""
    from fpt_nb.checkpoint import save_prompt
    d = copy(finished, tmp_path/'run')
    assert set(read_json(d/'summary.json')['prompts']) == {'best_prompt.safetensors', 'best_last_prompt.safetensors', 'prompt.safetensors'}
    for f in ('best_prompt.safetensors', 'best_last_prompt.safetensors'):
        save_prompt(load_prompt(finished/f) + 0.5, d/f)
    before = snapshot(d)
    for args, f in ((('evaluate', d, '--limit', 4), 'best_prompt.safetensors'), (('export-peft', d, tmp_path/'adapter'), 'best_last_prompt.safetensors')):
        code, _, err = fpt(*args, capsys=capsys)
        one_line(code, err, f"{d/f} is not the prompt run {d} saved there")
    assert snapshot(d) == before and not (tmp_path/'adapter').exists()
    for f in ('best_prompt.safetensors', 'best_last_prompt.safetensors'): shutil.copy(finished/f, d/f)
    rec = read_json(d/'best.json'); write_json(d/'best.json', dict(rec, step=rec['step'] + 1, stage=3))
    code, _, err = fpt('evaluate', d, '--limit', 4, capsys=capsys)
    one_line(code, err, f"{d/'best.json'} names step {rec['step'] + 1} (stage 3), but run {d}'s summary chose its best prompt at step {rec['step']}")
    (d/'best_last_prompt.safetensors').unlink()
    code, _, err = fpt('export-peft', d, tmp_path/'adapter', capsys=capsys)
    one_line(code, err, f"run folder {d}: its best_last_prompt.safetensors is gone, though the run chose it (best_last.json is there)")


def test_a_best_prompt_file_of_another_step_is_refused(finished, tmp_path, capsys):
    """best_prompt_step_unchecked (an adversarial review): a kill could leave a later step's best prompt beside the record of
    the run's choice, and a summary then written from that file recorded its digest: `fpt evaluate` scored it as the chosen
    step's prompt, on the chosen step's stage. The step the file itself records is held to the summary's choice."""
    from fpt_nb.checkpoint import save_prompt, prompt_step
    d = copy(finished, tmp_path/'run')
    chosen = read_json(d/'summary.json')['best']['step']
    assert prompt_step(d/'best_prompt.safetensors') == chosen
    save_prompt(load_prompt(d/'best_prompt.safetensors'), d/'best_prompt.safetensors', step=chosen + 1)   # the same values: the digest holds
    before = snapshot(d)
    code, _, err = fpt('evaluate', d, '--limit', 4, capsys=capsys)
    one_line(code, err, f"{d/'best_prompt.safetensors'} holds the prompt of step {chosen + 1}, but run {d}'s summary chose its best prompt at step {chosen}")
    assert snapshot(d) == before


def test_a_lock_file_removed_as_its_holder_let_go_is_not_taken(tmp_path, monkeypatch):
    """lock_on_a_removed_file (an adversarial review): a run that opened run.lock just before its holder let go (which removes
    the file) then locked the removed file: it held nothing, and a third run made a new run.lock and trained in the same
    folder. The lock is taken on the file at the path, opened again where it was removed."""
    import fcntl
    from fpt_nb.run import run_lock
    from fpt_nb.checkpoint import lock_holder
    d = tmp_path/'run'; d.mkdir()
    real, calls = fcntl.flock, []
    def flock(fd, op):
        if op & fcntl.LOCK_EX and not calls and (d/'run.lock').exists():   # (the folder's lock is taken first)
            calls.append(fd); (d/'run.lock').unlink()   # the holder lets go between open and lock
        return real(fd, op)
    monkeypatch.setattr(fcntl, 'flock', flock)
    with run_lock(d):
        assert calls and lock_holder(d) == os.getpid()
    assert not (d/'run.lock').exists()



def test_a_run_lock_deleted_by_hand_keeps_a_second_run_out(tmp_path):
    """A run.lock deleted by hand while its run went on let a second run make a new one and train in the same folder (the
    tables then left the folder out, its log holding steps twice). The run locks its folder too: that lock holds on."""
    from fpt_nb.run import run_lock
    from fpt_nb.checkpoint import lock_holder, stopped_before_summary, write_json
    d = tmp_path/'run'
    with run_lock(d):
        (d/'run.lock').unlink()
        assert lock_holder(d) == -1   # running, its process no longer named
        with pytest.raises(RuntimeError, match=f"run folder {d} is in use by process unknown: pick another out_dir"):
            with run_lock(d): pass
        assert not (d/'run.lock').exists()   # the refused one made none (nor removed one)
        write_json(d/'config.json', dict(task='mnli', model='tiny', method='pt', steps=4, out_dir=str(d)))
        assert f'run {d} is running now (a process holds its lock; no checkpoint yet)' in stopped_before_summary(d)
    assert lock_holder(d) is None
    with run_lock(d): assert lock_holder(d) == os.getpid()   # free again once its holder let go

def test_the_prompt_evaluated_is_the_prompt_checked(finished, tmp_path, monkeypatch):
    """evaluate_run checked the prompt file's digest, loaded the model (minutes for a large one), then read the file again: a
    prompt written there meanwhile (another process, a user's copy) was scored and recorded as the run's checked prompt."""
    import fpt_nb.run as run_mod
    from fpt_nb.checkpoint import save_prompt
    d = copy(finished, tmp_path/'run')
    own, seen, setup = load_prompt(d/'best_prompt.safetensors'), {}, run_mod.setup
    def setup_then_replace(*args, **kw):   # the file changes while the model loads, after the check
        save_prompt(own + 0.5, d/'best_prompt.safetensors')
        seen['pt'] = (out := setup(*args, **kw))[0]
        return out
    monkeypatch.setattr(run_mod, 'setup', setup_then_replace)
    evaluate_run(d, limit=4, progress=False)
    torch.testing.assert_close(seen['pt'].prompt.weight.detach(), own, rtol=0, atol=0)


# ---- a newcomer's sweep (session 12): each case below failed on the code before its fix

@pytest.mark.parametrize('field,value,says', [('task', 5, 'has task 5: expected a task name'),   # summary_types_skip_first (audit 12)
                                              ('steps', '6', "has steps '6': expected a whole number of steps"),
                                              ('planned_steps', None, 'has planned_steps None'),
                                              ('planned_steps', 0, 'has planned_steps 0: expected a whole number of steps'),   # (session 24)
                                              ('stages', None, 'has stages None: expected a list of stages'),
                                              ('total_flops', 0, 'has total_flops 0: expected a positive number'),
                                              ('train_seconds', None, 'has train_seconds None'),
                                              ('method', 'fpt_xx', "has method 'fpt_xx': expected one of pt, ld"),
                                              # tables_stage_unnamed, seed_unhashable (session 19): a KeyError, a TypeError
                                              ('stages', [{}], 'has stages [{}]: expected a list of stages, each an object with a name'),
                                              # stages_checked_by_any: one stage of several unnamed
                                              ('stages', [{'name': 'full'}, 3], "has stages [{'name': 'full'}, 3]: expected a list of stages"),
                                              ('seed', [1], 'has seed [1]: expected a whole number'),
                                              ('level', 0, 'has level 0: expected a level 1 to 3, or null'),
                                              ('level', 4, 'has level 4: expected a level 1 to 3, or null'),
                                              ('resumed_with', {'step': 3}, "has resumed_with {'step': 3}: expected a list of objects"),
                                              ('resumed_with', [{'step': 3}, 5], "has resumed_with [{'step': 3}, 5]: expected a list of objects")])
def test_tables_leave_out_a_summary_with_a_field_of_the_wrong_kind(field, value, says, finished, tmp_path, capsys):
    "Before: a traceback from deep in the tables (TypeError, ZeroDivisionError), or the run dropped without a word (a method)."
    root = tmp_path/'runs'
    copy(finished, root/'good'); bad = copy(finished, root/'bad')
    write_json(bad/'summary.json', dict(read_json(bad/'summary.json'), **{field: value}))
    code, out, err = fpt('tables', root, capsys=capsys)
    assert code == 0 and 'Traceback' not in err, err
    left = [l for l in (out + err).splitlines() if l.startswith('left out:')]
    assert len(left) == 1 and str(bad/'summary.json') in left[0] and says in left[0], out + err

@pytest.mark.parametrize('tiny,kind', [('tiny', 'model'), ('tiny-llama', 'the decoder-only model'), ('tiny-bert', 'the encoder')])
def test_a_damaged_weights_file_is_said_in_one_line(tiny, kind, tmp_path, capsys):
    "Before: safetensors' SafetensorError (not an OSError) ended `fpt run` in a traceback, with each of the three loaders."
    from fpt_nb.causal import load_causal
    from fpt_nb.encoder import load_encoder
    m, tok = {'tiny': load_t5, 'tiny-llama': load_causal, 'tiny-bert': load_encoder}[tiny](tiny)
    here = tmp_path/'model'; m.save_pretrained(here); tok.save_pretrained(here)
    w = here/'model.safetensors'; w.write_bytes(w.read_bytes()[:3000])
    code, _, err = fpt('run', '--model', here, '--method', 'pt', '--steps', 2, '--out-dir', tmp_path/'run', '--no-progress', capsys=capsys)
    one_line(code, err, f"could not load {kind} '{here}': a weights file in it is damaged or cut short")
    assert not (tmp_path/'run').exists()

def test_a_later_methods_folder_is_checked_before_the_first_method_trains(finished, tmp_path, capsys):
    "Before: `fpt run --method pt fpt_cr` trained PT to the end, then found fpt_cr's folder held a run of other settings."
    from fpt_nb.run import check_planned_run
    root = tmp_path/'runs'; copy(finished, root/'fpt_cr')
    code, _, err = fpt('run', '--method', 'pt', 'fpt_cr', '--steps', 4, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 32,
                       '--eval-limit', 8, '--score-examples', 16, '--out-dir', root, '--no-progress', capsys=capsys)
    one_line(code, err, f"run folder {root/'fpt_cr'} holds a run with other settings: its steps (6 there, 4 now) differ(s)")
    assert not (root/'pt').exists()
    check_planned_run(finished, **RUN)   # the same settings: it would rerun (a finished run: nothing to do)
    check_planned_run(finished, **dict(RUN, eval_every=3, eval_limit=4, num_beams=2))   # a finished run takes new evaluation settings
    with pytest.raises(ValueError, match=r"its lr \(0.3 there, 0.1 now\)"): check_planned_run(finished, **dict(RUN, lr=0.1))
    # stage_steps_none_is_a_difference: None there or here resolves to the paper's split and may agree; two splits given differ
    split = copy(finished, tmp_path/'split')
    write_json(split/'config.json', dict(read_json(split/'config.json'), stage_steps=[1, 1, 1, 3]))
    for same in ([1, 1, 1, 3], None): check_planned_run(split, **dict(RUN, stage_steps=same))
    check_planned_run(finished, **dict(RUN, stage_steps=[2, 1, 1, 2]))
    with pytest.raises(ValueError, match=re.escape("its stage_steps ([1, 1, 1, 3] there, [2, 1, 1, 2] now)")):
        check_planned_run(split, **dict(RUN, stage_steps=[2, 1, 1, 2]))

def test_a_later_methods_folder_of_another_model_is_refused_before_the_first_method_trains(finished, tmp_path, capsys):
    """Before: `fpt run --method pt fpt_cr --model M` trained PT to the end, then found that fpt_cr's folder held a run of
    another model (its checkpoint's fingerprint). A model folder that is the same model by its weights is not another one."""
    from fpt_nb.run import check_planned_run
    from fpt_nb.prompt import load_t5
    root = tmp_path/'runs'; copy(finished, root/'fpt_cr')
    code, _, err = fpt('run', '--method', 'pt', 'fpt_cr', '--model', 'tiny-relu', '--steps', 6, '--batch-size', 4, '--prompt-length', 4,
                       '--train-limit', 32, '--eval-limit', 8, '--score-examples', 16, '--out-dir', root, '--no-progress', capsys=capsys)
    one_line(code, err, f"run folder {root/'fpt_cr'} holds a run with other settings: its model ('tiny' there, 'tiny-relu' now) differ(s)")
    assert not (root/'pt').exists()
    model, tok = load_t5('tiny')
    for d in ('a', 'b'): model.save_pretrained(tmp_path/d); tok.save_pretrained(tmp_path/d)
    run = tmp_path/'run'; copy(finished, run)   # a run on model folder a
    write_json(run/'config.json', dict(read_json(run/'config.json'), model=str(tmp_path/'a')))
    check_planned_run(run, **dict(RUN, model=str(tmp_path/'b')))   # a copy of the same model: left to the run's own checks
    check_planned_run(run, **dict(RUN, model=str(tmp_path/'gone')))   # (a folder not here: the run says what it finds)
    load_t5('tiny-relu')[0].save_pretrained(tmp_path/'b')   # other weights there now
    with pytest.raises(ValueError, match="its model"): check_planned_run(run, **dict(RUN, model=str(tmp_path/'b')))
    with pytest.raises(ValueError, match="its model"): check_planned_run(run, **RUN)

def test_a_folders_tables_keep_the_runs_of_earlier_commands(finished, tmp_path, capsys):
    """tables_of_this_command_only: `fpt run --method pt fpt_cr` then `--method pt fpt_ld` into one folder wrote tables of
    PT and FPT_LD only, though the folder's fpt_cr is a finished run of the same settings: its row was gone."""
    root = tmp_path/'runs'; copy(finished, root/'fpt_cr')
    code, out, err = fpt('run', '--method', 'pt', 'fpt_ld', '--steps', 6, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 32,
                         '--eval-limit', 8, '--eval-every', 0, '--score-examples', 16, '--out-dir', root, '--no-progress', capsys=capsys)
    assert code == 0, err
    assert f"tables: over every finished run in {root}: this command's 2 and 1 from before (fpt_cr)" in out, out
    # run_tables_skips_first (the twelfth audit): the tables it wrote, every one named
    assert f"tables: {', '.join(str(root/n) for n in ('table1.md', 'table1.csv', 'table2.md', 'table2.csv'))}" in out.splitlines(), out
    rows = [r.split('|')[3].strip() for r in (root/'table2.md').read_text().splitlines()[4:]]
    assert rows == ['PT', 'FPT_LD', 'FPT_CR'], rows

def test_level_for_methods_without_one_partial_stage_is_refused(tmp_path, capsys):
    "Before: `--method pt --level 3` or `--method fpt_cr --level 3` ran, ignoring it, and the run's config recorded level 3."
    for method in ('pt', 'fpt_cr'):
        code, _, err = fpt('run', '--method', method, '--level', 3, '--steps', 2, '--out-dir', tmp_path/method, capsys=capsys)
        one_line(code, err, "--level picks the partial stage of ld, fr, cr (Table 1)")
        assert not (tmp_path/method).exists()

def test_a_missing_relative_path_is_said_as_a_path(tmp_path, capsys, monkeypatch):
    "Before: `--model ./nonexist` reached the hub client, which answered with its repo-id rules."
    monkeypatch.chdir(tmp_path)
    code, _, err = fpt('run', '--model', './nonexist', '--steps', 2, capsys=capsys)
    one_line(code, err, "model './nonexist' is neither 'tiny', an existing local directory, nor a hub id")

def test_export_of_a_killed_runs_partial_stage_prompt_warns(finished, tmp_path, capsys):
    "Before: a run killed before its summary exported a prompt chosen on a partial stage without the partial-model warning."
    d = unfinished(finished, tmp_path/'killed')
    for f in ('best_last.json', 'best_last_prompt.safetensors'): (d/f).unlink()   # killed before its last stage (the full model)...
    write_json(d/'best.json', dict(read_json(d/'best.json'), stage=0))       # ... with its best prompt from the first, a partial model
    with pytest.warns(UserWarning, match=r"trained this prompt on a partial model \(enc 1L, enc ffn 32\)"):
        code, _, err = fpt('export-peft', d, tmp_path/'adapter', capsys=capsys)
    assert code == 0, err

def test_targets_cut_by_max_target_length_are_said(data_dir, tmp_path, capsys):
    "Before: --max-target-length 3 on MNLI cut every target (no label could be generated) and only the summary counted them."
    code, out, err = fpt('run', '--task', 'mnli', '--data-dir', data_dir, '--method', 'pt', '--steps', 2, '--batch-size', 4,
                         '--train-limit', 8, '--eval-limit', 4, '--max-target-length', 3, '--out-dir', tmp_path/'run', '--no-progress', capsys=capsys)
    assert code == 0, err
    assert 'note: 12 of 12 targets are longer than 3 tokens (max_target_length) and were cut' in out, out
    assert read_json(tmp_path/'run'/'summary.json')['targets_truncated'] == 12


# ---- a run writes over nothing it did not write; numbers out of range; tables of unfinished runs; evaluations by prompt

def test_a_folder_that_is_not_a_run_is_not_written_over(tmp_path, capsys):
    "Before: a user's own config.json and log.jsonl in --out-dir were replaced by the run's, without a word."
    d = tmp_path/'mine'; d.mkdir()
    (d/'config.json').write_text('{"lr": 1}'); (d/'log.jsonl').write_text('my notes\n')
    before = snapshot(d)
    code, _, err = fpt('run', '--method', 'pt', '--steps', 2, '--out-dir', d, '--no-progress', capsys=capsys)
    one_line(code, err, "holds config.json, log.jsonl but no run's config.json: it is not a run folder")
    assert snapshot(d) == before

def test_a_killed_run_that_lost_its_config_is_told_to_restore_it(finished, tmp_path, capsys):
    """config_gone_said_not_a_run (session 22): a killed run whose config.json was deleted was told it "is not a run folder"
    and to pick another out_dir, though restoring config.json lets it go on."""
    d = unfinished(finished, tmp_path/'run'); keep = (d/'config.json').read_bytes(); (d/'config.json').unlink()
    before = snapshot(d)
    code, _, err = fpt('run', '--method', 'fpt_cr', '--steps', 6, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 32,
                       '--eval-limit', 8, '--score-examples', 16, '--out-dir', d, '--no-progress', capsys=capsys)
    one_line(code, err, "but its config.json is gone (deleted or moved), and a run goes on only from its own config: restore config.json")
    assert snapshot(d) == before
    (d/'config.json').write_bytes(keep)   # restored, it goes on to the same end as the run never killed
    assert run_experiment(out_dir=str(d), **RUN)['steps'] == 6
    assert torch.equal(load_prompt(d/'prompt.safetensors'), load_prompt(finished/'prompt.safetensors'))

def test_no_resume_on_a_run_is_refused(finished, tmp_path, capsys):
    "Before: --no-resume wrote a new run over a finished one, beside its old checkpoints, evaluations and TensorBoard events."
    d = copy(finished, tmp_path/'run'); before = snapshot(d)
    with pytest.raises(ValueError, match=r'resume=False \(fpt run --no-resume\) would write over it'):
        run_experiment(out_dir=str(d), **{**RUN, 'resume': False})
    assert snapshot(d) == before

@pytest.mark.parametrize('flag,value,says', [('--num-beams', 0, 'argument --num-beams: must be at least 1, got 0'),
                                             ('--batch-size', 0, 'argument --batch-size: must be at least 1, got 0'),
                                             ('--eval-batch-size', 0, 'argument --eval-batch-size: must be at least 1, got 0'),
                                             ('--max-target-length', 1, 'argument --max-target-length: must be at least 2, got 1'),
                                             ('--eval-every', -1, 'at least 0 (0: only at the end of each stage), got -1'),
                                             ('--early-stop', -2, 'argument --early-stop: must be at least 0 (0: never), got -2'),
                                             ('--checkpoint-every', -1, 'argument --checkpoint-every: must be at least 0'),
                                             ('--seed', -1, 'argument --seed: must be at least 0, got -1')])
def test_numbers_out_of_range_are_refused(flag, value, says, tmp_path, capsys):
    "Before: --num-beams 0 ended in a ZeroDivisionError traceback, --batch-size 0 ran with 32, --early-stop -2 stopped at step 1."
    code, _, err = fpt('run', '--method', 'pt', '--steps', 2, flag, value, '--out-dir', tmp_path/'r', capsys=capsys)
    one_line(code, err, says)
    assert not (tmp_path/'r').exists()

@pytest.mark.parametrize('name,value', [('num_beams', 0), ('eval_batch_size', 0), ('max_target_length', 0), ('eval_every', -1),
                                        ('early_stop', -1), ('checkpoint_every', -1), ('seed', -1)])
def test_run_experiment_refuses_numbers_out_of_range(name, value, tmp_path, monkeypatch):
    """The papermill path checks types only; run_experiment refuses the values before anything is written, and before the
    model is loaded (minutes for a large one; the trainer's own check of some of them comes only after)."""
    import fpt_nb.run as run_mod
    def setup(*a, **k): raise AssertionError('the model was loaded before the values were refused')
    monkeypatch.setattr(run_mod, 'setup', setup)
    with pytest.raises(ValueError, match=f'{name} must be a whole number of at least'):
        run_experiment(out_dir=str(tmp_path/'r'), **{**RUN, name: value})
    assert not (tmp_path/'r').exists()

def test_a_seed_too_large_for_torch_is_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match=r"seed must be below 2\*\*63 \(torch's limit\), got 18446744073709551616"):
        run_experiment(out_dir=str(tmp_path/'r'), **{**RUN, 'seed': 2**64})
    assert not (tmp_path/'r').exists()

def test_tables_leave_out_unfinished_runs_and_unreadable_summaries(finished, tmp_path, capsys):
    "Before: a run killed at step 68 of 300 was a normal row; one corrupt summary.json stopped every table."
    root = tmp_path/'runs'; copy(finished, root/'done')
    cut = copy(finished, root/'cut')
    write_json(cut/'summary.json', dict(read_json(cut/'summary.json'), steps=3, stopped='signal 15 at step 3'))
    (root/'broken').mkdir(); (root/'broken'/'summary.json').write_text('{"task": ')
    said = []
    assert [r['run_dir'] for r in collect_runs(root, say=said.append)] == [str(root/'done')]
    assert said[0].startswith(f"left out: run summary {root/'broken'/'summary.json'} is not valid JSON")
    assert said[1] == f"left out: run {cut} is unfinished at step 3 of 6 (signal 15 at step 3): run its command again to finish it"
    assert len(collect_runs(root, unfinished=True, say=said.append)) == 2
    code, out, err = fpt('tables', root, '--out', tmp_path/'t', capsys=capsys)
    assert code == 0 and 'left out: run' in out and str(cut) in out, err

def test_evaluations_of_other_prompts_keep_their_own_files(finished, tmp_path):
    "Before: `--prompt final` wrote over the best prompt's eval-validation-<limit>.json."
    d = copy(finished, tmp_path/'run')
    best, final = (evaluate_run(d, limit=4, prompt=p, device='cpu', progress=False) for p in ('best', 'final'))
    assert (best['file'], final['file']) == ('eval-validation-4.json', 'eval-validation-4-final.json')
    assert read_json(d/'eval-validation-4.json')['prompt'] == 'best_prompt.safetensors'

def test_evaluate_refuses_another_kind_of_model(finished, tmp_path, capsys):
    """Before: a T5 prompt was scored on tiny-llama (as wide as tiny T5) and the command exited 0. A folder holding a model of
    another kind is refused by the class the run trained on; another built-in model by name (evaluate_on_another_built_in:
    tiny-relu, the same class as the run's tiny, was scored and its result written over the run's eval-validation file)."""
    from fpt_nb.causal import load_causal
    d = copy(finished, tmp_path/'run'); before = snapshot(d)
    llama = tmp_path/'llama'
    for x in load_causal('tiny-llama'): x.save_pretrained(llama)
    hub = copy(finished, tmp_path/'hub')   # as if trained on a hub id: no digest to check a folder against, only the class
    s = read_json(hub/'summary.json')
    write_json(hub/'summary.json', dict(s, config=dict(s['config'], model='example/t5'), model_ref=dict(hub_id='example/t5')))
    code, _, err = fpt('evaluate', hub, '--limit', 4, '--model', llama, '--no-progress', capsys=capsys)
    one_line(code, err, f'trained its prompt on a T5ForConditionalGeneration, but {llama} is a LlamaForCausalLM')
    for other in ('tiny-llama', 'tiny-relu', llama):
        code, _, err = fpt('evaluate', d, '--limit', 4, '--model', other, '--no-progress', capsys=capsys)
        one_line(code, err, f"trained its prompt on 'tiny', and '{other}' is another model (a built-in model is only itself): "
                            "leave model out to evaluate it on the run's own")   # (model_use_wording: the way out, said)
    assert snapshot(d) == before
    assert evaluate_run(d, limit=4, device='cpu', progress=False)['model'] == 'tiny'   # each result names the model it was scored on


def test_evaluate_refuses_scores_that_are_not_the_runs(tmp_path):
    """evaluate_with_foreign_scores: a run's scores.safetensors replaced by another run's (other neurons kept) was used, and
    the result written as the run's; `fpt run` refused the same folder. A deleted one is named. (`fr`: its one stage is partial.)"""
    kw = dict(steps=4, batch_size=4, prompt_length=2, train_limit=8, eval_limit=4, score_examples=8, device='cpu', progress=False)
    run_experiment('toy', 'tiny', 'fr', tmp_path/'a', **kw)
    run_experiment('toy', 'tiny', 'fr', tmp_path/'b', score_sampling='first', **kw)
    (tmp_path/'a'/'scores.safetensors').write_bytes((tmp_path/'b'/'scores.safetensors').read_bytes())
    before = snapshot(tmp_path/'a')
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path/'a'/'scores.safetensors'} is not the scores run {tmp_path/'a'} trained with")):
        evaluate_run(tmp_path/'a', limit=4, device='cpu', progress=False)
    (tmp_path/'a'/'scores.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='by scores.safetensors, which is gone: restore it'):
        evaluate_run(tmp_path/'a', limit=4, device='cpu', progress=False)
    assert not any(p.startswith('eval-') for p in snapshot(tmp_path/'a')) and not any(p.startswith('eval-') for p in before)


def test_a_subcommands_unknown_flag_names_the_subcommand(tmp_path, capsys):
    "Before: `fpt tables X --bogus` answered with the top-level usage, which does not list the subcommand's flags."
    code, _, err = fpt('tables', tmp_path, '--bogus', capsys=capsys)
    one_line(code, err, 'fpt tables: error: unrecognized arguments: --bogus (see fpt tables --help)')

def test_tables_out_that_is_a_file(finished, tmp_path, capsys):
    "Before: a raw `[Errno 17] File exists`."
    (tmp_path/'t').write_text('mine')
    code, _, err = fpt('tables', finished, '--out', tmp_path/'t', capsys=capsys)
    one_line(code, err, 'is a file: expected a folder for the tables')
    assert (tmp_path/'t').read_text() == 'mine'

def test_export_peft_makes_no_hub_lookup_for_a_built_in_backbone(finished, tmp_path, recwarn):
    "Before: PEFT looked up config.json of 'tiny' on the hub and warned twice (a failed lookup, 'vocabulary not modified')."
    from fpt_nb.peft import export_peft
    export_peft(finished, tmp_path/'adapter')
    assert not [str(w.message) for w in recwarn if 'config' in str(w.message).lower()], [str(w.message) for w in recwarn]


# ---------------------------------------------------------------------------------------------------------------
# Found by a new user's audit (session 6): what a table compares with, and what TensorBoard keeps

def test_pt_run_must_be_a_finished_pt_run_of_the_same_task_and_model(finished, tmp_path, capsys):
    "Before: `--pt-run` took any summary: an FPT run, a PT run stopped half-way (FPT then looked cheap), another task's."
    small = ['--steps', 4, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 16, '--eval-limit', 8, '--score-examples', 8, '--no-progress']
    pt = tmp_path/'pt'
    assert fpt('run', '--method', 'pt', '--out-dir', pt, *small, capsys=capsys)[0] == 0
    half = copy(pt, tmp_path/'half')
    write_json(half/'summary.json', dict(read_json(half/'summary.json'), steps=1, stopped='signal 15 at step 1'))
    for run, extra, says in [(finished, [], 'is not a PT run (its method is fpt_cr)'),
                             (half, [], 'is unfinished at step 1 of 4'),
                             (pt, ['--model', 'tiny-relu'], 'is PT on toy with tiny: this run is toy with tiny-relu')]:
        code, _, err = fpt('run', '--method', 'fpt_cr', '--out-dir', tmp_path/'new', '--pt-run', run, *small, *extra, capsys=capsys)
        one_line(code, err, says)
        assert not (tmp_path/'new').exists()
    code, out, err = fpt('run', '--method', 'fpt_cr', '--out-dir', tmp_path/'new', '--pt-run', pt, '--seed', 1, *small, capsys=capsys)
    assert code == 0 and f"--pt-run {pt} has seed 0, this run 1" in out, err
    assert '\nTable 2 (PT vs FPT)\n' in out, out   # pt_run_not_tabulated: the PT run named is compared in the table
    assert 'differs in' not in out
    # pt_run_recipe_unsaid: a PT run of another recipe was overlaid without a word (pt_run_steps_unsaid: nor its steps said)
    code, out, err = fpt('run', '--method', 'fpt_cr', '--out-dir', tmp_path/'other', '--pt-run', pt, '--lr', 1.0, *small, '--steps', 5,
                         capsys=capsys)
    assert code == 0 and (f"--pt-run {pt} differs in lr (0.3 there, 1.0 here), steps (4 there, 5 here): its curve is another "
                          f"recipe's") in out, err

def test_several_methods_do_not_go_inside_a_run_folder(finished, tmp_path, capsys):
    d = copy(finished, tmp_path/'run')
    before = snapshot(d)
    code, _, err = fpt('run', '--method', 'pt', 'fpt_cr', '--steps', 4, '--out-dir', d, capsys=capsys)
    one_line(code, err, f"out_dir {d} is a run's folder: 2 runs would go into folders inside it")
    assert snapshot(d) == before
    (d/'config.json').unlink(); before = snapshot(d)   # its other files still make it a run's folder
    code, _, err = fpt('run', '--method', 'pt', 'fpt_cr', '--steps', 4, '--out-dir', d, capsys=capsys)
    one_line(code, err, "is a run's folder")
    assert snapshot(d) == before

def test_one_method_does_not_go_into_a_folder_of_runs(finished, tmp_path, capsys):
    """one_run_into_a_folder_of_runs: `fpt run --method pt fpt_cr --out-dir X` writes X/pt and X/fpt_cr. Run again with one
    method to go on with one of them, it trained a new run in X itself, beside them (and fpt tables X then took both)."""
    d = copy(finished, tmp_path/'runs'/'fpt_cr').parent
    (d/'t5'/'config.json').parent.mkdir(); (d/'t5'/'config.json').write_text('{"model_type": "t5"}')   # a model kept there is no run
    before = snapshot(d)
    code, _, err = fpt('run', '--method', 'fpt_cr', '--steps', 6, '--out-dir', d, capsys=capsys)
    one_line(code, err, f"out_dir {d} is a folder of runs (fpt_cr), and one run goes into its --out-dir itself: give --out-dir "
                        f"{d/'fpt_cr'} to go on with its fpt_cr run, or a new folder (nothing was changed)")
    code, _, err = fpt('run', '--method', 'pt', '--steps', 6, '--out-dir', d, capsys=capsys)
    one_line(code, err, f"out_dir {d} is a folder of runs (fpt_cr), and one run goes into its --out-dir itself: give a new --out-dir")
    assert snapshot(d) == before
    (copy(finished, d/'pt')/'summary.json').unlink()   # runs_in_needs_both_records: a killed run (no summary) is a run there too
    code, _, err = fpt('run', '--method', 'fpt_cr', '--steps', 6, '--out-dir', d, capsys=capsys)
    one_line(code, err, f"out_dir {d} is a folder of runs (fpt_cr, pt), and one run goes into its --out-dir itself")

def test_tables_say_which_rows_are_unfinished_and_which_runs_have_no_summary(finished, tmp_path, capsys):
    "Before: `--unfinished` rows looked like any other, and a killed run (no summary) was silently missing."
    copy(finished, tmp_path/'runs'/'done')
    cut = copy(finished, tmp_path/'runs'/'cut')
    write_json(cut/'summary.json', dict(read_json(cut/'summary.json'), steps=3, seed=1, stopped='signal 15 at step 3'))
    unfinished(finished, tmp_path/'runs'/'killed')
    code, out, err = fpt('tables', tmp_path/'runs', '--unfinished', '--score', 'final', capsys=capsys)
    assert code == 0, err
    assert f"left out: run {tmp_path/'runs'/'killed'} has no summary: it was stopped before writing one (its last checkpoint is {STEP(3)})" in out
    assert '(unfinished: 3/6 steps)' in (tmp_path/'runs'/'table2.md').read_text()
    assert '3/6' in (tmp_path/'runs'/'table2.csv').read_text()
    pt = tmp_path/'runs'/'pt'   # a PT run stopped half-way: the finished FPT run's row compared with it says so
    run_experiment(out_dir=str(pt), **{**RUN, 'method': 'pt'})
    write_json(pt/'summary.json', dict(read_json(pt/'summary.json'), steps=2, stopped='signal 15 at step 2'))
    code, out, err = fpt('tables', tmp_path/'runs', '--unfinished', '--score', 'final', capsys=capsys)
    rows = [l for l in (tmp_path/'runs'/'table2.md').read_text().splitlines() if '| FPT_CR' in l]
    assert code == 0 and len(rows) == 1 and '(vs an unfinished PT)' in rows[0], rows   # seeds 0 and 1 in one row

def test_tensorboard_drops_the_steps_a_killed_run_took_after_its_checkpoint(finished, tmp_path):
    "Before: a resumed run's TensorBoard kept both the killed run's steps after its checkpoint and the new ones."
    from torch.utils.tensorboard import SummaryWriter
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    d = unfinished(finished, tmp_path/'run')
    w = SummaryWriter(str(d/'tb'))   # what the killed run wrote up to its step-3 checkpoint (kept), and after it (dropped)
    for step in (3, 4, 5): w.add_scalar('step/loss', 99.0, step)
    w.close()
    run_experiment(out_dir=str(d), **RUN)
    ev = EventAccumulator(str(d/'tb')); ev.Reload()
    assert [(e.step, e.value == 99.0) for e in ev.Scalars('step/loss')] == [(3, True), (4, False), (5, False), (6, False)]

def test_a_deleted_newest_checkpoint_names_the_way_out(finished, tmp_path):
    d = copy(finished, tmp_path/'run'); shutil.rmtree(d/'checkpoints'/STEP(6))
    before = snapshot(d)
    with pytest.raises(ValueError, match=f"names {STEP(6)}, which does not exist: .*to resume from the newest one left, write '{STEP(3)}' into"):
        run_experiment(out_dir=str(d), **RUN)
    assert snapshot(d) == before

def test_a_rerun_reports_its_own_time_not_the_old_runs(finished, tmp_path, capsys):
    "Before: re-running a finished run printed the old run's wall time as 'for this command'."
    d = copy(finished, tmp_path/'run')
    write_json(d/'summary.json', dict(read_json(d/'summary.json'), wall_seconds=98765.0))
    code, out, err = fpt('run', '--task', 'toy', '--method', 'fpt_cr', '--out-dir', d, '--steps', 6, '--batch-size', 4, '--prompt-length', 4,
                         '--train-limit', 32, '--eval-limit', 8, '--eval-every', 0, '--score-examples', 16, '--no-progress', capsys=capsys)
    assert code == 0 and 'is finished: nothing to do' in out and ' s for this command' in out and '98765 s' not in out, out
    assert ' gone ' not in out, out   # finished_gone_note_always (session 24): every file is there, so none is said to be gone

def test_the_summary_times_the_training_alone(finished):
    """train_seconds_of_the_command: a summary's train_seconds is the time its steps took (its stages' seconds, the last step's
    logged wall), not the command's, which adds loading, neuron scoring and evaluations (the tables' wall % PT read it)."""
    s = read_json(finished/'summary.json')
    last = [r for r in map(json.loads, (finished/'log.jsonl').read_text().splitlines()) if r['kind'] == 'step'][-1]
    assert s['train_seconds'] == last['wall'] == pytest.approx(sum(x['seconds'] for x in s['stages']), rel=1e-9)
    assert s['train_seconds'] < s['wall_seconds']

def test_the_final_prompt_of_a_run_stopped_at_a_stage_end_is_evaluated_on_that_stage(tmp_path, monkeypatch):
    """final_prompt_next_stage: a run stopped by SIGTERM at the end of its second stage (step 2 of stages of 1, 1, 1 and 3
    steps) ends with a final prompt trained on that stage; `evaluate_run(prompt='final')` scores it on the model of that
    stage (2 layers, FFN 64), not on the next one's."""
    import signal
    from conftest import sigterm_in_step
    sigterm_in_step(monkeypatch, 2)
    d = tmp_path/'run'
    s = run_experiment(out_dir=str(d), **RUN)
    monkeypatch.undo()
    assert (s['steps'], s['stopped'], [x['steps'] for x in s['stages']]) == (2, f'signal {int(signal.SIGTERM)} at step 2', [1, 1, 1, 3])
    out = evaluate_run(d, prompt='final', limit=4, progress=False)
    assert (out['prompt_step'], out['stage_index'], out['stage']) == (2, 1, s['stages'][1]['name'])

def test_evaluate_generates_as_the_run_did(tmp_path, monkeypatch):
    """Planted by a mutation audit (session 19): `evaluate_run` scored a partial stage's prompt on the full model
    (evaluate_on_the_full_model), generated with the run's beams where told others (evaluate_beams_override_ignored), to the
    task's target length, not the run's (evaluate_target_length_of_the_task), and cut inputs at 492 tokens, not the run's
    (evaluate_max_input_length_default): each recorded as asked, and the scores not the run's."""
    from conftest import sigterm_in_step
    import fpt_nb.train as T
    from fpt_nb.arch import ffn_widths
    from fpt_nb.checkpoint import run_fingerprint
    sigterm_in_step(monkeypatch, 2)   # stopped at the end of stage 2 of 4: its final prompt is that stage's
    d = tmp_path/'run'
    s = run_experiment(out_dir=str(d), **dict(RUN, max_input_length=16, max_target_length=3))
    monkeypatch.undo()
    seen, real = [], T.generate_texts
    def spy(pt, tok, items, max_new_tokens, batch_size=64, num_beams=1, *a, **k):
        seen.append(dict(widths=ffn_widths(pt.model), beams=num_beams, new=max_new_tokens, longest=max(len(i['input_ids']) for i in items)))
        return real(pt, tok, items, max_new_tokens, batch_size, num_beams, *a, **k)
    monkeypatch.setattr(T, 'generate_texts', spy)
    out = evaluate_run(d, prompt='final', limit=4, progress=False, num_beams=2)
    assert (out['stage_index'], out['num_beams']) == (1, 2)
    new = run_fingerprint(d)['evaluation']['max_new_tokens']
    assert seen and all((x['beams'], x['new'], x['longest']) == (2, new, 16) for x in seen), seen
    assert seen[0]['widths'] == {'encoder': [64, 64], 'decoder': [128] * 4}   # stage 2's model: 2 layers, FFN 64 (the toy keeps its decoder)

def test_the_fingerprint_records_the_prompt_init_the_model_used():
    "Before: it recorded `TrainConfig.prompt_init`, which nothing read: a prompt initialised from the vocabulary was recorded as uniform."
    from fpt_nb.prompt import PromptT5
    from fpt_nb.train import TrainConfig, fingerprint, paper_schedule
    model, _ = load_t5('tiny')
    for init in ('uniform', 'vocab'):
        pt = PromptT5(model, prompt_length=4, init=init)
        assert fingerprint(pt, paper_schedule('pt', 4, model), TrainConfig(batch_size=4))['prompt_init'] == init

def _resaved(src:Path, dst:Path) -> Path:
    "The same scores file with its metadata in another order: what `save_scores` writes in another process (safetensors does not keep the order)."
    import struct
    b = src.read_bytes(); n = struct.unpack('<Q', b[:8])[0]; head = json.loads(b[8:8 + n])
    head['__metadata__'] = dict(reversed(list(head['__metadata__'].items())))
    h = json.dumps(head, separators=(',', ':')).encode(); h += b' ' * (-len(h) % 8)
    dst.write_bytes(struct.pack('<Q', len(h)) + h + b[8 + n:])
    return dst

def test_a_run_given_back_its_own_scores_saved_again_goes_on(finished, tmp_path):
    """Review of d675f54: `_is_own_scores` compares bytes, but safetensors writes the metadata in a different order in another
    process, so the run's own scores as another run saved them (table1/table2 save the scores they were given), or recomputed
    with the same settings, are refused, with "its score_settings differ(s)" and nothing about the file."""
    from fpt_nb.scores import load_scores
    from fpt_nb.train import scores_digest
    d = unfinished(finished, tmp_path/'run')
    f = _resaved(d/'scores.safetensors', tmp_path/'resaved.safetensors')
    assert f.read_bytes() != (d/'scores.safetensors').read_bytes()
    assert scores_digest(load_scores(f)) == scores_digest(load_scores(d/'scores.safetensors'))   # the same scores
    s = run_experiment(out_dir=str(d), score_file=str(f), **RUN)
    assert s['steps'] == 6 and torch.equal(load_prompt(d/'prompt.safetensors'), load_prompt(finished/'prompt.safetensors'))

def test_a_run_given_scores_resumes_without_naming_them_again(finished, tmp_path):
    """Review of d675f54 (the other direction of "a run given back its own scores"): a run started with score_file (table1 and
    table2 give every FR/CR run after the first the first one's file) keeps a copy in its folder; resumed without score_file
    (the notebook rerun with only the killed methods, or `fpt run` without the flag) it is refused: "score_settings differ(s)"."""
    done, given = tmp_path/'given', str(finished/'scores.safetensors')
    run_experiment(out_dir=str(done), score_file=given, **RUN)
    d = unfinished(done, tmp_path/'run')
    s = run_experiment(out_dir=str(d), **RUN)
    assert s['steps'] == 6 and torch.equal(load_prompt(d/'prompt.safetensors'), load_prompt(done/'prompt.safetensors'))
    # score_file_origin_lost (session 22): the records still name the file the run was given, not the copy it read on resume
    assert s['scores']['file'] == given and s['config']['score_file'] == given
    assert json.loads((d/'config.json').read_text())['score_file'] == given
    s = run_experiment(out_dir=str(unfinished(d, tmp_path/'again')), **RUN)   # and again from that resume's records
    assert s['scores']['file'] == given and s['steps'] == 6

def test_fit_again_after_ctrl_c_keeps_the_log(tmp_path):
    """Review of d675f54: Ctrl-C says the step is checkpointed; calling `fit()` again on the same Trainer (a notebook) goes on
    in memory, but `RunRecord.open(resumed=False)` deletes log.jsonl: the log then starts at the step after the interrupt,
    and since this commit every later resume of the folder is refused ("it lacks 1, 2, ...")."""
    from fpt_nb.batches import encode
    from fpt_nb.prompt import PromptT5
    from fpt_nb.tasks import load_examples
    from fpt_nb.train import Trainer, TrainConfig, paper_schedule
    model, tok = load_t5('tiny')
    items = encode('toy', tok, load_examples('toy', 'train', limit=32))
    tr = Trainer(PromptT5(model, 4), paper_schedule('fpt_ld', 10, model), items, TrainConfig(batch_size=4, prompt_length=4, eval_every=2),
                 tmp_path, evaluate=lambda pt: dict(score=0.5), metric='score', progress=False)
    count = tr._count
    def interrupt_at_5(*a, **k):
        count(*a, **k)
        if tr.state['step'] == 5: tr._interrupted = True
    tr._count = interrupt_at_5
    with pytest.raises(KeyboardInterrupt): tr.fit()
    tr._count = count
    tr.fit()
    steps = [r['step'] for r in map(json.loads, (tmp_path/'log.jsonl').read_text().splitlines()) if r['kind'] == 'step']
    assert steps == list(range(1, 11)), steps


def test_evaluate_reads_the_data_the_run_read(tmp_path, data_dir, monkeypatch):
    """evaluate_data_from_the_environment: a run given data_dir, evaluated later with no data_dir and FPT_DATA_DIR unset, went
    to the hub (another copy of the split, or an error offline) instead of the folder the run read; a folder no longer there
    is named in the error."""
    from fpt_nb.run import run_experiment, evaluate_run
    run = tmp_path/'run'
    run_experiment('mnli', 'tiny', 'pt', run, data_dir=str(data_dir), steps=2, batch_size=4, prompt_length=2, train_limit=8,
                   eval_limit=4, progress=False)
    monkeypatch.delenv('FPT_DATA_DIR', raising=False)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    ev = evaluate_run(run, limit=4, progress=False)
    assert ev['data_dir'] == str(data_dir) and ev['n'] == 4
    # eval_data_unrecorded: the file names the rows it scored by content, as the summary names the run's (not by a path alone)
    assert ev['data'] == {k: v for k, v in read_json(run/'summary.json')['data']['eval'].items() if k != 'limit'}   # the same 4 rows
    assert ev['data']['source'] == 'local mnli/validation_matched.jsonl'
    s = json.loads((run/'summary.json').read_text())
    s['config']['data_dir'] = str(tmp_path/'moved')
    (run/'summary.json').write_text(json.dumps(s))
    with pytest.raises(FileNotFoundError, match=re.escape(f"read its data from {tmp_path/'moved'}, which is not here")):
        evaluate_run(run, limit=4, progress=False)


def test_an_evaluation_of_other_rows_keeps_the_earlier_one(tmp_path, data_dir):
    """eval_file_replaced: the same split, limit and prompt scored again on other rows (here: a data folder whose first
    validation row was edited) was written over the earlier evaluation's file; it goes beside it, named by its rows'
    hash, and the earlier file is kept byte for byte. Scored again on the same rows, each file is replaced in place."""
    run = tmp_path/'run'
    run_experiment('mnli', 'tiny', 'pt', run, data_dir=str(data_dir), steps=2, batch_size=4, prompt_length=2, train_limit=8,
                   eval_limit=4, progress=False)
    first = evaluate_run(run, limit=4, progress=False)
    kept = (run/'eval-validation-4.json').read_bytes()
    lines = (data_dir/'mnli'/'validation_matched.jsonl').read_text().splitlines()[:4]
    row = json.loads(lines[0]); row['hypothesis'] = 'An edited hypothesis.'
    (tmp_path/'other'/'mnli').mkdir(parents=True)
    (tmp_path/'other'/'mnli'/'validation_matched.jsonl').write_text('\n'.join([json.dumps(row), *lines[1:]]) + '\n')
    other = evaluate_run(run, data_dir=str(tmp_path/'other'), limit=4, progress=False)
    assert other['data']['sha'] != first['data']['sha'] and other['file'] == f"eval-validation-4-data{other['data']['sha'][:8]}.json"
    assert (run/'eval-validation-4.json').read_bytes() == kept and read_json(run/other['file'])['data'] == other['data']
    again = evaluate_run(run, limit=4, progress=False)
    assert again['file'] == 'eval-validation-4.json' and again['data'] == first['data']
    # split_by_file_name: MNLI's validation named by its file (`--split validation_matched`) wrote a second file for the same rows
    stem = evaluate_run(run, split='validation_matched', limit=4, progress=False)
    assert (stem['file'], stem['split'], stem['data'], stem['accuracy']) == ('eval-validation-4.json', 'validation', first['data'], first['accuracy'])
    assert evaluate_run(run, data_dir=str(tmp_path/'other'), limit=4, progress=False)['file'] == other['file']
    assert sorted(p.name for p in run.glob('eval-*.json')) == sorted(['eval-validation-4.json', other['file']])


def test_a_split_named_by_its_local_file_is_its_logical_split(tmp_path, data_dir):
    """SQuAD 2.0's local training file is `train_v1_answerable` (the hub's `train`): named so, it is scored and filed as the
    logical split it is read as, `train`, not under the file's name (read from the hub, a name is taken by the hub's splits)."""
    run = tmp_path/'run'
    run_experiment('squad2', 'tiny', 'pt', run, data_dir=str(data_dir), steps=2, batch_size=4, prompt_length=2, train_limit=8,
                   eval_limit=2, max_target_length=4, progress=False)
    ev = evaluate_run(run, split='train_v1_answerable', limit=2, progress=False)
    assert (ev['file'], ev['split'], ev['n']) == ('eval-train-2.json', 'train', 2)

def test_a_finished_run_is_scored_with_new_evaluation_settings_for_real(finished, tmp_path, capsys):
    """rescore_with_the_runs_beams: rerun with another num_beams, a finished run said 'the new evaluation settings were scored'
    but scored with its old beams; with another eval_every, nothing differs in a finished run, and it says so."""
    d = copy(finished, tmp_path/'run'); before = snapshot(d)
    run_experiment(out_dir=str(d), **{**RUN, 'num_beams': 2})
    said = capsys.readouterr().out
    assert 'its best prompt was scored with the new evaluation settings (num_beams) into eval-validation-8-beams2.json' in said, said
    ev = read_json(d/'eval-validation-8-beams2.json')
    assert (ev['num_beams'], ev['n'], ev['model']) == (2, 8, 'tiny')
    run_experiment(out_dir=str(d), **{**RUN, 'eval_every': 3})
    said = capsys.readouterr().out
    assert 'nothing to do (its summary is unchanged; a new evaluation interval changes nothing in a finished run)' in said, said
    after = snapshot(d)
    assert {k: v for k, v in after.items() if k in before} == before and set(after) - set(before) == {'eval-validation-8-beams2.json'}

@pytest.mark.parametrize('where', ['best_file', 'best_checkpoint'])
def test_an_earlier_versions_checkpoint_puts_back_its_best_and_later_checkpoints_hold_it(where, tmp_path):
    """old_checkpoint_best_not_kept, old_checkpoint_best_from_file, old_checkpoint_best_from_its_checkpoint (session 22): a
    checkpoint written before checkpoints held the best prompts (no `kept_prompt.*`) goes on with the best prompt found where it
    still is: its own file, still of the best step (`best_file`), or, when a kill had left a later step's prompt in that file,
    the best step's checkpoint (`best_checkpoint`). The file is put back, and the checkpoints written after the resume hold it."""
    from safetensors.torch import load_file, save_file
    from fpt_nb.batches import encode
    from fpt_nb.checkpoint import save_prompt
    from fpt_nb.prompt import PromptT5
    from fpt_nb.tasks import load_examples
    from fpt_nb.train import Trainer, TrainConfig, paper_schedule
    model, tok = load_t5('tiny')
    items = encode('toy', tok, load_examples('toy', 'train', limit=32))
    def trainer(d, *scores):   # the scores of its evaluations, in turn
        scores = iter(scores)
        keep = 2 if where == 'best_file' else 3   # (2: step 2's checkpoint is pruned, and only the file holds its prompt)
        return Trainer(PromptT5(load_t5('tiny')[0], 4), paper_schedule('pt', 6, model), items,
                       TrainConfig(batch_size=4, prompt_length=4, eval_every=2, keep_checkpoints=keep), d,
                       evaluate=lambda pt: dict(score=next(scores)), metric='score', progress=False)
    trainer(tmp_path/'whole', 0.9, 0.5, 0.4).fit()   # evaluations at steps 2, 4, 6: the best stays step 2's
    whole = tmp_path/'whole'; best = load_prompt(whole/'best_prompt.safetensors')
    d = copy(whole, tmp_path/'run')
    shutil.rmtree(d/'checkpoints'/STEP(6)); (d/'checkpoints'/'latest').write_text(STEP(4))   # killed after step 4's checkpoint
    c = d/'checkpoints'/STEP(4)
    write_json(c/'state.json', {k: v for k, v in read_json(c/'state.json').items() if k != 'prompt_digest'})   # ... of an earlier version
    save_file({k: v for k, v in load_file(c/'state.safetensors').items() if not k.startswith('kept_prompt.')}, c/'state.safetensors')
    assert (d/'checkpoints'/STEP(2)).is_dir() == (where == 'best_checkpoint')
    if where == 'best_checkpoint': save_prompt(load_prompt(whole/'prompt.safetensors'), d/'best_prompt.safetensors', step=6)   # a later step's
    trainer(d, 0.4).fit()   # (step 6's evaluation again)
    assert torch.equal(load_prompt(d/'best_prompt.safetensors'), best) and read_json(d/'best.json')['step'] == 2
    assert torch.equal(load_file(d/'checkpoints'/STEP(6)/'state.safetensors')['kept_prompt.best'], best)
    assert torch.equal(load_prompt(d/'prompt.safetensors'), load_prompt(whole/'prompt.safetensors'))   # the same run to its end
