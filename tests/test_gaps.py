"""Gaps the mutation list did not reach (a coverage audit): behaviour the suite executed, or never reached, without an
assertion that would see it change. Each test names the planted bug (`tools/mutants.py` style) that passed every test before
it; all use the tiny T5 or the toy task and take seconds."""
import json, os
from pathlib import Path
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.tasks import toy_examples
from fpt_nb.batches import encode, batches

TOK = load_t5('tiny')[1]


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------------------------
# Partial models

def test_layer_selection_sequence_keeps_the_first_layers():
    "select_layers_sequence_evenly: `layer_selection='sequence'` keeps the first k layers (no test used it before)."
    from fpt_nb.partial import select_layers, Stage, apply_stage
    from fpt_nb.arch import layer_stacks
    assert select_layers(3, 6, 'sequence') == [0, 1, 2]
    assert select_layers(3, 6, 'evenly') == [0, 2, 5]   # the default differs: the first and last layers, evenly between
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    full = list(pt.model.encoder.block)
    apply_stage(pt.model, Stage(encoder_layers=3, layer_selection='sequence'))
    assert [full.index(b) for b in layer_stacks(pt.model)['encoder']] == [0, 1, 2]


# ---------------------------------------------------------------------------------------------------------------
# The trainer's records: per-stage time, the rule each best prompt was chosen by, the expansions' log

