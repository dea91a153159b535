"""Edges a second mutation audit (session 19) found no test held: each test below failed under the bug named in it
(tools/mutants.py plants each one). Checkpoint pointers, FLOPs of a T5 whose heads are not its width, the tables'
settings and stage column, neuron scores from files, batches and length statistics, task registration and rows read
from files, SQuAD scoring, stage names, prompt digests, label words and run configs."""
import json, math, warnings
from dataclasses import replace
import pytest, torch
from fpt_nb.checkpoint import save_checkpoint, latest_checkpoint, prompt_digest, is_run_config
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.flops import forward_flops, pt_step_flops, measured_flops
from fpt_nb.scores import load_scores
from fpt_nb.batches import batches, length_stats
from fpt_nb.tasks import get_task, load_examples, register_task, label_word, SkippedRows
from fpt_nb.metrics import squad_v2_scores, score
from fpt_nb.partial import Stage

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

# ---- checkpoints

def test_the_latest_pointer_with_a_newline_and_without_one(tmp_path):
    """latest_pointer_not_stripped: a `latest` written by `echo step-0000003 > latest` (what the damaged-pointer message
    asks for) was refused. latest_falls_back_to_oldest: with the pointer gone, a resume took the oldest checkpoint left."""
    for s in (3, 6): save_checkpoint(tmp_path, s, torch.zeros(2, 4), {}, {'x': torch.zeros(1)})
    assert latest_checkpoint(tmp_path).name == 'step-0000006'
    (tmp_path/'latest').write_text('step-0000003\n')
    assert latest_checkpoint(tmp_path).name == 'step-0000003'
    (tmp_path/'latest').unlink()
    assert latest_checkpoint(tmp_path).name == 'step-0000006'
    # newest_left_skips_first (the twelfth audit): a kill between the first checkpoint's folder and its pointer leaves one
    # folder and no pointer; a resume found nothing (and started again, pruning it)
    one = tmp_path/'one'
    save_checkpoint(one, 3, torch.zeros(2, 4), {}, {'x': torch.zeros(1)}); (one/'latest').unlink()
    assert latest_checkpoint(one) == one/'step-0000003'

def test_a_prompts_digest_holds_its_shape():
    "prompt_digest_ignores_shape: a 6x4 and a 4x6 prompt of the same values had one digest."
    t = torch.arange(24.).reshape(6, 4)
    assert prompt_digest(t) != prompt_digest(t.reshape(4, 6)) and prompt_digest(t) == prompt_digest(t.clone())

def test_a_json_with_a_task_is_not_a_run_config(tmp_path):
    "is_run_config_loose: any JSON object naming a task counted as a run's config (a folder of it then written over)."
    (tmp_path/'config.json').write_text(json.dumps({'task': 'mnli'}))
    assert not is_run_config(tmp_path/'config.json')
    (tmp_path/'config.json').write_text(json.dumps(dict(task='mnli', model='tiny', method='pt', steps=2, out_dir='x')))
    assert is_run_config(tmp_path/'config.json')

# ---- FLOPs

def test_flops_of_a_t5_whose_heads_are_not_its_width():
    """flops_inner_dim_d_model: attention was counted at d_model wide, not num_heads x d_kv: right only where the two are
    equal (T5 v1.1 small is 6 x 64 = 384 heads' width on a 512 model). Counted exactly by PyTorch here: 2 x 8 on a 64 model."""
    model, _ = load_t5('tiny', num_heads=2, d_kv=8)
    assert model.config.num_heads * model.config.d_kv != model.config.d_model
    pt = PromptT5(model, prompt_length=5)
    ids, labels = torch.randint(3, 300, (2, 11)), torch.randint(3, 300, (2, 4))
    assert measured_flops(lambda: pt(ids, labels=labels)) == forward_flops(model.config, 16, 4, batch=2)
    assert measured_flops(lambda: pt(ids, labels=labels).loss.backward()) == pt_step_flops(model.config, 16, 4, batch=2)

# ---- tables

