"Decoder-only prompt tuning across notebooks: the trainer through two expansions, resume, PEFT export of a run, real task rows."
import json, re
from pathlib import Path
import pytest, torch
from fpt_nb.causal import (load_causal, PromptCausalLM, encode_causal, causal_batch_flops, prompt_completion, causal_stages,
                           tiny_causal_config, causal_step_flops)
from fpt_nb.train import Trainer, TrainConfig, Phase, evaluator
from fpt_nb.partial import Stage, FULL, current_stage, apply_stage
from fpt_nb.tasks import get_task, load_examples
from fpt_nb.batches import collate
from fpt_nb.checkpoint import load_prompt
from fpt_nb.peft import export_peft
from fpt_nb.flops import measured_flops
from fpt_nb.arch import ffn_widths

PHASES = [Phase(Stage(decoder_layers=2, decoder_ffn=32, ffn_selection='sequence'), 6),
          Phase(Stage(decoder_layers=3, decoder_ffn=96, ffn_selection='sequence'), 6), Phase(FULL, 8)]
CFG = TrainConfig(batch_size=16, micro_batch_size=8, lr=0.3, prompt_length=8)

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

def toy_items(tok, split='train', limit=128):
    rows = load_examples('toy', split, limit=limit)
    return rows, encode_causal('toy', tok, rows)

def trainer(run_dir, cfg=CFG, evaluate=True):
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=8)
    _, items = toy_items(tok)
    val_rows, val_items = toy_items(tok, 'validation', 16)
    ev = evaluator('toy', tok, val_items, val_rows, 16, 1, 'cpu', 8) if evaluate else None
    return Trainer(pt, PHASES, items, cfg, run_dir, evaluate=ev, metric='accuracy', progress=False, step_flops=causal_batch_flops,
                   identity=dict(name='tiny-llama', task='toy'))

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp('causal')/'toy-fpt'
    tr = trainer(run_dir)
    weight = tr.pt.prompt.weight
    st = tr.fit()
    return tr, weight, st, run_dir

def test_two_expansions_carry_prompt_and_optimizer(run):
    tr, weight, st, run_dir = run
    log = [json.loads(l) for l in (run_dir/'log.jsonl').read_text().splitlines()]
    assert [(r['step'], r['to']) for r in log if r['kind'] == 'expand'] == [(0, 'dec 2L, dec ffn 32'), (6, 'dec 3L, dec ffn 96'), (12, 'full')]
    assert tr.pt.prompt.weight is weight and list(tr.opt.state) == [weight]   # one prompt, one optimizer, across both expansions
    assert tr.opt.state[weight]['step'] == 20
    losses = [r['loss'] for r in log if r['kind'] == 'step']
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 1.0   # the loss falls on the toy task (from about ln 260 = 5.6)
    assert st['stage_flops'][0] / 6 < st['stage_flops'][1] / 6 < st['stage_flops'][2] / 8   # per step, each stage costs more
    model = tr.pt.model
    assert current_stage(model) == FULL and [l.self_attn.layer_idx for l in model.model.layers] == [0, 1, 2, 3]
    assert [r['stage'] for r in log if r['kind'] == 'eval'] == [0, 1, 2]

def test_resume_mid_stage_is_bit_for_bit(run, tmp_path):
    tr, _, _, _ = run
    cfg = TrainConfig(**{**CFG.__dict__, 'checkpoint_every': 9})
    first = trainer(tmp_path, cfg, evaluate=False)
    save = first._checkpoint
    class Stop(Exception): pass
    def save_then_crash():   # the process dies right after the step-9 checkpoint, inside the second stage
        p = save()
        if first.state['step'] == 9: raise Stop()
        return p
    first._checkpoint = save_then_crash
    with pytest.raises(Stop): first.fit()
    second = trainer(tmp_path, cfg, evaluate=False)
    second.fit()
    assert torch.equal(second.pt.prompt.weight.detach(), tr.pt.prompt.weight.detach())
    assert second.state['flops'] == tr.state['flops']

def test_peft_export_of_a_run(run, tmp_path):
    from peft import PeftModel
    tr, _, _, run_dir = run
    out = export_peft(run_dir, tmp_path/'peft', 'tiny-llama')
    assert torch.equal(load_prompt(run_dir/'prompt.safetensors'), tr.pt.prompt.weight.detach())
    theirs = PeftModel.from_pretrained(load_causal('tiny-llama')[0], out).eval()
    _, items = toy_items(load_causal('tiny-llama')[1], 'validation', 4)
    for it in items:
        x = torch.tensor([it['input_ids']])
        ours = tr.pt.generate(x, max_new_tokens=6)
        assert torch.equal(theirs.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=6, do_sample=False,
                                           use_cache=False)[:, x.shape[1]:], ours)

