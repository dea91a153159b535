"""The sixteenth mutation audit's gaps: on each library line that a test covers and no mutant touched, the test of one `if`,
`while`, conditional expression, comprehension filter or assert was negated (593 lines); these are the behaviours a
negated condition changed and no test saw (see results/mutants/README.md)."""
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