@pytest.fixture(scope='module')
def fpt_trained(tmp_path_factory):
    "FPT_CR on the tiny T5 over stages of 2, 2, 2 and 4 steps, evaluated every 2 steps by a stand-in metric that rises and falls."
    from fpt_nb.train import Trainer, TrainConfig, paper_schedule
    from fpt_nb.scores import NeuronScores
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    items = encode('toy', TOK, toy_examples('train', 16))
    scores = NeuronScores({s: torch.rand(4, 128, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(('encoder', 'decoder'))})
    values = iter([50.0, 70.0, 60.0, 40.0, 45.0])   # at steps 2, 4, 6, 8, 10: the best at step 4 (stage 2), the full stage's at 10
    d = tmp_path_factory.mktemp('gaps')/'run'
    tr = Trainer(pt, paper_schedule('fpt_cr', 10, pt.model), items, TrainConfig(batch_size=4, prompt_length=4, eval_every=2), d,
                 evaluate=lambda p: dict(acc=next(values)), scores=scores, progress=False)
    st = tr.fit()
    return tr, st, d

def _log(d, kind):
    return [r for r in map(json.loads, (Path(d)/'log.jsonl').read_text().splitlines()) if r['kind'] == kind]

def test_each_stage_is_timed_on_its_own(fpt_trained):
    """stage_seconds_all_on_stage_1: every stage's seconds are its own steps' (the summary's `stages[i].seconds`); the test
    before checked only their sum."""
    tr, st, d = fpt_trained
    steps = _log(d, 'step')
    own = [sum(b['wall'] - a['wall'] for a, b in zip([dict(wall=0.0)] + steps, steps) if b['stage'] == i) for i in range(4)]
    assert all(s > 0 for s in st['stage_seconds'])
    assert st['stage_seconds'] == pytest.approx(own, rel=1e-6, abs=1e-9)

def test_each_best_prompt_records_its_own_rule(fpt_trained):
    """best_last_recorded_with_best_rule: `best.json` and `best_last.json` name the rule that chose them (the summary's
    `best.rule`/`best_last_stage.rule` and `fpt evaluate`'s prompt_rule read them)."""
    from fpt_nb.train import BEST_RULES
    tr, st, d = fpt_trained
    best, last = (json.loads((d/f'{n}.json').read_text()) for n in ('best', 'best_last'))
    assert (best['step'], best['stage'], best['rule'], best['metric']) == (4, 1, BEST_RULES['best'], 'acc')
    assert (last['step'], last['stage'], last['rule'], last['metric']) == (10, 3, BEST_RULES['best_last'], 'acc')

def test_the_expansion_log_names_the_stage_it_grew_from(fpt_trained):
    "expand_log_from_is_to: each `expand` record's `frm` is the stage trained before it (the full model before the first)."
    tr, st, d = fpt_trained
    names = [p.stage.describe() for p in tr.phases]
    assert [(r['step'], r['frm'], r['to']) for r in _log(d, 'expand')] == \
           [(0, 'full', names[0]), (2, names[0], names[1]), (4, names[1], names[2]), (6, names[2], names[3])]


def test_the_summary_names_the_stage_and_rule_of_each_best_prompt(fpt_trained):
    """summary_best_stage_name_last_stage: the summary's `best.stage_name` (what `fpt run` prints beside the best score) is the
    stage the best prompt was trained on; its rule and the stages' seconds are the trainer's."""
    import time
    from fpt_nb.run import _summary
    from fpt_nb.tasks import get_task
    from fpt_nb.train import BEST_RULES
    tr, st, d = fpt_trained
    s = _summary(get_task('toy'), 'tiny', 'fpt_cr', 0, None, tr.phases, st, {}, None, 'cpu', time.perf_counter(), d, {})
    names = [p.stage.describe() for p in tr.phases]
    assert (s['best']['step'], s['best']['stage'], s['best']['stage_name'], s['best']['rule']) == (4, 1, names[1], BEST_RULES['best'])
    assert (s['best_last_stage']['stage_name'], s['best_last_stage']['rule']) == (names[3], BEST_RULES['best_last'])
    assert [x['seconds'] for x in s['stages']] == st['stage_seconds'] and [x['name'] for x in s['stages']] == names


def test_the_summary_refuses_a_best_record_of_another_step(fpt_trained):
    """summary_best_of_another_step: where the trainer chose its best prompt at another step than best.json names (a file not
    this run's), the summary copied best.json and named that prompt the run's best; now it says so and writes no summary."""
    import time
    from fpt_nb.run import _summary
    from fpt_nb.tasks import get_task
    tr, st, d = fpt_trained
    with pytest.raises(ValueError, match=f"run folder {d}: its best.json is of step 4, but the run chose its best prompt at step 2"):
        _summary(get_task('toy'), 'tiny', 'fpt_cr', 0, None, tr.phases, dict(st, best_step=2), {}, None, 'cpu', time.perf_counter(), d, {})


def test_best_files_of_lost_steps_are_put_back_to_the_checkpoints(tmp_path):
    """later_best_files_kept: a kill after the checkpoint of step 6 lost steps 7-8, whose evaluation had written best.json and
    best_prompt.safetensors (step 8). A replay that evaluates lower (a GPU's nondeterminism) did not write them again, and the
    run ended naming the lost step's prompt its best. On resume they are put back to the checkpoint's best (step 4).
    best_prompt_of_a_lost_step_kept: the same for a kill between the prompt file and its record (the record still step 4's)."""
    import shutil
    from fpt_nb.train import Trainer, TrainConfig, paper_schedule, BEST_RULES
    from fpt_nb.checkpoint import load_prompt, read_json, write_json, save_prompt
    items = encode('toy', TOK, toy_examples('train', 16))
    def trainer(values, d):
        pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
        it = iter(values)
        return Trainer(pt, paper_schedule('pt', 10, pt.model), items, TrainConfig(batch_size=4, prompt_length=4, eval_every=2,
                       keep_checkpoints=5), d, evaluate=lambda p: dict(acc=next(it)), progress=False)
    d = tmp_path/'run'
    trainer([50.0, 70.0, 60.0, 40.0, 45.0], d).fit()   # the best at step 4
    (d/'checkpoints'/'latest').write_text('step-0000006')   # killed after step 8's evaluation, before its checkpoint:
    write_json(d/'best.json', dict(read_json(d/'best.json'), step=8, acc=99.0))   # ... which had been the best then
    save_prompt(torch.zeros(4, load_t5('tiny')[0].config.d_model), d/'best_prompt.safetensors')
    st = trainer([40.0, 45.0], d).fit()   # the replay evaluates steps 8 and 10 lower than step 4
    assert (st['best_step'], read_json(d/'best.json')['step'], read_json(d/'best.json')['acc']) == (4, 4, 70.0)
    # best_rebuilt_rule_dropped, best_rebuilt_metric_dropped (session 30): the record rebuilt from the log's evaluation of step 4
    # names the rule that chose it and its metric, as every best record does (the summary's best.rule reads them)
    assert (read_json(d/'best.json')['rule'], read_json(d/'best.json')['metric']) == (BEST_RULES['best'], 'acc')
    assert torch.equal(load_prompt(d/'best_prompt.safetensors'), load_prompt(d/'checkpoints'/'step-0000004'/'prompt.safetensors'))
    (d/'checkpoints'/'latest').write_text('step-0000006')   # killed between step 8's best prompt and its best.json:
    save_prompt(torch.ones(4, load_t5('tiny')[0].config.d_model), d/'best_prompt.safetensors')   # the record is still step 4's
    trainer([40.0, 45.0], d).fit()
    assert torch.equal(load_prompt(d/'best_prompt.safetensors'), load_prompt(d/'checkpoints'/'step-0000004'/'prompt.safetensors'))


def test_export_of_a_run_killed_between_a_best_prompt_and_its_record(tmp_path, monkeypatch, recwarn):
    """prompt_beside_other_record_exported: a kill after step 4's best prompt was written and before its record left
    that prompt beside step 2's best_last.json, and export-peft exported it "from step 2". Each prompt file now says its
    step: the export refuses the pair, and a resume puts the files right (the export then names the step its prompt is from)."""
    import fpt_nb.train as train
    from fpt_nb.train import Trainer, TrainConfig, paper_schedule
    from fpt_nb.checkpoint import prompt_step, read_json, load_prompt
    from fpt_nb.peft import export_peft
    items = encode('toy', TOK, toy_examples('train', 16))
    def trainer(values, d):
        pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
        it = iter(values)
        return Trainer(pt, paper_schedule('pt', 6, pt.model), items, TrainConfig(batch_size=4, prompt_length=4, eval_every=2), d,
                       evaluate=lambda p: dict(acc=next(it)), progress=False)
    class Killed(Exception): "the process dies here"
    real = train.write_json
    def write_json(path, obj):
        if Path(path).name == 'best_last.json' and obj.get('step') == 4: raise Killed
        return real(path, obj)
    monkeypatch.setattr(train, 'write_json', write_json)
    d = tmp_path/'run'
    with pytest.raises(Killed): trainer([50.0, 70.0], d).fit()
    monkeypatch.undo()
    assert (read_json(d/'best_last.json')['step'], prompt_step(d/'best_last_prompt.safetensors')) == (2, 4)
    with pytest.raises(ValueError, match="best_last_prompt.safetensors holds the prompt of step 4, but best_last.json beside it "
                                         "names step 2: the run was stopped between writing the two"):
        export_peft(d, tmp_path/'adapter', 'tiny')
    assert not (tmp_path/'adapter').exists()
    trainer([70.0, 40.0], d).fit()   # resumed from step 2's checkpoint: step 4 evaluates as before, step 6 lower
    assert (read_json(d/'best_last.json')['step'], prompt_step(d/'best_last_prompt.safetensors'), prompt_step(d/'prompt.safetensors')) == (4, 4, 6)
    heard = []
    export_peft(d, tmp_path/'adapter', 'tiny', say=heard.append)
    assert heard[0] == f"exporting best_last_prompt.safetensors of {d} (from step 4)", heard


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint state, the fast step's undo, run locks

def test_checkpoint_state_gives_back_tuples_and_lists():
    "checkpoint_tuples_back_as_lists: `unflatten_state` inverts `flatten_state` through JSON, tuples (Adafactor's `eps`) as tuples."
    from fpt_nb.checkpoint import flatten_state, unflatten_state
    from fpt_nb.train import make_optimizer, TrainConfig
    state = dict(a=(1, 2.5, torch.ones(2)), b=[3, (4, None)], c={'0': 'x'})
    tensors, skel = flatten_state(state, 's')
    back = unflatten_state(json.loads(json.dumps(skel)), tensors)
    assert type(back['a']) is tuple and back['a'][:2] == (1, 2.5) and torch.equal(back['a'][2], torch.ones(2))
    assert type(back['b']) is list and type(back['b'][1]) is tuple and back['b'][1] == (4, None) and back['c'] == {'0': 'x'}
    w = torch.nn.Parameter(torch.zeros(3))
    opt, _ = make_optimizer([w], TrainConfig())
    t, sk = flatten_state(opt.state_dict(), 'optimizer')
    assert unflatten_state(json.loads(json.dumps(sk)), t)['param_groups'] == opt.state_dict()['param_groups']

def test_a_non_finite_first_step_leaves_no_optimizer_state():
    """nan_first_step_keeps_optimizer_state: a step whose loss is NaN is undone, its Adafactor state too: at the first step
    there was none, and none is left (before, only a step with earlier state was undone in a test)."""
    from fpt_nb.fast import FastStep
    from fpt_nb.train import make_optimizer, TrainConfig
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    with torch.no_grad(): pt.prompt.weight[0, 0] = float('nan')
    before = pt.prompt.weight.detach().clone()
    opt, sched = make_optimizer([pt.prompt.weight], TrainConfig())
    step = FastStep(pt, opt, sched, 1, 1.0, lambda p, b, w: 0)
    b = next(batches(encode('toy', TOK, toy_examples('train', 4)), 4, shuffle=False))
    loss, flops, problem = step(iter([b]), {})
    assert problem is not None and 'nan' in problem
    assert pt.prompt.weight not in opt.state or not opt.state[pt.prompt.weight]
    assert torch.equal(pt.prompt.weight.detach().isnan(), before.isnan())
    assert sched.state_dict()['last_epoch'] == 0


def test_a_killed_runs_lock_file_is_not_a_running_run(tmp_path):
    """dead_lock_file_reads_as_running: a `run.lock` that no process holds (a SIGKILLed run leaves its file) is no running run:
    `lock_holder` says None, and the folder reads as stopped, not as running; a held lock names its process."""
    from fpt_nb.checkpoint import lock_holder, stopped_before_summary, write_json
    from fpt_nb.run import run_lock
    d = tmp_path/'run'; d.mkdir()
    write_json(d/'config.json', dict(task='toy', model='tiny', method='pt', steps=2, out_dir=str(d)))
    (d/'run.lock').write_text('4242')
    assert lock_holder(d) is None
    assert 'was stopped before writing one' in stopped_before_summary(d)
    with run_lock(d):
        assert lock_holder(d) == os.getpid()
        assert 'is running now' in stopped_before_summary(d)


def test_a_folder_the_file_system_cannot_lock_is_held_by_its_run_lock_alone(tmp_path, monkeypatch):
    """Some network file systems lock no folder: the run then holds `run.lock` alone (a second taker is still refused), and
    only a `run.lock` that cannot be locked either stops it, with the file system's error."""
    import errno, fcntl, stat
    from fpt_nb.run import run_lock
    from fpt_nb.checkpoint import lock_holder
    real = fcntl.flock
    def flock(fd, op):
        if stat.S_ISDIR(os.fstat(fd).st_mode) or everything: raise OSError(errno.ENOLCK, 'No locks available')
        return real(fd, op)
    monkeypatch.setattr(fcntl, 'flock', flock)
    everything = False
    with run_lock(tmp_path/'run'):
        assert (tmp_path/'run'/'run.lock').read_text().strip() == str(os.getpid())
        with pytest.raises(RuntimeError, match='is in use by process'):
            with run_lock(tmp_path/'run'): pass
        assert lock_holder(tmp_path/'run') == os.getpid()
    assert lock_holder(tmp_path/'run') is None   # unlockable_folder_held: a folder that cannot be locked read as held by a run
    everything = True
    with pytest.raises(OSError, match='No locks available'):
        with run_lock(tmp_path/'other'): pass


def test_the_fingerprint_holds_every_training_setting():
    """fingerprint_without_clip_norm: a checkpoint is continued only by a run of the same settings; each setting that changes
    the prompt trained enters the fingerprint, so a resume under another value is refused (before, a fingerprint without
    clip_norm passed every test; without lr or loss_group it was caught only by whole runs in test_records/test_recipe)."""
    from dataclasses import replace
    from fpt_nb.train import fingerprint, fingerprint_diff, TrainConfig, Phase
    from fpt_nb.partial import FULL
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    phases, base = [Phase(FULL, 2)], TrainConfig(batch_size=8, micro_batch_size=4, prompt_length=4)
    ours = fingerprint(pt, phases, base)
    assert fingerprint_diff(fingerprint(pt, phases, replace(base)), ours) == []
    for change in (dict(lr=0.1), dict(clip_norm=0.5), dict(weight_decay=0.0), dict(loss_group=8), dict(padding='max'),
                   dict(bucket=True), dict(seed=1), dict(batch_size=16)):
        (k, v), = change.items()
        diff = fingerprint_diff(fingerprint(pt, phases, replace(base, **change)), ours)
        assert [d.split(' ')[0] for d in diff] == [k], (change, diff)
    # fingerprint_phases_skip_first (the twelfth audit): a schedule that differs only in its first stage is another run
    from fpt_nb.partial import layer_dropping
    two = lambda first: [Phase(first, 2), Phase(FULL, 2)]
    assert fingerprint_diff(fingerprint(pt, two(layer_dropping(2)), base), fingerprint(pt, two(layer_dropping(1)), base)) == ['phases']
    # both values are shown where both are short; where either is long (or a list), only the entry's name
    assert fingerprint_diff(dict(a=1, b='x' * 80, c=None, d=[1]), dict(a=2, b='y', c=[0] * 30, d=[2])) == ['a (1 there, 2 now)', 'b', 'c', 'd']

# ---------------------------------------------------------------------------------------------------------------
# Data and metrics

def test_the_disk_cache_keeps_each_encoding_apart(tmp_path, monkeypatch):
    """disk_cache_name_without_key: `encode`'s disk cache (`cache_dir`, `FPT_CACHE_DIR`) gives back what was cached for the same
    rows, tokenizer and lengths, and never another encoding's items (no test used the disk cache before)."""
    import fpt_nb.batches as B
    train, val = toy_examples('train', 4), toy_examples('validation', 4)
    B.clear_cache()
    cache = tmp_path/'cache'/'encodings'   # (not there yet: made, with the folder above it)
    a, b = encode('toy', TOK, train, cache_dir=cache), encode('toy', TOK, val, cache_dir=cache)
    assert a != b and len(list(cache.glob('toy-*.json'))) == 2
    B.clear_cache()
    def no_tokenizing(*args): raise AssertionError('tokenized again: the disk cache was not read')
    monkeypatch.setattr(B, '_tokenize', no_tokenizing)
    assert encode('toy', TOK, val, cache_dir=cache) == b and encode('toy', TOK, train, cache_dir=cache) == a
    B.clear_cache()

def test_paper_rouge_scores_an_empty_generation_zero():
    """paper_rouge_empty_generation_scored: a generation with no text (empty, or only periods) scores 0 as in the paper's copy
    of the package, rather than stopping the evaluation (the `rouge` package refuses an empty hypothesis)."""
    from fpt_nb.metrics import paper_rouge
    out = paper_rouge(['', '...', 'the cat sat on the mat'], ['a dog ran', 'a bird sang', 'the cat sat on the mat'])
    assert out == pytest.approx({'paper_rouge-1': 100 / 3, 'paper_rouge-2': 100 / 3, 'paper_rouge-l': 100 / 3})


def test_record_scores_record_the_rows_of_their_sampled_pairs(data_dir):
    """record_scores_source_all_rows: scores of a task that trains on (row, answer) pairs (ReCoRD) record, as where they came
    from, the rows of the pairs they sampled, not every row of the split (the test before sampled all 46 pairs)."""
    from fpt_nb.run import run_scores, data_ref
    from fpt_nb.scores import sample_examples
    from fpt_nb.tasks import load_examples
    rows = load_examples('record', 'validation', str(data_dir))
    enc = lambda rs, train=False: encode('record', TOK, rs, train=train)
    pairs = enc(rows, train=True)
    sc = run_scores(PromptT5(load_t5('tiny')[0], prompt_length=4), 'record', enc, str(data_dir), n=8, seed=3, progress=False)
    picked = sorted({pairs[i]['row'] for i in sample_examples(len(pairs), 8, seed=3)})
    assert sc.n_examples == 8 and len(picked) < len(rows)
    assert sc.source['rows'] == data_ref('record', 'validation', str(data_dir), [rows[i] for i in picked])


# ---------------------------------------------------------------------------------------------------------------
# FLOPs of decoder-only shapes

def test_causal_flops_table_totals_include_the_full_stage():
    """causal_fpt_total_without_full_stage: the FPT totals of `causal_flops_table` are the paper's schedule (6000 steps on each
    partial stage, 12000 on the full model) over the stage costs, by hand (the table was never computed in a test)."""
    from fpt_nb.causal import causal_flops_table, causal_stages, shape_config
    row = causal_flops_table(('qwen2.5-0.5b',))[0]
    assert (row['layers'], row['mlp']) == (24, 4864)
    assert row['ld_shapes'] == ['6L/4864', '12L/4864', '18L/4864'] and row['cr_shapes'] == ['6L/1216', '12L/2432', '18L/3648']
    for m in ('ld', 'fr', 'cr'):
        rel = [x / 100 for x in row[m]]
        assert rel == sorted(rel) and rel[-1] < 1
        assert row[f'fpt_{m}'] == pytest.approx(100 * (6000 * sum(rel) + 12000) / 30000, abs=0.15)

def test_the_digests_of_data_and_vocabularies_keep_their_format():
    """data_digest_shortened: run folders record their data's and tokenizer's digests (`data_ref`, `tokenizer_ref`) and a
    resume compares them with the new run's; a digest of another length or key order would call every earlier run's
    data other data. The first 16 hex digits of SHA-256 over the sorted-key JSON."""
    from fpt_nb.run import _sha
    assert _sha([dict(b=1, a='x'), 2]) == '253f51cb61853cf7'



# ---------------------------------------------------------------------------------------------------------------
# The twelfth audit: loops planted to skip their first item (`for x in list(xs)[1:]`)

def test_a_models_signature_names_every_input_projection_of_its_ffn():
    """ffn_names_skip_first: a model's signature (kept in score files and checkpoints) names each FFN input projection:
    both of the LM-adapt's gated pair, the one of T5 1.0. Dropping the first still told the two apart, so only a pinned
    value sees it; files saved before the change would read as another model's."""
    from fpt_nb.arch import model_signature
    assert model_signature(load_t5('tiny')[0])['ffn'] == ['wi_0', 'wi_1']
    assert model_signature(load_t5('tiny-relu')[0])['ffn'] == ['wi']

def test_encodings_of_rows_that_differ_only_in_the_first_are_kept_apart(tmp_path):
    """cache_key_skips_first_pair: `encode`'s cache key covers every (input, target, row), the first included: rows that
    differ only in their first example were handed the other rows' cached encoding (in memory and on disk)."""
    import fpt_nb.batches as B
    rows = toy_examples('validation', 3)
    other = [dict(rows[0], text=rows[0]['text'] + ' again'), *rows[1:]]
    for cache in (None, tmp_path/'cache'):
        B.clear_cache()
        a = encode('toy', TOK, rows, cache_dir=cache)
        b = encode('toy', TOK, other, cache_dir=cache)
        assert b[0]['input_ids'] != a[0]['input_ids'] and b[1:] == a[1:]
    B.clear_cache()

def test_the_decoder_only_flops_table_prints_a_line_per_model(capsys):
    """flops_table_skips_first_model: `print_flops_table` prints a header and one line per model, the first included, with
    its full-step GFLOPs (only the notebook called it, and nothing read what it printed)."""
    from fpt_nb.causal import causal_flops_table, print_flops_table
    table = causal_flops_table(('qwen2.5-0.5b', 'llama-3.2-1b'))
    print_flops_table(table)
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines[1:]] == ['qwen2.5-0.5b', 'llama-3.2-1b']
    assert [float(l.split()[1]) for l in lines[1:]] == [round(r['full_gflops'], 1) for r in table]
    # flops_table_stage_skips_first: each method's three stage costs, then the three schedule totals
    assert [[float(x) for x in l.split()[2:]] for l in lines[1:]] == \
        [[*r['ld'], *r['fr'], *r['cr'], r['fpt_ld'], r['fpt_fr'], r['fpt_cr']] for r in table]