@pytest.mark.parametrize('task', ['mnli', 'qqp', 'squad2', 'record', 'xsum'])
def test_real_rows_as_prompt_and_completion(task, data_dir):
    tok = load_causal('tiny-llama')[1]
    t = get_task(task)
    rows = load_examples(t, 'validation', data_dir, limit=8)
    items = encode_causal(t, tok, rows, max_input_length=300, max_target_length=t.target_max_length)
    cue = '\nSummary:' if task == 'xsum' else '\nAnswer:'
    for row, it in zip(rows, items):
        prompt, completion = prompt_completion(t.format(row), t)
        assert tok.decode(it['input_ids']).startswith('<s>') and tok.decode(it['input_ids']).endswith(cue) and len(it['input_ids']) <= 300
        assert it['labels'][-1] == tok.eos_token_id and '<extra_id_0>' not in completion and completion.startswith(' ')
        if not it['target_truncated']: assert tok.decode(it['labels'][:-1]) == completion
        assert it['truncated'] == max(0, len(prompt.encode()) - len(cue.encode()) - (300 - 1 - len(cue.encode())))
    if task == 'xsum': assert all(it['truncated'] > 0 for it in items)   # documents are long: cut, the cue kept
    pt = PromptCausalLM(load_causal('tiny-llama')[0], prompt_length=4)
    b = collate(items[:4])
    assert torch.isfinite(pt(**b).loss)
    assert pt.generate(b['input_ids'], b['attention_mask'], max_new_tokens=3).shape == (4, 3)

def test_record_trains_on_every_gold_entity(data_dir):
    tok = load_causal('tiny-llama')[1]
    rows = load_examples('record', 'train', data_dir)
    items = encode_causal('record', tok, rows, train=True)
    per_row = [sum(it['row'] == i for it in items) for i in range(len(rows))]
    assert per_row == [len(dict.fromkeys(r['answers'])) for r in rows] and max(per_row) > 1


def test_the_command_line_on_tiny_llama(tmp_path, capsys, monkeypatch):
    """`fpt run --model tiny-llama`: PT and FPT_CR through the scores, four decoder stages and the tables; then export and
    evaluate. The FPT run's plot overlays the PT run's curve; PT's own plot has no overlay (pt_plot_overlays_itself)."""
    import fpt_nb.cli as cli
    from fpt_nb.cli import main
    from fpt_nb.checkpoint import read_json
    import fpt_nb.plots
    plotted, plot_run = [], fpt_nb.plots.plot_run   # `fpt run` imports it when it runs (not at `fpt --help`)
    def plot(d, pt=None, **k): plotted.append((Path(d).name, pt and Path(pt).name)); return plot_run(d, pt, **k)
    monkeypatch.setattr('fpt_nb.plots.plot_run', plot)
    def fpt(*args):
        code = main(list(map(str, args))); torch.set_num_threads(1)
        return code, capsys.readouterr()
    out = tmp_path/'runs'
    code, o = fpt('run', '--model', 'tiny-llama', '--method', 'pt', 'fpt_cr', '--steps', 8, '--batch-size', 8, '--prompt-length', 4,
                  '--train-limit', 64, '--eval-limit', 16, '--eval-every', 2, '--score-examples', 16, '--no-progress', '--out-dir', out)
    assert code == 0, o.err
    s = read_json(out/'fpt_cr'/'summary.json')
    assert [st['name'] for st in s['stages']] == ['dec 1L, dec ffn 32', 'dec 2L, dec ffn 64', 'dec 3L, dec ffn 96', 'full']
    assert s['stages'][0]['flops'] < s['stages'][3]['flops'] and s['decoder'] is True
    assert '| toy | tiny-llama | FPT_CR | 1 |' in o.out, o.out
    assert plotted == [('pt', None), ('fpt_cr', 'pt')]
    code, o = fpt('export-peft', out/'fpt_cr', tmp_path/'adapter')
    assert code == 0 and json.loads((tmp_path/'adapter'/'adapter_config.json').read_text())['task_type'] == 'CAUSAL_LM', o.err
    code, o = fpt('evaluate', out/'fpt_cr', '--prompt', 'best_last', '--limit', 16, '--no-progress')
    assert code == 0, o.err
    ev = read_json(out/'fpt_cr'/'eval-validation-16-best_last.json')
    assert ev['stage'] == 'full' and ev['accuracy'] == read_json(out/'fpt_cr'/'best_last.json')['accuracy']


# ---------------------------------------------------------------------------------------------------------------
# The loss, generation, encoding and FLOPs of one batch, against the stock model and PyTorch's counter

