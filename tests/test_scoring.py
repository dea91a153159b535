"""Metrics and tables on inputs whose answers are counted by hand (issue 16): every expected value below is worked out
in the comments, never with the library function under test."""
import json, math
from pathlib import Path
import pytest
from fpt_nb.metrics import rouge_scores, record_scores, squad_v2_scores, score, normalize_answer, token_f1, paper_squad2, paper_qqp, paper_record
from fpt_nb.tables import collect_runs, table1, table2, to_markdown
from fpt_nb.tasks import NO_ANSWER, load_examples


# ---------------------------------------------------------------------------------------------------------------
# Metrics

def test_squad_v2_by_hand():
    # 1. NO_ANSWER for a question without answer: right (exact 1, F1 1).
    # 2. 'in 1990' against '1990' or 'in 1991': not exact; F1 against '1990' is P 1/2, R 1 -> 2/3 (the best of the two).
    # 3. 'no idea' for a question without answer: wrong (an empty side scores 1 only if both are empty).
    s = squad_v2_scores([NO_ANSWER, 'in 1990', 'no idea'], [[], ['1990', 'in 1991'], []])
    assert s == pytest.approx(dict(exact=100 / 3, f1=100 * (1 + 2 / 3 + 0) / 3, total=3, HasAns_exact=0.0, HasAns_f1=200 / 3,
                                   HasAns_total=1, NoAns_exact=50.0, NoAns_f1=50.0, NoAns_total=2))


def test_record_takes_the_best_gold_answer():
    # 'Paris' matches the second gold answer 'paris' exactly; 'the  Louvre!' normalises to 'louvre': against
    # 'louvre museum' not exact, F1 = 2 * 1 * 1/2 / (1 + 1/2) = 2/3.
    s = record_scores(['Paris', 'the  Louvre!'], [['London', 'paris'], ['Louvre museum']])
    assert s == pytest.approx(dict(exact_match=50.0, f1=100 * (1 + 2 / 3) / 2, total=2))


def test_rouge_stems_words():
    # Stemmed: 'the cat were run' against 'a cat run': 2 shared unigrams, P 2/4, R 2/3 -> F 4/7; no shared bigram;
    # the longest common subsequence 'cat run' gives ROUGE-L 4/7 too. Without stemming nothing would match.
    assert rouge_scores(['the cats were running'], ['a cat runs']) == pytest.approx(dict(rouge1=400 / 7, rouge2=0.0, rougeL=400 / 7, total=1))


def test_accuracy_is_a_percentage():
    rows = [dict(text='x', label=l, idx=i) for i, l in enumerate([1, 0, 1, 1])]
    s = score('toy', ['yes', 'yes', 'yes', 'no'], rows)
    assert (s['accuracy'], s['unparseable'], s['total']) == (50.0, 0, 4)


def test_normalize_strips_every_article():
    "Official SQuAD normalisation drops 'a', 'an' and 'the' as whole words (catches a regex that forgets 'a')."
    assert normalize_answer('A cat, an owl and THE dog!') == 'cat owl and dog'
    assert normalize_answer('a') == '' and normalize_answer('abate a banana') == 'abate banana'   # whole words only
    # so 'a dog' is an exact match for 'dog' in the official scorer
    assert squad_v2_scores(['a dog'], [['dog']])['exact'] == 100.0


def test_token_f1_counts_repeated_tokens():
    "Token overlap is a multiset intersection (catches counting shared token types with sets)."
    # 'dog dog' against 'dog dog cat': 2 shared tokens, P 2/2, R 2/3 -> F1 2 * 1 * 2/3 / (1 + 2/3) = 4/5
    # (with sets: 1 shared, P 1/2, R 1/3 -> 2/5)
    assert token_f1('dog dog', 'dog dog cat') == pytest.approx(4 / 5)
    # 'the cat cat cat' normalises to 'cat cat cat'; against 'cat': 1 shared, P 1/3, R 1 -> 1/2
    assert token_f1('the cat cat cat', 'cat') == pytest.approx(1 / 2)