def test_the_papers_record_scores_refuse_a_first_query_without_gold_answers():
    """record_gold_check_skips_first: `paper_record` names the query that has no gold answer, the first too (that one fell to
    `max()` of nothing: "max() iterable argument is empty", no word of which example)."""
    from fpt_nb.metrics import paper_record
    for refs, i in (([[], ['b']], 0), ([['a'], []], 1)):
        with pytest.raises(ValueError, match=f'example {i} has no gold answers'): paper_record(['a', 'b'], refs)

def test_the_flops_count_refuses_an_empty_input():
    """matmuls_length_check_skips_first: a FLOPs count of an input of no positions (enc_len 0) is refused like an empty target or
    batch, not counted as a model that reads nothing."""
    from fpt_nb.flops import matmuls
    from fpt_nb.prompt import tiny_t5_config
    ok = dict(enc_len=8, dec_len=4, batch=2)
    for name in ok:
        with pytest.raises(ValueError, match=f'{name} must be at least 1, got 0'): matmuls(tiny_t5_config(), **dict(ok, **{name: 0}))

def test_a_model_folders_digest_covers_its_config_and_its_weights(tmp_path):
    """model_digest_skips_config: the digest a run records of a local model folder changes with its config.json (a dropout, a
    layer count edited by hand) as well as with its weights; with the config left out, a resume took the edited model as the same."""
    from fpt_nb.prompt import model_digest
    model = load_t5('tiny')[0]; model.save_pretrained(tmp_path)
    before = model_digest(tmp_path)
    cfg = json.loads((tmp_path/'config.json').read_text())
    (tmp_path/'config.json').write_text(json.dumps(dict(cfg, dropout_rate=0.3)))
    edited = model_digest(tmp_path)
    assert edited != before
    load_t5('tiny', seed=1)[0].save_pretrained(tmp_path)
    (tmp_path/'config.json').write_text(json.dumps(dict(cfg, dropout_rate=0.3)))
    assert model_digest(tmp_path) not in (before, edited)