def test_the_loss_is_the_stock_models_on_the_completion_tokens():
    """Catches causal_label_position_off_by_one: each completion token scored at its own position (the model sees the
    token it predicts) instead of at the one before. By hand, row by row and unpadded: the stock LM on prompt + input +
    completion, labels only on the completion (the stock model shifts them by one itself)."""
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4, seed=1).eval()
    _, items = toy_items(tok, 'validation', 3)
    assert len({len(it['input_ids']) for it in items}) > 1   # the batch pads its inputs
    total, n = 0.0, 0
    with torch.no_grad():
        for it in items:
            ids = torch.tensor([it['input_ids'] + it['labels']])
            embeds = torch.cat([pt.prompt.weight[None], model.get_input_embeddings()(ids)], 1)
            labels = torch.tensor([[-100] * (4 + len(it['input_ids'])) + it['labels']])
            total += model(inputs_embeds=embeds, labels=labels).loss.item() * len(it['labels']); n += len(it['labels'])
        assert pt(**collate(items)).loss.item() == pytest.approx(total / n, rel=1e-5)


def test_batched_generation_equals_one_row_at_a_time():
    "Catches causal_generate_right_padded: a shorter row's generation must start right after its own input, not after padding."
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4, seed=1).eval()
    _, items = toy_items(tok, 'validation', 3)
    b = collate(items)
    assert not b['attention_mask'].bool().all()
    together = pt.generate(b['input_ids'], b['attention_mask'], max_new_tokens=5)
    for row, it in zip(together, items):
        assert torch.equal(row, pt.generate(torch.tensor([it['input_ids']]), max_new_tokens=5)[0])


def test_cut_prompts_keep_the_start_of_the_text_and_completions_their_eos():
    """Catches causal_text_cut_keeps_end (the text's end kept instead of its start, as T5's inputs keep) and
    causal_completion_over_limit (a completion cut to max_target_length tokens plus EOS, one over the limit).
    The byte tokenizer by hand: byte + 3, BOS 259, EOS 1."""
    tok = load_causal('tiny-llama')[1]
    rows = load_examples('toy', 'validation', limit=4)
    byte = lambda s: [c + 3 for c in s.encode()]
    for row, it in zip(rows, encode_causal('toy', tok, rows, max_input_length=20, max_target_length=3)):
        text, target = get_task('toy').format(row)
        assert it['input_ids'] == [259] + byte(text)[:20 - 1 - 8] + byte('\nAnswer:')   # 20 = BOS + 11 text bytes + 8 of the cue
        completion = byte(' ' + target.removeprefix('<extra_id_0>'))                  # ' no' / ' yes'
        assert it['labels'] == completion[:2] + [1] and it['target_truncated'] == len(completion) - 2


def test_step_flops_are_pytorchs_count_full_and_partial():
    """Catches causal_flops_without_completion (the completion tokens left out of the sequence) and
    causal_backward_attention_once (attention's backward counted as one matmul, not two): the counted step of a
    padded batch equals what FlopCounterMode measures for its forward and backward, on the full model and a partial one."""
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4, seed=1)
    _, items = toy_items(tok, 'validation', 3)
    b = collate(items)
    for stage in (FULL, Stage(decoder_layers=(0, 3), decoder_ffn=32, ffn_selection='sequence')):
        apply_stage(model, stage)
        measured = measured_flops(lambda: pt(**b).loss.backward())
        assert causal_batch_flops(pt, b, ffn_widths(model)) == measured, stage
    apply_stage(model, FULL)
    x = torch.randint(5, 100, (2, 11))   # forward only (backward=False): 11 positions, the head at the last 3
    with torch.no_grad(): measured = measured_flops(lambda: model(input_ids=x, logits_to_keep=3))
    assert causal_step_flops(model.config, 11, 3, batch=2, backward=False) == measured


def test_causal_stages_round_quarters_half_up():
    "Catches causal_stages_round_down: 6 layers' quarters 1.5, 3, 4.5 keep 2, 3, 5 layers; 90 neurons' 22.5, 45, 67.5 keep 23, 45, 68."
    c = tiny_causal_config(num_hidden_layers=6, intermediate_size=90)
    assert causal_stages(c, 'ld') == [[90] * 2, [90] * 3, [90] * 5]
    assert causal_stages(c, 'fr') == [[23] * 6, [45] * 6, [68] * 6]
    assert causal_stages(c, 'cr') == [[23] * 2, [45] * 3, [68] * 5]


def test_a_partial_qwen2_keeps_each_layers_attention_type():
    """Catches causal_layer_types_not_renumbered: the tiny Qwen2 slides its attention window from layer 2 on
    (max_window_layers=2); kept layers 0 and 3 must stay full and sliding, not take layers 0 and 1's types."""
    from transformers import Qwen2ForCausalLM
    model = Qwen2ForCausalLM(tiny_causal_config('qwen2')).eval()
    assert model.config.layer_types == ['full_attention'] * 2 + ['sliding_attention'] * 2
    apply_stage(model, Stage(decoder_layers=(0, 3)))
    assert model.config.layer_types == ['full_attention', 'sliding_attention']
    apply_stage(model, FULL)
    assert model.config.layer_types == ['full_attention'] * 2 + ['sliding_attention'] * 2

