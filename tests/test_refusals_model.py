"""Refusals and fallbacks on the model side (partial stages, batches, metrics, PEFT export, plots, the prompt model, tasks,
decoder-only models, the fast step) that a coverage run found no test executing. Each test calls the real function with the
bad input and holds its error type and message, or the fallback's result; each failed with its line broken."""
import re
from types import SimpleNamespace
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.batches import encode, collate
from fpt_nb.tasks import toy_examples

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

@pytest.fixture(scope='module')
def tiny():
    return load_t5('tiny')

# ---- partial stages (partial.py)

def test_an_unknown_layer_selection_is_refused():
    "select_layers refuses a selection that is none of LAYER_SELECTIONS, naming it, instead of returning None."
    from fpt_nb.partial import select_layers
    with pytest.raises(ValueError, match=r"unknown layer selection 'random': expected one of \('sequence', 'evenly', 'score'\)"):
        select_layers(2, 4, 'random')

def test_an_unknown_neuron_selection_is_refused():
    "select_neurons refuses a selection that is none of NEURON_SELECTIONS, naming it, instead of returning None."
    from fpt_nb.partial import select_neurons
    with pytest.raises(ValueError, match=r"unknown neuron selection 'evenly': expected one of \('sequence', 'score'\)"):
        select_neurons(2, 8, 'evenly')

@pytest.mark.parametrize('stage, scored, says', [
    (dict(encoder_ffn=64), None, 'the stage selects encoder neurons by score, but no encoder scores were given'),
    (dict(encoder_layers=2, layer_selection='score'), None, 'the stage selects encoder layers by score, but no encoder scores were given'),
    (dict(decoder_ffn=64), ('encoder',), 'the stage selects decoder neurons by score, but no decoder scores were given'),
], ids=['no_scores_neurons', 'no_scores_layers', 'no_decoder_scores'])
def test_a_stage_that_selects_by_score_needs_the_scores(tiny, stage, scored, says):
    "stage_plan refuses a stage selecting neurons or layers by score when no scores (or none for that stack) were given."
    from fpt_nb.partial import Stage, stage_plan
    from fpt_nb.scores import NeuronScores
    scores = None if scored is None else NeuronScores({s: torch.rand(4, 128) for s in scored})
    with pytest.raises(ValueError, match=says + r".*use selection 'sequence'"):
        stage_plan(Stage(**stage), tiny[0], scores)

def test_a_stage_may_not_drop_the_layer_holding_the_position_bias(tiny):
    "stage_plan refuses chosen layers that leave out T5's layer 0, which holds the relative position bias."
    from fpt_nb.partial import Stage, stage_plan
    with pytest.raises(ValueError, match=r'the stage drops encoder layer\(s\) \[0\], which t5 needs \(layer 0 holds the relative position bias\)'):
        stage_plan(Stage(encoder_layers=(1, 2, 3)), tiny[0], require_scores=False)

@pytest.mark.parametrize('layer, part', [(0, None), (3, None), (1, 'wo'), (2, 'wi_0')])
def test_an_offloaded_ffn_weight_is_refused_and_the_model_left_as_it_was(layer, part):
    """apply_stage refuses to slice an FFN weight on the meta device (offloaded), naming the layer, before it changes any layer:
    with a later layer offloaded (as disk offload places them), the earlier layers were left sliced, at no stage a restore could undo.
    One of its weights offloaded is enough (offload_any_is_all: only an FFN offloaded whole was refused)."""
    from fpt_nb.partial import apply_stage, ffn_reduction, layer_dropping, current_stage
    from fpt_nb.scores import NeuronScores
    m = load_t5('tiny')[0]
    apply_stage(m, layer_dropping(2))   # a partial stage first: a refused expansion must leave it there
    shapes = lambda: {n: tuple(p.shape) for n, p in m.named_parameters()}
    before = shapes()
    ffn = m._fpt_partial.stacks['encoder'][layer].layer[1].DenseReluDense   # (the full stack's layer, kept or not)
    (getattr(ffn, part) if part else ffn).to('meta')
    scores = NeuronScores({s: torch.rand(4, 128) for s in ('encoder', 'decoder')})
    with pytest.raises(ValueError, match=rf"encoder layer {layer}'s FFN weights are offloaded \(on the meta device\).*without disk or CPU offload.*left as it was"):
        apply_stage(m, ffn_reduction(64), scores)
    assert current_stage(m) == layer_dropping(2) and shapes() == before

