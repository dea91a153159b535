"FPT on the real pretrained encoder (all-MiniLM-L6-v2) with real MNLI data: a short run end to end, then scoring on another directory."
import json, os
from pathlib import Path
import pytest, torch
from fpt_nb.run import run_experiment, evaluate_run, setup
from fpt_nb.tasks import load_examples
from fpt_nb.batches import collate
from fpt_nb.checkpoint import load_prompt, read_json
from fpt_nb.encoder import load_encoder, PromptEncoder, LABEL_TEXTS, mean_pool, embed_texts, encode_pairs, encoder_batch_flops
from fpt_nb.arch import ffn_widths
from fpt_nb.flops import measured_flops

@pytest.fixture(scope='module')
def run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp('minilm')/'mnli-fpt_cr'
    s = run_experiment('mnli', 'minilm', 'fpt_cr', str(out), data_dir=str(data_dir), steps=4, batch_size=8, prompt_length=4,
                       train_limit=64, eval_limit=24, score_examples=32, eval_batch_size=24, progress=False, device='cpu')
    return out, s

def test_short_run(run, data_dir):
    out, s = run
    assert [st['name'] for st in s['stages']] == ['enc 2L, enc ffn 384', 'enc 3L, enc ffn 768', 'enc 5L, enc ffn 1152', 'full']
    assert s['steps'] == 4 and s['total_flops'] == sum(st['flops'] for st in s['stages'])
    assert s['stages'][0]['flops'] < s['stages'][3]['flops']
    assert s['final_metrics']['total'] == 24
    # the final evaluation, counted again here: the saved final prompt on the full model, 24 validation rows in one batch
    pe, tok, encode_fn, _, _ = setup('mnli', 'minilm', prompt_length=4, seed=0)
    with torch.no_grad(): pe.prompt.weight.copy_(load_prompt(out/'prompt.safetensors'))
    rows = load_examples('mnli', 'validation', data_dir, limit=24)
    b = collate(encode_fn(rows))
    with torch.no_grad(): said = pe.eval()(b['input_ids'], b['attention_mask']).logits.argmax(-1)
    right = sum(int(p) == r['label'] for p, r in zip(said, rows))
    assert s['final_metrics']['accuracy'] == 100 * right / 24
    assert (out/'scores.safetensors').exists() and (out/'prompt.safetensors').exists()
    from fpt_nb.tables import metric_key, run_score   # an encoder classifies: no paper scoring, so tables show its accuracy
    assert s['paper_metric'] is None and metric_key(s) == 'accuracy' and run_score(s, 'final') == s['final_metrics']['accuracy']

def test_evaluate_on_another_directory(run, data_dir, tmp_path):
    out, s = run
    d = tmp_path/'elsewhere'/'mnli'; d.mkdir(parents=True)
    lines = (Path(data_dir)/'mnli'/'validation_matched.jsonl').read_text().splitlines()[100:130]
    (d/'validation_matched.jsonl').write_text('\n'.join(lines) + '\n')
    m = evaluate_run(out, data_dir=str(tmp_path/'elsewhere'), split='validation', device='cpu')
    best_stage = s['stages'][read_json(out/'best.json')['stage']]['name']   # the best prompt runs on the stage it was chosen on
    assert m['n'] == 30 and m['total'] == 30 and m['stage'] == best_stage
    assert read_json(out/'eval-validation.json')['accuracy'] == m['accuracy']
    with pytest.raises(FileNotFoundError, match='train'):
        evaluate_run(out, data_dir=str(tmp_path/'elsewhere'), split='train', device='cpu')


@pytest.fixture(scope='module')
def tiny(data_dir):
    "The tiny random BERT (eager attention) with a 3-token prompt and the MNLI label texts, and two real MNLI rows collated."
    model, tok = load_encoder('tiny-bert', seed=0)
    pe = PromptEncoder(model, tok, LABEL_TEXTS['mnli'], prompt_length=3, seed=0).eval()
    rows = load_examples('mnli', 'validation', data_dir, limit=2)
    return pe, tok, collate(encode_pairs('mnli', tok, rows), pad_id=0)

