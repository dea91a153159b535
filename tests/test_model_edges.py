"""Edges a third mutation audit (session 20) found no test held, on the model side: partial stages and schedules, model
signatures, neuron scores, FLOPs, the fast step, the prompt model, encoders, decoder-only models and the stage plots.
Each test below failed under the bug named in it (tools/mutants.py plants each one)."""
import json, math
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.partial import Stage, check_schedule, stage_plan, select_neurons
from fpt_nb.batches import encode, collate
from fpt_nb.tasks import toy_examples

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

@pytest.fixture(scope='module')
def tiny():
    return load_t5('tiny')

# ---- partial stages

def test_a_schedule_must_grow_from_each_stage_to_the_next(tiny):
    "check_schedule_vs_first_stage: stage 3 was compared with stage 1, so a schedule shrinking from stage 2 to 3 passed."
    with pytest.raises(ValueError, match='stage 3 keeps 3 encoder layers but stage 2 kept 4: stages must grow'):
        check_schedule([Stage(encoder_layers=2), Stage(encoder_layers=4), Stage(encoder_layers=3)], tiny[0], require_scores=False)

def test_a_schedules_first_stage_is_checked_against_the_model(tiny):
    """check_schedule_skips_first (the twelfth audit): the first stage is checked like the others, against the model and the
    scores: one keeping more layers than the model has, or selecting by scores not given, is refused as stage 1."""
    from fpt_nb.partial import FULL, ffn_reduction
    with pytest.raises(ValueError, match=r'stage 1 \(enc 9L\): the stage keeps 9 encoder layers, but the model has 4'):
        check_schedule([Stage(encoder_layers=9), FULL], tiny[0])
    with pytest.raises(ValueError, match=r'stage 1 \(enc ffn 64\): the stage selects encoder neurons by score, but no encoder scores'):
        check_schedule([ffn_reduction(64), FULL], tiny[0])

def test_neurons_in_sequence_are_the_first_k():
    "select_neurons_sequence_last_k: selection 'sequence' keeps the first k neurons, not the last."
    assert select_neurons(3, 8, 'sequence').tolist() == [0, 1, 2]

def test_a_stage_of_chosen_layers_comes_back_from_json_as_it_was():
    """stage_from_dict_keeps_lists: a stage read back from a checkpoint or summary (JSON lists) must equal the stage it was,
    or a resumed run finds its model 'at another stage' and a stage cannot be hashed."""
    st = Stage(encoder_layers=(0, 2, 3), decoder_layers=(0, 3), encoder_ffn=64)
    back = Stage.from_dict(json.loads(json.dumps(st.to_dict())))
    assert back == st and hash(back) == hash(st)

@pytest.mark.parametrize('layers', [(0, 4), (0, 0, 2)])
def test_chosen_layers_out_of_range_or_repeated_are_refused(tiny, layers):
    "layer_index_bound_off_by_one, layer_tuple_repeats_allowed: layer 4 of 4 (0..3), or layer 0 twice, was let through."
    with pytest.raises(ValueError, match=r'must be increasing, without repeats, within 0\.\.3'):
        stage_plan(Stage(encoder_layers=layers), tiny[0], require_scores=False)

# ---- model signatures and neuron scores

def test_a_models_signature_sees_every_part_of_its_embedding():
    "signature_first_rows_only: two models whose embeddings differ past row 256 had one signature (scores of one fit the other)."
    from fpt_nb.arch import model_signature
    m = load_t5('tiny')[0]
    before = model_signature(m)['embedding']
    with torch.no_grad(): m.get_input_embeddings().weight[300] += 1
    assert model_signature(m)['embedding'] != before

def _one_batch(tok, n=1):
    return collate(encode('toy', tok, toy_examples('validation', n)))