# ---- batches and metrics (batches.py, metrics.py)

def test_an_example_that_does_not_format_is_named(tiny):
    "encode names the task and the example that its task cannot format, as a ValueError, instead of a bare KeyError."
    rows = toy_examples('train', 2) + [dict(label='yes')]
    with pytest.raises(ValueError, match=r"toy example 2 does not format \(KeyError\('text'\)\): expected a row as load_examples gives it"):
        encode('toy', tiny[1], rows)

def test_max_padding_refuses_an_item_longer_than_its_width():
    "collate with padding 'max' refuses an item with more input tokens than max_input_length instead of failing on a tensor copy."
    items = [dict(input_ids=[5, 6, 7, 1], labels=[8, 1]), dict(input_ids=[5, 1], labels=[8, 1])]
    with pytest.raises(ValueError, match=r'an item has 4 input tokens, over max_input_length=3: encode with the same max_input_length'):
        collate(items, padding='max', max_input_length=3)
    assert collate(items, padding='max', max_input_length=4)['input_ids'].shape == (2, 4)

def test_predictions_and_references_must_pair_up():
    "accuracy refuses fewer predictions than references instead of scoring the pairs zip keeps."
    from fpt_nb.metrics import accuracy
    with pytest.raises(ValueError, match='1 predictions for 2 references: expected one prediction per example'):
        accuracy(['yes'], ['yes', 'no'])

# ---- PEFT export (peft.py)

def test_a_run_folder_without_a_prompt_is_refused(tmp_path):
    "source_prompt refuses a folder that holds neither a run's prompt files nor runs, naming the files it looked for."
    from fpt_nb.peft import source_prompt
    with pytest.raises(FileNotFoundError, match=r'holds no best_last_prompt\.safetensors, best_prompt\.safetensors, prompt\.safetensors: has the run trained yet\?'):
        source_prompt(tmp_path)

def test_a_built_in_encoder_is_no_peft_backbone(monkeypatch):
    "backbone_config refuses the built-in BERT encoder 'tiny-bert' by name, without asking the hub for a config of that name."
    import fpt_nb.peft as peft
    def no_lookup(*a, **k): raise AssertionError(f"looked up {a}")
    monkeypatch.setattr(peft, 'AutoConfig', SimpleNamespace(from_pretrained=no_lookup))
    with pytest.raises(ValueError, match="'tiny-bert' is a BERT-family encoder, a classifier: PEFT export is for prompts of T5"):
        peft.backbone_config('tiny-bert')

def test_a_backbone_without_a_config_is_named(tmp_path):
    "backbone_config turns the loader's OSError for a name that is neither a folder nor a hub id into one naming the backbone and what would do."
    from fpt_nb.peft import backbone_config
    missing = str(tmp_path/'no'/'such')
    with pytest.raises(OSError, match=re.escape(f"no config for backbone {missing!r}: give 'tiny', 'tiny-llama', a local folder with config.json")):
        backbone_config(missing)