def test_a_loss_group_gives_the_micro_batches_loss_on_a_decoder_only_model(tmp_path):
    """loss_group on the decoder-only path: one forward pass of 16 with loss_group=8 trains as two micro-batches of 8
    with their own token means (the official loss's form), step for step."""
    _, items = toy_items(load_causal('tiny-llama')[1])
    def fit(name, **cfg):
        pt = PromptCausalLM(load_causal('tiny-llama')[0], prompt_length=8)
        tr = Trainer(pt, [Phase(FULL, 3)], items, TrainConfig(batch_size=16, lr=0.3, prompt_length=8, **cfg), tmp_path/name,
                     progress=False, step_flops=causal_batch_flops)
        tr.fit()
        log = [json.loads(l) for l in (tmp_path/name/'log.jsonl').read_text().splitlines()]
        return [r['loss'] for r in log if r['kind'] == 'step'], pt
    (grouped, a), (micro, b) = fit('grouped', loss_group=8), fit('micro', micro_batch_size=8)
    assert len(grouped) == 3 and grouped == pytest.approx(micro, rel=1e-5)
    assert (a.prompt.weight - b.prompt.weight).abs().max() < 1e-4   # Adafactor at lr 0.3 amplifies last-bit differences a little


# ---------------------------------------------------------------------------------------------------------------
# A new-user audit of the decoder-only path (session 7): each test failed on the code before its fix

def _save_folder(model, path):
    from fpt_nb.causal import byte_tokenizer
    model.save_pretrained(path); byte_tokenizer().save_pretrained(path)
    return str(path)

@pytest.mark.parametrize('family', ['qwen3', 'gpt2'])
def test_an_unsupported_decoder_only_folder_is_refused_by_name(family, tmp_path):
    """A local Qwen3 or GPT-2 folder is a decoder-only LM FPT does not serve: `setup` must refuse it naming the
    families it serves, not load it as a T5 (random weights, then AttributeError: no decoder_start_token_id)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM, GPT2Config, GPT2LMHeadModel
    from fpt_nb.run import setup
    from fpt_nb.causal import BYTE_VOCAB
    m = (Qwen3ForCausalLM(Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=1, head_dim=16, **BYTE_VOCAB)) if family == 'qwen3'
         else GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=260, bos_token_id=259, eos_token_id=1)))
    folder = _save_folder(m, tmp_path/family)
    with pytest.raises((ValueError, TypeError), match='(?i)llama.*qwen2.*mistral|llama.*mistral.*qwen2'):
        setup('toy', folder)


def test_a_resume_at_the_last_stage_boundary_keeps_the_expansion_record(run, tmp_path):
    """A run that dies after the checkpoint at the end of its last partial stage (step 12 here: 6 + 6) resumes from it;
    the model built fresh is already full, so `_grow` is never called and the `expand` record to 'full' (which `rewind`
    dropped, expecting it to be logged again) is lost: the plot's stage lines and the log miss the last expansion."""
    _, _, _, run_dir = run
    cfg = TrainConfig(**{**CFG.__dict__, 'checkpoint_every': 100})
    first = trainer(tmp_path, cfg, evaluate=False)
    save = first._checkpoint
    class Stop(Exception): pass
    def save_then_crash():
        p = save()
        if first.state['step'] == 12: raise Stop()
        return p
    first._checkpoint = save_then_crash
    with pytest.raises(Stop): first.fit()
    trainer(tmp_path, cfg, evaluate=False).fit()
    expands = lambda d: [(r['step'], r['to']) for r in map(json.loads, (d/'log.jsonl').read_text().splitlines()) if r['kind'] == 'expand']
    assert expands(run_dir) == [(0, 'dec 2L, dec ffn 32'), (6, 'dec 3L, dec ffn 96'), (12, 'full')]
    assert expands(tmp_path) == expands(run_dir)


def test_a_bf16_saved_folder_runs_in_the_precision_the_run_records(tmp_path):
    """Real decoder-only checkpoints are saved in bf16, and `transformers` 5 loads them in their saved dtype by default:
    `fpt run --no-bf16` (or any CPU run) then trains a bf16 model while config.json records precision 'fp32'."""
    from transformers import LlamaForCausalLM
    from fpt_nb.run import setup
    folder = _save_folder(LlamaForCausalLM(tiny_causal_config('llama')).to(torch.bfloat16), tmp_path/'llama-bf16')
    pt = setup('toy', folder)[0]
    assert pt.model.dtype == torch.float32


def test_evaluation_generates_greedily_whatever_the_checkpoints_generation_config():
    """A checkpoint's generation_config (Qwen2.5-Instruct ships repetition_penalty=1.05) must not change the evaluation's
    greedy decoding: `generate` overrides do_sample only, so penalties leak into every evaluation."""
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4, seed=1).eval()
    b = collate(toy_items(tok, 'validation', 4)[1])
    plain = pt.generate(b['input_ids'], b['attention_mask'], max_new_tokens=12)
    model.generation_config.repetition_penalty = 1.5
    model.generation_config.no_repeat_ngram_size = 1
    assert torch.equal(pt.generate(b['input_ids'], b['attention_mask'], max_new_tokens=12), plain)


