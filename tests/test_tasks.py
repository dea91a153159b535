"The task side across notebooks: real data in ../shared/data -> batches -> scores, bad input, and the hub path."
import gzip, inspect, json, re, warnings
from pathlib import Path
import datasets, pytest, torch
from transformers import ByT5Tokenizer
from fpt_nb.tasks import Task, TASKS, SkippedRows, NO_ANSWER, get_task, register_task, load_examples, toy_examples
from fpt_nb.batches import encode, collate, batches, batch_order, padding_waste, MAX_INPUT_LENGTH
from fpt_nb.metrics import score, squad_v2_scores
from fpt_nb.prompt import load_t5, PromptT5
from conftest import find_data_dir

PAPER_TASKS = ['mnli', 'qqp', 'squad2', 'record', 'xsum']
# rows per logical split in ../shared/data (its README); XSum trains on its validation file (less one row
# without a document, skipped and reported) and validates on test
ROWS = dict(mnli=(9999, 5000), qqp=(7999, 1000), squad2=(87599, 11873), record=(32, 32), xsum=(979, 1000))
TOK = ByT5Tokenizer()

def official(s:dict) -> dict:
    "The official accuracy entries of a `score` result (it also holds the paper's own scoring)."
    return {k: s[k] for k in ('accuracy', 'unparseable', 'total')}


def test_missing_data_dir_fails_not_skips(monkeypatch, tmp_path):
    monkeypatch.setenv('FPT_DATA_DIR', str(tmp_path/'nowhere'))
    with pytest.raises(pytest.fail.Exception, match='task data not found at .*nowhere'): find_data_dir()


@pytest.mark.parametrize('name', PAPER_TASKS)
def test_real_files_load_whole(name, data_dir):
    "Every row of both splits loads and formats (load_examples formats each row), in the README's counts."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        train, valid = load_examples(name, 'train', data_dir), load_examples(name, 'validation', data_dir)
    assert [str(w.message) for w in caught if issubclass(w.category, SkippedRows)] == (
        [f"{data_dir/'xsum'/'validation.jsonl'}: skipped 1 row(s) with no 'document' (line 220)"] if name == 'xsum' else [])
    assert (len(train), len(valid)) == ROWS[name]
    for row in (train[0], valid[-1]):
        inp, tgt = get_task(name).format(row)
        assert tgt.startswith('<extra_id_0>') and len(tgt) > len('<extra_id_0>') and inp


def test_env_var_is_the_default_data_dir(monkeypatch, data_dir):
    monkeypatch.setenv('FPT_DATA_DIR', str(data_dir))
    assert load_examples('qqp', 'validation', limit=3) == load_examples('qqp', 'validation', data_dir, limit=3)
    assert load_examples('qqp', 'validation', limit=3)[0]['idx'] == 7999   # the validation file, not train


