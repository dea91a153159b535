"FPT on the real pretrained encoder (all-MiniLM-L6-v2) with real MNLI data: a short run end to end, then scoring on another directory."
import json, os
from pathlib import Path
import pytest, torch
from fpt_nb.run import run_experiment, evaluate_run, setup
from fpt_nb.tasks import load_examples
from fpt_nb.batches import collate
from fpt_nb.checkpoint import load_prompt, read_json

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
