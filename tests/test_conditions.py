"""The sixteenth mutation audit's gaps: on each library line that a test covers and no mutant touched, the test of one `if`,
`while`, conditional expression, comprehension filter or assert was negated (593 lines); these are the behaviours a
negated condition changed and no test saw (see results/mutants/README.md). Then the gaps of the seventeenth audit (a
function's `return <value>` made `return None`), and of the eighteenth (an import-time constant changed: an entry dropped
from a list of names or an adapter table, a description's words)."""
import json
import pytest, torch

def test_the_tiny_gated_t5_has_an_output_head_of_its_own():
    """tiny_head_left_tied: `tiny` stands for T5 v1.1 (LM-adapt), whose output head is not the input embedding. transformers 5
    ties the head of every T5 it builds from a config, so `load_t5` unties it; negated, `tiny` kept the tied head (and a
    model already untied would have had its head replaced by a random one)."""
    from fpt_nb.prompt import load_t5, untie_lm_head
    model = load_t5('tiny')[0]
    head, emb = model.lm_head.weight, model.get_input_embeddings().weight
    assert head is not emb and head.data_ptr() != emb.data_ptr() and not torch.equal(head, emb)
    before = head.detach().clone()
    assert untie_lm_head(model, seed=1).lm_head.weight is head and torch.equal(head, before)   # untied already: left as it is
    relu = load_t5('tiny-relu')[0]   # v1.0: the head is the embedding
    assert relu.lm_head.weight is relu.get_input_embeddings().weight

def test_a_decoder_only_runs_target_length_counts_label_words_as_it_encodes_them():
    """causal_target_length_counted_as_t5: a decoder-only model's labels are counted by `encode_causal`, as its rows are
    encoded: the byte tokenizer spells MNLI's `contradiction` and its end in 15 tokens. Counted by T5's `encode` (negated
    `causal`), the same words took 26, and the run generated 11 tokens more than any label has."""
    from fpt_nb.causal import load_causal
    from fpt_nb.prompt import load_t5
    from fpt_nb.run import fit_target_length
    from fpt_nb.tasks import get_task
    byte_tok = load_causal('tiny-llama')[1]
    assert [fit_target_length(get_task(t), byte_tok, causal=True) for t in ('mnli', 'qqp', 'toy')] == [15, 15, 8]
    t5_tok = load_t5('tiny')[1]
    assert [fit_target_length(get_task(t), t5_tok) for t in ('mnli', 'qqp', 'toy')] == [15, 15, 8]
    assert fit_target_length(get_task('mnli'), byte_tok, given=4, causal=True) == 4

def test_a_tables_text_columns_are_left_aligned_and_its_numbers_right(tmp_path):
    """markdown_alignment_swapped: the markdown tables align the columns of names (task, model, setting, method, stage) left
    and the numbers right (`--:`). Negated, names were right-aligned and numbers left."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table1, table2, to_markdown
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    runs = collect_runs(tmp_path, say=lambda *a: None)
    for rows in (table1(runs), table2(runs)):
        lines = to_markdown(rows).splitlines()
        i = next(k for k, l in enumerate(lines) if l.startswith('|---') or l.startswith('|--:'))
        head = [h.strip() for h in lines[i - 1].strip('|').split('|')]
        align = lines[i].strip('|').split('|')
        assert len(head) == len(align) and {'task', 'model', 'method', 'score'} <= set(head), lines
        assert {h: a for h, a in zip(head, align)} == {h: '---' if h in ('task', 'model', 'setting', 'method', 'stage') else '--:'
                                                       for h in head}, lines


# ---------------------------------------------------------------------------------------------------------------
# The seventeenth audit: results dropped

def test_apply_stage_gives_back_the_model_it_changed_in_place():
    """apply_stage_returns_none: `apply_stage` changes the model in place and returns it, so a notebook may write
    `m = apply_stage(m, stage)`; returning None passed every test, which all ignore its result."""
    from fpt_nb.causal import load_causal
    from fpt_nb.partial import FULL, Stage, apply_stage, current_stage
    from fpt_nb.prompt import load_t5
    for model in (load_t5('tiny')[0], load_causal('tiny-llama')[0]):
        stage = Stage(encoder_layers=1) if hasattr(model, 'encoder') else Stage(decoder_layers=1)
        assert apply_stage(model, stage) is model and current_stage(model) == stage
        assert apply_stage(model, FULL) is model and current_stage(model) == FULL

def test_save_prompt_gives_back_the_path_it_wrote(tmp_path):
    """save_prompt_returns_none: `save_prompt` returns the path it wrote, as a `Path` though given a string (its signature
    says so); returning None passed every test, the library's own calls ignoring it."""
    from fpt_nb.checkpoint import load_prompt, save_prompt
    w = torch.arange(6.0).reshape(2, 3)
    got = save_prompt(w, str(tmp_path/'p.safetensors'), step=3)
    assert got == tmp_path/'p.safetensors' and isinstance(got, type(tmp_path)) and torch.equal(load_prompt(got), w)