def test_pooled_scores_of_one_example_are_its_own_means(tiny):
    """scores_divide_by_encoder_count: with aggregation 'token', each stack's sums are divided by its own token count; for one
    example the pooled scores equal the per-example ones, in the encoder and in the decoder."""
    from fpt_nb.scores import activation_scores
    pt, b = PromptT5(tiny[0], prompt_length=4), _one_batch(tiny[1])
    ex, tok = (activation_scores(pt, [b], n_examples=1, progress=False, aggregation=a)['abs_mean'].scores for a in ('example', 'token'))
    for s in ('encoder', 'decoder'): assert torch.allclose(ex[s], tok[s], rtol=1e-6), s

def test_scores_are_taken_with_dropout_off_and_the_mode_kept():
    "scores_no_eval_mode: a model in training mode with dropout scored noise; scoring runs in eval mode and gives the mode back."
    from fpt_nb.scores import activation_scores
    m, tok = load_t5('tiny')
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout): mod.p = 0.5
    pt = PromptT5(m, prompt_length=4).train()
    b = _one_batch(tok, 2)
    a, c = (activation_scores(pt, [b], n_examples=2, progress=False)['abs_mean'].scores['encoder'] for _ in range(2))
    assert torch.equal(a, c) and pt.model.training

# ---- FLOPs

def test_flops_of_a_t5_whose_decoder_has_other_layers_than_its_encoder():
    "decoder_layers_from_num_layers: the decoder was counted with the encoder's number of layers (T5 allows them to differ)."
    from fpt_nb.flops import forward_flops, measured_flops
    m = load_t5('tiny', num_decoder_layers=2)[0]
    assert (m.config.num_layers, m.config.num_decoder_layers) == (4, 2)
    ids, labels = torch.randint(3, 300, (2, 9)), torch.randint(3, 300, (2, 3))
    with torch.no_grad(): got = measured_flops(lambda: m(input_ids=ids, labels=labels))
    assert forward_flops(m.config, 9, 3, batch=2) == got

# ---- the fast step

def test_agreement_needs_both_the_loss_and_the_gradient():
    "agreement_or: a loss within tolerance passed a gradient that was not."
    from fpt_nb.fast import agreement
    g = torch.ones(8)
    assert agreement(torch.tensor(1.0), g, torch.tensor(1.0), g)['ok']
    assert not agreement(torch.tensor(1.0), -g, torch.tensor(1.0), g)['ok']
    assert not agreement(torch.tensor(2.0), g, torch.tensor(1.0), g)['ok']

def test_attention_kernels_are_given_back(tiny):
    "attention_kernels_not_restored: after the fast step's attention, the model kept SDPA where it had eager."
    from fpt_nb.fast import attention_kernels
    m = tiny[0]
    was = (m.encoder.config._attn_implementation, m.decoder.config._attn_implementation)
    with attention_kernels(m, 'sdpa'): assert m.encoder.config._attn_implementation == 'sdpa'
    assert (m.encoder.config._attn_implementation, m.decoder.config._attn_implementation) == was

def test_a_step_undone_gives_back_the_optimizer_state_as_it_was():
    """step_saved_state_not_cloned: a step that made the prompt non-finite was undone with the optimizer state it had
    already updated in place (Adafactor's running averages), not the state from before the step."""
    from fpt_nb.fast import FastStep
    from fpt_nb.train import make_optimizer, TrainConfig
    m, tok = load_t5('tiny')
    pt = PromptT5(m, prompt_length=4)
    opt, sched = make_optimizer([pt.prompt.weight], TrainConfig())
    step = FastStep(pt, opt, sched, 1, 1.0, lambda *a: 0)
    b = _one_batch(tok, 2)
    assert step(iter([b]), {})[2] is None
    before = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[pt.prompt.weight].items()}
    prompt = pt.prompt.weight.detach().clone()
    for g in opt.param_groups: g['lr'] = float('inf')
    assert 'non-finite' in step(iter([b]), {})[2]
    state = opt.state[pt.prompt.weight]
    assert torch.equal(pt.prompt.weight, prompt)
    assert all(torch.equal(state[k], v) if torch.is_tensor(v) else state[k] == v for k, v in before.items())