@pytest.mark.parametrize('model', ['tiny-llama', 'tiny'])
@pytest.mark.parametrize('task', ['mnli', 'qqp'])
def test_tiny_llama_completions_of_class_labels_are_not_cut(task, model, data_dir):
    """`setup` cuts completions at the task's target_max_length (10, counted in T5 tokens); with tiny-llama's byte
    tokenizer ' contradiction', ' entailment', ' is_duplicate', ' not_duplicate' are cut, so a perfect model scores
    29.5% on MNLI and 0% on QQP (silently: only summary.json's targets_truncated counts the cuts)."""
    from fpt_nb.run import setup
    from fpt_nb.metrics import score
    rows = load_examples(task, 'train', data_dir, limit=100)
    _, tok, encode_fn, _, _ = setup(task, model, prompt_length=2)   # (the tiny T5's byte tokenizer too)
    items = encode_fn(rows)
    oracle = [tok.decode(it['labels'], skip_special_tokens=True) for it in items]
    assert sum(it['target_truncated'] > 0 for it in items) == 0
    assert score(task, oracle, rows)['accuracy'] == 100.0


def test_a_partial_model_leaves_other_models_of_the_same_config_alone():
    """`transformers` models built from one config object share it; `renumber_layers` rewrites config.layer_types in
    place, so a full Qwen2 sharing the config with a partial one fails (IndexError) or takes the wrong masks."""
    from transformers import Qwen2ForCausalLM
    cfg = tiny_causal_config('qwen2')
    torch.manual_seed(0); a = Qwen2ForCausalLM(cfg).eval()
    torch.manual_seed(0); b = Qwen2ForCausalLM(cfg).eval()
    x = torch.randint(3, 250, (1, 20))
    with torch.no_grad(): before = b(x).logits
    apply_stage(a, Stage(decoder_layers=(0, 3)))
    with torch.no_grad(): assert torch.equal(b(x).logits, before)
    apply_stage(a, FULL)


@pytest.mark.parametrize('flag, says', [(dict(decoder=False), "decoder=False (--no-decoder) keeps the decoder whole, but a decoder-only model's"),
                                        (dict(padding='max'), "padding='max' (--padding max) pads T5's inputs"),
                                        (dict(fast=True), "fast (the fast step) serves a prompt-tuned T5 on one device, without a device_map; this run's model is a LlamaForCausalLM")])
def test_a_flag_that_cannot_apply_to_a_decoder_only_model_is_refused(flag, says, tmp_path, monkeypatch):
    """Before: all three were recorded (config.json: decoder false, padding max, fast true) and not done: the decoder was
    reduced all the same, every row packed without padding, and the step was the stock one. All are refused before the
    neuron scores are computed (`fast_checked_late`: `fast` was refused only by the trainer, after them); `decoder` and
    `padding` (`padding_max_on_decoder_only`) before the model loads, which for a real one takes minutes."""
    from fpt_nb import run
    def scored(*a, **k): raise AssertionError('the neuron scores were computed before the flag was refused')
    monkeypatch.setattr(run, 'run_scores', scored)
    if 'fast' not in flag:
        def loaded(*a, **k): raise AssertionError('the model was loaded before the flag was refused')
        monkeypatch.setattr(run, 'load_causal', loaded)
    with pytest.raises(ValueError, match=re.escape(says)):
        run.run_experiment('toy', 'tiny-llama', 'fpt_cr', tmp_path/'run', steps=4, batch_size=4, prompt_length=2, train_limit=8,
                       eval_limit=4, progress=False, **flag)
    assert not (tmp_path/'run').exists()

def test_evaluation_stops_at_the_tokenizers_end_of_sequence_too():
    """Training ends every completion with the tokenizer's EOS; a checkpoint whose generation_config names another EOS (a chat
    fine-tune) generated past it, and the extra tokens went into the prediction."""
    from fpt_nb.train import stop_ids, generate_texts
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4, seed=1).eval()
    with torch.no_grad(): model.lm_head.weight[tok.eos_token_id] += 5 * model.lm_head.weight.abs().max()   # EOS within 3 tokens
    items = toy_items(tok, 'validation', 4)[1]
    plain = generate_texts(pt, tok, items, max_new_tokens=8)
    model.generation_config.eos_token_id = 258
    assert stop_ids(pt, tok) == dict(eos_token_id=[258, tok.eos_token_id])
    assert generate_texts(pt, tok, items, max_new_tokens=8) == plain