def test_paper_squad2_f1_is_answerable_vs_not():
    "The paper's SQuAD F1 is answerable-vs-not on the gold targets (catches gold taken after 'no answer' is filled in)."
    # squad.py: bool_predictions = str(p != 'no answer'), bool_labels = str(target != 'no answer'), pos_label 'True'
    # predicted answerable: F T F T; gold answerable: F T T F -> tp 1, fp 1, fn 1 -> F1 2/4 = 50
    # acc against the first gold ('no answer' when none): right, right, wrong ('no answer' vs 'z'), wrong -> 50
    s = paper_squad2([NO_ANSWER, 'x', NO_ANSWER, 'y'], [[], ['x', 'xx'], ['z'], []])
    assert s == pytest.approx(dict(paper_acc=50.0, paper_em=50.0, paper_f1=50.0))


def test_paper_qqp_unparseable_counts_as_duplicate():
    "The paper's f1_metric maps a generation that is no label word to pos_label 'is_duplicate' (catches counting it negative)."
    # predicted positive: T ('is_duplicate'), T ('maybe' -> pos), F; gold positive: T, F, T -> tp 1, fp 1, fn 1 -> F1 50
    s = paper_qqp(['is_duplicate', 'maybe', 'not_duplicate'], ['is_duplicate', 'not_duplicate', 'is_duplicate'])
    assert s == pytest.approx(dict(paper_acc=100 / 3, paper_f1=50.0))


def test_paper_qqp_f1_is_for_is_duplicate(data_dir):
    "Through `score` on real QQP rows: the paper's F1 is that of the is_duplicate class (catches the classes swapped)."
    rows = load_examples('qqp', 'validation', data_dir, limit=4)
    assert [r['label'] for r in rows] == [0, 0, 1, 0]          # idx 7999-8002; GLUE: 1 = duplicate
    # saying is_duplicate to all four: tp 1, fp 3, fn 0 -> F1 2/5 = 40; acc 1/4
    s = score('qqp', ['is_duplicate'] * 4, rows)
    assert (s['paper_acc'], s['paper_f1']) == (25.0, pytest.approx(40.0))
    # saying not_duplicate to all: no positive predicted -> 0 (sklearn zero_division); acc 3/4
    s = score('qqp', ['not_duplicate'] * 4, rows)
    assert (s['paper_acc'], s['paper_f1']) == (75.0, 0.0)


def test_paper_record_f1_is_harmonic_mean():
    "The paper's squad_f1_score (raw whitespace tokens, no normalisation) is 2PR/(P+R) (catches recall alone)."
    # 'Barack Obama' against 'Obama': 1 shared, P 1/2, R 1 -> 2/3; 'the Louvre' against 'Louvre' the same (no
    # normalisation: 'the' is a token); 'louvre' against 'Louvre': case matters, 0
    s = paper_record(['Barack Obama', 'the Louvre', 'louvre'], [['Obama'], ['Louvre'], ['Louvre']])
    assert s == pytest.approx(dict(paper_em=0.0, paper_f1=100 * (2 / 3 + 2 / 3 + 0) / 3))


# ---------------------------------------------------------------------------------------------------------------
# Tables

def fake_run(root:Path, method:str, seed:int, flops:float, seconds:float, final:float, evals=(), level=None):
    "A run folder as `run_experiment` leaves it, with the numbers given: `evals` are (cumulative FLOPs, accuracy)."
    d = root/f'{method}-{level or 0}-s{seed}'
    d.mkdir(parents=True)
    (d/'log.jsonl').write_text(''.join(json.dumps(dict(kind='eval', step=round(10 * f / flops), stage=0, flops=f, wall=0.0, accuracy=a)) + '\n'
                                       for f, a in evals))   # its steps in proportion to FLOPs: the last at the run's 10th
    stage = dict(ld='enc 1L').get(method, 'full')
    (d/'summary.json').write_text(json.dumps(dict(
        task='mnli', model='m', method=method, seed=seed, level=level, metric='accuracy', steps=10, planned_steps=10,
        stages=[dict(name=stage, steps=10, flops=flops, seconds=seconds)], total_flops=flops, train_seconds=seconds,
        final_metrics=dict(accuracy=final), best=dict(step=10, value=final), stopped=None)))