def test_a_run_lock_closes_what_it_opened(tmp_path):
    """lock_fds_close_skips_first (the twelfth audit): leaving a run's lock closes both files it opened (the folder and run.lock);
    the lock's was left open, one file descriptor more per run in a notebook that runs many (and a lock held on a deleted file)."""
    from fpt_nb.run import run_lock
    d = tmp_path/'run'
    def ours():   # this process's open files that are the run folder or its lock (by what each descriptor names)
        out = []
        for fd in os.listdir('/proc/self/fd'):
            try: target = os.readlink(f'/proc/self/fd/{fd}')
            except OSError: continue   # (closed meanwhile: the listing's own descriptor)
            if target in (str(d), str(d/'run.lock')) or target.startswith(str(d/'run.lock') + ' '): out.append(target)
        return sorted(out)
    with run_lock(d): assert ours() == [str(d), str(d/'run.lock')]
    assert ours() == [] and not (d/'run.lock').exists()

def test_a_data_parallel_launch_passes_on_an_early_signal_and_gives_back_the_handlers(tmp_path, monkeypatch, capsys):
    """pending_signal_skips_first, handlers_restore_skips_first (the twelfth audit): a SIGTERM that reaches `run_distributed`
    while the launcher is starting is passed on to it once it has started (the launcher here is a stand-in that records it), and
    the command's own handlers of SIGTERM, SIGINT and SIGHUP are put back after. Real launches (tests/test_distributed.py)
    end the same whether or not that signal reached the launcher: a finished run's launcher stops at once anyway."""
    import signal, subprocess
    from fpt_nb.run import run_distributed
    sent = []
    class Launcher:   # the signal comes as it starts: before run_distributed holds it
        def __init__(self, *a, **k): os.kill(os.getpid(), signal.SIGTERM)
        def send_signal(self, s): sent.append(s)
        def poll(self): return 0
        def wait(self): return 0
    monkeypatch.setattr(subprocess, 'Popen', Launcher)
    mine = lambda *a: None
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    old = {s: signal.signal(s, mine) for s in sigs}
    try:
        with pytest.raises(SystemExit) as e: run_distributed(2, out_dir=str(tmp_path/'dp'), task='toy')
        assert e.value.code == 143 and sent == [signal.SIGTERM]
        assert [signal.getsignal(s) for s in sigs] == [mine] * 3
    finally:
        for s, h in old.items(): signal.signal(s, h)
    assert 'stopped by signal 15 before the run could summarize its stop' in capsys.readouterr().err