def test_runs_apart_only_in_evaluation_batch_are_one_setting(tmp_path):
    """tables_eval_batch_size_splits_settings: PT and FPT_LD whose configs differ only in eval_batch_size (how many rows an
    evaluation generates at once, not what it scores) were two settings: FPT lost its PT (FLOPs % PT and Improve blank)."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    fake_run(tmp_path, 'fpt_ld', 0, 70, 30.0, 66)
    for d, bs in (('pt-0-s0', 32), ('fpt_ld-0-s0', 64)):
        s = json.loads((tmp_path/d/'summary.json').read_text())
        (tmp_path/d/'summary.json').write_text(json.dumps(dict(s, config=dict(lr=0.3, eval_batch_size=bs))))
    pt, ld = table2(collect_runs(tmp_path))
    assert pt['setting'] == ld['setting'] == '' and ld['flops_pct'] == pytest.approx(70.0) and not math.isnan(ld['improve'])

def test_a_tables_csv_has_the_markdown_tables_columns_in_its_order(tmp_path):
    """tables_csv_columns_sorted: the CSV's columns were in alphabetical order (dup, flops, flops_pct, ...), not the
    table's (task, model, ..., method, ..., score, ...): a spreadsheet opened on it reads apart from the markdown beside it."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2, write_tables
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    fake_run(tmp_path, 'fpt_ld', 0, 70, 30.0, 66)
    rows = table2(collect_runs(tmp_path))
    head = (write_tables(collect_runs(tmp_path), tmp_path/'t'/'sweep')['table2.csv']).read_text().splitlines()[0].split(',')   # (made, with t/)
    assert head == list(rows[0]) and head[:2] == ['task', 'model'] and head.index('method') < head.index('score') < head.index('flops')