def test_a_checkpoint_whose_generation_config_lists_its_eos_ids_and_no_pad_evaluates():
    """Review of d675f54: Llama-3-Instruct style generation_config.json (`eos_token_id: [128001, 128008, 128009]`, no
    pad_token_id). `PromptCausalLM.generate` falls back to `pad_token_id=g.eos_token_id`, a list, and transformers fails in
    `GenerationConfig.validate` ('<' not supported between 'list' and 'int') at the first evaluation of `fpt run`."""
    from fpt_nb.train import generate_texts
    model, tok = load_causal('tiny-llama')
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = [7, 8], None
    pt = PromptCausalLM(model, 4)
    rows, items = toy_items(tok, 'validation', 4)
    texts = generate_texts(pt, tok, items, 6)
    assert len(texts) == 4


def test_official_csv_scores_read_as_the_one_stack(tmp_path):
    """csv_scores_need_an_encoder: a CSV score file (one row per layer, the official layout) for a decoder-only model failed
    with KeyError: 'encoder'; its rows are the decoder's layers, checked against the model's shape."""
    import csv
    from fpt_nb.scores import load_scores
    model = load_causal('tiny-llama')[0]
    rows = torch.rand(4, 128)
    with open(tmp_path/'s.csv', 'w', newline='') as f: csv.writer(f).writerows(rows.tolist())
    sc = load_scores(tmp_path/'s.csv', model)
    assert list(sc.scores) == ['decoder'] and torch.allclose(sc.scores['decoder'], rows)
    assert (sc.kind, sc.n_examples, sc.n_tokens) == ('abs_mean', 0, {})   # the CSV says nothing of what they came from: none counted
    with open(tmp_path/'wide.csv', 'w', newline='') as f: csv.writer(f).writerows(torch.rand(4, 130).tolist())
    with pytest.raises(ValueError, match=r'the model needs 4 decoder rows of 128 \(one row per layer\)'): load_scores(tmp_path/'wide.csv', model)


@pytest.mark.parametrize('strategy', ['auto', 'sequential'])
def test_built_in_models_take_a_placement_strategy(strategy):
    """device_map_strategy_passed_through: `fpt run --device-map auto` on a built-in model (tiny-llama, tiny) crashed in Accelerate
    ('str' object has no attribute 'keys'): a strategy is worked out into a map first, as from_pretrained does for a loaded model."""
    from fpt_nb.prompt import load_t5
    x = torch.randint(0, 256, (2, 9))
    placed, plain = load_causal('tiny-llama', device_map=strategy)[0], load_causal('tiny-llama')[0]
    assert isinstance(placed.hf_device_map, dict) and torch.equal(placed(input_ids=x).logits, plain(input_ids=x).logits)
    placed, plain, y = *(load_t5('tiny', device_map=strategy)[0], load_t5('tiny')[0]), x[:, :2].contiguous()
    assert isinstance(placed.hf_device_map, dict) and torch.equal(placed(input_ids=x, labels=y).logits, plain(input_ids=x, labels=y).logits)


def test_a_tokenizer_that_encodes_to_nothing_is_refused(tmp_path):
    """tokenizer_unchecked: a Qwen2 folder holding the byte tokenizer's files loads a 5-token Qwen2Tokenizer that encodes every
    text to no tokens; `fpt run` trained on empty inputs and ended at accuracy 0 with no word of why."""
    from fpt_nb.causal import byte_tokenizer, CAUSAL_FAMILIES
    CAUSAL_FAMILIES['qwen2'][1](tiny_causal_config('qwen2')).save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"\(Qwen2Tokenizer, 5 tokens\) encodes .* to no tokens: it is not this model's tokenizer") as e:
        load_causal(str(tmp_path))
    assert str(e.value).startswith(f"the tokenizer of {str(tmp_path)!r} (Qwen2Tokenizer"), str(e.value)   # the folder it came from

@pytest.fixture(scope='module')
def llama_sp_folder(tmp_path_factory, data_dir):
    """A folder shaped like the hub's Llama-2 ones: a tiny `LlamaForCausalLM` and a SentencePiece tokenizer as Llama-2's (BPE,
    byte fallback, a dummy prefix, no normalisation: a newline is a byte; `tokenizer.model` and the `tokenizer.json` transformers converts from it), trained here on
    MNLI rows: no pretrained Llama is reachable from here."""
    import sentencepiece as spm
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    d = tmp_path_factory.mktemp('llama-sp')
    rows = load_examples('mnli', 'train', data_dir, limit=2000)
    spm.SentencePieceTrainer.train(sentence_iterator=iter([r[f] for r in rows for f in ('premise', 'hypothesis')]),
                                   model_prefix=str(d/'tokenizer'), vocab_size=1000, model_type='bpe', byte_fallback=True,
                                   add_dummy_prefix=True, split_digits=True, normalization_rule_name='identity', remove_extra_whitespaces=False,
                                   allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)   # Llama-2's trainer spec
    (d/'tokenizer.vocab').unlink()
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                                 num_key_value_heads=2, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)).save_pretrained(d)
    AutoTokenizer.from_pretrained(d).save_pretrained(d)
    return d