def test_a_run_says_each_thing_its_local_data_stands_in_for(data_dir, tmp_path, capsys):
    """run_notes_skip_first (the twelfth audit): a run on the local data prints every note `data_notes` gives for what it reads,
    one line each (MNLI: the training sample, then the validation sample); the first went unsaid."""
    from fpt_nb.run import run_experiment
    from fpt_nb.tasks import data_notes
    run_experiment(task='mnli', model='tiny', method='pt', steps=1, batch_size=2, prompt_length=2, train_limit=4, eval_limit=2,
                   eval_every=0, device='cpu', progress=False, data_dir=str(data_dir), out_dir=str(tmp_path/'run'))
    said = [l.removeprefix('note: ') for l in capsys.readouterr().out.splitlines() if l.startswith('note: mnli')]
    assert said == data_notes('mnli', str(data_dir), ('train', 'validation')) and len(said) == 2

def test_launch_hands_every_setting_to_the_data_parallel_run(monkeypatch, tmp_path):
    """launch_kwargs_skip_first (the twelfth audit): `launch(2, ...)` (what `fpt run --num-processes 2` and the notebooks call)
    hands the data-parallel run every setting, folders as strings for its launch.json; the first given was dropped (the task:
    the workers trained the default one)."""
    from fpt_nb import run
    got = []
    monkeypatch.setattr(run, 'run_distributed', lambda n, **k: got.append((n, k)) or {})
    run.launch(2, task='mnli', model='tiny', out_dir=tmp_path/'dp', steps=3)
    assert got == [(2, dict(task='mnli', model='tiny', out_dir=str(tmp_path/'dp'), steps=3))]
    ran = []
    monkeypatch.setattr(run, 'run_experiment', lambda **k: ran.append(k) or {})
    run.launch(1, task='mnli', out_dir=tmp_path/'one')
    assert ran == [dict(task='mnli', out_dir=tmp_path/'one')]