def test_tables_that_cannot_be_written_whole_leave_the_ones_there_were(tmp_path, monkeypatch):
    """tables_written_in_place (an adversarial review): `fpt tables` wrote its four files in place: a full disk left a table cut
    short. tables_written_one_by_one (session 22): each file was then written whole, but a full disk at the third left new
    table 1 files beside old table 2 ones. The four are now written all or none."""
    import errno, os
    import fpt_nb.checkpoint as ck
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, write_tables
    fake_run(tmp_path/'runs', 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    out = tmp_path/'tables'
    write_tables(collect_runs(tmp_path/'runs'), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fake_run(tmp_path/'runs', 'pt', 1, 100, 50.0, 74, [(0, 10), (40, 52), (100, 74)])   # both tables differ: PT's row has two seeds
    fsync, calls = os.fsync, []
    def full_at_the_third(fd):   # (table1.md and table1.csv written whole)
        calls.append(fd)
        if len(calls) == 3: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)
    monkeypatch.setattr(ck.os, 'fsync', full_at_the_third)
    with pytest.raises(OSError): write_tables(collect_runs(tmp_path/'runs'), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and len(calls) == 3
    monkeypatch.undo()
    write_tables(collect_runs(tmp_path/'runs'), out)
    assert all((out/n).read_bytes() != b for n, b in before.items())   # (each file changes: a mutant that writes any one in place is seen)

def test_tables_left_part_new_by_a_kill_say_so(tmp_path):
    """A kill between the renames of the four tables (write_all_or_none's one gap) left table 1 of these runs beside table 2 of
    others, and nothing said so. A marker file, written before the renames and removed after, now stays to say so until the
    tables are written again."""
    import subprocess, sys
    from test_scoring import fake_run
    from fpt_nb.cli import main
    from fpt_nb.tables import INCOMPLETE, collect_runs, write_tables
    runs, out = tmp_path/'runs', tmp_path/'tables'
    fake_run(runs, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    write_tables(collect_runs(runs), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fake_run(runs, 'pt', 1, 100, 50.0, 74, [(0, 10), (40, 52), (100, 74)])   # every table changes
    code = ("import os, signal\nfrom pathlib import Path\nfrom fpt_nb.tables import collect_runs, write_tables\nreal, n = os.replace, []\n"
            "def replace(src, dst):\n    if Path(dst).suffix in ('.md', '.csv'):\n        n.append(dst)\n"
            "        if len(n) == 3: os.kill(os.getpid(), signal.SIGKILL)   # killed after two of the four renames\n"
            "    real(src, dst)\nos.replace = replace\n"
            f"write_tables(collect_runs(Path({str(runs)!r})), Path({str(out)!r}))\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    changed = sorted(n for n, b in before.items() if (out/n).read_bytes() != b)
    assert changed == ['table1.csv', 'table1.md'], changed   # part new, part old ...
    assert (out/INCOMPLETE).read_text().startswith(f"A command writing the tables in {out} was stopped while it replaced them")   # ... and said so
    assert main(['tables', str(runs), '--out', str(out)]) == 0
    assert not (out/INCOMPLETE).exists() and all((out/n).read_bytes() != b for n, b in before.items())


@pytest.mark.parametrize('at, left', [(3, True), (1, False)])
def test_tables_stopped_as_they_are_renamed(tmp_path, monkeypatch, at, left):
    """Ctrl-C (or an error) at the third rename of the four tables leaves the marker (two are new); at the first, every table is
    as it was, and no marker is left to say otherwise."""
    import os
    from pathlib import Path
    from test_scoring import fake_run
    from fpt_nb.tables import INCOMPLETE, collect_runs, write_tables
    runs, out = tmp_path/'runs', tmp_path/'tables'
    fake_run(runs, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    write_tables(collect_runs(runs), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fake_run(runs, 'pt', 1, 100, 50.0, 74, [(0, 10), (40, 52), (100, 74)])
    real, n = os.replace, []
    def replace(src, dst):
        if Path(dst).suffix in ('.md', '.csv'):
            n.append(dst)
            if len(n) == at: raise KeyboardInterrupt
        real(src, dst)
    monkeypatch.setattr(os, 'replace', replace)
    with pytest.raises(KeyboardInterrupt): write_tables(collect_runs(runs), out)
    assert (out/INCOMPLETE).exists() == left
    assert sum((out/n).read_bytes() != b for n, b in before.items()) == at - 1
    assert sorted(p.name for p in out.iterdir()) == sorted([*before] + ([INCOMPLETE] if left else []))   # no temporary file left

# ---- neuron scores from files

def _csv_rows(nan_at=None):
    rows = [[float(100 * i + j) for j in range(128)] for i in range(8)]   # the tiny T5: 4 + 4 layers of 128 neurons
    if nan_at: rows[nan_at[0]][nan_at[1]] = float('nan')
    return '\n'.join(','.join(map(str, r)) for r in rows) + '\n'

def test_scores_with_nan_are_refused_in_either_stack(tmp_path):
    "check_fits_nan_ok_for_decoder: a NaN in the decoder's scores was taken, and sorted into the neurons kept."
    model = load_t5('tiny')[0]
    for row, stack in ((1, 'encoder'), (6, 'decoder')):
        (tmp_path/'s.csv').write_text(_csv_rows((row, 3)))
        with pytest.raises(ValueError, match=f'NaN or infinite values in the {stack} scores'): load_scores(tmp_path/'s.csv', model)

def test_an_official_csv_with_blank_lines_reads(tmp_path):
    "scores_csv_blank_rows_kept: an official score CSV ending in blank lines was refused as the wrong shape."
    (tmp_path/'s.csv').write_text(_csv_rows() + '\n\n')
    sc = load_scores(tmp_path/'s.csv', load_t5('tiny')[0])
    assert tuple(sc.scores['encoder'].shape) == tuple(sc.scores['decoder'].shape) == (4, 128)

# ---- batches

def test_batches_from_the_end_of_an_epoch_are_none():
    "batches_start_at_end_refused: a resume at the end of an epoch (start = its number of batches) was refused."
    items = [dict(input_ids=[1] * (i + 1), attention_mask=[1] * (i + 1), labels=[1]) for i in range(10)]
    assert len(list(batches(items, 4))) == 3 and list(batches(items, 4, start=3)) == []
    with pytest.raises(ValueError, match='outside the 3 batches'): list(batches(items, 4, start=4))

def test_length_statistics_by_hand():
    "length_stats_target_truncated_from_input, length_stats_input_mean_of_targets: each figure of its own field."
    items = [dict(input_ids=[1, 2, 3, 4], labels=[1], truncated=3, target_truncated=0), dict(input_ids=[1, 2], labels=[1, 2], target_truncated=1),   # (one token cut: counted)
             dict(input_ids=[1, 2, 3], labels=[1, 2, 3], truncated=1)]
    assert length_stats(items) == dict(n=3, input_mean=3.0, input_max=4, target_mean=2.0, target_max=3, truncated=2, targets_truncated=1)

# ---- tasks and rows from files

def test_a_task_name_is_not_replaced_unasked():
    "register_task_silently_replaces: registering a task under a paper task's name replaced it."
    mnli = get_task('mnli')
    with pytest.raises(ValueError, match="task 'mnli' is already registered"): register_task(replace(mnli, target_max_length=3))
    assert get_task('mnli') is mnli

def test_a_float_label_in_a_file_is_read_as_its_class(tmp_path):
    "float_labels_not_restored: a JSONL file with a label written 1.0 was read as a float column, then refused ('unknown label 0.0')."
    (tmp_path/'mnli').mkdir()
    rows = [dict(premise='p', hypothesis='h', label=0, idx=0), dict(premise='q', hypothesis='g', label=1.0, idx=1)]
    (tmp_path/'mnli'/f"{get_task('mnli').file_stem('validation')}.jsonl").write_text(''.join(json.dumps(r) + '\n' for r in rows))
    labels = [r['label'] for r in load_examples('mnli', 'validation', tmp_path)]
    assert labels == [0, 1] and all(type(l) is int for l in labels)

def test_a_document_of_whitespace_is_skipped(tmp_path):
    "whitespace_document_not_skipped: an XSum row whose document is only whitespace was trained and scored on an empty input."
    (tmp_path/'xsum').mkdir()
    rows = [dict(document=' \n', summary='s', id='1'), dict(document='doc', summary='t', id='2')]
    (tmp_path/'xsum'/f"{get_task('xsum').file_stem('validation')}.jsonl").write_text(''.join(json.dumps(r) + '\n' for r in rows))
    with pytest.warns(SkippedRows, match=r'skipped 1 row'):
        assert [r['id'] for r in load_examples('xsum', 'validation', tmp_path)] == ['2']

def test_label_words_refuse_a_bool():
    "label_word_bool_accepted: a label True (a JSON true) was taken as class 1."
    words = get_task('qqp').label_words
    assert label_word(1, words) == words[1]
    with pytest.raises(ValueError): label_word(True, words)

# ---- SQuAD scoring and stage names

def test_squad_no_answer_in_any_case_is_no_answer():
    "squad_no_answer_case_sensitive: a generation 'No answer' was scored as a literal answer to an unanswerable question."
    assert squad_v2_scores(['No answer'], [[]])['exact'] == 100.0

def test_squad_exact_match_is_not_f1(data_dir):
    "squad_exact_match_is_f1: the task's main metric, exact_match, took the F1 figure."
    row = load_examples('squad2', 'validation', str(data_dir), limit=1)[0]
    row = dict(row, answers=dict(text=['Paris'], answer_start=[0]))
    s = score('squad2', ['Paris France'], [row])
    assert s['exact_match'] == 0.0 and s['f1'] == pytest.approx(200 / 3)

def test_a_stage_of_chosen_layers_is_named_by_their_number():
    "stage_describe_tuple_as_count: a stage keeping layers (0, 2, 5) was named 'enc (0, 2, 5)L' in summaries and tables."
    assert Stage(encoder_layers=(0, 2, 5)).describe() == 'enc 3L'

def test_settings_a_run_would_record_and_not_read_are_refused(tmp_path):
    """data_dir_of_toy, score_file_of_pt (session 20): `run_experiment` on the built-in task with a data folder, or PT with a score
    file, recorded them in the run's config though neither was read. Both are refused before a folder is made."""
    from fpt_nb.run import run_experiment
    kw = dict(task='toy', model='tiny', steps=2, progress=False, device='cpu')
    with pytest.raises(ValueError, match="task 'toy' is built in: it reads no data") as e:
        run_experiment(method='pt', out_dir=str(tmp_path/'a'), data_dir=str(tmp_path), **kw)
    from fpt_nb.tasks import TASKS   # the tasks it offers instead are those that read data (the sixteenth audit)
    reads = [n for n, t in TASKS.items() if t.generate is None]
    assert 'toy' not in reads and {'mnli', 'squad2', 'xsum'} <= set(reads)
    assert str(e.value).endswith(f"name a task that reads it (--task {', '.join(reads)})"), e.value
    with pytest.raises(ValueError, match='pt reads none, so it would be recorded and not read'):
        run_experiment(method='pt', out_dir=str(tmp_path/'b'), score_file=str(tmp_path/'s.safetensors'), **kw)
    assert sorted(tmp_path.iterdir()) == []

def test_the_toy_tasks_rows_follow_their_seed():
    "toy_seed_ignored: every seed gave seed 0's rows; the same seed gives the same rows."
    from fpt_nb.tasks import toy_examples
    assert toy_examples('train', 16, seed=1) == toy_examples('train', 16, seed=1) != toy_examples('train', 16, seed=0)

def test_a_callers_change_to_encoded_items_does_not_reach_the_next_call():
    "encode_returns_its_cache: a caller that dropped or added items changed what the next `encode` of the same rows gave."
    from fpt_nb.batches import encode
    _, tok = load_t5('tiny')
    rows = load_examples('toy', 'train', limit=4)
    first = encode('toy', tok, rows)
    first.pop(); first.append('not an item')
    again = encode('toy', tok, rows)
    assert len(again) == 4 and all(isinstance(i, dict) for i in again)

# ---- planted by a third mutation audit: each test below failed under the bug its docstring names (tools/mutants.py)

def test_decoder_layers_kept_by_score_are_ranked_by_the_decoders_scores():
    "decoder_layers_by_encoder_scores: with layer selection 'score', the decoder's layers were ranked by the encoder's layer scores."
    from fpt_nb.partial import stage_plan
    from fpt_nb.scores import NeuronScores
    model = load_t5('tiny')[0]   # 4 + 4 layers of 128 neurons; layer 0 is always kept (position bias)
    enc, dec = torch.zeros(4, 128), torch.zeros(4, 128)
    enc[1], dec[3] = 1.0, 1.0    # the best other layer: encoder 1, decoder 3
    stage = Stage(encoder_layers=2, decoder_layers=2, layer_selection='score')
    plan = stage_plan(stage, model, NeuronScores(dict(encoder=enc, decoder=dec)))
    assert {s: [i for i, _ in v] for s, v in plan.items()} == dict(encoder=[0, 1], decoder=[0, 3])

def test_an_official_csv_holds_mean_absolute_activations(tmp_path):
    "csv_kind_mean: the official repo's score CSV (mean absolute activations, encoder rows first) was read as kind 'mean'."
    (tmp_path/'s.csv').write_text(_csv_rows())
    sc = load_scores(tmp_path/'s.csv', load_t5('tiny')[0])
    assert sc.kind == 'abs_mean' and sc.scores['decoder'][0, 5].item() == 405.0   # row 4 (the decoder's first), column 5

def test_a_stage_selecting_neurons_in_sequence_keeps_the_first_of_each_ffn():
    """sequence_selection_keeps_all: a stage with `ffn_selection='sequence'` (no scores: the first neurons) left every FFN
    whole, since the whole width was taken to mean no reduction whatever the width asked. It keeps the first `width`
    neurons of each kept layer: the rows of `wi_0`/`wi_1` and the columns of `wo`."""
    from fpt_nb.partial import apply_stage
    from fpt_nb.arch import ffn_widths
    m = load_t5('tiny')[0]
    ffn = lambda: m.encoder.block[1].layer[1].DenseReluDense
    wi, wo = ffn().wi_0.weight.detach().clone(), ffn().wo.weight.detach().clone()
    apply_stage(m, Stage(encoder_ffn=32, decoder_ffn=48, ffn_selection='sequence'))
    w = ffn_widths(m)
    assert set(w['encoder']) == {32} and set(w['decoder']) == {48}, w
    assert torch.equal(ffn().wi_0.weight, wi[:32]) and torch.equal(ffn().wo.weight, wo[:, :32])