def test_tokenized_rows_are_cached_per_tokenizer():
    """tokenizer_key_dropped: the in-process cache of tokenized rows is keyed by the tokenizer as well as the task and rows.
    Keyed without it (`_tokenizer_key` returning None), rows encoded once with T5's tokenizer came back, as they were, for a
    decoder-only model's byte tokenizer in the same process."""
    from fpt_nb import batches
    from fpt_nb.batches import encode
    from fpt_nb.causal import load_causal
    from fpt_nb.prompt import load_t5
    from fpt_nb.tasks import get_task, load_examples
    task, rows = get_task('toy'), load_examples('toy', 'train', limit=4)
    t5_tok, byte_tok = load_t5('tiny')[1], load_causal('tiny-llama')[1]
    first, second = encode(task, t5_tok, rows), encode(task, byte_tok, rows)
    batches._CACHE.clear()
    assert encode(task, byte_tok, rows) == second and encode(task, t5_tok, rows) == first and first != second

def test_save_checkpoint_gives_back_the_folder_it_wrote(tmp_path):
    """save_checkpoint_returns_none: `save_checkpoint` returns the checkpoint's folder, the one `latest_checkpoint` then
    finds (its signature says `-> Path`); returning None passed every test, the trainer's own call passing it on unread."""
    from fpt_nb.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    got = save_checkpoint(tmp_path, 3, torch.ones(2, 3), dict(epoch=0), {'x': torch.zeros(1)})
    assert got == tmp_path/'step-0000003' == latest_checkpoint(tmp_path) and got.is_dir()
    assert torch.equal(load_checkpoint(got)[0], torch.ones(2, 3))

def test_restore_full_gives_back_the_model_partial_or_not():
    """restore_full_returns_none, restore_full_of_a_full_model_returns_none: `restore_full` puts a partial model's layers
    back in place and returns the model, as `apply_stage` does, whether or not it was partial; returning None passed every
    test, which all ignore its result."""
    from fpt_nb.partial import FULL, Stage, apply_stage, current_stage, restore_full
    from fpt_nb.prompt import load_t5
    m = load_t5('tiny')[0]
    assert restore_full(m) is m
    apply_stage(m, Stage(encoder_layers=1))
    assert restore_full(m) is m and current_stage(m) == FULL

def test_no_rows_encode_to_no_items_for_either_kind_of_model():
    """encode_causal_of_no_rows_returns_none, encode_of_no_rows_crashes: no rows (`load_examples(limit=0)` gives them)
    encode to no items, for T5 and for a decoder-only model alike, and the collator then says there are none. `encode` (T5)
    crashed inside transformers ("You should supply an encoding ... but you provided []") where `encode_causal` gave [];
    `encode_causal` returning None passed every test."""
    from fpt_nb.batches import collate, encode
    from fpt_nb.causal import encode_causal, load_causal
    from fpt_nb.prompt import load_t5
    from fpt_nb.tasks import load_examples
    rows = load_examples('toy', 'train', limit=0)
    t5_tok, byte_tok = load_t5('tiny')[1], load_causal('tiny-llama')[1]
    assert encode('toy', t5_tok, rows) == [] == encode_causal('toy', byte_tok, rows) == encode_causal('toy', byte_tok, rows, train=True)
    with pytest.raises(ValueError, match='no items'): collate(encode('toy', t5_tok, rows), t5_tok.pad_token_id)