def test_logits_pool_the_input_positions_only(tiny):
    "The class embedding is the mean over the input tokens' outputs, not the prompt's (catches pooling the prompt too)."
    pe, tok, b = tiny
    ids, mask = b['input_ids'], b['attention_mask']
    assert (mask.sum(1) < mask.shape[1]).any()    # one row is padded
    P = pe.prompt_length
    with torch.no_grad():
        embeds = torch.cat([pe.prompt.weight.expand(len(ids), -1, -1), pe.model.get_input_embeddings()(ids)], 1)
        h = pe.model(inputs_embeds=embeds, attention_mask=torch.cat([torch.ones(len(ids), P, dtype=mask.dtype), mask], 1)).last_hidden_state
        labels = tok(list(LABEL_TEXTS['mnli']), return_tensors='pt', padding=True)
        lh = pe.model(**labels).last_hidden_state
        expected = []
        for r in range(len(ids)):
            n = int(mask[r].sum())
            z = h[r, P:P + n].mean(0)             # the input tokens, padding excluded (padding is at the end)
            e = torch.stack([lh[c, :int(labels.attention_mask[c].sum())].mean(0) for c in range(3)])
            expected.append(20.0 * torch.nn.functional.cosine_similarity(z[None], e, dim=-1))
        got = pe(ids, mask).logits
    torch.testing.assert_close(got, torch.stack(expected), atol=1e-4, rtol=1e-4)

def test_mean_pool_ignores_padding(tiny):
    "mean_pool averages over mask-1 positions only (catches dividing by the padded width); a row's logits ignore batch padding."
    hidden = torch.tensor([[[1., 2.], [3., 4.], [100., -100.]], [[5., 6.], [7., 8.], [9., 10.]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[2., 3.], [7., 8.]]))
    torch.testing.assert_close(mean_pool(hidden[:1, :2], mask[:1, :2]), torch.tensor([[2., 3.]]))   # the same row, unpadded
    pe, tok, b = tiny
    r = int(b['attention_mask'].sum(1).argmin())   # the shorter row, padded in the batch
    n = int(b['attention_mask'][r].sum())
    assert n < b['attention_mask'].shape[1]
    with torch.no_grad():
        alone = pe(b['input_ids'][r:r + 1, :n], b['attention_mask'][r:r + 1, :n]).logits
        batched = pe(b['input_ids'], b['attention_mask']).logits[r:r + 1]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=1e-5)

def test_step_flops_match_the_counter(tiny):
    "FlopCounterMode on a step of the tiny BERT (eager attention) equals the count (catches attention backward counted once)."
    # both inputs of the attention matmuls (QK^T, AV) depend on the prompt, so their backward is two matmuls each: 3x forward
    pe, tok, b = tiny
    assert pe.model.config._attn_implementation == 'eager'
    pe.train()
    try:
        measured = measured_flops(lambda: pe(b['input_ids'], b['attention_mask'], labels=b['labels']).loss.backward())
    finally: pe.eval(); pe.prompt.weight.grad = None
    assert measured == encoder_batch_flops(pe, b, ffn_widths(pe.model))
    fwd = measured_flops(lambda: pe(b['input_ids'], b['attention_mask']))   # forward only: no backward is run
    from fpt_nb.encoder import encoder_step_flops
    assert fwd == encoder_step_flops(pe.model.config, pe.prompt_length + b['input_ids'].shape[1], n_classes=3, batch=2, backward=False)

def test_mnli_label_texts_in_glue_order(tiny):
    "Class i's description is that of GLUE MNLI label i: 0 entailment, 1 neutral, 2 contradiction (catches 1 and 2 swapped)."
    neutral, contradiction = "the second sentence may or may not be true given the first", "the second sentence contradicts the first"
    assert LABEL_TEXTS['mnli'][1:] == (neutral, contradiction)
    pe, tok, b = tiny
    torch.testing.assert_close(pe.label_emb[1:], embed_texts(pe.model, tok, [neutral, contradiction]), atol=1e-5, rtol=1e-5)