def test_a_prompt_for_a_backbone_of_another_kind_is_refused(tmp_path):
    "export_peft refuses a config that is neither T5 nor a served decoder-only family (a BERT), naming its class, and writes nothing."
    from transformers import BertConfig
    from fpt_nb.peft import export_peft
    with pytest.raises(ValueError, match=r'PEFT export is for prompts of T5 backbones \(SEQ_2_SEQ_LM\) or llama, qwen2, mistral backbones '
                                         r'\(CAUSAL_LM\), but the backbone is a BertConfig'):
        export_peft(torch.zeros(4, 64), tmp_path/'out', config=BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    assert not (tmp_path/'out').exists()

# ---- plots (plots.py)

def test_run_info_of_a_run_without_a_summary_comes_from_its_config(tmp_path):
    "run_info of a run folder with config.json and no summary.json (mid-run) reads the config and fills in the task's metric."
    from fpt_nb.plots import run_info
    (tmp_path/'config.json').write_text('{"task": "toy", "model": "tiny", "method": "fpt"}')
    assert run_info(tmp_path) == dict(task='toy', model='tiny', method='fpt', metric='accuracy')

def test_run_info_of_a_folder_of_no_run_is_refused(tmp_path):
    "run_info refuses a folder holding neither summary.json nor config.json, naming both."
    from fpt_nb.plots import run_info
    with pytest.raises(FileNotFoundError, match='holds neither summary.json nor config.json: expected a run folder written by `run_experiment`'):
        run_info(tmp_path)

# ---- the prompt model (prompt.py)

def test_a_bert_config_is_refused_as_an_encoder():
    "check_t5_config refuses a BERT config with the message for a BERT-family encoder, not the generic 'not served' one."
    from transformers import BertConfig
    from fpt_nb.prompt import check_t5_config
    with pytest.raises(ValueError, match=r"model 'bert-base-uncased' is a BERT-family encoder, which a run knows by a local folder"):
        check_t5_config(BertConfig(), 'bert-base-uncased')

def test_an_unknown_device_map_strategy_is_refused(tiny):
    "place_model refuses a device_map string that is none of DEVICE_MAP_STRATEGIES instead of placing the model by 'auto' rules."
    from fpt_nb.prompt import place_model
    with pytest.raises(ValueError, match=r"unknown device_map 'cpu-only': expected one of \('auto', 'balanced', 'balanced_low_0', 'sequential'\)"):
        place_model(tiny[0], 'cpu-only')

@pytest.mark.parametrize('where', ['nested', 'bare'])
def test_a_t5_name_that_is_no_folder_nor_hub_id_is_refused(tmp_path, where):
    """load_t5 refuses a name that is not 'tiny', no existing folder and no hub id (owner/name), before any loader runs: a path
    of several parts, and a bare name (t5_bare_name_to_hub: `count('/') != 0` let it through to the hub, refusing hub ids)."""
    missing = str(tmp_path/'t5'/'missing') if where == 'nested' else 'no-such-t5-here'
    with pytest.raises(ValueError, match=re.escape(f"model {missing!r} is neither 'tiny', an existing local directory, nor a hub id")):
        load_t5(missing)

def test_an_unknown_prompt_init_is_refused():
    "init_prompt refuses an init that is none of PROMPT_INITS instead of leaving the prompt at zeros."
    from fpt_nb.prompt import SoftPrompt, init_prompt
    with pytest.raises(ValueError, match=r"unknown prompt init 'normal': expected one of \('uniform', 'vocab'\)"):
        init_prompt(SoftPrompt(4, 8), 'normal')

# ---- tasks (tasks.py)

def test_a_jsonl_file_of_objects_datasets_cannot_read_is_named(tmp_path):
    """load_examples names a file whose every line json reads as an object but `datasets` cannot (a key given twice), as a
    ValueError naming the file, when no line can be blamed."""
    from fpt_nb.tasks import load_examples
    (tmp_path/'mnli').mkdir()
    path = tmp_path/'mnli'/'validation_matched.jsonl'
    path.write_text('{"premise": "a", "premise": "b", "hypothesis": "c", "label": 0}\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: could not be read as JSON lines (")):
        load_examples('mnli', 'validation', data_dir=tmp_path)

@pytest.mark.parametrize('keep', ['half_of_line_1', 'line_1_and_half_of_2'])
def test_a_gzip_cut_short_is_named_with_the_last_whole_line(tmp_path, keep):
    """gzip_cut_line_one (`n = 1` before the first line): a gzipped task file cut short inside its first line was said to be cut
    'after line 1'; it is cut before its first line, and after line 1 where line 1 is whole."""
    import gzip, random
    from fpt_nb.tasks import load_examples
    (tmp_path/'mnli').mkdir()
    rnd = random.Random(0)   # hex of random bytes: two lines that compress alike, so a cut at 10% falls in line 1, at 90% in line 2
    body = ''.join('{"premise": "%s", "hypothesis": "c", "label": 0}\n' % rnd.randbytes(3000).hex() for _ in range(2)).encode()
    data = gzip.compress(body, mtime=0)
    (tmp_path/'mnli'/'validation_matched.jsonl.gz').write_bytes(data[:len(data) // 10 if keep == 'half_of_line_1' else len(data) * 9 // 10])
    says = 'before its first line' if keep == 'half_of_line_1' else 'after line 1'
    with pytest.raises(ValueError, match=f'the gzip data is cut short or corrupt {says}'):
        load_examples('mnli', 'validation', data_dir=tmp_path)

def test_a_prompt_of_one_vector_is_taken_and_of_none_refused(tiny):
    "prompt_of_one_refused (`length < 2`): a soft prompt of one vector, the smallest there is, was refused."
    assert PromptT5(tiny[0], prompt_length=1).prompt.weight.shape == (1, tiny[0].config.d_model)
    with pytest.raises(ValueError, match='prompt_length must be at least 1, got 0'): PromptT5(tiny[0], prompt_length=0)

# ---- decoder-only models (causal.py)

def test_an_unknown_decoder_only_family_is_refused():
    "causal_config refuses a family that is none of CAUSAL_FAMILIES, naming those, instead of a KeyError."
    from fpt_nb.causal import causal_config
    with pytest.raises(ValueError, match=r"unknown decoder-only family 'gpt2': expected one of \['llama', 'mistral', 'qwen2'\]"):
        causal_config('gpt2')

def test_a_decoder_only_name_that_is_no_folder_nor_hub_id_is_refused(tmp_path):
    "load_causal refuses a name that is not 'tiny-llama', no existing folder and no hub id (owner/name), before any loader runs."
    from fpt_nb.causal import load_causal
    missing = str(tmp_path/'llm'/'missing')
    with pytest.raises(ValueError, match=re.escape(f"model {missing!r} is neither 'tiny-llama', an existing local directory, nor a hub id")):
        load_causal(missing)

@pytest.mark.parametrize('family', ['gemma', 'gpt2'])
def test_a_decoder_only_model_of_an_unserved_family_is_refused(family, tmp_path):
    """load_causal refuses a saved causal LM of a family FPT does not serve, naming its model type and the served classes, before
    it loads the weights: GPT-2, whose config has no attention_dropout, failed inside transformers with an unexpected keyword."""
    from transformers import GemmaConfig, GemmaForCausalLM, GPT2Config, GPT2LMHeadModel
    from fpt_nb.causal import load_causal, byte_tokenizer
    torch.manual_seed(0)
    vocab = dict(vocab_size=260, pad_token_id=0, eos_token_id=1, bos_token_id=259)
    model = (GemmaForCausalLM(GemmaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                          num_key_value_heads=2, head_dim=16, **vocab)) if family == 'gemma' else
             GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, **vocab)))
    model.save_pretrained(tmp_path/family); byte_tokenizer().save_pretrained(tmp_path/family)
    with pytest.raises(TypeError, match=rf"is a {family} model: prompt tuning with FPT serves LlamaForCausalLM, Qwen2ForCausalLM, "
                                        rf"MistralForCausalLM \(model types llama, qwen2, mistral\)"):
        load_causal(str(tmp_path/family))

def test_a_decoder_only_example_that_does_not_format_is_named():
    "encode_causal names the task and the example that its task cannot format, as a ValueError, instead of a bare KeyError."
    from fpt_nb.causal import load_causal, encode_causal
    tok = load_causal('tiny-llama')[1]
    with pytest.raises(ValueError, match=r"toy example 1 does not format \(KeyError\('text'\)\): expected a row as load_examples gives it"):
        encode_causal('toy', tok, toy_examples('train', 1) + [dict(label='yes')])

def test_labels_padded_on_the_left_are_refused():
    "PromptCausalLM refuses labels with -100 before a completion token (not right-padded as collate makes them)."
    from fpt_nb.causal import load_causal, PromptCausalLM
    pt = PromptCausalLM(load_causal('tiny-llama')[0], prompt_length=4)
    ids, keep = torch.tensor([[5, 6, 7], [5, 6, 7]]), torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match='labels must be the completion tokens padded on the right with -100, as `collate` makes them'):
        pt(ids, keep, labels=torch.tensor([[8, 9, 1], [-100, 8, 1]]))