def test_a_tables_missing_number_is_an_empty_cell(tmp_path):
    """fmt_of_none_returns_none: a Table 2 row a notebook fills in itself, with a figure it does not have (None) or one it
    writes as text, is tabulated with an empty cell or the text; changed to give back None for them, `to_markdown` crashed
    joining the cells (TypeError)."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2, to_markdown
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    row, = table2(collect_runs(tmp_path, say=lambda *a: None))
    text = to_markdown([dict(row, wall_s=None, improve='n/a')])
    assert text.splitlines()[-1].endswith('| 100.0 | 100% |  | 100% | n/a |'), text

def test_check_pt_run_gives_back_the_pt_runs_summary(tmp_path):
    """check_pt_run_returns_none: `check_pt_run` (the check of `--pt-run`'s folder) returns that run's summary, as its
    docstring says; returning None passed every test, `fpt run` calling it for its refusals alone."""
    from test_scoring import fake_run
    from fpt_nb.cli import check_pt_run
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    got = check_pt_run(tmp_path/'pt-0-s0', 'mnli', 'm', 0)
    assert (got['method'], got['task'], got['final_metrics']) == ('pt', 'mnli', dict(accuracy=70))

def test_check_schedule_gives_back_the_stages_it_checked():
    """check_schedule_returns_none: `check_schedule` returns the stages it checked (`-> list[Stage]`), so a notebook may
    write `stages = check_schedule([...], model)`; returning None passed every test, which all ignore its result."""
    from fpt_nb.partial import FULL, Stage, check_schedule
    from fpt_nb.prompt import load_t5
    stages = [Stage(encoder_layers=1), Stage(encoder_layers=2), FULL]
    assert check_schedule(stages, load_t5('tiny')[0], require_scores=False) is stages

def test_write_json_gives_back_the_path_it_wrote(tmp_path):
    """write_json_returns_none: `write_json` returns the path it wrote, as `write_atomic` does; returning None passed every
    test, the library's own calls ignoring it."""
    from fpt_nb.checkpoint import read_json, write_json
    got = write_json(tmp_path/'a.json', dict(x=1))
    assert got == tmp_path/'a.json' and read_json(got) == dict(x=1)


# ---------------------------------------------------------------------------------------------------------------
# The eighteenth audit: import-time constants changed (a list's entry dropped, a table's entry removed)

@pytest.mark.parametrize('suffix', ['.safetensors', '.bin', '.pt', '.pth', '.h5', '.msgpack'])
def test_a_model_folders_digest_covers_its_weights_in_every_format(tmp_path, suffix):
    """weight_suffix_bin_dropped: the digest a run records of a local model folder reads its weight files whatever their
    format; the hub's `google/t5-large-lm-adapt` holds `pytorch_model.bin`. With `.bin` left out of the suffixes, new weights
    in such a folder kept the digest, and a resume took the changed model as the one it trained."""
    from fpt_nb.prompt import model_digest
    (tmp_path/'config.json').write_text('{"model_type": "t5"}')
    (tmp_path/f'model{suffix}').write_bytes(b'weights, first')
    before = model_digest(tmp_path)
    (tmp_path/f'model{suffix}').write_bytes(b'weights, second')
    assert model_digest(tmp_path) != before

def _bin_folder(path, seed):
    "A tiny T5 laid out as the hub's LM-adapt folders are: config.json, the weights in pytorch_model.bin, a tokenizer."
    from fpt_nb.prompt import load_t5
    model, tok = load_t5('tiny', seed=seed)
    model.config.save_pretrained(path); tok.save_pretrained(path)
    torch.save(model.state_dict(), path/'pytorch_model.bin')
    return model

def test_a_t5_folder_with_pytorch_model_bin_loads_and_is_digested_by_its_weights(tmp_path):
    """weight_suffix_bin_dropped: a folder laid out as the hub's `google/t5-large-lm-adapt` is (`pytorch_model.bin`, no
    safetensors) loads through `load_t5` as the model saved, and its digest changes with its weights (another seed's)."""
    from fpt_nb.prompt import load_t5, model_digest
    model = _bin_folder(tmp_path, 0)
    ids, labels = torch.tensor([[5, 6, 7, 1]]), torch.tensor([[8, 1]])
    assert torch.equal(load_t5(str(tmp_path))[0](input_ids=ids, labels=labels).logits, model(input_ids=ids, labels=labels).logits)
    before = model_digest(tmp_path)
    _bin_folder(tmp_path, 1)
    assert model_digest(tmp_path) != before

def test_an_mt5_folder_is_a_t5_to_load_and_to_shrink(tmp_path):
    """mt5_refused, mt5_arch_dropped: an mT5 (its config says `mt5`) is a T5 to fpt_nb: `load_t5` takes its folder, and the
    partial models take an `MT5ForConditionalGeneration` built in code. With `mt5` out of the T5 model types the folder was
    refused as a model fpt_nb does not serve; with its class out of the adapters, a partial mT5 was refused."""
    from transformers import ByT5Tokenizer, MT5Config, MT5ForConditionalGeneration
    from fpt_nb.partial import FULL, Stage, apply_stage
    from fpt_nb.prompt import load_t5, tiny_t5_config
    torch.manual_seed(0)
    cfg = {k: v for k, v in tiny_t5_config().to_dict().items() if k not in ('model_type', 'architectures', 'transformers_version')}
    mt5 = MT5ForConditionalGeneration(MT5Config(**cfg)).eval()
    assert mt5.config.model_type == 'mt5'
    mt5.save_pretrained(tmp_path); ByT5Tokenizer().save_pretrained(tmp_path)
    loaded = load_t5(str(tmp_path))[0]
    ids = torch.tensor([[5, 6, 7, 1]]); labels = torch.tensor([[8, 1]])
    # (transformers' MT5 and T5 classes order a few float operations differently: equal to float32 rounding)
    torch.testing.assert_close(loaded(input_ids=ids, labels=labels).logits, mt5(input_ids=ids, labels=labels).logits, rtol=1e-4, atol=1e-4)
    full = mt5(input_ids=ids, labels=labels).logits
    apply_stage(mt5, Stage(encoder_layers=2))
    assert len(mt5.encoder.block) == 2 and not torch.equal(mt5(input_ids=ids, labels=labels).logits, full)
    apply_stage(mt5, FULL)
    assert torch.equal(mt5(input_ids=ids, labels=labels).logits, full)

@pytest.mark.parametrize('cls', ['T5Model', 'T5EncoderModel'])
def test_t5s_other_heads_take_partial_models(cls):
    """t5_model_arch_dropped, t5_encoder_arch_dropped: the partial models take T5 without its LM head (`T5Model`) and T5's
    encoder alone (`T5EncoderModel`), as their adapter table lists them: a stage keeping every layer is the model, one
    dropping layers has that many, `FULL` gives the model back. With a class out of the table, it was refused."""
    import transformers
    from fpt_nb.partial import FULL, Stage, apply_stage
    from fpt_nb.prompt import tiny_t5_config
    torch.manual_seed(0)
    model = getattr(transformers, cls)(tiny_t5_config()).eval()
    ids = torch.tensor([[5, 6, 7, 1]])
    run = lambda: (model(input_ids=ids) if cls == 'T5EncoderModel' else model(input_ids=ids, decoder_input_ids=ids)).last_hidden_state
    full = run()
    apply_stage(model, Stage(encoder_layers=4))
    assert torch.equal(run(), full)
    apply_stage(model, Stage(encoder_layers=2))
    assert len(model.encoder.block) == 2 and not torch.equal(run(), full)
    apply_stage(model, FULL)
    assert torch.equal(run(), full)

@pytest.mark.parametrize('field', ['task', 'model', 'method', 'metric', 'steps', 'stages', 'total_flops', 'train_seconds', 'final_metrics'])
def test_a_summary_without_one_of_its_fields_is_refused_by_name(tmp_path, field):
    """summary_stages_unrequired: a run summary without one of the fields the tables read is refused, naming it. With
    `stages` no longer required, a summary without it was taken, and the tables failed later on a KeyError."""
    from test_scoring import fake_run
    from fpt_nb.tables import read_summary
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70)
    path = tmp_path/'pt-0-s0'/'summary.json'
    s = json.loads(path.read_text()); del s[field]; path.write_text(json.dumps(s))
    with pytest.raises(ValueError, match=f"lacks '{field}': expected a summary written by `run_experiment`"): read_summary(path)