def test_the_final_prompt_of_a_stopped_run_belongs_to_the_stage_it_stopped_in(tmp_path):
    """final_prompt_stage_skips_first (the twelfth audit): `fpt evaluate --prompt final` rebuilds the model at the stage the run's
    last step trained: a run of stages of 1, 3, 2 and 4 steps stopped at step 2 stopped in stage 2. Counted without the first
    stage's steps, it was stage 1 (the right one only where every stage has the same length, as the paper's presets do)."""
    from fpt_nb.run import _prompt_stage
    summary = dict(stages=[dict(steps=s) for s in (1, 3, 2, 4)], steps=2)
    assert _prompt_stage(tmp_path, summary, 'final') == (1, 2, 'the prompt at the end of training')
    assert [_prompt_stage(tmp_path, dict(summary, steps=n), 'final')[0] for n in (1, 4, 5, 6, 10)] == [0, 1, 2, 2, 3]

def test_a_csv_score_file_of_the_wrong_shape_says_the_widths_it_holds(tmp_path):
    """csv_widths_skip_first (the twelfth audit): the refusal of a CSV score file names every row width it holds, the first
    row's too (a file whose first row alone is short was said to hold only rows of the right width)."""
    from fpt_nb.scores import load_scores
    model = load_t5('tiny')[0]
    rows = [['0.5'] * 100] + [['0.5'] * 128] * 7
    (tmp_path/'s.csv').write_text('\n'.join(','.join(r) for r in rows))
    with pytest.raises(ValueError, match=r'has 8 rows of \[100, 128\] values; the model needs 4 encoder \+ 4 decoder rows of 128'):
        load_scores(tmp_path/'s.csv', model)