# ---- the fast step (fast.py)

def test_attention_biases_need_the_position_bias_of_layer_0(tiny):
    "attention_biases refuses a T5 whose first encoder layer holds no relative position bias (layer 0 dropped by hand)."
    import torch.nn as nn
    from fpt_nb.fast import attention_biases
    m = load_t5('tiny')[0]
    m.encoder.block = nn.ModuleList(list(m.encoder.block)[1:])
    with pytest.raises(ValueError, match="the first encoder and decoder layers must hold T5's relative position bias: keep layer 0 in every stage"):
        attention_biases(m, torch.ones(2, 5, dtype=torch.long), 3)

def test_an_unknown_attention_is_refused_by_the_options():
    "FastOptions.check refuses an attention that is none of ATTENTIONS (nor None), naming those."
    from fpt_nb.fast import FastOptions
    with pytest.raises(ValueError, match=r"unknown attention 'flash': expected one of \('eager', 'sdpa', 'flex'\), or None for the stock forward"):
        FastOptions(attention='flash').check('cpu', False)

@pytest.mark.parametrize('which', ['t5_fast_off', 'decoder_only'])
def test_compile_without_the_fast_step_on_a_t5_is_refused(tiny, which):
    "fast_options refuses compile=True where the fast step is off or the model is no T5, instead of recording compile on and doing nothing."
    from fpt_nb.fast import fast_options
    if which == 't5_fast_off': pt, fast = PromptT5(tiny[0], prompt_length=4), False
    else:
        from fpt_nb.causal import load_causal, PromptCausalLM
        pt, fast = PromptCausalLM(load_causal('tiny-llama')[0], prompt_length=4), True
    with pytest.raises(ValueError, match=r'compile needs the fast step on a prompt-tuned T5 on one device \(fast on, no device_map\)'):
        fast_options(pt, 'cpu', False, fast=fast, compile=True)

