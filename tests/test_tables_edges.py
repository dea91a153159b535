"""Edges of the tables a sixth mutation audit (session 23) found no test held: which runs pool into a row, what a row's figures
are the mean of, and which records the tables trust. Each test below failed under the bug named in its docstring."""
import json, math, shutil
from pathlib import Path
import pytest
from test_scoring import fake_run
from fpt_nb.tables import collect_runs, table1, table2, to_markdown

def edit_summary(d:Path, **changes):
    s = json.loads((d/'summary.json').read_text()); s.update(changes)
    (d/'summary.json').write_text(json.dumps(s))

def pt_and_ld(root:Path):
    fake_run(root, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    fake_run(root, 'fpt_ld', 0, 70, 30.0, 66)

def test_runs_of_other_decoder_or_stage_steps_are_rows_apart(tmp_path):
    """decoder_pooled: FPT runs that reduced the decoder and runs that kept it (or ran other stage steps) were pooled into one
    row, as two seeds of one setting."""
    pt_and_ld(tmp_path)
    fake_run(tmp_path/'b', 'fpt_ld', 1, 70, 30.0, 60)
    for key, a, b in (('decoder', False, True), ('stage_steps', [2, 2, 2, 4], [1, 1, 1, 7])):
        edit_summary(tmp_path/'fpt_ld-0-s0', **{key: a}); edit_summary(tmp_path/'b'/'fpt_ld-0-s1', **{key: b})
        rows = [r for r in table2(collect_runs(tmp_path)) if r['method'] == 'FPT_LD']
        assert [r['seeds'] for r in rows] == [1, 1], key

def test_a_second_and_third_run_of_one_seed_are_each_marked_dup(tmp_path):
    """dup_from_third: a run of a seed its row already has is a row of its own, marked (dup); the first such repeat went
    unmarked (from the third on only), read as a second setting."""
    pt_and_ld(tmp_path)
    for again in ('again', 'again2'):
        shutil.copytree(tmp_path/'fpt_ld-0-s0', tmp_path/again/'fpt_ld-0-s0')
    rows = [r for r in table2(collect_runs(tmp_path)) if r['method'] == 'FPT_LD']
    assert [r['dup'] for r in rows] == [False, True, True]
    assert [l.split(' | ')[2] for l in to_markdown(rows).splitlines() if l.startswith('| mnli')] == ['FPT_LD', 'FPT_LD (dup)', 'FPT_LD (dup)']

def test_a_pt_log_one_step_short_is_refused_for_improve(tmp_path):
    """pt_cut_le: PT's log ending before the step its summary ends at is a curve cut short, refused for Improve; one step short
    was let through, its last value carried on to FPT's budget."""
    pt_and_ld(tmp_path)
    log = tmp_path/'pt-0-s0'/'log.jsonl'
    log.write_text(''.join(l + '\n' for l in log.read_text().splitlines() if json.loads(l)['step'] < 10)
                   + json.dumps(dict(kind='step', step=9, stage=0, flops=90.0, wall=0.0, loss=1.0)) + '\n')
    ld = next(r for r in table2(collect_runs(tmp_path)) if r['method'] == 'FPT_LD')
    assert math.isnan(ld['improve']) and 'ends at step 9 of the 10 its summary says PT trained' in ld['pt_curve']

def test_a_run_stopped_between_evaluations_is_not_called_edited(tmp_path):
    """summary_final_any_step: a run's final metrics are held to its log's last evaluation only where that is at the run's last
    step; one stopped between evaluations (its final metrics from a last evaluation the log does not hold at that step) was
    left out as 'a record was changed after the run'."""
    pt_and_ld(tmp_path)
    d = tmp_path/'pt-0-s0'
    edit_summary(d, steps=12, planned_steps=12, final_metrics=dict(accuracy=71.0), best=dict(step=10, value=70))
    msgs = []
    runs = collect_runs(tmp_path, say=msgs.append)
    assert any(r['run_dir'] == str(d) for r in runs) and not msgs, msgs

def test_a_best_evaluation_is_held_to_the_log_at_its_own_stage(tmp_path):
    """summary_best_any_stage: at a stage's last step the log holds two evaluations, the partial model's and the expanded one's;
    the summary's best of the partial stage was held to the other (the later) and the run left out as edited."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    d = tmp_path/'fpt_ld-0-s0'
    fake_run(tmp_path, 'fpt_ld', 0, 70, 30.0, 66)
    (d/'log.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in (
        dict(kind='eval', step=5, stage=0, flops=30.0, wall=0.0, accuracy=80.0), dict(kind='eval', step=5, stage=1, flops=30.0, wall=0.0, accuracy=55.0),
        dict(kind='eval', step=10, stage=1, flops=70.0, wall=0.0, accuracy=66.0))))
    edit_summary(d, best=dict(step=5, stage=0, metric='accuracy', metrics=dict(accuracy=80.0)))
    msgs = []
    assert any(r['run_dir'] == str(d) for r in collect_runs(tmp_path, say=msgs.append)) and not msgs, msgs
    edit_summary(d, best=dict(step=5, stage=0, metric='accuracy', metrics=dict(accuracy=81.0)))   # an edit is still seen
    assert not any(r['run_dir'] == str(d) for r in collect_runs(tmp_path, say=msgs.append)) and 'accuracy is 81.0 at step 5' in msgs[-1], msgs

def test_a_pt_of_zero_seconds_leaves_wall_percent_out(tmp_path):
    """wall_pct_pt_zero: a PT run whose summary records 0 training seconds (a resume of a finished run, times lost) failed the
    whole table with a ZeroDivisionError; its wall % PT is left out."""
    pt_and_ld(tmp_path)
    edit_summary(tmp_path/'pt-0-s0', train_seconds=0.0)
    ld = next(r for r in table2(collect_runs(tmp_path)) if r['method'] == 'FPT_LD')
    assert math.isnan(ld['wall_pct']) and ld['flops_pct'] == pytest.approx(70.0)

def test_flops_percent_is_the_mean_over_seeds(tmp_path):
    """flops_pct_of_median: a row's FLOPs % PT is the mean over its seeds, as every other figure; the median (the same for two
    seeds) was shown for three."""
    for seed, f in ((0, 50), (1, 60), (2, 100)):
        fake_run(tmp_path, 'pt', seed, 100, 50.0, 70, [(0, 10), (100, 70)])
        fake_run(tmp_path, 'fpt_ld', seed, f, 30.0, 66)
    ld = next(r for r in table2(collect_runs(tmp_path)) if r['method'] == 'FPT_LD')
    assert ld['flops_pct'] == pytest.approx(70.0) and ld['seeds'] == 3

def test_a_seed_without_its_pt_is_set_against_the_lowest_pt_seed(tmp_path):
    """pts_unsorted_by_seed: an FPT seed with no PT run of its own is set against PT's lowest seed, whatever order the runs
    come in (a list made by hand, not collect_runs): it was the first PT in the list."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    fake_run(tmp_path, 'pt', 1, 120, 40.0, 62, [(0, 20), (120, 62)])
    fake_run(tmp_path, 'fpt_ld', 5, 60, 30.0, 66)
    for runs in (collect_runs(tmp_path), list(reversed(collect_runs(tmp_path)))):
        ld = next(r for r in table2(runs) if r['method'] == 'FPT_LD')
        assert ld['pt_seed'] == '0' and ld['flops_pct'] == pytest.approx(60.0)

