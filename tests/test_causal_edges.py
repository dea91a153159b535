"""Edges of the decoder-only models (`fpt_nb.causal`) that an eighth mutation audit (session 23) found no test held. Each test
below failed under the bug named in its docstring."""
import pytest, torch
from fpt_nb.causal import load_causal, PromptCausalLM, encode_causal, causal_step_flops, tiny_causal_config
from fpt_nb.tasks import toy_examples

def test_a_completion_needs_room_for_a_token_and_eos():
    "causal_max_target_1_ok: max_target_length 1 left room for EOS alone: every target was cut to nothing, trained as 'say nothing'."
    tok = load_causal('tiny-llama')[1]
    with pytest.raises(ValueError, match=r'max_target_length must be at least 2 \(a token and EOS\), got 1'):
        encode_causal('toy', tok, toy_examples('train', 2), max_target_length=1)
    assert all(len(i['labels']) == 2 for i in encode_causal('toy', tok, toy_examples('train', 2), max_target_length=2))

def test_an_input_length_that_leaves_no_text_is_refused():
    """causal_room_zero_ok: a max_input_length that held BOS and the cue line but no byte of the text was taken: every example became
    the bare cue, its text cut whole."""
    tok = load_causal('tiny-llama')[1]
    rows = toy_examples('train', 2)
    cue = len(tok('\nAnswer:', add_special_tokens=False).input_ids)
    with pytest.raises(ValueError, match=f'max_input_length={1 + cue} leaves no room for the text after BOS and the cue'):
        encode_causal('toy', tok, rows, max_input_length=1 + cue)
    items = encode_causal('toy', tok, rows, max_input_length=2 + cue)
    assert all(len(i['input_ids']) == 2 + cue and i['truncated'] > 0 for i in items)

def test_the_loss_of_a_bf16_model_is_computed_in_float32():
    """causal_loss_in_half: the decoder-only loss took the cross-entropy of a bf16 model's logits in bf16 (its log-softmax over the
    vocabulary rounded to 3 digits); it is computed in float32."""
    model, tok = load_causal('tiny-llama', dtype=torch.bfloat16)
    pt = PromptCausalLM(model, prompt_length=4)
    items = encode_causal('toy', tok, toy_examples('train', 2))
    from fpt_nb.batches import collate
    b = collate(items, pad_id=tok.pad_token_id)
    out = pt(b['input_ids'], b['attention_mask'], labels=b['labels'])
    ref = torch.nn.functional.cross_entropy(out.logits.float().flatten(0, 1), b['labels'].flatten(), ignore_index=-100)
    assert out.loss.dtype == torch.float32 and torch.equal(out.loss, ref)

def test_generation_pads_with_the_first_eos_where_the_model_names_no_pad(monkeypatch):
    """causal_generate_pad_last: a model with no pad id and a list of EOS ids (Llama-3-Instruct: end of text, end of turn) is given
    the first as its pad, as transformers does; the last was taken."""
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = None, [1, 7]
    seen = {}
    monkeypatch.setattr(model, 'generate', lambda **kw: seen.update(kw) or torch.zeros(1, 1, dtype=torch.long))
    pt.generate(torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long))
    assert seen['pad_token_id'] == 1

@pytest.mark.parametrize('ffn', [[0], [129], [64] * 5])
def test_flops_refuse_mlp_widths_the_model_cannot_have(ffn):
    """causal_flops_widths_unchecked: MLP widths of 0 or above intermediate_size (128) were counted as given, FLOPs of a model that
    cannot exist; so were more layers than the model has."""
    with pytest.raises(ValueError, match='MLP widths|lists 5 layers but the model has 4'):
        causal_step_flops(tiny_causal_config(), 32, 4, ffn)

def test_a_batch_whose_longest_input_has_the_shortest_completion_scores_each_row_as_alone():
    """where_past_the_end (clamp to `prompt + width + 1`): the positions of a row's padded labels ran past the packed sequence
    where the row with the longest input had the shortest completion, and the gather failed. Each row's logits and the
    batch's token-weighted loss are those of the row alone."""
    from fpt_nb.batches import collate
    torch.manual_seed(0)
    pt = PromptCausalLM(load_causal('tiny-llama')[0], prompt_length=4)
    items = [dict(input_ids=[259, 10, 11, 12, 13, 14, 15, 16], labels=[20, 1]), dict(input_ids=[259, 30, 31], labels=[40, 41, 42, 43, 44, 1])]
    b = collate(items, pad_id=0)
    out = pt(b['input_ids'], b['attention_mask'], labels=b['labels'])
    alone = [pt(**{k: v for k, v in collate([it], pad_id=0).items() if k in ('input_ids', 'attention_mask', 'labels')}) for it in items]
    for i, (it, a) in enumerate(zip(items, alone)):
        n = len(it['labels'])
        torch.testing.assert_close(out.logits[i, :n], a.logits[0, :n], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, (2 * alone[0].loss + 6 * alone[1].loss) / 8, rtol=1e-5, atol=1e-6)

def test_logits_without_labels_are_the_next_token_after_each_input():
    """no_labels_batch_dim (`new_full((input_ids.shape[1], 1), ...)`): without labels the model scores the token after each
    row's input (for a batch whose rows and length differ, it failed); those are the logits of the first label position."""
    from fpt_nb.batches import collate
    torch.manual_seed(0)
    pt = PromptCausalLM(load_causal('tiny-llama')[0], prompt_length=4)
    b = collate([dict(input_ids=[259, 10, 11, 12, 13], labels=[20, 1]), dict(input_ids=[259, 30, 31], labels=[40, 1])], pad_id=0)
    out = pt(b['input_ids'], b['attention_mask'])
    assert out.logits.shape[:2] == (2, 1) and out.loss is None
    torch.testing.assert_close(out.logits[:, 0], pt(b['input_ids'], b['attention_mask'], labels=b['labels']).logits[:, 0], rtol=1e-5, atol=1e-5)

def test_a_hub_id_is_decoder_only_by_its_config(monkeypatch):
    """A hub id (owner/name, not a folder here) is a decoder-only model this serves where its config (from the hub or its
    cache) has a served model type, and not where it is another (a T5) or cannot be read (offline, not cached)."""
    import fpt_nb.causal as C
    from types import SimpleNamespace
    types = {'meta-llama/Llama-2-7b-hf': 'llama', 'google/t5-large-lm-adapt': 't5'}
    def config(name):
        if name not in types: raise OSError(f"{name} is not cached and the hub cannot be reached")
        return SimpleNamespace(model_type=types[name])
    monkeypatch.setattr(C.AutoConfig, 'from_pretrained', config)
    assert [C.is_causal(n) for n in (*types, 'someone/offline-model')] == [True, False, False]