@pytest.fixture
def runs(tmp_path):
    # PT seed 0: 100 FLOPs, 50 s, evaluations 10 @ 0, 50 @ 40, 70 @ 100 FLOPs.
    # PT seed 1: 120 FLOPs, 40 s, evaluations 20 @ 0, 40 @ 50, 60 @ 100, 62 @ 120.
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    fake_run(tmp_path, 'pt', 1, 120, 40.0, 62, [(0, 20), (50, 40), (100, 60), (120, 62)])
    fake_run(tmp_path, 'fpt_ld', 0, 70, 30.0, 66)
    fake_run(tmp_path, 'fpt_ld', 1, 60, 24.0, 45)
    fake_run(tmp_path, 'ld', 0, 25, 10.0, 40, level=1)
    return collect_runs(tmp_path)


def test_table2_by_hand(runs):
    """With the default score (`best`), Improve is FPT's best minus the best PT's rule had chosen by FPT's total FLOPs
    (catches improve_against_pt_curve and improve_against_pt_final); with `final`, minus PT's curve there."""
    # FPT_LD seed 0 against PT seed 0: 70/100 FLOPs = 70%, 30/50 s = 60%; by 70 FLOPs PT had evaluated 10 @ 0 and 50 @ 40:
    # its best 50, so Improve = 66 - 50 = +16.
    # FPT_LD seed 1 against PT seed 1: 60/120 = 50%, 24/40 = 60%; by 60 FLOPs PT had 20 @ 0 and 40 @ 50: Improve 45 - 40 = +5.
    # Means over seeds: FLOPs 60%, wall 60%, Improve 10.5 with sample std |16 - 5| / sqrt(2); score 55.5, std 21 / sqrt(2).
    pt, ld = table2(runs)
    assert (pt['method'], pt['seeds'], pt['score'], pt['flops_pct'], pt['wall_pct']) == ('PT', 2, 66.0, 100.0, 100.0)
    assert math.isnan(pt['improve'])
    assert (ld['method'], ld['seeds'], ld['flops']) == ('FPT_LD', 2, 65.0)
    assert ld['flops_pct'] == pytest.approx(60.0) and ld['wall_pct'] == pytest.approx(60.0)
    assert ld['improve'] == pytest.approx(10.5) and ld['improve_std'] == pytest.approx(11 / math.sqrt(2))
    assert ld['score'] == pytest.approx(55.5) and ld['score_std'] == pytest.approx(21 / math.sqrt(2))
    assert '| mnli | m | FPT_LD | 2 | 55.5 ± 14.8 accuracy | 65.0 | 60% | 27.0 | 60% | +10.5 ± 7.8 |' in to_markdown([pt, ld])
    # `final` (these runs' final and best evaluations are the same): PT's curve at 70 FLOPs, between 50 @ 40 and 70 @ 100,
    # is 50 + 20 * 30/60 = 60: +6; at 60 FLOPs, between 40 @ 50 and 60 @ 100, 40 + 20 * 10/50 = 44: +1. Mean 3.5.
    ld = table2(runs, 'final')[1]
    assert ld['improve'] == pytest.approx(3.5) and ld['improve_std'] == pytest.approx(5 / math.sqrt(2))


def test_table1_by_hand(runs):
    # LD level 1, seed 0: 25 of PT seed 0's 100 FLOPs, 10 of its 50 s.
    rows = table1(runs)
    assert [(r['method'], r['level'], r['stage']) for r in rows] == [('PT', '', 'full'), ('LD', 1, 'enc 1L')]
    assert (rows[1]['score'], rows[1]['flops_pct'], rows[1]['wall_pct']) == (40.0, 25.0, 20.0)