def test_qqp_and_toy_label_texts_in_label_order():
    """enc_qqp_label_texts_swapped, enc_toy_label_texts_swapped: class i's description is that of label i: QQP 0 not a
    duplicate, 1 a duplicate (GLUE's is_duplicate); toy 0 negative, 1 positive (the toy rows' adjectives)."""
    from fpt_nb.tasks import toy_examples, TOY_POSITIVE, TOY_NEGATIVE, QQP_WORDS, TOY_WORDS
    assert LABEL_TEXTS['qqp'] == ("the two questions ask different things", "the two questions ask the same thing")
    assert QQP_WORDS[1] == 'is_duplicate' and TOY_WORDS[1] == 'yes'
    assert LABEL_TEXTS['toy'] == ("a negative review", "a positive review")
    for r in toy_examples('validation', 20):
        words = set(r['text'].replace(',', ' ').split())
        assert words & set((TOY_NEGATIVE, TOY_POSITIVE)[r['label']]) and not words & set((TOY_POSITIVE, TOY_NEGATIVE)[r['label']])

def test_pairs_are_encoded_first_sentence_first(tiny, data_dir):
    """enc_mnli_pair_swapped: the label texts speak of 'the first' and 'the second' sentence, so MNLI is encoded as
    [CLS] premise [SEP] hypothesis [SEP] (QQP question1 then question2), cut to `max_length`."""
    pe, tok, _ = tiny
    rows = load_examples('mnli', 'validation', data_dir, limit=3)
    items = encode_pairs('mnli', tok, rows)
    for it, r in zip(items, rows):
        assert it['input_ids'] == tok(r['premise'], r['hypothesis'])['input_ids'] and it['labels'] == [r['label']]
        assert tok.decode(it['input_ids'], skip_special_tokens=True).startswith(tok.decode(tok(r['premise'])['input_ids'], skip_special_tokens=True))
    q = load_examples('qqp', 'validation', data_dir, limit=2)
    assert [i['input_ids'] for i in encode_pairs('qqp', tok, q)] == [tok(r['question1'], r['question2'])['input_ids'] for r in q]
    assert all(len(i['input_ids']) <= 16 for i in encode_pairs('mnli', tok, rows, max_length=16))

def test_accuracy_counts_every_batch(tiny, data_dir):
    "enc_accuracy_first_batch_only: `classify_accuracy` over batches of 2 is the row-by-row count of right answers."
    from fpt_nb.encoder import classify_accuracy
    pe, tok, _ = tiny
    rows = load_examples('mnli', 'validation', data_dir, limit=9)
    items = encode_pairs('mnli', tok, rows)
    with torch.no_grad():
        said = [int(pe(torch.tensor([i['input_ids']]), torch.ones(1, len(i['input_ids']), dtype=torch.long)).logits.argmax(-1)) for i in items]
    right = sum(s == r['label'] for s, r in zip(said, rows))
    assert 0 < right < 9   # some right, some wrong: a count of one batch or of none shows
    assert classify_accuracy(pe, items, batch_size=2) == dict(accuracy=100 * right / 9, total=9)

def _tiny_bert_run(out, **kw):
    return run_experiment('toy', 'tiny-bert', 'pt', str(out), steps=1, batch_size=4, train_limit=16, eval_limit=4, progress=False,
                          device='cpu', **kw)

def test_padding_max_pads_to_the_runs_input_length(tmp_path):
    """max_padding_to_492: with padding='max' the trainer padded every batch to 492 whatever max_input_length said: FLOPs of
    492 positions recorded for a run of 64, and an encoder run with a prompt over 20 (prompt + 492 past BERT's 512 positions)
    crashed. Now it pads to the run's input length (an encoder's: cut where prompt and input would pass its positions)."""
    from fpt_nb.encoder import encoder_batch_flops
    from fpt_nb.prompt import load_t5
    from fpt_nb.flops import pt_step_flops
    pe = setup('toy', 'tiny-bert', prompt_length=2, seed=0)[0]
    at = lambda pe, n: encoder_batch_flops(pe, dict(input_ids=torch.zeros(4, n, dtype=torch.long)), ffn_widths(pe.model))
    assert _tiny_bert_run(tmp_path/'a', padding='max', max_input_length=64, prompt_length=2)['total_flops'] == at(pe, 64)
    s = _tiny_bert_run(tmp_path/'b', padding='max', prompt_length=30)   # 492 + 30 > 512: cut to 482
    assert s['total_flops'] == at(setup('toy', 'tiny-bert', prompt_length=30, seed=0)[0], 482)
    s = run_experiment('toy', 'tiny', 'pt', str(tmp_path/'t5'), steps=1, batch_size=4, train_limit=16, eval_limit=4, progress=False,
                       device='cpu', padding='max', max_input_length=40, prompt_length=2)
    cfg = load_t5('tiny')[0].config   # (the targets are padded to the batch's longest: any length up to the run's)
    assert any(s['total_flops'] == pt_step_flops(cfg, 2 + 40, d, batch=4) for d in range(1, s['max_target_length'] + 1)), s['total_flops']