def test_tables_of_a_folder_whose_only_run_stopped_say_why(tmp_path):
    """stopped_configs_skip_first (the twelfth audit): `fpt tables` over a folder whose one run stopped before its summary says
    so, naming it; with the first run folder (in sorted order) not looked at, it said only that there were no runs."""
    from fpt_nb.tables import collect_runs
    d = tmp_path/'a'; d.mkdir()
    (d/'config.json').write_text(json.dumps(dict(task='toy', model='tiny', method='pt', steps=4, out_dir=str(d))))
    with pytest.raises(ValueError, match=f"run {tmp_path/'a'} has no summary: it was stopped before writing one"): collect_runs(tmp_path)

def test_the_scores_digest_covers_every_stack():
    """scores_digest_skips_first (the twelfth audit): a run's checkpoint records a digest of its neuron scores, so that a resume
    given other scores refuses them; it covers each stack's scores. With the first (sorted: the decoder's) left out, scores
    differing only there passed as the same."""
    from fpt_nb.scores import NeuronScores
    from fpt_nb.train import scores_digest
    sc = {'decoder': torch.rand(2, 8), 'encoder': torch.rand(2, 8)}
    base = scores_digest(NeuronScores(dict(sc)))
    assert scores_digest(NeuronScores({k: v.clone() for k, v in sc.items()})) == base and scores_digest(None) is None
    for k in sc:
        other = dict(sc, **{k: sc[k].flip(1)})
        assert scores_digest(NeuronScores(other)) != base, k

def test_a_train_config_refuses_a_batch_size_that_is_no_whole_number():
    """train_check_skips_first (the twelfth audit): `TrainConfig.check` refuses a batch size of 0, 2.0 or True, as it does the
    other sizes; the first of those it checks was let through (to a later error, or a batch of 2.0 taken as 2)."""
    from fpt_nb.train import TrainConfig
    for v in (0, 2.0, True):
        with pytest.raises(ValueError, match=f'batch_size must be a whole number of at least 1, got {v!r}'): TrainConfig(batch_size=v).check()
    TrainConfig(batch_size=2).check()