def scored_run(root:Path, method:str, flops:float, best, best_last, final, evals=(), steps=10, stopped=None, select=None):
    """A SQuAD2 run folder whose records hold the official `exact_match` and the paper's `paper_em`: `best`, `best_last`
    and `final` are (exact_match, paper_em) pairs; `evals` are (cumulative FLOPs, exact_match, paper_em); `select`: the
    metric its best prompt was chosen by (None: not recorded)."""
    d = root/method
    d.mkdir(parents=True)
    (d/'log.jsonl').write_text(''.join(json.dumps(dict(kind='eval', step=round(steps * f / flops), stage=0, flops=f, wall=0.0, exact_match=em, paper_em=p)) + '\n'
                                       for f, em, p in evals))
    ms = lambda pair: dict(exact_match=pair[0], paper_em=pair[1])
    (d/'summary.json').write_text(json.dumps(dict(
        task='squad2', model='m', method=method, seed=0, level=None, metric='exact_match', paper_metric='paper_em', steps=steps,
        planned_steps=10, stages=[dict(name='full', steps=steps, flops=flops, seconds=10.0)], total_flops=flops, train_seconds=10.0,
        final_metrics=ms(final), best=dict(step=4, value=best[0], metrics=ms(best), **({'metric': select} if select else {})),
        best_last_stage=dict(step=8, value=best_last[0], metrics=ms(best_last)), stopped=stopped)))


def test_table2_scores_and_improve_by_score_kind_and_scoring(tmp_path):
    """Catches best_last_reads_best, final_reads_best, paper_scoring_ignored, official_scoring_ignored and
    improve_on_official_curve (the paper-metric score minus PT's official-metric curve)."""
    # PT's (exact_match, paper_em): (10, 20) at 0 FLOPs, (30, 40) at 50, (20, 30) at 60, (50, 60) at 100. By FPT's 55 FLOPs
    # its best was (30, 40); its curve there is halfway between 50 and 60 FLOPs: (25, 35).
    scored_run(tmp_path, 'pt', 100, best=(50, 60), best_last=(50, 60), final=(50, 60),
               evals=[(0, 10, 20), (50, 30, 40), (60, 20, 30), (100, 50, 60)])
    scored_run(tmp_path, 'fpt_ld', 55, best=(40, 45), best_last=(38, 44), final=(36, 42))
    runs = collect_runs(tmp_path)
    # (score kind, scoring) -> (metric, FPT score, Improve = FPT score - PT's same metric by 55 FLOPs, read as the score kind reads)
    want = {('best', 'paper'): ('paper_em', 45, 45 - 40), ('best', 'official'): ('exact_match', 40, 40 - 30),
            ('best_last', 'paper'): ('paper_em', 44, 44 - 40), ('best_last', 'official'): ('exact_match', 38, 38 - 30),
            ('final', 'paper'): ('paper_em', 42, 42 - 35), ('final', 'official'): ('exact_match', 36, 36 - 25)}
    for (kind, scoring), (metric, score, improve) in want.items():
        pt, fpt = table2(runs, kind, scoring)
        assert (pt['score'], pt['metric']) == ((60.0, 'paper_em') if scoring == 'paper' else (50.0, 'exact_match')), (kind, scoring)
        assert (fpt['metric'], fpt['score'], fpt['improve']) == (metric, score, improve), (kind, scoring)