class _Launched(BaseException): "Raised by a stand-in for `launch`: the command got as far as starting the run."

def test_fpt_run_hands_every_flag_to_the_run(tmp_path, monkeypatch, data_dir):
    """run_args_seed_dropped, run_args_last_dropped: `fpt run` hands each flag it takes for the run to `launch` (then
    `run_experiment`) with the value given. With `seed` left out of the names it hands on, `fpt run --seed 3` trained seed
    0 silently; with `device_map` out, `--device-map auto` was dropped. Every flag here is given a value other than its
    default."""
    import fpt_nb.run as run
    got = {}
    def launched(num_processes=1, **kw): got.update(kw); raise _Launched
    monkeypatch.setattr(run, 'launch', launched)
    given = dict(data_dir=str(data_dir), level=2, decoder=True, batch_size=4, micro_batch_size=2, lr=0.1, seed=3, device='cpu',
                 prompt_length=5, train_limit=20, score_examples=9, score_split='train', score_sampling='first',
                 score_aggregation='token', padding='max', bf16=True, early_stop=2, checkpoint_every=3, num_beams=2,
                 eval_batch_size=7, max_input_length=100, max_target_length=8, resume=False, progress=False, device_map='auto',
                 fast=True, compile=True)
    args = ['run', '--task', 'mnli', '--method', 'ld', '--steps', '8', '--out-dir', str(tmp_path/'r')]
    for k, v in given.items():
        flag = '--' + k.replace('_', '-')
        args += [flag] if v is True else ['--no-' + flag[2:]] if v is False else [flag, str(v)]
    from fpt_nb.cli import main
    with pytest.raises(_Launched): main(args)
    assert {k: got.get(k) for k in given} == given