def test_a_sentencepiece_tokenizer_reads_prompt_and_completion_as_one_text(llama_sp_folder, data_dir):
    """encode_causal tokenized the cue line and the completion alone, and a SentencePiece tokenizer with a dummy prefix
    (Llama-2's, Mistral's) starts a piece with a '▁': every input read `... . ▁ <0x0A> Answer :` and every target
    `▁ ▁contr adiction </s>`, tokens the sequence as one text does not have, an extra one to learn before every answer
    (the byte tokenizer of the built-in models has no prefix: it cannot show)."""
    model, tok = load_causal(str(llama_sp_folder))
    assert type(model).__name__ == 'LlamaForCausalLM' and len(tok) == 1000
    assert tok.convert_ids_to_tokens(tok('\nAnswer:', add_special_tokens=False).input_ids)[0] == '▁'   # alone: the stray token
    rows = load_examples('mnli', 'validation', data_dir, limit=16)
    items = encode_causal('mnli', tok, rows)
    for it, r in zip(items, rows):
        prompt, completion = prompt_completion(get_task('mnli').format(r), 'mnli')
        assert it['input_ids'] == [tok.bos_token_id] + tok(prompt, add_special_tokens=False).input_ids
        assert it['input_ids'] + it['labels'][:-1] == [tok.bos_token_id] + tok(prompt + completion, add_special_tokens=False).input_ids
        assert it['labels'][-1] == tok.eos_token_id and tok.decode(it['labels'], skip_special_tokens=True) == completion.strip()
    text = tok(get_task('mnli').format(rows[0])[0], add_special_tokens=False).input_ids
    cue = items[0]['input_ids'][1 + len(text):]
    cut = encode_causal('mnli', tok, rows[:1], max_input_length=len(cue) + 5)[0]
    assert tok.decode(cue) == '\nAnswer:' and cut['input_ids'] == [tok.bos_token_id] + text[:4] + cue

def test_a_llama_folder_with_a_sentencepiece_tokenizer_trains_and_evaluates(llama_sp_folder, data_dir, tmp_path):
    "`fpt run --model FOLDER` of a Llama-2-shaped folder: neuron scores, two expansions, evaluations, then `fpt evaluate` of its prompt."
    from fpt_nb.run import run_experiment, evaluate_run
    s = run_experiment('mnli', str(llama_sp_folder), 'fpt_cr', tmp_path/'run', data_dir=str(data_dir), steps=8, batch_size=4,
                       prompt_length=4, train_limit=32, eval_limit=8, score_examples=8, eval_every=4, progress=False, device='cpu')
    assert s['steps'] == 8 and len(s['stages']) == 4 and s['targets_truncated'] == 0
    assert set(s['final_metrics']) >= {'accuracy', 'paper_acc'}
    ev = evaluate_run(tmp_path/'run', data_dir=str(data_dir), limit=8, prompt='final', progress=False, device='cpu')
    assert ev['n'] == 8 and ev['accuracy'] == s['final_metrics']['accuracy']   # the final prompt on the full model, the same 8 rows

@pytest.fixture(scope='module')
def qwen_bpe_folder(tmp_path_factory, data_dir):
    """A folder shaped like the hub's Qwen2 ones: a tiny `Qwen2ForCausalLM` and a byte-level BPE tokenizer with Qwen2's
    pre-tokenizer pattern and no BOS, trained here on MNLI-shaped prompts, so it learns to merge a full stop and a newline."""
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    d = tmp_path_factory.mktemp('qwen-bpe')
    pattern = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior='isolated'),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    rows = load_examples('mnli', 'train', data_dir, limit=2000)
    t.train_from_iterator([prompt + completion for prompt, completion in (prompt_completion(get_task('mnli').format(r), 'mnli') for r in rows)],
                          trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=['<|endoftext|>']))
    PreTrainedTokenizerFast(tokenizer_object=t, eos_token='<|endoftext|>', pad_token='<|endoftext|>').save_pretrained(d)
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                                 num_key_value_heads=2, bos_token_id=None, eos_token_id=0)).save_pretrained(d)
    return d

