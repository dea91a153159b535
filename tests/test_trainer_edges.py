"""Edges a fifth mutation audit (session 22) found no test held, in the trainer core: the training settings and their checks, the
optimizer's schedule, checkpoints and the tables; and a sixth (session 23), over the rest of its candidates (checkpoint files,
the tables). Each test below failed under the bug named in its docstring."""
import json, re, time
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.tasks import toy_examples
from fpt_nb.batches import encode
from fpt_nb.partial import FULL
from fpt_nb.train import Trainer, TrainConfig, Phase

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

TOK = load_t5('tiny')[1]
ITEMS = encode('toy', TOK, toy_examples('train', 16))
CFG = dict(batch_size=4, prompt_length=4, seed=1)

def tiny() -> PromptT5: return PromptT5(load_t5('tiny')[0], prompt_length=4)

def _log(d) -> list[dict]: return [json.loads(l) for l in (d/'log.jsonl').read_text().splitlines()]

# ---- the settings

@pytest.mark.parametrize('bad, says', [(dict(batch_size=10, micro_batch_size=4), 'batch_size 10 is not a multiple of micro_batch_size 4'),
                                       (dict(lr=0.0), 'lr must be a positive number, got 0.0'),
                                       (dict(lr=float('inf')), 'lr must be a positive number, got inf'),
                                       (dict(log_every=0), 'log_every must be a whole number of at least 1, got 0'),
                                       (dict(keep_checkpoints=-1), 'keep_checkpoints must be a whole number of at least 0, got -1'),
                                       (dict(eval_every=1.5), 'eval_every must be a whole number of at least 0, got 1.5'),
                                       (dict(num_beams=True), 'num_beams must be a whole number of at least 1, got True'),
                                       (dict(num_beams=0), 'num_beams must be a whole number of at least 1, got 0')])
def test_settings_that_cannot_train_as_asked_are_refused(bad, says):
    """batch_not_multiple_of_micro, lr_zero_allowed, lr_inf_allowed: a batch of 10 in micro-batches of 4 trained
    steps of 8 examples (two micro-batches) under the name of 10; lr 0 trained nothing, and an infinite lr failed only at the
    first step, after the model was loaded and the folder written."""
    with pytest.raises(ValueError, match=re.escape(says)): TrainConfig(**bad).check()

def test_the_learning_rate_stays_constant_through_the_run(tmp_path):
    """lr_decays: the paper's Adafactor runs at a constant learning rate; a schedule that decayed it (1/(1+step)) went
    unnoticed, since only the optimizer's initial lr was checked. Every step is logged at lr 0.3, and the optimizer is still at it."""
    tr = Trainer(tiny(), [Phase(FULL, 4)], ITEMS, TrainConfig(**CFG), tmp_path/'run', progress=False)
    tr.fit()
    assert [r['lr'] for r in _log(tmp_path/'run') if r['kind'] == 'step'] == [0.3] * 4
    assert [g['lr'] for g in tr.opt.param_groups] == [0.3]

def test_an_evaluation_gives_back_a_model_in_eval_mode_as_it_was():
    """eval_leaves_train_mode: the evaluator generates in eval mode, then gives back the mode the model had; a model given
    in eval mode came back in training mode (dropout on for whatever the caller did with it next). Only the way back from
    training mode was tested."""
    from fpt_nb.train import evaluator
    rows = toy_examples('validation', 2)
    pt = tiny().eval()
    evaluator('toy', TOK, encode('toy', TOK, rows), rows, batch_size=2, max_new_tokens=2)(pt)
    assert not pt.training and not any(m.training for m in pt.modules())

# ---- the schedule and its log

def test_a_resume_in_the_middle_of_a_stage_logs_no_expansion(tmp_path):
    """expand_logged_mid_stage: a run resumed from a checkpoint in the middle of a stage rebuilds the model at that stage;
    it logged that as an expansion at the resume step (the plots draw one there: a stage boundary that is not). Expansions
    are logged at the stage starts only, once each: steps 0, 2 and 4 here, as in the run that was never stopped."""
    from fpt_nb.partial import layer_dropping
    from fpt_nb.checkpoint import write_atomic
    d = tmp_path/'run'
    phases = [Phase(layer_dropping(1), 2), Phase(layer_dropping(2), 2), Phase(FULL, 2)]
    cfg = TrainConfig(**CFG, checkpoint_every=1, keep_checkpoints=10)
    Trainer(tiny(), phases, ITEMS, cfg, d, progress=False).fit()
    assert [r['step'] for r in _log(d) if r['kind'] == 'expand'] == [0, 2, 4]
    names = [FULL.describe()] + [p.stage.describe() for p in phases]   # expand_from_itself (session 24): each from the stage before
    assert [(r['frm'], r['to']) for r in _log(d) if r['kind'] == 'expand'] == list(zip(names, names[1:]))
    for c in (d/'checkpoints').glob('step-*'):   # as if killed after step 3's checkpoint
        if c.name > 'step-0000003': __import__('shutil').rmtree(c)
    write_atomic(d/'checkpoints'/'latest', 'step-0000003')
    tr = Trainer(tiny(), phases, ITEMS, cfg, d, progress=False)
    tr.fit()
    assert tr.state['resumed_at'] == [3] and tr.state['step'] == 6
    assert [r['step'] for r in _log(d) if r['kind'] == 'expand'] == [0, 2, 4]