@pytest.mark.parametrize('key', ['step', 'stage', 'flops', 'wall', 'eval_seconds'])
def test_a_checkpoints_best_is_found_among_an_evaluations_metrics_alone(key):
    """eval_seconds_counted_as_metric: a resume checks that the log holds the evaluation that made the checkpoint's best
    prompt, by its value among that evaluation's metrics; the record's other numbers (its step, stage, FLOPs, wall clock,
    seconds) are no metric. With `eval_seconds` counted as one, a log whose metric was edited still passed where the best
    value happened to equal the seconds the evaluation took."""
    from fpt_nb.train import _log_problem
    steps = [dict(kind='step', step=s, flops=10 * s) for s in (1, 2)]
    ev = dict(kind='eval', step=2, stage=1, flops=20, wall=3.5, eval_seconds=1.25, accuracy=70.0)
    assert _log_problem(steps + [ev], 2, 20, ((2, 70.0),)) is None
    assert 'lacks the evaluation at step 2' in _log_problem(steps + [ev], 2, 20, ((2, ev[key]),))

def test_the_tables_caption_and_the_scoring_flag_say_what_each_scoring_is(tmp_path, capsys):
    """scorings_wording: a table's caption and `fpt tables --scoring`'s help say what the two scorings are, in the words of
    `SCORINGS`. Those words were read by no code (the caption and the help wrote their own), so a change to them went
    nowhere; now both read them."""
    from test_scoring import fake_run
    from fpt_nb.cli import make_parser
    from fpt_nb.tables import collect_runs, table2, to_markdown
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    caption = to_markdown(table2(collect_runs(tmp_path, say=lambda *a: None))).splitlines()[0]
    assert caption.endswith("; metric: paper_* is the paper's scoring, others the datasets' official scorers."), caption
    with pytest.raises(SystemExit): make_parser().parse_args(['tables', '--help'])
    assert "the paper's scoring (default) or the datasets' official scorers" in ' '.join(capsys.readouterr().out.split())

