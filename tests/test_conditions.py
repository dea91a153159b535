"""The sixteenth mutation audit's gaps: on each library line that a test covers and no mutant touched, the test of one `if`,
`while`, conditional expression, comprehension filter or assert was negated (593 lines); these are the behaviours a
negated condition changed and no test saw (see results/mutants/README.md). At the end, the gap of the seventeenth audit
(a function's `return <value>` made `return None`)."""
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