def test_the_fast_step_is_refused_on_a_device_map(tiny):
    "fast_ignores_device_map: a model placed by a device_map took the fast step, whose forward does not follow the placement."
    from fpt_nb.fast import fast_options
    m = load_t5('tiny')[0]
    m.hf_device_map = {'': 'cpu'}
    with pytest.raises(ValueError, match='on a device_map'): fast_options(PromptT5(m, prompt_length=4), 'cpu', False, fast=True)

def test_the_fast_step_under_autocast_casts_the_weights_and_evaluates_alike(tiny):
    """fast_bf16_weights_never, eval_context_on_autocast: under bf16 autocast the fast step holds the frozen weights in bf16
    (its point); evaluation then runs under autocast too, and with fp32 weights (no fast step) it runs as it is, in fp32."""
    from contextlib import nullcontext
    from fpt_nb.fast import fast_options, FastStep, FastOptions
    pt = PromptT5(tiny[0], prompt_length=4)
    assert fast_options(pt, 'cpu', True, fast=True).bf16_weights
    plain = FastStep(pt, None, None, 1, 1.0, lambda *a: 0, autocast=True, options=FastOptions())
    assert isinstance(plain.eval_context(), nullcontext)

@pytest.mark.filterwarnings('ignore:Seems like .optimizer.step')
def test_the_plain_step_divides_its_micro_batches():
    "plain_step_grad_not_divided: the reference step summed its micro-batches' gradients instead of averaging them."
    from fpt_nb.fast import plain_step
    from fpt_nb.train import make_optimizer, TrainConfig
    from types import SimpleNamespace
    m, tok = load_t5('tiny')
    items = encode('toy', tok, toy_examples('validation', 4))
    def grad_after(n_micro):
        pt = PromptT5(m, prompt_length=4)
        cfg = TrainConfig(batch_size=4, micro_batch_size=4 // n_micro, clip_norm=1e9)   # (a clip would hide the factor)
        opt, sched = make_optimizer([pt.prompt.weight], cfg)
        seen = []
        opt.step = lambda *a: seen.append(pt.prompt.weight.grad.clone())
        tr = SimpleNamespace(cfg=cfg, pt=pt, device=torch.device('cpu'), bf16=False, opt=opt, sched=sched, step_flops=lambda *a: 0)
        micro = [collate(items[i:i + 4 // n_micro]) for i in range(0, 4, 4 // n_micro)]
        plain_step(tr, iter(micro), {})
        return seen[0]
    # equal-length halves: the mean of the two halves' token means is the batch's token mean only if their targets count alike
    assert torch.allclose(grad_after(2), grad_after(1), rtol=1e-4, atol=1e-7)

# ---- the prompt model

def test_a_prompt_model_freezes_the_model_it_is_given():
    "prompt_model_no_freeze: an unfrozen model given to PromptT5 trained along with the prompt."
    from transformers import T5ForConditionalGeneration
    from fpt_nb.prompt import tiny_t5_config
    pt = PromptT5(T5ForConditionalGeneration(tiny_t5_config()), prompt_length=4)
    assert [n for n, p in pt.named_parameters() if p.requires_grad] == ['prompt.weight']

def test_plain_generation_gives_the_models_generation_config_back(tiny):
    "plain_generation_not_restored: after an evaluation the model kept the stripped generation config, its own settings lost."
    from fpt_nb.prompt import plain_generation
    m = tiny[0]
    g = m.generation_config
    with plain_generation(m): assert m.generation_config is not g
    assert m.generation_config is g

def test_a_tokenizer_whose_ids_reach_past_the_embeddings_is_refused(tiny):
    "check_tokenizer_id_off_by_one: an id equal to the number of embeddings (one past the last row) was let through."
    from fpt_nb.prompt import check_tokenizer, PROBE_TEXT
    m, tok = tiny
    n = m.get_input_embeddings().num_embeddings
    top = max(tok(PROBE_TEXT, add_special_tokens=False).input_ids)
    from transformers import T5ForConditionalGeneration
    from fpt_nb.prompt import t5_config
    small = T5ForConditionalGeneration(t5_config(64, 128, 2, 4, d_kv=16, vocab_size=top))   # the probe's highest id: one past its last row
    check_tokenizer(tok, m, 'tiny')
    with pytest.raises(ValueError, match=f'ids up to {top}, beyond the model.s {top} embeddings'): check_tokenizer(tok, small, 'small')
    assert n > top

def test_a_vocabulary_initialised_prompt_can_take_any_row():
    "vocab_init_never_last_row: the last row of the embedding was never drawn."
    from fpt_nb.prompt import init_prompt, SoftPrompt
    emb = torch.arange(4.).repeat_interleave(2).view(4, 2)   # row i holds i
    p = init_prompt(SoftPrompt(200, 2), 'vocab', emb)
    assert set(p.weight[:, 0].tolist()) == {0., 1., 2., 3.}

def test_the_prompt_takes_the_embeddings_dtype():
    "embed_prompt_dtype_not_cast: on a bf16 model the fp32 prompt made the whole input fp32, which bf16 layers refuse."
    m = load_t5('tiny', dtype=torch.bfloat16)[0]
    pt = PromptT5(m, prompt_length=4)
    embeds, _ = pt.embed(torch.tensor([[5, 6, 1]]))
    assert embeds.dtype == torch.bfloat16 and pt.prompt.weight.dtype == torch.float32

def test_the_tiny_t5s_head_follows_its_seed():
    "untied_head_ignores_seed: every seed of the built-in T5 had seed 0's output head."
    a, b = load_t5('tiny', seed=0)[0], load_t5('tiny', seed=1)[0]
    assert not torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert torch.equal(a.lm_head.weight, load_t5('tiny', seed=0)[0].lm_head.weight)

# ---- encoders

def test_the_tiny_encoder_follows_its_seed():
    "tiny_bert_not_seeded: the built-in BERT took whatever the global random state was, not its seed."
    from fpt_nb.encoder import load_encoder
    torch.manual_seed(123); a = load_encoder('tiny-bert', seed=0)[0]
    torch.manual_seed(456); b = load_encoder('tiny-bert', seed=0)[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

def test_classifying_gives_the_training_mode_back():
    "classify_leaves_eval_mode: an evaluation in the middle of training left the prompt model in eval mode."
    from fpt_nb.encoder import load_encoder, PromptEncoder, encode_pairs, classify_accuracy
    m, tok = load_encoder('tiny-bert')
    from fpt_nb.encoder import LABEL_TEXTS
    pe = PromptEncoder(m, tok, LABEL_TEXTS['toy'], prompt_length=4).train()
    items = encode_pairs('toy', tok, toy_examples('validation', 4))
    assert classify_accuracy(pe, items)['total'] == 4 and pe.training

def test_label_descriptions_are_cut_to_the_encoders_length():
    "embed_texts_no_truncation: a text longer than the encoder's positions failed instead of being cut."
    from fpt_nb.encoder import load_encoder, embed_texts
    m, tok = load_encoder('tiny-bert')
    out = embed_texts(m, tok, ['word ' * 2000, 'short'])
    assert out.shape[0] == 2 and torch.isfinite(out).all()

# ---- decoder-only models

def test_the_decoder_only_flops_table_counts_the_completion():
    "flops_table_without_completion: the table's full step left the completion's positions out of the sequence."
    from fpt_nb.causal import causal_flops_table, causal_step_flops, shape_config
    row = causal_flops_table(('qwen2.5-0.5b',), prompt=20, input_len=492, completion=10)[0]
    assert row['full_gflops'] == causal_step_flops(shape_config('qwen2.5-0.5b'), 522, 10) / 1e9

def test_a_tokenizer_without_a_pad_token_pads_with_its_end_of_sequence(tmp_path):
    "causal_no_pad_fallback: a decoder-only tokenizer with no pad token (Llama's) was returned as it was: batches could not pad."
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers
    from fpt_nb.causal import load_causal, tiny_causal_config
    words = ['<unk>', '</s>'] + sorted(set('Is the premise "a man sleeps" entailed? 42'.replace('"', ' " ').replace('?', ' ?').split()))
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token='<unk>'))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token='<unk>', eos_token='</s>')
    assert tok.pad_token_id is None
    LlamaForCausalLM(tiny_causal_config('llama', vocab_size=len(words))).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    got = load_causal(str(tmp_path))[1]
    assert got.pad_token_id == got.eos_token_id == 1

def test_the_built_in_t5_v1_is_known_before_it_loads():
    """builtin_models_without_tiny_relu: the built-in T5 v1.0 ('tiny-relu') was taken for a hub id or folder that is not there,
    so the command's checks before loading (stage sizes, the preset) had no config to check it with."""
    from fpt_nb.cli import model_config
    c = model_config('tiny-relu')
    assert c is not None and c.feed_forward_proj == 'relu' and c.num_layers == 4

# ---- the stage plots

def test_the_plot_shades_every_other_stage_to_the_end(tmp_path):
    """plot_shading_parity, plot_shading_end_first_step: stages 2 and 4 of a four-stage run are shaded (the first is not),
    the last shade reaching the run's last step."""
    from fpt_nb.run import run_experiment
    from fpt_nb.plots import plot_run, read_log, stage_boundaries
    d = tmp_path/'run'
    run_experiment(task='toy', model='tiny', method='fpt_cr', steps=6, batch_size=4, prompt_length=4, train_limit=8, eval_limit=4,
                   score_examples=4, out_dir=str(d), progress=False, device='cpu')
    log = read_log(d)
    s = [b['flops'] for b in stage_boundaries(log)]
    ax = plot_run(d, save=False).axes[0]   # loss against FLOPs
    spans = sorted((round(p.get_x()), round(p.get_x() + p.get_width())) for p in ax.patches)
    assert spans == [(round(s[0]), round(s[1])), (round(s[2]), round(log['step'][-1]['flops']))], spans

def test_scores_record_how_many_examples_they_read(tiny):
    "n_examples_requested: scores of the 2 examples there were, asked for up to 1000, recorded n_examples=1000 (in score files too)."
    from fpt_nb.scores import activation_scores
    sc = activation_scores(PromptT5(tiny[0], prompt_length=4), [_one_batch(tiny[1], 2)], n_examples=1000, progress=False)
    assert (sc['abs_mean'].n_examples, sc['mean'].n_examples) == (2, 2)

def test_ties_in_scores_keep_the_lower_indices():
    """select_neurons_unstable, layers_by_score_unstable: scores that tie (dead ReLU neurons all score 0) were ranked by an
    unstable sort: which of the tied neurons or layers were kept depended on the sort's implementation, not on the model."""
    from fpt_nb.partial import select_layers
    x = torch.tensor([0., 1, 1, 0, 1, 0, 0, 1] * 16)   # 64 neurons tied at 1, 64 tied at 0
    ones, zeros = [i for i in range(128) if x[i] == 1], [i for i in range(128) if x[i] == 0]
    assert select_neurons(40, 128, 'score', x).tolist() == ones[:40]
    assert select_neurons(80, 128, 'score', x).tolist() == sorted(ones + zeros[:16])
    s = torch.tensor([float(i % 2) for i in range(24)])   # 24 layers (T5-LARGE): the odd ones tie as the best
    assert select_layers(6, 24, 'score', s, required=(0,)) == [0, 1, 3, 5, 7, 9]

def test_every_sliced_layer_says_its_own_shape():
    """sliced_out_features (`nn.Linear(w.shape[1], w.shape[1], ...)`): an FFN layer a stage slices held the kept weights but
    said another shape (`out_features`), which code that reads a layer's shape (adapters, device maps, FLOPs tools) believes."""
    from fpt_nb.partial import apply_stage, compound_reduction
    from fpt_nb.scores import NeuronScores
    m = load_t5('tiny')[0]
    apply_stage(m, compound_reduction(2, 48), NeuronScores({s: torch.rand(4, 128) for s in ('encoder', 'decoder')}))
    lins = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert any(x.out_features == 48 for x in lins) and any(x.in_features == 48 for x in lins)
    assert all((x.out_features, x.in_features) == tuple(x.weight.shape) for x in lins)