def test_a_run_that_evaluates_at_stage_ends_only_is_not_early_stopped_at_its_end(tmp_path):
    """early_stop_without_eval_every: with eval_every=0 (evaluations at stage ends only) a run has no evaluations of the
    last stage to count in a row, and early_stop never stops it; counting its one final evaluation as one made a run that
    trained every step say it was "early stop at step 2" when its full-model score was below the partial stage's."""
    from fpt_nb.partial import layer_dropping
    scores = iter([0.5, 0.4])
    tr = Trainer(tiny(), [Phase(layer_dropping(2), 1), Phase(FULL, 1)], ITEMS, TrainConfig(**CFG, early_stop=1), tmp_path/'run',
                 evaluate=lambda pt: dict(acc=next(scores)), progress=False)
    st = tr.fit()
    assert st['step'] == 2 and st['bad_evals'] == 1 and st['stopped'] is None

def test_a_runs_dropout_follows_its_seed_not_the_processs_random_state(tmp_path):
    """seed_not_set_at_begin: the trainer seeds torch with `cfg.seed` when it begins, so that dropout draws the same masks
    for the same seed whatever the process drew before; without it two runs of one seed and one initial prompt, after
    other draws, trained two different prompts."""
    pts = [tiny() for _ in range(2)]
    for pt in pts:
        for m in pt.modules():
            if isinstance(m, torch.nn.Dropout): m.p = 0.3
    with torch.no_grad(): pts[1].prompt.weight.copy_(pts[0].prompt.weight)
    for i, pt in enumerate(pts):
        torch.manual_seed(100 + i)   # what the process drew before differs
        Trainer(pt, [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/f'run{i}', progress=False).fit()
    assert torch.equal(pts[0].prompt.weight, pts[1].prompt.weight)

def test_the_settings_default_to_the_papers():
    """batch_default, prompt_len_default, keep_ckpt_default: `TrainConfig()` is the paper's recipe (batch 32, a
    20-vector prompt, Adafactor at 0.3 with weight decay 1e-5, clipping at 1.0, greedy decoding, dynamic padding) and keeps 2
    checkpoints (run_experiment leaves it at that); a changed default of the batch, the prompt length or the checkpoints
    kept went unnoticed, each test giving its own."""
    c = TrainConfig()
    assert (c.batch_size, c.micro, c.group, c.prompt_length, c.lr, c.weight_decay, c.clip_norm) == (32, 32, 32, 20, 0.3, 1e-5, 1.0)
    assert (c.num_beams, c.padding, c.keep_checkpoints, c.early_stop, c.eval_every, c.checkpoint_every, c.seed) == (1, 'dynamic', 2, 0, 0, 0, 0)


# ---- a sixth audit (session 23): the rest of the fifth's candidates

def test_a_partial_method_takes_levels_1_to_3_only():
    """level_zero: level 0 of `ld` (or `fr`, `cr`) passed and trained on one layer (and one FFN neuron): the quarters rounded to
    0, then raised to 1. Only the paper's three levels are taken."""
    from fpt_nb.train import method_stages
    model = load_t5('tiny')[0]
    for level in (0, 4):
        with pytest.raises(ValueError, match=f"method 'ld' trains one partial stage: level must be 1, 2 or 3 \\(smallest first\\), got {level}"):
            method_stages('ld', model, level)
    assert len(method_stages('ld', model, 3)) == 1

def test_an_evaluator_needs_one_item_per_example():
    """eval_items_examples_unchecked: items and examples of different lengths were scored pairwise as far as the shorter went
    (zip), a score over part of the evaluation set under the name of all of it."""
    from fpt_nb.train import evaluator
    examples = toy_examples('validation', 4)
    with pytest.raises(ValueError, match='3 encoded items for 4 examples: evaluation needs one item per example'):
        evaluator('toy', TOK, encode('toy', TOK, examples)[:3], examples)

def test_bf16_is_on_by_default_where_the_device_has_it(monkeypatch):
    """bf16_none_is_off: `bf16=None` (the default) autocasts on a CUDA device with bf16; it read as off, so GPU runs trained in
    fp32, as no CPU test could see. Here the device's answer is set by hand."""
    from fpt_nb.train import autocast_bf16
    for has in (True, False):
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: has)
        assert autocast_bf16(TrainConfig(), 'cuda') is has and autocast_bf16(TrainConfig(), 'cuda:1') is has
        assert autocast_bf16(TrainConfig(), 'cpu') is False and autocast_bf16(TrainConfig(bf16=False), 'cuda') is False
    assert autocast_bf16(TrainConfig(bf16=True), 'cpu') is True