def _inf_prompt(pt):
    with torch.no_grad(): pt.prompt.weight[0, 0] = float('inf')

def _inf_grad(pt):
    pt.prompt.weight.register_hook(lambda g: torch.full_like(g, float('inf')))

# (what spoils the step, the learning rate, the problem both steps must report)
SPOILED = dict(
    loss=(_inf_prompt, 0.3, r'the loss became nan'),
    grad_norm=(_inf_grad, 0.3, r"the prompt's gradient norm became inf \(loss [0-9.]+\)"),
    update=(lambda pt: None, 1e39, r'the prompt became non-finite after the update \(lr 1e\+39 too large\?\)'),
    # one_entry (session 24): one entry of the prompt NaN after the update (the fast step checked `isfinite().any()` there)
    one_entry=(lambda pt: None, 0.3, r'the prompt became non-finite after the update \(lr 0.3 too large\?\)'),
)

@pytest.mark.parametrize('spoiled', list(SPOILED))
def test_the_plain_and_fast_steps_report_a_non_finite_step_alike_and_undo_it(tiny, spoiled):
    """On a non-finite loss, gradient norm or updated prompt (whole, or one entry), plain_step (the reference) and FastStep
    report the same problem and leave the prompt as it was before the step, with no gradient left over."""
    from fpt_nb.fast import plain_step, FastStep
    from fpt_nb.train import make_optimizer, TrainConfig
    spoil, lr, says = SPOILED[spoiled]
    batch = collate(encode('toy', tiny[1], toy_examples('train', 4)))
    problems = {}
    for step in ('plain', 'fast'):
        torch.manual_seed(0)
        pt = PromptT5(tiny[0], prompt_length=4)
        spoil(pt)
        cfg = TrainConfig(batch_size=4, prompt_length=4, lr=lr)
        opt, sched = make_optimizer([pt.prompt.weight], cfg)
        if spoiled == 'one_entry':
            def nan_at_one(real=opt.step, w=pt.prompt.weight):
                real()
                with torch.no_grad(): w[1, 2] = float('nan')
            opt.step = nan_at_one
        before = pt.prompt.weight.detach().clone()
        if step == 'plain':
            tr = SimpleNamespace(cfg=cfg, pt=pt, device=torch.device('cpu'), bf16=False, opt=opt, sched=sched, step_flops=lambda *a: 0)
            _, _, problems[step] = plain_step(tr, iter([batch]), {})
        else: _, _, problems[step] = FastStep(pt, opt, sched, 1, cfg.clip_norm, lambda *a: 0)(iter([batch]), {})
        assert problems[step] is not None and re.fullmatch(says, problems[step]), (step, problems[step])
        assert torch.equal(pt.prompt.weight.detach(), before), step
        assert pt.prompt.weight.grad is None, step
    assert problems['plain'] == problems['fast']

def test_a_model_placed_on_the_cpu_alone_gives_no_offload_warning(tiny, caplog):
    """offload_warning_on_cpu (`<` for `<=`): a model placed whole on the CPU by a device map made accelerate warn that its
    parameters were offloaded to the CPU (there is nothing else to offload from); the warning is dropped there alone."""
    import logging
    from fpt_nb.prompt import place_model, OFFLOAD_WARNING
    with caplog.at_level(logging.WARNING, logger='accelerate.big_modeling'):
        placed = place_model(load_t5('tiny')[0], {'': 'cpu'})
    assert placed.hf_device_map == {'': 'cpu'}
    assert not [r for r in caplog.records if OFFLOAD_WARNING in r.getMessage()], [r.getMessage() for r in caplog.records]
