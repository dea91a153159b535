"""Metrics and tables on inputs whose answers are counted by hand (issue 16): every expected value below is worked out
in the comments, never with the library function under test."""
import json, math
from pathlib import Path
import pytest
from fpt_nb.metrics import rouge_scores, record_scores, squad_v2_scores, score
from fpt_nb.tables import collect_runs, table1, table2, to_markdown
from fpt_nb.tasks import NO_ANSWER


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


# ---------------------------------------------------------------------------------------------------------------
# Tables

def fake_run(root:Path, method:str, seed:int, flops:float, seconds:float, final:float, evals=(), level=None):
    "A run folder as `run_experiment` leaves it, with the numbers given: `evals` are (cumulative FLOPs, accuracy)."
    d = root/f'{method}-{level or 0}-s{seed}'
    d.mkdir(parents=True)
    (d/'log.jsonl').write_text(''.join(json.dumps(dict(kind='eval', step=i, stage=0, flops=f, wall=0.0, accuracy=a)) + '\n'
                                       for i, (f, a) in enumerate(evals)))
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
    # FPT_LD seed 0 against PT seed 0: 70/100 FLOPs = 70%, 30/50 s = 60%; PT at 70 FLOPs, between 50 @ 40 and
    # 70 @ 100: 50 + 20 * 30/60 = 60, so Improve = 66 - 60 = +6.
    # FPT_LD seed 1 against PT seed 1: 60/120 = 50%, 24/40 = 60%; PT at 60 FLOPs, between 40 @ 50 and 60 @ 100:
    # 40 + 20 * 10/50 = 44, so Improve = 45 - 44 = +1.
    # Means over seeds: FLOPs 60%, wall 60%, Improve 3.5 with sample std |6 - 1| / sqrt(2); score 55.5, std 21 / sqrt(2).
    pt, ld = table2(runs)
    assert (pt['method'], pt['seeds'], pt['score'], pt['flops_pct'], pt['wall_pct']) == ('PT', 2, 66.0, 100.0, 100.0)
    assert math.isnan(pt['improve'])
    assert (ld['method'], ld['seeds'], ld['flops']) == ('FPT_LD', 2, 65.0)
    assert ld['flops_pct'] == pytest.approx(60.0) and ld['wall_pct'] == pytest.approx(60.0)
    assert ld['improve'] == pytest.approx(3.5) and ld['improve_std'] == pytest.approx(5 / math.sqrt(2))
    assert ld['score'] == pytest.approx(55.5) and ld['score_std'] == pytest.approx(21 / math.sqrt(2))
    assert '| mnli | m | FPT_LD | 2 | 55.5 ± 14.8 accuracy | 65.0 | 60% | 27.0 | 60% | +3.5 ± 3.5 |' in to_markdown([pt, ld])


def test_table1_by_hand(runs):
    # LD level 1, seed 0: 25 of PT seed 0's 100 FLOPs, 10 of its 50 s.
    rows = table1(runs)
    assert [(r['method'], r['level'], r['stage']) for r in rows] == [('PT', '', 'full'), ('LD', 1, 'enc 1L')]
    assert (rows[1]['score'], rows[1]['flops_pct'], rows[1]['wall_pct']) == (40.0, 25.0, 20.0)