def test_a_damaged_checkpoint_names_the_newest_one_before_it(tmp_path):
    """damaged_hint_oldest: the way out of a damaged latest checkpoint named the oldest one kept, not the newest before it:
    with three kept, a resume from it would lose a checkpoint's steps more than it needs to."""
    from fpt_nb.partial import FULL
    d = tmp_path/'run'
    cfg = TrainConfig(**CFG, checkpoint_every=1, keep_checkpoints=3)
    Trainer(tiny(), [Phase(FULL, 4)], ITEMS, cfg, d, progress=False).fit()
    assert sorted(p.name for p in (d/'checkpoints').glob('step-*')) == ['step-0000002', 'step-0000003', 'step-0000004']
    (d/'checkpoints'/'step-0000004'/'state.json').write_text('{')
    with pytest.raises(ValueError, match=re.escape(f"write 'step-0000003' into {d/'checkpoints'/'latest'} and run again")):
        Trainer(tiny(), [Phase(FULL, 4)], ITEMS, cfg, d, progress=False).fit()

def test_keep_checkpoints_0_keeps_every_one(tmp_path):
    """keep_zero_prunes_all: `keep_checkpoints=0` keeps every checkpoint; it pruned every one, the newest too, so a stopped run
    had nothing to go on from."""
    d = tmp_path/'run'
    Trainer(tiny(), [Phase(FULL, 3)], ITEMS, TrainConfig(**CFG, checkpoint_every=1, keep_checkpoints=0), d, progress=False).fit()
    assert sorted(p.name for p in (d/'checkpoints').glob('step-*')) == ['step-0000001', 'step-0000002', 'step-0000003']

def test_the_newest_checkpoint_is_a_folder_not_a_stray_file(tmp_path):
    """left_includes_files: with no `latest` pointer, the newest checkpoint is found by its name; a file named like one (a
    user's note, an editor's backup) was taken for it and the run failed to resume, though a whole checkpoint was there."""
    from fpt_nb.checkpoint import latest_checkpoint
    d = tmp_path/'run'
    Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG, checkpoint_every=1), d, progress=False).fit()
    (d/'checkpoints'/'latest').unlink()
    (d/'checkpoints'/'step-0000009.txt').write_text('a note')
    assert latest_checkpoint(d/'checkpoints') == d/'checkpoints'/'step-0000002'

def test_a_latest_pointer_that_is_a_folder_names_the_checkpoint_found_without_it(tmp_path):
    """latest_hint_unsaid (the sixteenth audit): a `latest` that is a folder is refused with the way out, remove it, and the
    checkpoint that is then found by its name; with no checkpoint left, the hint names none."""
    from fpt_nb.checkpoint import latest_checkpoint
    c = tmp_path/'checkpoints'
    (c/'latest').mkdir(parents=True)
    with pytest.raises(ValueError, match=r"latest is not a file: it names the newest checkpoint; remove it$"): latest_checkpoint(c)
    for n in ('step-0000001', 'step-0000003', 'step-0000002'): (c/n).mkdir()
    with pytest.raises(ValueError, match=r"; remove it \(the newest checkpoint is then found by its name, step-0000003\)$"):
        latest_checkpoint(c)

def test_a_stopped_runs_own_folder_is_not_a_folder_of_runs(tmp_path):
    """runs_in_config_only: a run's own folder is told from a folder of runs by its config.json as well as its summary: a stopped
    run (a config, no summary yet) holding a run folder of its own was taken for a folder of runs."""
    from fpt_nb.checkpoint import runs_in, write_json
    d = tmp_path/'run'
    (d/'inner').mkdir(parents=True); write_json(d/'inner'/'summary.json', {})
    assert runs_in(d) == ['inner']
    write_json(d/'config.json', {})
    assert runs_in(d) == []