def test_a_byte_level_bpe_reads_an_input_that_fits_as_one_text(qwen_bpe_folder, data_dir):
    """A byte-level BPE (Qwen2's, Llama-3's) merges a text's full stop with the newline after it ('.Ċ'): the text's tokens
    then do not start the prompt's, and encode_causal put the text's and the cue line's tokens side by side, `. Ċ Answer :`,
    where the prompt as one text reads `.Ċ Answer :`. An input that fits is now the prompt's own tokens; one cut in its text
    still ends with the whole cue line."""
    model, tok = load_causal(str(qwen_bpe_folder))
    assert type(model).__name__ == 'Qwen2ForCausalLM' and tok.bos_token_id is None
    ids = lambda s: tok(s, add_special_tokens=False).input_ids
    rows = load_examples('mnli', 'validation', data_dir, limit=16)
    items, merged = encode_causal('mnli', tok, rows), 0
    for it, r in zip(items, rows):
        prompt, completion = prompt_completion(get_task('mnli').format(r), 'mnli')
        assert it['input_ids'] == ids(prompt) and it['truncated'] == 0
        assert it['input_ids'] + it['labels'][:-1] == ids(prompt + completion)
        merged += any(t.endswith('Ċ') and t != 'Ċ' for t in tok.convert_ids_to_tokens(it['input_ids']))
    assert merged >= 8   # most premises end in a full stop
    cut = encode_causal('mnli', tok, rows[:1], max_input_length=12)[0]
    assert len(cut['input_ids']) == 12 and cut['truncated'] > 0 and tok.decode(cut['input_ids'][-len(ids('\nAnswer:')):]) == '\nAnswer:'

def test_a_decoder_only_models_generations_are_decoded_as_its_tokenizer_does(qwen_bpe_folder, llama_sp_folder, data_dir, monkeypatch):
    """Generations were decoded with T5's clean-up of spaces before punctuation (the official code's, for T5), which transformers
    skips for a BPE tokenizer (Qwen2's, Llama's) with a warning in every decoder-only run ('Ignoring clean_up_tokenization_spaces
    =True for BPE tokenizer ... destructive for BPE'). A decoder-only model's text is now decoded as its tokenizer does it."""
    from fpt_nb.train import generate_texts
    rows = load_examples('mnli', 'validation', data_dir, limit=4)
    for folder in (qwen_bpe_folder, llama_sp_folder):
        model, tok = load_causal(str(folder))
        asked, decode = [], tok.batch_decode
        monkeypatch.setattr(tok, 'batch_decode', lambda ids, **kw: asked.append(kw['clean_up_tokenization_spaces']) or decode(ids, **kw))
        texts = generate_texts(PromptCausalLM(model, prompt_length=4), tok, encode_causal('mnli', tok, rows), max_new_tokens=3)
        assert asked == [False] and len(texts) == 4


# ---- planted by a mutation audit (session 19): each test below failed under its bug

def test_activation_scores_count_the_prompts_positions():
    "causal_scores_prompt_not_counted: a decoder-only model's neuron scores count the prompt's positions, as T5's do."
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=3)
    _, items = toy_items(tok, limit=4)
    b = collate(items, pad_id=tok.pad_token_id)
    m = pt.token_masks(b)['decoder']
    want = [3 + len(i['input_ids']) + len(i['labels']) for i in items]   # prompt, input and completion of each row
    assert m.sum(1).tolist() == want and m[:, :3].all()

def test_a_decoder_only_runs_target_length_is_counted_as_it_generates(tmp_path):
    """causal_target_length_t5_style: a decoder-only run recorded its target length (and the evaluation's new tokens) counted
    as T5 encodes a label word (16 for the toy task's byte tokens), not as its completions are (8)."""
    from fpt_nb.run import run_experiment, fit_target_length
    from fpt_nb.checkpoint import run_fingerprint
    s = run_experiment('toy', 'tiny-llama', 'pt', tmp_path/'run', steps=1, batch_size=4, prompt_length=2, train_limit=4, eval_limit=2,
                       progress=False)
    _, tok = load_causal('tiny-llama')
    want = fit_target_length(get_task('toy'), tok, None, causal=True)
    assert want != fit_target_length(get_task('toy'), tok, None, causal=False)   # (the two countings differ here)
    assert s['max_target_length'] == want


@pytest.mark.parametrize('model', ['tiny-llama', 'tiny'])
def test_setup_encodes_one_item_a_row_unless_asked_for_training_pairs(model, data_dir):
    """`setup`'s `encode_fn` gives evaluation items by default (one a row: ReCoRD is scored against all its gold
    answers at once) and one training pair per gold answer only with `train=True`."""
    from fpt_nb.run import setup
    rows = load_examples('record', 'train', data_dir)
    encode_fn = setup('record', model, prompt_length=2)[2]
    assert [it['row'] for it in encode_fn(rows)] == list(range(len(rows)))
    per_row = [sum(it['row'] == i for it in encode_fn(rows, train=True)) for i in range(len(rows))]
    assert per_row == [len(dict.fromkeys(r['answers'])) for r in rows]

@pytest.mark.parametrize('model', ['tiny-llama', 'tiny'])
def test_setup_puts_the_whole_prompt_model_on_the_device_asked(model):
    """With no device map, `setup` moves the whole prompt-tuned model (backbone and prompt) to `device`; only under a device
    map does the backbone stay where the map put it. (The meta device stands in for a GPU here.)"""
    from fpt_nb.run import setup
    pt = setup('toy', model, prompt_length=2, device=torch.device('meta'))[0]
    assert {p.device.type for p in pt.parameters()} == {'meta'}