def test_without_data_dir_the_hub_is_asked(monkeypatch):
    "Same code path: datasets.load_dataset with the hub name and the hub's split; rows are checked the same way."
    monkeypatch.delenv('FPT_DATA_DIR', raising=False)
    calls = []
    def fake(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([dict(premise='p', hypothesis='h', label=1, idx=0)] * 3)
    monkeypatch.setattr(datasets, 'load_dataset', fake)
    assert len(load_examples('mnli', 'validation', limit=2)) == 2
    assert calls == [('nyu-mll/glue', 'mnli', 'validation_matched')]
    monkeypatch.setattr(datasets, 'load_dataset', lambda path, name=None, split=None: calls.append((path, name, split)) or
                        datasets.Dataset.from_list([dict(id='1', title='t', context='c', question='q', answers=dict(text=[], answer_start=[]))]))
    assert get_task('squad2').format(load_examples('squad2', 'train')[0])[1] == f'<extra_id_0>{NO_ANSWER}'
    assert calls[-1] == ('rajpurkar/squad_v2', None, 'train')   # the hub's SQuAD 2.0 train, not the local 1.1 file
    monkeypatch.setattr(datasets, 'load_dataset', lambda *a, **k: datasets.Dataset.from_list([dict(premise='p', hypothesis='h', label=-1, idx=0)]))
    with pytest.raises(ValueError, match=r'hub nyu-mll/glue/mnli row 0: unknown label -1'): load_examples('mnli', 'test')


def test_squad_local_train_is_the_answerable_file(data_dir):
    rows = load_examples('squad2', 'train', data_dir, limit=200)
    assert all(r['answers']['text'] for r in rows)


@pytest.mark.parametrize('name', PAPER_TASKS + ['toy'])
def test_batches_and_scores_for_every_task(name, data_dir):
    task = get_task(name)
    rows = load_examples(name, 'validation', data_dir, limit=48)
    items = encode(name, TOK, rows)
    seen = []
    for group, b in zip(batch_order([len(i['input_ids']) for i in items], 16, seed=1), batches(items, 16, seed=1)):
        assert b['input_ids'].shape[1] <= MAX_INPUT_LENGTH
        width, target_width = b['input_ids'].shape[1], b['labels'].shape[1]
        for row, i in enumerate(group):   # each row is its item: tokens first, then padding (0 / mask 0 / label -100)
            x, y = items[i]['input_ids'], items[i]['labels']
            assert b['input_ids'][row].tolist() == x + [0] * (width - len(x))
            assert b['attention_mask'][row].tolist() == [1] * len(x) + [0] * (width - len(x))
            assert b['labels'][row].tolist() == y + [-100] * (target_width - len(y)) and y[-1] == TOK.eos_token_id   # whole, ends in EOS
        seen += group
    assert sorted(seen) == list(range(len(rows)))
    gold = [TOK.decode(it['labels']) for it in items]          # decoded with special tokens left in
    assert score(name, gold, rows)[task.metric_name] == 100.0
    assert score(name, [TOK.decode(it['labels'], skip_special_tokens=True) for it in items], rows)[task.metric_name] == 100.0


def test_squad_full_validation_by_hand(data_dir):
    rows = load_examples('squad2', 'validation', data_dir)
    s = score('squad2', [NO_ANSWER] * len(rows), rows)   # says "no answer" to everything
    assert (s['NoAns_total'], s['HasAns_total']) == (5945, 11873 - 5945)
    assert s['exact'] == s['exact_match'] == s['f1'] == 100 * 5945 / 11873
    assert (s['NoAns_exact'], s['HasAns_exact'], s['HasAns_f1']) == (100.0, 0.0, 0.0)


def test_mnli_majority_and_unparseable(data_dir):
    rows = load_examples('mnli', 'validation', data_dir)
    counts = [sum(r['label'] == i for r in rows) for i in range(3)]
    assert score('mnli', ['entailment'] * len(rows), rows)['accuracy'] == 100 * counts[0] / len(rows)
    junk = ['', '<pad>', '\x00\xff', 'ENTAILMENT!', 'neutral' * 500, '<extra_id_0>', 'contradiction?'][:len(rows)]
    # none of these is a label word (the parse is strict: a word with punctuation glued on is not one)
    assert official(score('mnli', junk, rows[:len(junk)])) == dict(accuracy=0.0, unparseable=7, total=7)
    assert score('mnli', ['Neutral', 'contradiction it is'], rows[:2])['unparseable'] == 0


def test_unparseable_never_crashes():
    rows = toy_examples('validation', 3)
    assert official(score('toy', ['\n', '</s></s>', 'no thanks'], rows)) == dict(accuracy=100 / 3, unparseable=2, total=3)  # labels no, yes, no


def test_bad_files_name_file_and_line(tmp_path):
    (tmp_path/'squad_v2').mkdir()
    row = dict(id='1', title='t', context='c', question='q', answers=dict(text=['c'], answer_start=[0]))
    path = tmp_path/'squad_v2'/'validation.jsonl.gz'
    with gzip.open(path, 'wt') as f: f.write(json.dumps(row) + '\n' + json.dumps(row) + '\n' + '{"id": "3",\n')
    with pytest.raises(ValueError, match=r'validation.jsonl.gz: line 3 is not valid JSON'): load_examples('squad2', 'validation', tmp_path)
    with gzip.open(path, 'wt') as f: f.write(json.dumps(row) + '\n' + json.dumps({k: v for k, v in row.items() if k != 'question'}) + '\n')
    with pytest.raises(ValueError, match=r"validation.jsonl.gz line 2: missing field 'question'"): load_examples('squad2', 'validation', tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no file for split 'train' of task 'squad2': expected .*train_v1_answerable.jsonl"):
        load_examples('squad2', 'train', tmp_path)
    with pytest.raises(FileNotFoundError, match=r'found no folder .*record'): load_examples('record', 'train', tmp_path)
    with pytest.raises(FileNotFoundError, match='does not exist'): load_examples('mnli', 'train', tmp_path/'missing')
    with pytest.raises(ValueError, match=r"unknown task 'cola': expected one of \['mnli'"): load_examples('cola')


def test_register_a_new_task(data_dir):
    "The registry is open: a new task over an existing folder, e.g. QQP read the other way round."
    t = Task('qqp_swapped', hub=('nyu-mll/glue', 'qqp'), splits=get_task('qqp').splits, folder='qqp',
             format=lambda e: (f"question1: {e['question2']} question2: {e['question1']}", '<extra_id_0>' + get_task('qqp').label_words[e['label']]),
             target_max_length=16, metric_name='accuracy', metric='accuracy',
             references=get_task('qqp').references, fields=('question1', 'question2', 'label'), label_words=get_task('qqp').label_words)
    try:
        assert register_task(t) is t   # returned, as its signature says (register_task_returns_none)
        rows = load_examples('qqp_swapped', 'validation', data_dir, limit=5)
        assert get_task('qqp_swapped').format(rows[0])[0].startswith(f"question1: {rows[0]['question2']}")
        assert score('qqp_swapped', [get_task('qqp').label_words[1]] * 5, rows)['accuracy'] == 100 * sum(r['label'] for r in rows) / 5
    finally: TASKS.pop('qqp_swapped', None)


def test_fixed_padding_wastes_more_on_mnli(data_dir):
    items = encode('mnli', TOK, load_examples('mnli', 'train', data_dir, limit=512))
    fixed, dynamic, bucketed = (padding_waste(items, 32, **kw) for kw in (dict(padding='max'), {}, dict(bucket=True)))
    assert fixed['total'] == 512 * 492 and fixed['real'] == dynamic['real'] == bucketed['real']
    assert fixed['waste'] > dynamic['waste'] > bucketed['waste']


def test_resume_mid_epoch_gives_the_same_batches():
    items = encode('toy', TOK, toy_examples('train', 100))
    whole = list(batches(items, 8, seed=5, epoch=3, bucket=True))
    rest = list(batches(items, 8, seed=5, epoch=3, bucket=True, start=4))
    assert all(torch.equal(a['input_ids'], b['input_ids']) for a, b in zip(whole[4:], rest)) and len(rest) == len(whole) - 4


def test_toy_end_to_end_with_the_prompt_model():
    "task -> batches -> prompt model -> generate -> decode -> score, on the built-in default."
    rows = load_examples('toy', 'validation', limit=8)
    items = encode('toy', TOK, rows)
    model, _ = load_t5('tiny')
    pt = PromptT5(model, prompt_length=20)
    b = next(batches(items, 8, shuffle=False))
    assert torch.isfinite(pt(**b).loss)
    out = pt.generate(b['input_ids'], b['attention_mask'], max_new_tokens=get_task('toy').target_max_length)
    assert out.shape[0] == 8 and out.shape[1] <= 1 + get_task('toy').target_max_length
    s = score('toy', TOK.batch_decode(out), rows)
    # counted here: a prediction is right when its text without special tokens, or that text's first word, is the label word
    texts = [t.strip().lower() for t in TOK.batch_decode(out, skip_special_tokens=True)]
    said = [t if t in ('no', 'yes') else (t.split() or [''])[0] for t in texts]
    right = sum(w == ('no', 'yes')[r['label']] for w, r in zip(said, rows))
    assert official(s) == dict(accuracy=100 * right / 8, unparseable=sum(w not in ('no', 'yes') for w in said), total=8)


def test_trainer_interface():
    "The names and arguments the trainer is written against."
    params = lambda f: list(inspect.signature(f).parameters)
    assert params(load_examples) == ['task', 'split', 'data_dir', 'limit']
    assert params(encode)[:5] == ['task', 'tokenizer', 'examples', 'max_input_length', 'max_target_length']
    assert params(collate)[:4] == ['items', 'pad_id', 'padding', 'max_input_length']
    assert params(batches)[:7] == ['items', 'batch_size', 'shuffle', 'seed', 'padding', 'bucket', 'epoch']
    assert params(score) == ['task', 'predictions', 'examples']
    assert {t.metric_name for t in TASKS.values()} == {'accuracy', 'exact_match', 'rougeL'}


def test_mnli_real_rows_pinned(data_dir):
    "Real MNLI rows as the official mnli.py formats them (catches label words out of GLUE order, template fields swapped)."
    # official: 'hypothesis: <sentence2> premise: <sentence1>'; GLUE labels 0 entailment, 1 neutral, 2 contradiction
    rows = {r['idx']: r for r in load_examples('mnli', 'validation', data_dir, limit=6)}
    fmt = get_task('mnli').format
    assert fmt(rows[1]) == ('hypothesis: The Government Executive articles housed on the website are not able to be searched. '
                            'premise: This site includes a list of all award winners and a searchable database of Government Executive articles.',
                            '<extra_id_0>contradiction')
    assert (rows[1]['label'], rows[13]['label'], rows[14]['label']) == (2, 0, 1)
    assert fmt(rows[13]) == ('hypothesis: Severn said the people were not welcome there. premise: You and your friends are not welcome here, said Severn.',
                             '<extra_id_0>entailment')
    assert fmt(rows[14])[0].startswith("hypothesis: We don't loan a lot of money. premise: um-hum um-hum yeah well")
    assert fmt(rows[14])[1] == '<extra_id_0>neutral'
    assert get_task('mnli').references(rows[14]) == ['neutral']


def test_qqp_real_rows_pinned(data_dir):
    "Real QQP rows: GLUE label 1 (duplicate) is the official code's 'is_duplicate', 0 'not_duplicate' (catches the words swapped)."
    rows = load_examples('qqp', 'validation', data_dir, limit=3)
    assert [(r['idx'], r['label']) for r in rows] == [(7999, 0), (8000, 0), (8001, 1)]
    assert get_task('qqp').format(rows[2]) == ('question1: What is the difference between tags and topics? '
                                               'question2: What is the difference between topics, tags and categories?', '<extra_id_0>is_duplicate')
    assert get_task('qqp').format(rows[0])[1] == '<extra_id_0>not_duplicate'


def test_squad2_target_is_the_first_answer(data_dir):
    "The official squad.py's target is answers[0]['text'] (catches taking another answer): a real dev row whose answers differ."
    row = load_examples('squad2', 'validation', data_dir, limit=1)[0]
    assert row['id'] == '5725b33f6a3fe71400b8952d' and row['answers']['text'] == ['October 1973', 'October 1973', 'October 1973', 'October', '1973']
    inp, tgt = get_task('squad2').format(row)
    assert tgt == '<extra_id_0>October 1973'
    assert inp.startswith('question: When did the 1973 oil crisis begin? context: The 1973 oil crisis began in October 1973 when')


# ---------------------------------------------------------------------------------------------------------------
# Batching by hand: padding values, bucket windows, the last batch, cutting inputs, the encode cache

def test_collate_pads_with_pad_id_and_fixed_padding_pads_to_the_limit():
    "Catches collate_pad_id_ignored (inputs padded with 0 whatever pad_id says) and max_padding_ignored (padding='max' pads dynamically)."
    items = [dict(input_ids=[5, 6, 1], labels=[7, 1]), dict(input_ids=[8, 1], labels=[9, 10, 1])]
    b = collate(items, pad_id=3)
    assert b['input_ids'].tolist() == [[5, 6, 1], [8, 1, 3]] and b['attention_mask'].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b['labels'].tolist() == [[7, 1, -100], [9, 10, 1]]
    m = collate(items, pad_id=3, padding='max', max_input_length=5)   # the paper's fixed padding: every input 5 wide
    assert m['input_ids'].tolist() == [[5, 6, 1, 3, 3], [8, 1, 3, 3, 3]]
    assert m['attention_mask'].tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert m['labels'].tolist() == b['labels'].tolist()   # targets are padded to the batch's longest either way


def test_buckets_sort_within_windows_of_the_shuffled_order():
    """Catches bucket_window_ignored (bucket=k buckets over 100 batches, not k) and buckets_from_unshuffled_order
    (buckets cut from the items in file order: the same batches every epoch, only their order shuffled)."""
    lengths = [(7 * i) % 50 + 3 for i in range(48)]
    # a window of one batch (bucket=1): each batch holds the items of the unbucketed shuffle's batch, longest first
    for epoch in range(3):
        plain = batch_order(lengths, 4, seed=2, epoch=epoch)
        bucketed = batch_order(lengths, 4, seed=2, epoch=epoch, bucket=1)
        assert sorted(map(sorted, bucketed)) == sorted(map(sorted, plain))
        assert all([lengths[i] for i in g] == sorted((lengths[i] for i in g), reverse=True) for g in bucketed)
    # bucket=True (windows of 100 batches, here the whole data): each epoch draws other neighbours in length together
    lengths = list(range(10, 410))
    sets = [sorted(map(sorted, batch_order(lengths, 4, seed=2, epoch=e, bucket=True))) for e in range(2)]
    assert sets[0] == sorted(list(range(i, i + 4)) for i in range(0, 400, 4))   # 400 items, one window: 4 neighbours each
    lengths = [(7 * i) % 1000 for i in range(1000)]   # 1000 items: windows of 400 + 400 + 200 of the shuffled order
    sets = [sorted(map(sorted, batch_order(lengths, 4, seed=2, epoch=e, bucket=True))) for e in range(2)]
    assert sets[0] != sets[1]


def test_drop_last_drops_only_a_short_last_batch():
    "Catches drop_last_ignored (a short last micro-batch trained on) and drop_last_drops_a_full_batch."
    for n, sizes in ((10, [4, 4]), (8, [4, 4]), (3, [])):
        groups = batch_order(list(range(n)), 4, seed=1, drop_last=True)
        assert [len(g) for g in groups] == sizes
        assert [len(g) for g in batch_order(list(range(n)), 4, seed=1)] == [4] * (n // 4) + ([n % 4] if n % 4 else [])
    assert len(list(batches([dict(input_ids=[5, 1], labels=[1])] * 10, 4, drop_last=True))) == 2


def test_cut_inputs_keep_their_end_of_sequence_token():
    "Catches input_cut_drops_eos: an input cut to max_input_length must still end in EOS, and say how many tokens it lost."
    rows = toy_examples('train', 16)
    for it, row in zip(encode('toy', TOK, rows, max_input_length=8), rows):
        full = TOK(get_task('toy').format(row)[0]).input_ids   # the text's bytes + 3, then EOS
        assert it['input_ids'] == full[:7] + [TOK.eos_token_id] and it['truncated'] == len(full) - 8


def test_encode_cache_tells_lengths_and_tokenizers_apart():
    """Catches cache_key_ignores_max_length (a second encode with another limit returned the first one's items) and
    cache_key_ignores_tokenizer (another tokenizer's ids returned for the same examples)."""
    from fpt_nb.causal import byte_tokenizer
    rows = toy_examples('validation', 12)
    short = encode('toy', TOK, rows, max_input_length=8)
    whole = encode('toy', TOK, rows, max_input_length=MAX_INPUT_LENGTH)
    assert max(len(i['input_ids']) for i in short) == 8
    assert [i['input_ids'] for i in whole] == TOK([get_task('toy').format(r)[0] for r in rows]).input_ids
    other = byte_tokenizer()   # no sentinel tokens: '<extra_id_0>' becomes bytes
    assert [i['labels'] for i in encode('toy', other, rows)] == other([get_task('toy').format(r)[1] for r in rows]).input_ids


# ---------------------------------------------------------------------------------------------------------------
# Task texts pinned where a format change would pass every other test

def test_squad2_unanswerable_target_is_no_answer(data_dir):
    "no_answer_text: an unanswerable SQuAD 2.0 question's target is the official code's `no answer`, its references none."
    row = load_examples('squad2', 'validation', data_dir, limit=6)[5]
    assert row['id'] == '5a38a8d2a4b263001a8c1875' and row['answers']['text'] == []
    assert NO_ANSWER == 'no answer' and get_task('squad2').format(row)[1] == '<extra_id_0>no answer'
    assert get_task('squad2').references(row) == []


def test_record_passage_is_cleaned_as_t5_does(data_dir):
    """record_highlight_double_period, record_highlight_space, record_no_final_period, record_answers_not_deduped: each
    `@highlight` becomes a sentence break ('. ', or a space after a sentence mark), the passage ends in a sentence mark,
    and each distinct gold entity makes one training pair."""
    from fpt_nb.tasks import format_record, record_train_pairs
    row = dict(query='@placeholder won.', passage='Alpha met Zeta.\n@highlight\nZeta left\n@highlight\n"Alpha stays"\n@highlight\nAlpha wins',
               entities=['Alpha', 'Zeta'], answers=['Alpha', 'Alpha', 'Zeta'])
    inp = 'query: @placeholder won. entities: Alpha, Zeta passage: Alpha met Zeta. Zeta left. "Alpha stays" Alpha wins.'
    assert format_record(row) == (inp, '<extra_id_0>Alpha')
    assert record_train_pairs(row) == [(inp, '<extra_id_0>Alpha'), (inp, '<extra_id_0>Zeta')]
    assert format_record(dict(row, passage='Who won?'))[0].endswith('passage: Who won?')
    real = load_examples('record', 'validation', data_dir, limit=7)[6]   # a highlight after a closing quote
    text = format_record(real)[0]
    assert '@highlight' not in text and 'form of outbreak" Officials say' in text and text.endswith('outbreak appears to be abating.')


def test_xsum_input_is_the_document_alone(data_dir):
    "xsum_summarize_prefix: no `summarize:` prefix under prompt tuning: the input is the document, the target the summary."
    row = load_examples('xsum', 'validation', data_dir, limit=1)[0]
    assert get_task('xsum').format(row) == (row['document'], '<extra_id_0>' + row['summary'])
    assert row['document'].startswith('The owners said their planned £80m development at the site in Bewdley')


def test_toy_validation_rows_are_unseen_in_training():
    "toy_validation_train_nouns: the toy validation rows are about other things than the training rows: no shared noun, no shared text."
    from fpt_nb.tasks import TOY_NOUNS
    train, valid = toy_examples('train'), toy_examples('validation')
    seen = {w for r in train for w in r['text'].replace(',', ' ').split()}
    assert not seen & set(TOY_NOUNS['validation'])
    for r in valid:
        words = set(r['text'].replace(',', ' ').split())
        assert words & set(TOY_NOUNS['validation']) and not words & set(TOY_NOUNS['train'])
    assert not {r['text'] for r in train} & {r['text'] for r in valid}


def test_answers_are_scored_against_every_gold_answer(data_dir):
    """squad_references_first_only, record_references_first_only: a generation matching any gold answer, not only the
    first (the training target), is exactly right, in the official metrics and the paper's."""
    squad = load_examples('squad2', 'validation', data_dir, limit=1)[0]
    assert get_task('squad2').references(squad) == ['October 1973', 'October 1973', 'October 1973', 'October', '1973']
    s = score('squad2', ['1973'], [squad])
    assert (s['exact'], s['f1']) == (100.0, 100.0)
    record = load_examples('record', 'validation', data_dir, limit=1)[0]
    assert get_task('record').references(record) == ['Benazir Bhutto', 'Bhutto']
    r = score('record', ['Bhutto'], [record])
    assert (r['exact_match'], r['f1'], r['paper_em']) == (100.0, 100.0, 100.0)


def test_the_generation_tasks_shrink_the_decoder_too():
    "record_keeps_decoder, xsum_keeps_decoder: the official SQuAD 2.0, ReCoRD and XSum scripts shrink both stacks; MNLI and QQP the encoder only."
    assert {t: get_task(t).reduce_decoder for t in PAPER_TASKS} == dict(mnli=False, qqp=False, squad2=True, record=True, xsum=True)


# ---------------------------------------------------------------------------------------------------------------
# Planted by a third mutation audit: each test below failed under the bug(s) its docstring names (tools/mutants.py)

def test_record_entities_are_the_spans_in_passage_order_each_once(data_dir):
    """record_entities_ignore_spans (the row's `entities` list, in its own order, used though it has `entity_spans`),
    record_entities_not_deduped (an entity named twice in the passage listed twice) and record_question_mark_highlight
    (a `?` before `@highlight` left out of T5's sentence marks: 'left?. Alpha')."""
    from fpt_nb.tasks import format_record
    row = dict(query='@placeholder won.', passage='Zeta met Alpha. Zeta left?\n@highlight\nAlpha wins', entities=['Alpha', 'Zeta'],
               entity_spans=dict(text=['Zeta', 'Alpha', 'Zeta'], start=[0, 9, 16], end=[4, 14, 20]), answers=['Alpha'])
    assert format_record(row)[0] == 'query: @placeholder won. entities: Zeta, Alpha passage: Zeta met Alpha. Zeta left? Alpha wins.'
    # a real row: 15 spans of 11 distinct entities, in passage order (its `entities` list starts 'Asif Ali Zardari')
    real = load_examples('record', 'validation', data_dir, limit=1)[0]
    listed = format_record(real)[0].split(' entities: ')[1].split(' passage: ')[0].split(', ')
    assert len(real['entity_spans']['text']) == 15 and len(listed) == 11
    assert listed[:5] == ['Islamabad', 'Pakistan', 'CNN', 'Benazir Bhutto', 'Bilawal Bhutto-Zardari']


def _xsum_file(tmp_path):
    "An XSum validation file: a blank line after the first row, then a row of blank document (skipped), then two more."
    (tmp_path/'xsum').mkdir()
    rows = [dict(document='d1', summary='s1', id='1'), dict(document=' ', summary='s2', id='2'),
            dict(document='d3', summary='s3', id='3'), dict(document='d4', summary='s4', id='4')]
    (tmp_path/'xsum'/'test.jsonl').write_text(json.dumps(rows[0]) + '\n\n' + ''.join(json.dumps(r) + '\n' for r in rows[1:]))
    return tmp_path


def test_a_limit_is_kept_when_rows_are_skipped_and_lines_count_blank_ones(tmp_path):
    """limit_exceeded_after_skips (after a skipped row, the next read took a whole `limit` more: 3 rows for limit=2) and
    line_numbers_count_blank_lines (a skipped row named by its row number + 1, not its line, in a file with a blank line)."""
    d = _xsum_file(tmp_path)
    with pytest.warns(SkippedRows, match=r"skipped 1 row\(s\) with no 'document' \(line 3\)"):
        assert [r['id'] for r in load_examples('xsum', 'validation', d, limit=2)] == ['1', '3']


def test_a_split_is_named_by_where_it_is_read(monkeypatch, data_dir):
    """split_name_ignores_local: read from the hub, XSum's `test` is the hub's test split, not the local file `test.jsonl` that
    stands in for its validation split (and SQuAD's local file name is no hub split). data_notes_without_env: data read
    from the folder in FPT_DATA_DIR (no data_dir passed) said nothing of what the local files stand in for."""
    xsum, squad = get_task('xsum'), get_task('squad2')
    assert (xsum.split_name('test'), xsum.split_name('test', local=False)) == ('validation', 'test')
    stem = 'train_v1_answerable'
    assert (squad.split_name(stem), squad.split_name(stem, local=False)) == ('train', stem)
    from fpt_nb.tasks import data_notes
    monkeypatch.setenv('FPT_DATA_DIR', str(data_dir))
    assert [n.split(':')[0] for n in data_notes('mnli')] == ['mnli train', 'mnli validation']
    monkeypatch.delenv('FPT_DATA_DIR')
    assert data_notes('mnli') == []   # read from the hub: the full splits, nothing to say


def test_padding_waste_by_hand():
    """waste_counts_full_last_batch (a short last batch counted as a full one) and waste_ignores_drop_last (the dropped
    short batch counted though `batches` never makes it)."""
    items = [dict(input_ids=[1] * n) for n in (5, 3, 4, 2, 6)]
    # batches of 2 in order: (5, 3) -> 8 real of 2 x 5; (4, 2) -> 6 of 2 x 4; (6) -> 6 of 1 x 6
    w = padding_waste(items, 2, shuffle=False)
    assert (w['per_batch'], w['real'], w['total'], w['padding']) == ([(8, 10), (6, 8), (6, 6)], 20, 24, 4)
    d = padding_waste(items, 2, shuffle=False, drop_last=True)
    assert (d['per_batch'], d['total'], d['waste']) == ([(8, 10), (6, 8)], 18, pytest.approx(4 / 18))


def test_fixed_padding_pads_every_batch_to_the_given_limit():
    "batches_max_length_default: `batches(padding='max', max_input_length=8)` padded each batch to the default limit (492), not 8."
    items = [dict(input_ids=[5] * n + [1], labels=[1]) for n in (2, 6, 4)]
    b = list(batches(items, 2, shuffle=False, padding='max', max_input_length=8))
    assert [tuple(x['input_ids'].shape) for x in b] == [(2, 8), (1, 8)]
    assert b[1]['attention_mask'].tolist() == [[1] * 5 + [0] * 3]


def test_runs_cache_their_encodings_in_the_folder_the_environment_names(tmp_path, monkeypatch):
    """disk_cache_env_ignored: FPT_CACHE_DIR (the only way a run asks for the disk cache) was ignored: nothing was cached.
    Costs time, not results: a second process re-tokenised every split."""
    from fpt_nb.batches import clear_cache
    monkeypatch.setenv('FPT_CACHE_DIR', str(tmp_path/'cache'))
    clear_cache()
    items = encode('toy', TOK, toy_examples('validation', 3))
    files = list((tmp_path/'cache').glob('toy-*.json'))
    assert len(files) == 1 and json.loads(files[0].read_text()) == items


@pytest.mark.parametrize('n', [5, 6])
def test_skipped_rows_are_listed_up_to_five_and_an_ellipsis_only_past_them(tmp_path, n):
    "skipped_ellipsis_at_five (`> 4`): five skipped rows, every one listed, were shown as if there were more (', ...')."
    (tmp_path/'xsum').mkdir()
    rows = [dict(document=' ', summary=f's{i}', id=str(i)) for i in range(n)]
    (tmp_path/'xsum'/'test.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    lines = ', '.join(f'line {i}' for i in range(1, 6)) + (', ...' if n > 5 else '')
    with pytest.raises(ValueError, match=re.escape(f"all {n} row(s) were skipped for having no 'document' ({lines})")):
        load_examples('xsum', 'validation', tmp_path)

def test_generation_adds_the_target_length_less_the_start_token_and_at_least_one():
    "A task's `max_new_tokens` is its target length less the decoder's start token, and never less than one token."
    from dataclasses import replace
    task = get_task('toy')
    assert [replace(task, target_max_length=n).max_new_tokens for n in (1, 2, 3, 10)] == [1, 1, 2, 9]

def test_a_batch_of_no_items_is_refused():
    "`batch_order` refuses a batch size below 1 by name, rather than looping or slicing nothing."
    with pytest.raises(ValueError, match='batch_size must be at least 1, got 0'): batch_order([3, 1, 2], 0)
    assert batch_order([3, 1, 2], 1, shuffle=False) == [[0], [1], [2]]

def test_the_shortest_input_is_one_token_and_its_eos():
    "`encode` cuts inputs to `max_input_length`, down to 2 (a token and EOS, kept last); below that it refuses by name."
    tok = load_t5('tiny')[1]
    rows = toy_examples('train', 4)
    items = encode('toy', tok, rows, max_input_length=2)
    assert all(len(it['input_ids']) == 2 and it['input_ids'][-1] == tok.eos_token_id for it in items)
    with pytest.raises(ValueError, match='max_input_length must be at least 2 \\(a token and EOS\\), got 1'): encode('toy', tok, rows, max_input_length=1)

def test_the_toy_task_has_the_sizes_the_demo_was_measured_on():
    """toy_sizes_changed: the built-in demo (README: `make run`) trains on the toy task's 1,000 training rows and evaluates
    on its 200 validation rows; a size changed by one passed every test, and the README's figures would no longer be its own."""
    assert {s: len(toy_examples(s)) for s in ('train', 'validation')} == dict(train=1000, validation=200)