def test_a_runs_fingerprint_is_its_checkpoints_where_config_json_is_gone(tmp_path):
    """run_fp_from_config_only: what a run was (its model's class, for `fpt export-peft` and `fpt evaluate`) is read from its
    latest checkpoint, and from config.json only where no checkpoint is left; with config.json gone it read as nothing."""
    from fpt_nb.checkpoint import run_fingerprint, trained_arch
    d = tmp_path/'run'
    (tr := Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), d, identity=dict(task='toy'), progress=False)).fit()
    assert not (d/'config.json').exists()   # (the Trainer writes none: as if deleted)
    assert run_fingerprint(d) == tr.fp and tr.fp['task'] == 'toy' and trained_arch(d) == 'T5ForConditionalGeneration'

def test_a_prompt_is_saved_in_float32_whatever_its_dtype(tmp_path):
    """prompt_saved_bf16: a prompt held in bf16 (a model cast to bf16 whole) was saved in bf16: its file then differed in
    dtype from every other run's, and a resume or `fpt evaluate` read a rounded prompt. Prompts are saved in float32, as are
    checkpoints'."""
    from fpt_nb.checkpoint import save_prompt, load_prompt
    w = torch.randn(4, 8)
    save_prompt(w.bfloat16(), tmp_path/'p.safetensors')
    back = load_prompt(tmp_path/'p.safetensors')
    assert back.dtype == torch.float32 and torch.equal(back, w.bfloat16().float())

def test_run_files_take_the_mode_the_umask_gives(tmp_path):
    """mode_not_group_writable: files and checkpoint folders get the mode a plain write gives under the process's umask; a
    fixed 0644/0755 matched it under the usual umask 022 only, so a group sharing runs under umask 002 could not write them."""
    import os, stat
    from fpt_nb.checkpoint import write_json, save_checkpoint
    old = os.umask(0o002)
    try:
        write_json(tmp_path/'a.json', {})
        ck = save_checkpoint(tmp_path/'checkpoints', 1, torch.zeros(2, 3), {}, {'x': torch.zeros(1)})
    finally: os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert (mode(tmp_path/'a.json'), mode(ck), mode(ck/'prompt.safetensors'), mode(ck/'state.safetensors')) == (0o664, 0o775, 0o664, 0o664)

def test_a_json_file_that_is_not_text_is_named(tmp_path):
    """read_json_unicode: a config.json or summary.json holding bytes that are not UTF-8 (a binary file copied over it) failed
    with a bare UnicodeDecodeError naming no file; it is named, as broken JSON is."""
    from fpt_nb.checkpoint import read_json
    (tmp_path/'config.json').write_bytes(b'\xff\xfe{"task": 1}')
    with pytest.raises(ValueError, match=re.escape(f"run config {tmp_path/'config.json'} is not valid JSON")):
        read_json(tmp_path/'config.json', 'run config')

def test_a_repeated_sigterm_stops_at_once_in_one_process_only(tmp_path):
    """dp_repeat_sigterm_stops_at_once: a second SIGTERM stops a one-process run at once (SystemExit 143, from its last
    checkpoint); a worker of a data-parallel run takes it as the same stop, since its launcher passes on a signal that its
    whole group got too (Slurm's scancel). The test of real 2-process runs catches the bug only where the launcher's signal
    comes while the worker still trains; this one calls the handler as the signals would."""
    import signal
    tr = Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/'run', progress=False)
    tr._on_signal(signal.SIGTERM, None)
    with pytest.raises(SystemExit) as e: tr._on_signal(signal.SIGTERM, None)
    assert e.value.code == 143
    worker = Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/'dp', progress=False)
    worker.world = 2   # (as a data-parallel run's process: only the handler's rule is looked at here)
    worker._on_signal(signal.SIGTERM, None); worker._on_signal(signal.SIGTERM, None)
    assert worker._stop_signal == signal.SIGTERM