def test_improve_reads_pts_best_by_the_metric_it_was_chosen_by(tmp_path):
    """Catches improve_best_by_the_shown_metric: PT chose its best prompt by exact_match (its `best.metric`), the table shows
    paper_em. By 50 FLOPs PT had (10, 50) and (30, 40): its rule had chosen the second, whose paper_em is 40 (the first
    has the higher paper_em, 50)."""
    scored_run(tmp_path, 'pt', 100, best=(50, 60), best_last=(50, 60), final=(50, 60),
               evals=[(0, 10, 50), (50, 30, 40), (100, 50, 60)], select='exact_match')
    scored_run(tmp_path, 'fpt_ld', 50, best=(40, 45), best_last=(40, 45), final=(40, 45))
    assert table2(collect_runs(tmp_path), 'best', 'paper')[1]['improve'] == 45 - 40


def test_old_summaries_and_early_stopped_runs_in_the_tables(tmp_path):
    """Catches legacy_value_as_paper_metric (an old summary's official `value` shown as the paper's metric) and
    early_stopped_runs_left_out (a run stopped early by its rule is finished, not left out as unfinished)."""
    scored_run(tmp_path, 'pt', 100, best=(50, 60), best_last=(50, 60), final=(50, 60), evals=[(0, 10, 20), (100, 50, 60)])
    scored_run(tmp_path, 'fpt_fr', 40, best=(30, 35), best_last=(30, 35), final=(30, 35), steps=6, stopped='early stop at step 6')
    d = tmp_path/'fpt_ld'
    scored_run(tmp_path, 'fpt_ld', 50, best=(40, 45), best_last=(40, 45), final=(40, 45))
    s = json.loads((d/'summary.json').read_text())
    s['best'] = dict(step=4, value=40)   # written before the summaries kept every metric: only the official one's value
    (d/'summary.json').write_text(json.dumps(s))
    said = []
    runs = collect_runs(tmp_path, say=said.append)
    assert [r['method'] for r in runs] == ['fpt_fr', 'fpt_ld', 'pt'] and said == []
    rows = {r['method']: r for r in table2(runs, 'best', 'paper')}
    assert rows['FPT_FR']['score'] == 35 and rows['FPT_FR']['improve'] == 35 - 20   # by 40 FLOPs PT had evaluated once
    assert math.isnan(rows['FPT_LD']['score'])   # no paper_em recorded: unknown, not the exact_match 40
    assert {r['method']: r['score'] for r in table2(runs, 'best', 'official')}['FPT_LD'] == 40