def test_runs_on_other_data_are_rows_apart(tmp_path):
    """data_not_in_setting: runs that trained on other data (another train_limit, another copy of the task) were pooled into
    one row as seeds of one setting; their data is part of the setting, and the rows say where they differ."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    fake_run(tmp_path, 'pt', 1, 100, 50.0, 60, [(0, 10), (100, 60)])
    edit_summary(tmp_path/'pt-0-s0', data=dict(sha='a', limit=100)); edit_summary(tmp_path/'pt-0-s1', data=dict(sha='b', limit=100))
    rows = table2(collect_runs(tmp_path))
    assert [r['seeds'] for r in rows] == [1, 1] and all(r['setting'].startswith('data=') for r in rows)

def test_a_partial_runs_level_is_in_its_row(tmp_path):
    """level_label_dropped: Table 1's rows of one partial method at levels 1, 2 and 3 read the same ('LD'), told apart only by
    their stage column; each says its level."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    for level in (1, 2):
        fake_run(tmp_path, 'ld', 0, 25 * level, 10.0, 40, level=level)
    assert [l.split(' | ')[2] for l in to_markdown(table1(collect_runs(tmp_path))).splitlines() if l.startswith('| mnli')] == ['PT', 'LD L1', 'LD L2']

def test_a_best_step_edited_with_the_log_gone_is_seen(tmp_path):
    """choice_records_step_unchecked: with log.jsonl gone, the summary's best evaluation is held to best.json: a summary whose
    best step was changed (its scores left) was tabulated, since only the scores were compared."""
    pt_and_ld(tmp_path)
    d = tmp_path/'fpt_ld-0-s0'
    (d/'log.jsonl').unlink(missing_ok=True)
    (d/'best.json').write_text(json.dumps(dict(step=10, accuracy=66.0)))
    edit_summary(d, best=dict(step=10, metric='accuracy', metrics=dict(accuracy=66.0)))
    msgs = []
    assert any(r['run_dir'] == str(d) for r in collect_runs(tmp_path, say=msgs.append)) and not msgs, msgs
    edit_summary(d, best=dict(step=8, metric='accuracy', metrics=dict(accuracy=66.0)))
    assert not any(r['run_dir'] == str(d) for r in collect_runs(tmp_path, say=msgs.append))
    assert "its summary's best step is 8, where its best.json has step 10" in msgs[-1], msgs

def test_table1_has_no_improve_column():
    """table1_improve (`improve=True`): Table 1 (PT on a partial model, one stage) got Table 2's Improve column, an FPT run's
    gain over PT at equal FLOPs, which a single partial stage does not have."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        pt_and_ld(Path(d))
        fake_run(Path(d), 'ld', 0, 40, 20.0, 55)
        t1 = table1(collect_runs(Path(d)))
    assert [r['method'] for r in t1] == ['PT', 'LD'] and not any('improve' in r for r in t1)
    assert 'Improve' not in to_markdown(t1)

def test_settings_that_differ_by_their_data_are_labelled_by_its_hash():
    """data_label_elided (`v.get('sha') and '…'`): rows of one method whose runs read other data were labelled `train_data=…`
    alike; each is labelled by its data's hash (a setting that is a dict without one shows `…`)."""
    from fpt_nb.tables import _label
    runs = [dict(task='mnli', model='m', train_data=dict(sha='ab12', rows=8), decoder=None),
            dict(task='mnli', model='m', train_data=dict(sha='cd34', rows=8), decoder={'x': 1})]
    assert _label(runs) == ['train_data=ab12, decoder=null', 'train_data=cd34, decoder=…']