@pytest.mark.parametrize('name', ['log.jsonl', 'summary.json', 'best.json', 'best_last.json', 'prompt.safetensors',
                                  'best_prompt.safetensors', 'best_last_prompt.safetensors', 'stages.png', 'scores.safetensors'])
def test_a_folder_holding_a_file_of_a_runs_name_is_not_written_over(tmp_path, name):
    """run_files_scores_dropped: an out_dir holding a file a run would write (a user's own `scores.safetensors`, say, beside
    no run's config.json) is refused, naming the file, and the file is kept. With `scores.safetensors` left out of the
    run's file names, such a folder was taken as a new one, and the run's neuron scores replaced the user's file."""
    from fpt_nb.run import check_run_dir
    (tmp_path/name).write_text('mine')
    with pytest.raises(ValueError, match=f"holds {name} but no run's config.json: it is not a run folder"): check_run_dir(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [name] and (tmp_path/name).read_text() == 'mine'

@pytest.mark.parametrize('method', ['fr', 'fpt_fr'])
def test_every_ffn_reducing_method_scores_its_neurons_and_trains(tmp_path, method, one_thread):
    """needs_scores_fpt_fr_dropped: each method that keeps FFN neurons by their scores computes the scores first (and
    writes them into its folder). With FPT_FR left out of the methods that need scores, it failed at its first stage ("no
    encoder scores were given"); only the papermill notebooks' test, which the mutation table leaves out for its time,
    ran FPT_FR."""
    from fpt_nb.run import run_experiment
    s = run_experiment(task='toy', model='tiny', method=method, steps=4, batch_size=4, prompt_length=4, train_limit=16,
                       eval_limit=8, score_examples=8, device='cpu', progress=False, out_dir=tmp_path/'r')
    assert (tmp_path/'r'/'scores.safetensors').is_file() and s['stages'][0]['name'].startswith('enc ffn'), s['stages']

@pytest.mark.parametrize('key,value,other', [('stage_steps', None, [2, 2, 2, 4]), ('decoder', False, True), ('score_examples', 1000, 500),
                                             ('score_split', 'validation', 'train'), ('score_sampling', 'random', 'first'),
                                             ('score_aggregation', 'example', 'token')])
def test_fpt_runs_that_differ_in_their_own_settings_are_rows_against_one_pt(tmp_path, key, value, other):
    """row_keys_aggregation_dropped: the settings that are FPT's own (its stage steps, whether the decoder shrinks, how its
    neuron scores are taken) make rows of one table against the one PT run, not settings of their own. With
    `score_aggregation` left out of them, an FPT_FR run with token-aggregated scores was a setting PT did not have: no
    Improve, and a column of settings."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2
    cfg = dict(lr=0.3, batch_size=32, stage_steps=None, decoder=False, score_examples=1000, score_split='validation',
               score_sampling='random', score_aggregation='example')
    for method, name, v in (('pt', 'pt', value), ('fpt_fr', 'a', value), ('fpt_fr', 'b', other)):
        fake_run(tmp_path, method, 0, 100 if method == 'pt' else 60, 50.0, 70, [(0, 10), (100, 70)] if method == 'pt' else ())
        d = (tmp_path/f'{method}-0-s0').rename(tmp_path/name)
        s = json.loads((d/'summary.json').read_text())
        (d/'summary.json').write_text(json.dumps(dict(s, config=dict(cfg, method=method, **{key: v})) | ({key: v} if key == 'stage_steps' else {})))
    rows = table2(collect_runs(tmp_path, say=lambda *a: None))
    assert [(r['method'], r['setting']) for r in rows] == [('PT', ''), ('FPT_FR', ''), ('FPT_FR', '')], rows
    assert [r['improve'] for r in rows[1:]] == [70 - 10] * 2   # (PT's best by 60 FLOPs: its evaluation at 0)

@pytest.mark.parametrize('entry', ['precision', 'fast', 'compile', 'early_stop', 'score_settings', 'method', 'steps'])
def test_a_fingerprint_written_before_an_entry_existed_is_not_told_apart_by_it(entry):
    """later_entries_steps_dropped: a checkpoint's fingerprint written by an earlier version lacks the entries added since
    (precision, fast step, compile, early stop, score settings, method, steps); a resume compares the rest, not those. With
    `steps` left out of them, every checkpoint of a version before it was refused ("steps (None there, ... now)"). An entry
    the checkpoint does hold is still compared."""
    from fpt_nb.train import fingerprint_diff
    ours = dict(task='toy', lr=0.3, precision='fp32', fast=False, compile=False, early_stop=0, score_settings=None,
                method='fpt_cr', steps=100)
    older = {k: v for k, v in ours.items() if k != entry}
    assert fingerprint_diff(older, ours) == []
    assert fingerprint_diff(dict(ours, **{entry: 'other'}), ours) == [f"{entry} ('other' there, {ours[entry]!r} now)"]

def test_the_default_run_is_the_one_its_results_page_records(tmp_path, monkeypatch):
    """default_run_steps: `fpt run` with no arguments (`make run`) starts the two runs `results/default_run/` records: their
    summaries' configs, entry by entry (PT, then FPT_CR, 2,500 steps each on the toy task with the tiny T5). Changed to
    another number of steps, the README's figures and the results page described runs the command no longer made."""
    import fpt_nb.run as run
    from pathlib import Path
    from fpt_nb.cli import main
    root = Path(__file__).resolve().parents[1]/'results'/'default_run'
    methods = []
    def launched(num_processes=1, **kw):
        methods.append(kw['method'])
        recorded = json.loads((root/f"{kw['method']}-summary.json").read_text())
        assert {k: str(kw[k]) if k == 'out_dir' else kw.get(k) for k in recorded['config']} == recorded['config']
        assert (recorded['planned_steps'], recorded['task'], recorded['model']) == (kw['steps'], kw['task'], kw['model'])
        if kw['method'] == 'pt': return recorded   # (the command reads the summary, then starts the next run)
        raise _Launched
    monkeypatch.setattr(run, 'launch', launched)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(_Launched): main(['run'])
    assert methods == ['pt', 'fpt_cr']

def test_the_tiny_decoder_only_models_config_names_its_tokenizers_special_tokens():
    """byte_vocab_bos: the built-in decoder-only model's config (and generation config) gives the ids its byte tokenizer
    uses for BOS, EOS and padding, and as many embeddings as the tokenizer has tokens. With BOS changed to 258 in the config,
    the model named byte 0xFF's id as its BOS while every prompt began with the tokenizer's 259."""
    from fpt_nb.causal import load_causal
    model, tok = load_causal('tiny-llama')
    ids = lambda c: (c.bos_token_id, c.eos_token_id, c.pad_token_id)
    assert ids(model.config) == ids(model.generation_config) == ids(tok) == (259, 1, 0)
    assert model.config.vocab_size == len(tok) == 260

@pytest.mark.parametrize('score,says', [('best', "best evaluation by the paper's rule (all evaluations, partial stages included)"),
                                        ('best_last', 'best evaluation of the last stage'), ('final', 'last evaluation')])
def test_a_tables_caption_says_which_evaluation_it_shows(tmp_path, score, says):
    """scores_wording: a table's caption says which evaluation of each run its scores are (`--score`): the best by the
    paper's rule over every evaluation, partial stages included; the best of the last stage; or the last. Changed to say
    "best evaluation" alone, it no longer said that the partial stages' evaluations count."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2, to_markdown
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    assert to_markdown(table2(collect_runs(tmp_path, say=lambda *a: None), score)).splitlines()[0].startswith(f"Scores: {says}; metric:")