def test_fpt_nb_leaves_the_root_logger_alone():
    """rouge_root_logger_left: building the ROUGE scorer (at import, before) gave Python's root logger a handler through absl,
    so every library warning printed twice, in the CLI and in a user's notebook."""
    import os, subprocess, sys
    code = ("import logging, fpt_nb.run, fpt_nb.cli\nfrom fpt_nb.metrics import rouge_scores\n"
            "assert rouge_scores(['a cat'], ['a cat'])['rougeL'] == 100\nprint(len(logging.getLogger().handlers))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    assert (r.returncode, r.stdout.strip()) == (0, '0'), r.stderr


def test_settings_that_differ_in_steps_only_are_labelled(tmp_path):
    """steps_left_out_of_labels: two PT settings of one task that differ only in their steps were both labelled '' (the
    markdown has no steps column); labels are made within a task and model, so another task's settings add nothing."""
    for name, planned, task in (('long', 1000, 'mnli'), ('short', 300, 'mnli'), ('qqp', 500, 'qqp')):
        fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
        d = (tmp_path/'pt-0-s0').rename(tmp_path/name)
        s = json.loads((d/'summary.json').read_text())
        (d/'summary.json').write_text(json.dumps(dict(s, steps=planned, planned_steps=planned, task=task)))
    rows = table2(collect_runs(tmp_path))
    assert [(r['task'], r['steps'], r['setting']) for r in rows] == [('mnli', 1000, 'steps=1000'), ('mnli', 300, 'steps=300'), ('qqp', 500, '')]
    assert '| mnli | m | steps=300 | PT |' in to_markdown(rows)


def test_improve_before_pts_first_evaluation_is_against_that_evaluation(tmp_path):
    """pt_best_before_first_eval: an FPT run cheaper than PT's first evaluation is compared with that first evaluation (the
    paper's rule had chosen nothing else yet), not with PT's best over its whole run."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(50, 10), (100, 70)])
    fake_run(tmp_path, 'fpt_ld', 0, 20, 10.0, 66)
    assert table2(collect_runs(tmp_path))[1]['improve'] == 66 - 10

def test_runs_of_different_local_models_with_one_name_are_not_pooled(tmp_path):
    """tables_pool_local_models_by_name: two runs of model folders with the same name but other weights (their recorded
    digests differ) are two settings, one seed each, not two seeds of one."""
    for seed, digest in ((0, 'aaaa'), (1, 'bbbb')):
        fake_run(tmp_path, 'pt', seed, 100, 50.0, 70 - seed, [(0, 10), (100, 70 - seed)])
        f = tmp_path/f'pt-0-s{seed}'/'summary.json'
        f.write_text(json.dumps(dict(json.loads(f.read_text()), model_ref=dict(name='m', path=f'/models/m{seed}', digest=digest))))
    rows = table2(collect_runs(tmp_path))
    assert [(r['method'], r['seeds'], r['score']) for r in rows] == [('PT', 1, 70.0), ('PT', 1, 69.0)]

def test_a_row_compared_with_another_seeds_pt_says_so(tmp_path):
    "other_pt_seed_unsaid: FPT seed 2 with PT runs of seeds 0 and 1 only is compared with seed 0's, and the table says so."
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    fake_run(tmp_path, 'pt', 1, 100, 50.0, 60, [(0, 10), (100, 60)])
    fake_run(tmp_path, 'fpt_ld', 2, 70, 30.0, 66)
    rows = table2(collect_runs(tmp_path))
    assert (rows[1]['method'], rows[1]['pt_seed']) == ('FPT_LD', '0') and '(vs PT seed 0)' in to_markdown(rows)
    assert rows[0]['pt_seed'] == ''

def test_fpt_tables_takes_the_scoring_asked_for(tmp_path, capsys):
    """tables_scoring_ignored: `fpt tables ROOT --scoring official` writes the datasets' official scores (exact_match), the
    default the paper's (paper_em), into its tables."""
    from fpt_nb.cli import main
    scored_run(tmp_path, 'pt', 100, best=(50, 60), best_last=(50, 60), final=(50, 60), evals=[(0, 10, 20), (100, 50, 60)])
    scored_run(tmp_path, 'fpt_ld', 55, best=(40, 45), best_last=(38, 44), final=(36, 42))
    for scoring, metric, fpt_score in (('official', 'exact_match', '40.0'), ('paper', 'paper_em', '45.0')):
        assert main(['tables', str(tmp_path), '--scoring', scoring, '--out', str(tmp_path/scoring)]) == 0
        t2 = (tmp_path/scoring/'table2.md').read_text()
        assert f'| {fpt_score} {metric} |' in t2, t2
    capsys.readouterr()


# ---- planted by a mutation audit (session 19): each test below failed under its bug

def test_paper_squad2_em_takes_any_gold_answer():
    "paper_squad2_em_first_gold: the paper's EM held to the first gold answer only is its acc, not its EM."
    s = paper_squad2(['b', 'a'], [['a', 'b'], ['a', 'b']])
    assert (s['paper_em'], s['paper_acc']) == (100.0, 50.0)

def test_a_rows_score_is_the_mean_over_seeds(tmp_path):
    "tables_median_over_seeds: three PT seeds scoring 0, 0 and 90 make a row of 30 (their median is 0)."
    for seed, final in ((0, 0.0), (1, 0.0), (2, 90.0)): fake_run(tmp_path, 'pt', seed, 100, 50.0, final)
    (pt,) = table2(collect_runs(tmp_path))
    assert pt['seeds'] == 3 and pt['score'] == pytest.approx(30.0)


# ---------------------------------------------------------------------------------------------------------------
# Metrics: planted by a third mutation audit (each test failed under the bug(s) its docstring names; tools/mutants.py)

def test_a_generation_is_cleaned_before_the_papers_exact_match():
    """paper_exact_uncleaned (the paper's acc/EM compared the raw generation), clean_no_strip (whitespace around it kept),
    clean_sentinel_one_digit (`<extra_id_12>` left in: only one-digit sentinels removed), paper_squad2_f1_uncleaned
    (a 'no answer' with special tokens counted as an answer in the paper's SQuAD F1)."""
    from fpt_nb.metrics import clean_generation
    assert clean_generation(' <pad><extra_id_0> Paris <extra_id_12></s> ') == 'Paris'
    rows = [dict(premise='p', hypothesis='h', label=l) for l in (0, 1, 2)]
    s = score('mnli', ['<extra_id_0>entailment</s>', 'neutral ', 'contradiction<extra_id_12>'], rows)
    assert (s['accuracy'], s['paper_acc']) == (100.0, 100.0)
    # predicted answerable: T, F; gold answerable: T, F -> tp 1, no fp or fn: F1 100
    assert paper_squad2(['x', '<extra_id_0>no answer</s>'], [['x'], []])['paper_f1'] == 100.0


def test_normalize_removes_punctuation_before_articles():
    """normalize_articles_before_punct: the official order is punctuation out, then articles: '9 a.m.' is '9 am' (articles
    first, the 'a' of 'a.m.' is taken for an article: '9 m'), 'the-cat' is 'thecat'."""
    assert (normalize_answer('9 a.m.'), normalize_answer('The-cat')) == ('9 am', 'thecat')
    assert squad_v2_scores(['9 am'], [['9 a.m.']])['exact'] == 100.0


def test_paper_rouge_is_the_f_measure():
    "paper_rouge_recall: the paper's ROUGE figures are F, not recall (which scores a generation that says everything as right)."
    from fpt_nb.metrics import paper_rouge
    # 'the cat sat' against 'the cat': unigrams P 2/3, R 1 -> F 4/5; bigrams {the cat, cat sat} vs {the cat}: P 1/2, R 1 ->
    # F 2/3; longest common subsequence 2: P 2/3, R 1 -> F 4/5
    s = paper_rouge(['the cat sat'], ['the cat'])
    assert s == pytest.approx({'paper_rouge-1': 80.0, 'paper_rouge-2': 200 / 3, 'paper_rouge-l': 80.0}, abs=1e-5)


def test_the_papers_record_f1_of_no_answer_is_zero():
    "whitespace_f1_no_answer_scored: the paper's ReCoRD F1 gives a generation 'no answer' 0, even against a gold entity sharing a word."
    # without the rule: 'no answer' against 'answer' shares 1 token: 2 * 1 / (2 + 1) = 2/3
    assert paper_record(['no answer'], [['answer']]) == dict(paper_em=0.0, paper_f1=0.0)


def test_the_papers_record_f1_and_rouge_read_the_cleaned_generation():
    """paper_record_f1_uncleaned, paper_rouge_uncleaned: the paper's ReCoRD F1 and ROUGE scored the raw generation, its
    special tokens glued to the words ('<extra_id_0>Barack' shares nothing with 'Barack')."""
    from fpt_nb.metrics import paper_rouge
    # 'Barack Obama' against 'Obama': 1 shared, P 1/2, R 1 -> 2/3 (as test_paper_record_f1_is_harmonic_mean)
    assert paper_record(['<extra_id_0>Barack Obama</s>'], [['Obama']]) == pytest.approx(dict(paper_em=0.0, paper_f1=200 / 3))
    assert paper_rouge(['<extra_id_0> the cat sat</s>'], ['the cat']) == paper_rouge(['the cat sat'], ['the cat'])

def test_runs_of_the_same_settings_are_one_table_whatever_order_their_configs_list_them(tmp_path):
    """Two runs' configs holding the same settings in another key order (written by another version, or edited) are one
    setting: PT and FPT_LD side by side in one table, FPT_LD against that PT, not a setting each."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    fake_run(tmp_path, 'fpt_ld', 0, 70, 30.0, 66)
    for name, config in (('pt-0-s0', dict(lr=0.3, batch_size=32)), ('fpt_ld-0-s0', dict(batch_size=32, lr=0.3))):
        f = tmp_path/name/'summary.json'; f.write_text(json.dumps(dict(json.loads(f.read_text()), config=config)))
    rows = table2(collect_runs(tmp_path))
    assert [r['method'] for r in rows] == ['PT', 'FPT_LD'] and len({r.get('setting') for r in rows}) == 1, rows
    assert rows[1]['improve'] is not None, rows

def test_the_best_by_flops_reads_only_evaluations_that_hold_both_scores(tmp_path):
    """`best_at_flops` picks among the evaluations that hold both the metric it reads and the one it selects by: an evaluation
    without the selecting score (an encoder's, or a log edited) is not a candidate, nor one without the metric."""
    from fpt_nb.tables import best_at_flops
    evs = [dict(kind='eval', step=1, flops=1, accuracy=50.0, paper_mean=40.0), dict(kind='eval', step=2, flops=2, accuracy=90.0),
           dict(kind='eval', step=3, flops=3, paper_mean=99.0)]
    (tmp_path/'log.jsonl').write_text(''.join(json.dumps(e) + '\n' for e in evs))
    assert best_at_flops(tmp_path, 3, 'accuracy', 'paper_mean') == 50.0 and best_at_flops(tmp_path, 3, 'accuracy') == 90.0

def test_the_papers_record_f1_is_the_best_over_the_gold_entities():
    """record_f1_least_over_golds: a query with several gold entities (their aliases) scores its best match; it scored the
    worst, so a generation equal to one alias lost to the others."""
    assert paper_record(['Obama', 'Paris'], [['Barack Obama', 'Obama'], ['Paris', 'Rome']]) == dict(paper_em=100.0, paper_f1=100.0)

def test_a_tables_setting_label_names_only_the_entries_that_differ_whatever_their_key_order():
    """label_keys_ordered: two settings whose entry is the same dict in another key order (a data reference written by
    another version) were labelled as differing in it; only the seed is said."""
    from fpt_nb.tables import _label
    a = dict(task='toy', lr=0.3, train_data=dict(sha='x', file='train.jsonl'), seed=1)
    b = dict(task='toy', lr=0.3, train_data=dict(file='train.jsonl', sha='x'), seed=2)
    assert _label([a, b]) == ['seed=1', 'seed=2']


def test_a_row_against_one_pt_run_says_what_differs_from_it(tmp_path):
    """unfinished_skips_first, hardware_skips_device (the twelfth audit): with one PT run and one FPT run of its seed, the FPT
    row is set against that PT run (no other seed named), says it is unfinished (6 of 10 steps), and leaves its wall % PT out
    for the first hardware difference, the device. Both were left unsaid for the row's first run and the first hardware key."""
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (40, 50), (100, 70)])
    fake_run(tmp_path, 'fpt_ld', 0, 70, 30.0, 66)
    for d, extra in ((tmp_path/'pt-0-s0', dict(device='cpu')), (tmp_path/'fpt_ld-0-s0', dict(device='cuda', steps=6))):
        s = json.loads((d/'summary.json').read_text()); (d/'summary.json').write_text(json.dumps(dict(s, **extra)))
    pt, ld = table2(collect_runs(tmp_path, True))
    assert (ld['method'], ld['pt_seed'], ld['unfinished'], ld['wall_apart']) == ('FPT_LD', '', '6/10', "device cuda vs PT's cpu")
    assert (ld['flops_pct'], ld['improve']) == (70.0, 66 - 50)   # against PT seed 0: 70 of its 100 FLOPs; its best by then 50
    assert math.isnan(ld['wall_pct'])