def test_tensorboard_holds_every_step_and_evaluation_when_fit_returns(tmp_path):
    """tb_one_kind (`f"step/{k}"`): the evaluations' metrics went to TensorBoard under the steps' names, beside their losses.
    Every step's loss and every evaluation's metric are there, each under its kind, when `fit` returns."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tr = Trainer(tiny(), [Phase(FULL, 3)], ITEMS, TrainConfig(**CFG, eval_every=1), tmp_path/'r', evaluate=lambda pt: dict(accuracy=1.0),
                 progress=False)
    tr.fit()
    ev = EventAccumulator(str(tmp_path/'r'/'tb')); ev.Reload()
    assert [e.step for e in ev.Scalars('step/loss')] == [1, 2, 3] and [e.step for e in ev.Scalars('eval/accuracy')] == [1, 2, 3]

def test_a_micro_batch_of_one_example_is_taken():
    "micro_of_one_refused (`self.micro < 2`): a micro-batch of one example (the least memory a step can take) was refused."
    assert TrainConfig(batch_size=4, micro_batch_size=1).check().micro == 1
    with pytest.raises(ValueError, match=r'micro_batch_size must be a whole number of at least 1, or None, got 0'):
        TrainConfig(batch_size=4, micro_batch_size=0).check()

def test_a_run_fitted_off_the_main_thread_trains_and_leaves_the_signal_handlers(tmp_path):
    """Python installs signal handlers only from the main thread: a run fitted in another thread (a notebook's background
    job) leaves SIGTERM and SIGINT as they were and trains to its end, rather than failing as it tries to take them."""
    import signal, threading
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    tr = Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/'run', progress=False)
    got = {}
    def fit():
        try: got['state'] = tr.fit()
        except BaseException as e: got['error'] = e
    t = threading.Thread(target=fit); t.start(); t.join()
    assert 'error' not in got, got.get('error')
    assert tr.record.latest_state()['step'] == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/'main', progress=False).fit()   # in the main thread: taken, then given back
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

def test_a_run_folder_is_made_with_its_parents(tmp_path):
    "A run folder several levels below any that exists (runs/mnli/seed-0/fpt_cr) is made with the folders above it."
    tr = Trainer(tiny(), [Phase(FULL, 1)], ITEMS, TrainConfig(**CFG), tmp_path/'runs'/'mnli'/'seed-0'/'fpt_cr', progress=False)
    tr.fit()
    assert (tmp_path/'runs'/'mnli'/'seed-0'/'fpt_cr'/'prompt.safetensors').is_file()

def test_the_log_times_each_evaluation_and_expansion_in_seconds_it_took(tmp_path):
    """Each evaluation's `eval_seconds` and each expansion's `seconds` in log.jsonl is how long it took: not negative, and
    within the time the whole run took."""
    import time
    from fpt_nb.partial import layer_dropping
    t0 = time.perf_counter()
    tr = Trainer(tiny(), [Phase(layer_dropping(1), 2), Phase(FULL, 2)], ITEMS, TrainConfig(**CFG, eval_every=2), tmp_path/'run',
                 evaluate=lambda pt: dict(loss=1.0), metric='loss', progress=False)
    tr.fit()
    took = time.perf_counter() - t0
    log = _log(tmp_path/'run')
    timed = [r['eval_seconds'] for r in log if r['kind'] == 'eval'] + [r['seconds'] for r in log if r['kind'] == 'expand']
    assert len(timed) >= 4 and all(0 <= s <= took for s in timed), (timed, took)

# ---- the eleventh audit (session 26)

def test_the_seconds_a_run_records_are_the_seconds_it_trained(tmp_path):
    """step_clock_added: a step's seconds were taken as the clock plus its start instead of minus (twice the machine's
    uptime a step); the log's `wall`, the state's and each stage's seconds add up to no more than the fit took."""
    tr = Trainer(tiny(), [Phase(FULL, 3)], ITEMS, TrainConfig(**CFG), tmp_path/'run', progress=False)
    t0 = time.perf_counter(); tr.fit(); took = time.perf_counter() - t0
    walls = [r['wall'] for r in _log(tmp_path/'run') if r['kind'] == 'step']
    assert len(walls) == 3 and 0 < walls[0] < walls[1] < walls[2] == tr.state['wall'] <= took, (walls, took)
    assert 0 < sum(tr.state['stage_seconds']) <= took

@pytest.mark.parametrize('own, tokenizers, ids', [([1, 7], 1, [1, 7]), ([7], 1, [7, 1]), (None, 1, [1]), (7, 1, [7, 1]), (None, None, None)])
def test_generation_stops_at_the_models_end_ids_and_the_tokenizers(own, tokenizers, ids):
    """stop_ids_list_dropped: a model's generation config may list several end-of-sequence ids (a chat checkpoint's); the
    list was dropped, and a config with none (None) failed. Its ids come first, then the tokenizer's, each once; none at all: {}."""
    from types import SimpleNamespace
    from fpt_nb.train import stop_ids
    pt = SimpleNamespace(model=SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=own)))
    got = stop_ids(pt, SimpleNamespace(eos_token_id=tokenizers))
    assert got == ({} if ids is None else dict(eos_token_id=ids)), got