@pytest.mark.parametrize('flag', [dict(num_beams=4), dict(max_target_length=3), dict(device_map='auto')])
def test_generation_and_placement_flags_are_refused_for_an_encoder(flag, tmp_path):
    """encoder_flags_recorded: an encoder run took num_beams, max_target_length and device_map, recorded them and did none.
    encoder_flag_names_skip_first (the twelfth audit): the refusal names the flag as typed, too: `(--)` named none."""
    k = next(iter(flag))
    with pytest.raises(ValueError, match=f"'tiny-bert' is an encoder: .* so {k} \\(--{k.replace('_', '-')}\\) would be recorded and not done"
                                         ".*: leave it unset$"):
        _tiny_bert_run(tmp_path/'r', **flag)
    with pytest.raises(ValueError, match=r"so num_beams, device_map \(--num-beams, --device-map\) would be .*: leave them unset$"):
        _tiny_bert_run(tmp_path/'r', num_beams=4, device_map='auto')   # (the sixteenth audit: one flag or two)
    assert not (tmp_path/'r').exists()

def test_an_encoder_run_says_nothing_of_generation(tmp_path, capsys):
    "encoder_target_note: every encoder run printed a note that a label cut short could never be generated whole."
    s = _tiny_bert_run(tmp_path/'r')
    assert 'generated' not in capsys.readouterr().out and s['max_target_length'] is None

def test_a_bert_hub_id_in_the_local_cache_is_an_encoder(tmp_path):
    """bert_hub_id_taken_for_t5: a hub id of a BERT (its config in the Hugging Face cache, the hub unreachable) went to the T5
    loader, which refused it as 'not served', naming BERT-family encoders among those served. An uncached id asks no server."""
    import subprocess, sys
    from transformers import BertConfig
    snap = tmp_path/'models--someone--bert-x'/'snapshots'/'abc'
    BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64).save_pretrained(snap)
    (snap.parents[1]/'refs').mkdir(); (snap.parents[1]/'refs'/'main').write_text('abc')
    code = "from fpt_nb.encoder import is_encoder; print(is_encoder('someone/bert-x'), is_encoder('someone/other'), is_encoder('tiny'))"
    out = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, HF_HUB_CACHE=str(tmp_path), HF_HUB_OFFLINE='0'),
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ['True', 'False', 'False'], out.stderr[-2000:]

def test_a_partial_encoders_sliced_biases_stay_frozen():
    """sliced_bias_trainable: an encoder's FFN has biases (T5's has none); reduced, the input layer's bias was sliced into a
    new parameter that required a gradient, so the frozen model took gradients it never uses. Only the prompt trains."""
    from fpt_nb.partial import apply_stage, ffn_reduction
    from fpt_nb.scores import NeuronScores
    model, tok = load_encoder('tiny-bert')
    pe = PromptEncoder(model, tok, LABEL_TEXTS['mnli'], prompt_length=3, seed=0)
    width = ffn_widths(model)['encoder'][0]
    apply_stage(model, ffn_reduction(width // 2), NeuronScores({'encoder': torch.rand(model.config.num_hidden_layers, width)}))
    assert ffn_widths(model)['encoder'][0] == width // 2
    assert [n for n, p in pe.named_parameters() if p.requires_grad] == ['prompt.weight']
