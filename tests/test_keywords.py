"""Keyword arguments no test would miss (the fourteenth audit): one keyword argument per library line was dropped from its
call in a copy (the callee's default taking its place), and the tests covering the line were run. Each test here catches
one such drop that every test let through before; its docstring names the mutant (`tools/mutants.py`). All take seconds
on the tiny models built in code or the packaged MiniLM."""
import json
from pathlib import Path
import pytest, torch


# ---------------------------------------------------------------------------------------------------------------
# Models: what a loader is asked for is what it builds

def test_the_tiny_decoder_only_models_have_the_sizes_they_are_given():
    """tiny_causal_ffn_default, tiny_causal_kv_heads_default, tiny_qwen2_window_default: `tiny_causal_config` passes its
    FFN width and its key/value heads on, and gives Qwen2 and Mistral a sliding window of 6 positions. Dropped, the FFN
    took Llama's 11,008 (a "tiny" model of 2.9M FFN weights a layer), every head its own key/value (the grouped-query
    attention the decoder-only tests exercise was gone), and Qwen2's window took its 4,096 default, longer than any test
    input, so the sliding-window layers the layer-dropping tests keep in order attended like full ones."""
    from fpt_nb.causal import tiny_causal_config
    for family in ('llama', 'qwen2', 'mistral'):
        c = tiny_causal_config(family, intermediate_size=96, num_key_value_heads=1)
        assert (c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads) == (64, 96, 4, 1), family
        assert tiny_causal_config(family).num_key_value_heads == 2 < tiny_causal_config(family).num_attention_heads
    assert tiny_causal_config('qwen2').sliding_window == tiny_causal_config('mistral').sliding_window == 6
    assert tiny_causal_config('qwen2').use_sliding_window


def test_the_written_out_decoder_only_shapes_have_the_real_models_parameter_counts():
    """qwen05_hidden_default, qwen15_ffn_default, llama1b_layers_default, llama1b_vocab_default: `CAUSAL_SHAPES` writes out
    the shapes of Qwen2.5-0.5B, Qwen2.5-1.5B and Llama-3.2-1B so their FLOPs can be counted with no download; built on the
    meta device (no memory), each has its model card's parameter count exactly. A size dropped from the table took its
    family's default (Qwen2's 4,096 hidden, Llama's 32,000 tokens or 32 layers) and every FLOPs figure of that model with
    it, while the tests that compare the table with itself passed. (Qwen's vocabulary is its family's default: dropped, it
    is the same.)"""
    from fpt_nb.causal import CAUSAL_SHAPES, CAUSAL_FAMILIES, shape_config
    counts = {}
    for name, (family, _) in CAUSAL_SHAPES.items():
        with torch.device('meta'): model = CAUSAL_FAMILIES[family][1](shape_config(name))
        model.tie_weights()
        counts[name] = sum(p.numel() for p in model.parameters())
    assert counts == {'qwen2.5-0.5b': 494_032_768, 'qwen2.5-1.5b': 1_543_714_304, 'llama-3.2-1b': 1_235_814_400}

def test_the_tiny_t5_has_the_head_width_it_is_given():
    """tiny_t5_head_width_default: `tiny_t5_config` passes its `d_kv` on: 4 heads of 16, an attention as wide as its model
    (64), as a real T5's (LARGE: 16 x 64 = 1,024). Dropped, every head took T5's default of 64: the tiny T5's attention was
    four times its width, a shape no real T5 has, under every test."""
    from fpt_nb.prompt import tiny_t5_config
    c = tiny_t5_config()
    assert (c.d_model, c.num_heads, c.d_kv) == (64, 4, 16) and tiny_t5_config(d_kv=8).d_kv == 8

@pytest.fixture(scope='module')
def saved_models(tmp_path_factory):
    "A folder each of the tiny T5 and the tiny Llama, as a user's local checkpoints."
    from fpt_nb.prompt import load_t5
    from fpt_nb.causal import load_causal, byte_tokenizer
    d = tmp_path_factory.mktemp('models')
    model, tok = load_t5('tiny'); model.save_pretrained(d/'t5'); tok.save_pretrained(d/'t5')
    load_causal('tiny-llama')[0].save_pretrained(d/'llama'); byte_tokenizer().save_pretrained(d/'llama')
    return d

@pytest.mark.parametrize('source', ['built-in', 'folder'])
def test_each_loader_builds_the_attention_it_is_asked_for(source, saved_models):
    """t5_folder_attention_default, tiny_llama_attention_default, causal_folder_attention_default, tiny_bert_attention_default,
    encoder_folder_attention_default: `load_t5`, `load_causal` and `load_encoder` build eager
    attention unless told otherwise (FLOPs are counted by hooks that SDPA's fused kernel hides), and the kernel they are told
    to use. Dropped, a loader took transformers' own choice (SDPA) or ignored the one asked for. The built-in tiny T5 did
    ignore it, before this audit: `load_t5('tiny', attn_implementation='sdpa')` built eager attention."""
    from fpt_nb.prompt import load_t5
    from fpt_nb.causal import load_causal
    from fpt_nb.encoder import load_encoder
    names = dict(t5='tiny', llama='tiny-llama', bert='tiny-bert') if source == 'built-in' else \
            dict(t5=str(saved_models/'t5'), llama=str(saved_models/'llama'), bert='minilm')   # (MiniLM: the packaged folder)
    loaders = dict(t5=load_t5, llama=load_causal, bert=load_encoder)
    for kind, load in loaders.items():
        assert load(names[kind])[0].config._attn_implementation == 'eager', kind
        assert load(names[kind], attn_implementation='sdpa')[0].config._attn_implementation == 'sdpa', kind

def test_minilm_is_loaded_without_dropout():
    """encoder_folder_dropout_kept: the packaged MiniLM's config.json sets dropout 0.1 on its attention probabilities and
    hidden states; `load_encoder` loads it with both at 0, as every backbone here (the paper's dropout 0). Dropped, the
    attention dropout stayed 0.1: a prompt trained through it saw a different random network at every step."""
    from fpt_nb.encoder import load_encoder
    cfg = load_encoder('minilm')[0].config
    assert (cfg.attention_probs_dropout_prob, cfg.hidden_dropout_prob) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------------------------
# The fast step's attention biases are made where the batch is

def test_the_attention_biases_are_built_on_the_batchs_device():
    """fast_pad_bias_device, fast_causal_mask_device: `attention_biases` builds the padding bias and the decoder's causal
    mask on the device of the batch's mask. Dropped, they were made on the CPU: on a GPU the step fails mixing devices
    (or copies them every step). No GPU here: the model and the mask on the `meta` device stand in for one."""
    from fpt_nb.prompt import load_t5
    from fpt_nb.fast import attention_biases
    model = load_t5('tiny')[0].to('meta')
    keep = torch.ones(2, 7, dtype=torch.long, device='meta')
    for attention in ('eager', 'flex'):
        out = attention_biases(model, keep, 5, attention)
        devices = {k: v.device.type for k, v in out.items() if v is not None}
        assert set(devices.values()) == {'meta'}, (attention, devices)



# ---------------------------------------------------------------------------------------------------------------
# Tasks

def test_xsum_from_the_hub_trains_on_its_train_split(monkeypatch):
    """xsum_hub_splits_dropped: with no local data, XSum comes from the hub, whose train split trains and validation split
    evaluates (locally, with no train file, the validation file trains and the test file evaluates). Dropped, the hub's
    splits were the local ones: a user with the hub trained on XSum's validation split and evaluated on its test split."""
    import datasets
    from fpt_nb.tasks import load_examples
    monkeypatch.delenv('FPT_DATA_DIR', raising=False)
    calls = []
    def fake(path, name=None, split=None, **kw):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([dict(document='d', summary='s', id='0')] * 2)
    monkeypatch.setattr(datasets, 'load_dataset', fake)
    for split in ('train', 'validation'): load_examples('xsum', split)
    assert calls == [('EdinburghNLP/xsum', None, 'train'), ('EdinburghNLP/xsum', None, 'validation')]

# ---------------------------------------------------------------------------------------------------------------
# Generation

def test_a_batch_generates_what_each_example_generates_alone():
    """t5_generate_mask_dropped: `PromptT5.generate` gives transformers the attention mask of prompt + input. Dropped, a
    short input in a batch attended to its padding: what it generated depended on the other examples in its batch (an
    evaluation's score on its batch size)."""
    from fpt_nb.prompt import load_t5, PromptT5
    from fpt_nb.batches import collate
    model, tok = load_t5('tiny')
    pt = PromptT5(model, 4)
    items = [dict(input_ids=tok(t).input_ids, labels=[1]) for t in ('review: the movie was good', 'ok')]
    b = collate(items)
    both = pt.generate(b['input_ids'], b['attention_mask'], max_new_tokens=6)
    for i, item in enumerate(items):
        one = collate([item])
        assert both[i].tolist() == pt.generate(one['input_ids'], one['attention_mask'], max_new_tokens=6)[0].tolist(), i

def test_a_decoder_only_beam_search_is_asked_of_transformers():
    """causal_generate_beams_dropped: `PromptCausalLM.generate(num_beams=...)` (`fpt run --num-beams`) passes the beams on
    to transformers' `generate`. Dropped, the argument was taken and greedy search ran: a decoder-only run asked for beam
    search evaluated greedily, its records saying beams."""
    from fpt_nb.causal import load_causal, PromptCausalLM
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, 4)
    seen, real = [], model.generate
    model.generate = lambda *a, **kw: seen.append(kw.get('num_beams')) or real(*a, **kw)
    ids = torch.tensor([tok('review: fine').input_ids])
    pt.generate(ids, torch.ones_like(ids), max_new_tokens=3, num_beams=3)
    pt.generate(ids, torch.ones_like(ids), max_new_tokens=3)
    assert seen == [3, 1]


# ---------------------------------------------------------------------------------------------------------------
# Records and messages

def test_fpt_calls_itself_fpt(capsys):
    """cli_prog_dropped: the `fpt` parser is named `fpt` whatever started it. Dropped, its usage lines named the script that
    ran it: `python -m fpt_nb.cli --help` said `usage: cli.py`, a notebook's or test's call `usage: ipykernel_launcher.py` or
    `pytest`, and each refusal so (`pytest run: error: ...`, `see pytest run --help`)."""
    from fpt_nb.cli import main
    with pytest.raises(SystemExit): main(['--help'])
    assert capsys.readouterr().out.startswith('usage: fpt ')
    with pytest.raises(SystemExit): main(['run', '--steps', 'x'])
    assert capsys.readouterr().err.startswith("fpt run: error: argument --steps: invalid int value: 'x' (see fpt run --help)")

def test_a_run_records_the_transformers_version_it_ran_on():
    """versions_transformers_dropped: `software_versions` (a run's config.json, and what a resume says changed) names the
    transformers version beside Python's, torch's and fpt_nb's. Dropped, a run's numbers could not be traced to the
    library whose T5 code computed them, and a resume under another transformers went unremarked."""
    import platform, transformers, fpt_nb
    from fpt_nb.run import software_versions
    v = software_versions()
    assert {k: v[k] for k in ('fpt_nb', 'torch', 'transformers', 'python')} == dict(
        fpt_nb=fpt_nb.__version__, torch=torch.__version__, transformers=transformers.__version__, python=platform.python_version())


def test_a_run_records_the_cpu_kernels_torch_picked():
    """versions_cpu_capability_dropped: `software_versions` names the vector instruction set of torch's CPU kernels. The
    same code, packages and seed gave the default run's PT 94.5 on one machine and 92.0 on another (AVX512); forced to AVX2
    (`ATEN_CPU_CAPABILITY=avx2`), the second gave 94.5 again. Dropped, nothing in a run folder told such runs apart.
    `ATEN_CPU_CAPABILITY=default` (plain kernels, any CPU) must show as DEFAULT."""
    import os, subprocess, sys
    from fpt_nb.run import software_versions
    assert software_versions()['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    code = 'from fpt_nb.run import software_versions; print(software_versions()["cpu_capability"])'
    out = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, ATEN_CPU_CAPABILITY='default'), capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == 'DEFAULT'


def test_a_gpu_run_records_its_gpu_and_cuda(monkeypatch):
    """versions_gpu_dropped: on a CUDA device `software_versions` names the GPU and torch's CUDA version, whose kernels
    round otherwise (an H100's numbers are not an H200's); on the CPU it names neither. (No GPU here: torch's answers are
    stood in for.)"""
    from fpt_nb.run import software_versions
    asked = []
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda d=None: asked.append(d) or 'NVIDIA H200')
    monkeypatch.setattr(torch.version, 'cuda', '12.8')
    v = software_versions(torch.device('cuda', 1))
    assert (v['gpu'], v['cuda'], asked) == ('NVIDIA H200', '12.8', [torch.device('cuda', 1)])
    assert software_versions('cuda')['gpu'] == 'NVIDIA H200'
    for dev in (None, 'cpu', torch.device('cpu')): assert not {'gpu', 'cuda'} & set(software_versions(dev))


# ---------------------------------------------------------------------------------------------------------------
# The plan's records cannot change under a run

def test_a_runs_plan_records_cannot_be_changed_in_place():
    """arch_frozen_dropped, ffn_site_frozen_dropped, matmul_frozen_dropped, stage_frozen_dropped, phase_frozen_dropped,
    fast_options_frozen_dropped: a stage, a phase, the fast step's options, an architecture's description, an FFN's place and
    a counted matmul are frozen: one object is shared by a schedule, the trainer, its fingerprint and the log, so a change made
    through one (a notebook's `phase.steps = 10`) would silently be the others' too. Dropped, they took the change."""
    import dataclasses
    from fpt_nb.arch import T5_ARCH, ffn_sites
    from fpt_nb.flops import matmuls
    from fpt_nb.partial import Stage
    from fpt_nb.train import Phase
    from fpt_nb.fast import FastOptions
    from fpt_nb.prompt import load_t5
    model = load_t5('tiny')[0]
    site = ffn_sites(model)['encoder'][0]
    objects = dict(arch=T5_ARCH, site=site, matmul=matmuls(model.config, 20, 4)[0], stage=Stage(), phase=Phase(Stage(), 10),
                   options=FastOptions())
    for name, obj in objects.items():
        field = dataclasses.fields(obj)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError): setattr(obj, field, None)
        hash(obj)   # (frozen dataclasses hash: a phase or stage can key a dict)


# ---------------------------------------------------------------------------------------------------------------
# A run's records say what it ran on

RUN = dict(task='toy', model='tiny', method='fpt_cr', steps=4, batch_size=4, prompt_length=4, train_limit=32, eval_limit=8,
           score_examples=16, device='cpu', progress=False)

def test_a_run_passes_its_device_to_the_versions_it_records(tmp_path, one_thread, monkeypatch):
    """versions_device_not_passed: a run asks `software_versions` about the device it trains on, so a GPU run records its
    GPU (`test_a_gpu_run_records_its_gpu_and_cuda`). Not passed, every run recorded a CPU run's versions."""
    import fpt_nb.run as run
    asked, real = [], run.software_versions
    monkeypatch.setattr(run, 'software_versions', lambda *a, **k: asked.append((a, k)) or real(*a, **k))
    s = run.run_experiment(out_dir=str(tmp_path/'a'), **{**RUN, 'method': 'pt', 'steps': 2})
    assert asked == [((torch.device('cpu'),), {})] and s['versions'] == real('cpu')

def test_a_runs_records_name_what_it_ran_on(tmp_path, one_thread):
    """model_ref_name_dropped, tokenizer_ref_class_dropped, eval_limit_dropped, summary_prompts_dropped,
    summary_resumed_at_dropped, summary_data_notes_dropped, scores_record_file_dropped, scores_source_aggregation_dropped,
    best_prompt_step_dropped, final_prompt_step_dropped: a
    run's summary names its model and its tokenizer's class, evaluates `eval_limit` examples, lists the digest of each prompt
    file it wrote, the steps it resumed at, its data notes and how its neuron scores were averaged; each prompt file holds
    the step it is of (what the summary's check that a best prompt is the run's own reads); a run given another run's
    score file names that file in its config, its summary's settings and its scores record (the copy it reads is the run's
    own). Dropped, each record lost that entry or (the limit) every evaluation scored the whole validation split."""
    from fpt_nb.run import run_experiment
    from fpt_nb.checkpoint import read_json, prompt_step
    from fpt_nb.names import PROMPTS
    s = run_experiment(out_dir=str(tmp_path/'a'), **RUN)
    assert s['model_ref'] == dict(name='tiny') and s['n_eval'] == 8 and s['resumed_at'] == [] and s['data_notes'] == []
    assert read_json(tmp_path/'a'/'summary.json')['model_ref'] == dict(name='tiny')
    assert s['scores']['file'] == 'scores.safetensors' and s['scores']['aggregation'] == 'example'
    assert set(s['prompts']) == set(PROMPTS.values()) and all(len(v) > 8 for v in s['prompts'].values())
    steps = {f: prompt_step(tmp_path/'a'/f) for f in PROMPTS.values()}   # each prompt file says the step it is of
    assert steps == {PROMPTS['final']: 4, PROMPTS['best']: s['best']['step'], PROMPTS['best_last']: s['best_last_stage']['step']}, steps
    cls = read_json(tmp_path/'a'/'config.json')['fingerprint']['tokenizer']['cls']
    assert cls == 'ByT5Tokenizer', cls
    named = str(tmp_path/'a'/'scores.safetensors')
    s = run_experiment(out_dir=str(tmp_path/'b'), score_file=named, **RUN)
    assert s['scores']['file'] == named and s['config']['score_file'] == named
    assert read_json(tmp_path/'b'/'config.json')['score_file'] == named

def test_a_runs_model_record_names_a_hub_id_and_a_folder(saved_models):
    """model_ref_hub_name_dropped, model_ref_folder_name_dropped: `model_ref` (a run's `model_ref`, the tables' model column)
    names a hub id by itself and a local folder by its name, beside its path and digest. Dropped, a hub run recorded `{}`
    and a folder run its path and digest only: a table of runs on two folders told them apart by digest alone."""
    from fpt_nb.run import model_ref
    assert model_ref('google/t5-large-lm-adapt') == dict(name='google/t5-large-lm-adapt')
    ref = model_ref(str(saved_models/'t5'))
    assert ref['name'] == 't5' and ref['path'] == str((saved_models/'t5').resolve()) and len(ref['digest']) > 8, ref

def test_a_decoder_only_runs_target_length_counts_its_completion(data_dir):
    """fit_target_causal_dropped: a decoder-only run's target length is what its completions take: `contradiction` after a
    space and EOS is 15 byte tokens. Dropped, the label words were counted as a T5 target (after T5's sentinel, which the
    byte tokenizer spells in 12 bytes), 26 tokens: every evaluation generated up to 11 tokens more than any label has."""
    from fpt_nb.run import fit_target_length, setup
    from fpt_nb.tasks import get_task, load_examples
    from fpt_nb.causal import byte_tokenizer
    assert fit_target_length(get_task('mnli'), byte_tokenizer(), causal=True) == 15
    pt, tok, encode_fn, make_eval, _ = setup('mnli', 'tiny-llama', prompt_length=4)   # what a run evaluates with
    rows = load_examples(get_task('mnli'), 'validation', data_dir, limit=2)
    asked, generate = [], pt.generate
    pt.generate = lambda *a, **kw: asked.append(kw['max_new_tokens']) or generate(*a, **kw)
    make_eval(encode_fn(rows), rows)(pt)
    assert asked == [15]

@pytest.mark.parametrize('model', ['tiny', 'tiny-bert', 'tiny-llama'])
def test_a_runs_seed_draws_its_prompt(model):
    """encoder_prompt_seed_dropped, causal_prompt_seed_dropped: `setup` gives the prompt of each kind of model the run's
    seed. Dropped, an encoder's and a decoder-only model's prompt began the same whatever `--seed` said, so the seeds a
    table pools were one start repeated, and its spread over seeds too small."""
    from fpt_nb.run import setup
    first = [setup('toy', model, prompt_length=4, seed=s)[0].prompt.weight.detach().clone() for s in (0, 1, 1)]
    assert not torch.equal(first[0], first[1]) and torch.equal(first[1], first[2])

def test_a_finished_run_without_checkpoints_is_scored_again_not_refused(tmp_path, one_thread, capsys):
    """finished_nockpt_eval_compared: a finished run whose checkpoints were deleted (to save space), run again with other
    evaluation settings, is finished as one with its checkpoints is: its best prompt is scored the new way into a file of
    its own and its summary is kept. The evaluation settings were compared with the rest: the rerun was refused as a
    different run, "training would write over it"."""
    import shutil
    from fpt_nb.run import run_experiment
    from fpt_nb.checkpoint import read_json
    d = tmp_path/'run'
    s = run_experiment(out_dir=str(d), **RUN)
    shutil.rmtree(d/'checkpoints'); capsys.readouterr()
    again = run_experiment(out_dir=str(d), **{**RUN, 'eval_limit': 4})
    assert again == s == read_json(d/'summary.json')
    out = capsys.readouterr().out
    assert f"{d} is finished; its best prompt was scored with the new evaluation settings (data) into " in out, out


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints

def test_a_checkpoint_makes_its_folders_and_records_its_step(tmp_path):
    """checkpoint_dir_parents_dropped, checkpoint_state_step_dropped: `save_checkpoint` (exported: a notebook may call it on
    its own) makes the checkpoint folder with its parents, and writes the step it was given into its `state.json` whatever
    the state holds. Dropped, a new nested folder failed (FileNotFoundError), or a state without `step` was saved without one,
    and `latest` pointed to a checkpoint that resumes at no step."""
    from fpt_nb.checkpoint import save_checkpoint
    final = save_checkpoint(tmp_path/'new'/'checkpoints', 7, torch.zeros(2, 3), dict(epoch=1), {'x': torch.ones(1)})
    assert final == tmp_path/'new'/'checkpoints'/'step-0000007'
    assert json.loads((final/'state.json').read_text())['step'] == 7
    assert (tmp_path/'new'/'checkpoints'/'latest').read_text() == 'step-0000007'

def test_a_temporary_checkpoint_folder_is_hidden_and_named_after_its_target(tmp_path):
    """temp_folder_prefix_dropped: a checkpoint is written into a temporary folder beside its target and renamed into place;
    the folder is hidden and named after the target (`.step-0000007.<random>`), so a run killed mid-write leaves a hidden
    folder that says what it was, never a `tmpab12cd` among the checkpoints. Dropped, it was `tmp...`, as the file's."""
    from fpt_nb.checkpoint import temp_beside
    for folder in (True, False):
        t = temp_beside(tmp_path/'step-0000007', folder=folder)
        assert t.parent == tmp_path and t.name.startswith('.step-0000007.') and t.is_dir() == folder, t


# ---------------------------------------------------------------------------------------------------------------
# Reading a run's log

def test_read_log_gives_every_kind_even_when_a_run_has_none(tmp_path):
    """read_log_error_kind_dropped: `read_log` gives a run's records under each of its four kinds, an empty list where the
    run has none, so a notebook's `read_log(run)['error']` on a run that never failed is `[]`. Dropped, that was a KeyError."""
    from fpt_nb.plots import read_log
    (tmp_path/'log.jsonl').write_text('\n'.join(json.dumps(r) for r in (dict(kind='step', step=1), dict(kind='eval', step=1))) + '\n')
    log = read_log(tmp_path)
    assert {k: len(v) for k, v in log.items()} == dict(step=1, eval=1, expand=0, error=0)



# ---------------------------------------------------------------------------------------------------------------
# The command line refuses a value it has no use for as it parses

def test_fpt_refuses_an_unknown_choice_as_it_parses(tmp_path, capsys):
    """cli_padding_choices_dropped, cli_evaluate_prompt_choices_dropped: `fpt run --padding` takes `dynamic` or `max`, and
    `fpt evaluate --prompt` one of the run's prompts (`best`, `best_last`, `final`); argparse refuses anything else with the
    choices, before anything loads. Dropped, `--padding maxi` or `--prompt bets` went through, to be refused by a check of
    the run's own, or to fail, not as a usage error naming the choices."""
    from fpt_nb.cli import main
    for args, says in ((['run', '--padding', 'maxi', '--out-dir', str(tmp_path/'r')], "fpt run: error: argument --padding: invalid choice: 'maxi'"),
                       (['evaluate', str(tmp_path/'r'), '--prompt', 'bets'], "fpt evaluate: error: argument --prompt: invalid choice: 'bets'")):
        with pytest.raises(SystemExit) as e: main(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith(says + ' (choose from ') and not (tmp_path/'r').exists(), err


# ---------------------------------------------------------------------------------------------------------------
# Tables

def test_a_tables_rows_go_by_task_then_model(tmp_path):
    """tables_group_order_dropped: the tables' rows go by task, then model, then setting. Dropped, they went by the text of
    each setting: a QQP run of fewer steps came before an MNLI one, the tasks' rows mixed as their settings sorted."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2
    for name, planned, task in (('a', 1000, 'mnli'), ('b', 100, 'qqp'), ('c', 300, 'mnli')):
        fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
        d = (tmp_path/'pt-0-s0').rename(tmp_path/name)
        s = json.loads((d/'summary.json').read_text())
        (d/'summary.json').write_text(json.dumps(dict(s, steps=planned, planned_steps=planned, task=task)))
    assert [(r['task'], r['steps']) for r in table2(collect_runs(tmp_path, say=lambda *a: None))] == [('mnli', 1000), ('mnli', 300), ('qqp', 100)]


# ---------------------------------------------------------------------------------------------------------------
# A refused number says what 0 means

@pytest.mark.parametrize('name, means', [('eval_every', 'only at the end of each stage'), ('checkpoint_every', 'at evaluations and stage ends')])
def test_a_negative_interval_is_refused_saying_what_zero_means(name, means, tmp_path):
    """run_zero_eval_every_dropped, run_zero_checkpoint_every_dropped: `run_experiment` refuses a negative evaluation or
    checkpoint interval, and says what 0, the least it takes, does. Dropped, the refusal said "at least 0" only: a user
    could not tell 0 turns evaluation off between stage ends, or checkpoints at evaluations."""
    from fpt_nb.run import run_experiment
    with pytest.raises(ValueError) as e: run_experiment(out_dir=str(tmp_path/'r'), **{**RUN, name: -1})
    assert str(e.value) == f"{name} must be a whole number of at least 0 (0: {means}), got -1"

def test_table2_names_each_fpt_method(tmp_path):
    """method_name_fpt_cr_dropped: Table 2 names its rows PT, FPT_LD, FPT_FR and FPT_CR. Dropped from the names, FPT_CR's
    row, the default run's, was a KeyError: `fpt tables` failed on the demo's own runs, and no test tabulated FPT_CR."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, table2
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    for m in ('fpt_ld', 'fpt_fr', 'fpt_cr'): fake_run(tmp_path, m, 0, 70, 40.0, 69)
    assert [r['method'] for r in table2(collect_runs(tmp_path, say=lambda *a: None))] == ['PT', 'FPT_LD', 'FPT_FR', 'FPT_CR']

def test_tables_of_pt_alone_say_what_each_would_set_against_it(tmp_path):
    """against_pt_table1_dropped: written over PT runs alone, each table says what it would set against PT and that no
    such run is here: Table 1, PT on a partial model (`fpt run --method ld fr cr`). Dropped, Table 1's sentence was a
    KeyError: `fpt tables` over a folder of PT runs failed."""
    from test_scoring import fake_run
    from fpt_nb.tables import collect_runs, write_tables
    fake_run(tmp_path, 'pt', 0, 100, 50.0, 70, [(0, 10), (100, 70)])
    paths = write_tables(collect_runs(tmp_path, say=lambda *a: None), tmp_path/'tables')
    text = {Path(p).name: Path(p).read_text() for p in paths.values()}
    assert ("Only PT is here: this table sets PT on a partial model (fpt run --method ld fr cr) against PT, and no such run "
            "is among these.") in text['table1.md'], text
    assert 'this table sets FPT (fpt run --method fpt_ld fpt_fr fpt_cr) against PT' in text['table2.md'], text


# ---------------------------------------------------------------------------------------------------------------
# The paper's tasks

def test_the_papers_tasks_shrink_the_decoder_as_its_scripts_do():
    """squad2_reduce_decoder_dropped: the paper's scripts shrink the decoder too on SQuAD 2.0, ReCoRD and XSum (their long
    targets), not on MNLI or QQP. Dropped, SQuAD 2.0's partial models kept the whole decoder: its FPT runs, and Table 1's
    rows, were another recipe's, while the recipe tests, which use ReCoRD and XSum, passed."""
    from fpt_nb.tasks import get_task
    assert {t: get_task(t).reduce_decoder for t in ('mnli', 'qqp', 'squad2', 'record', 'xsum')} == \
        dict(mnli=False, qqp=False, squad2=True, record=True, xsum=True)

def test_each_local_stand_in_for_the_papers_data_is_said(data_dir):
    """squad2_train_note_dropped, record_train_note_dropped, xsum_train_note_dropped: a run on local data says (and its
    summary records) where the local files stand in for the paper's: SQuAD 1.1's answerable questions for SQuAD 2.0's
    training split, the 32-example FewGLUE sample for ReCoRD, XSum's validation file for its training split. Dropped, the
    run said nothing: its numbers looked like the paper's setting."""
    from fpt_nb.tasks import data_notes
    says = dict(squad2="SQuAD 1.1's answerable questions (train_v1_answerable) stand in",
                record='the 32-example FewGLUE sample', xsum='its validation file stands in for training')
    for task, text in says.items():
        notes = data_notes(task, data_dir, ('train',))
        assert len(notes) == 1 and notes[0].startswith(f'{task} train: ') and text in notes[0], (task, notes)


# ---------------------------------------------------------------------------------------------------------------
# Left untested by the fourteenth audit, tested in session 30 (the best record rebuilt on resume: tests/test_gaps.py)

def test_compile_reaches_the_trainer(tmp_path, one_thread, monkeypatch):
    """compile_dropped_before_trainer: `--fast --compile` reaches the trainer's config, which compiles the fast step's block
    runners and records `compile` in the run's fingerprint (a resume with another setting is then another run). Dropped,
    the command took the flag, checked it, and trained uncompiled with `compile` false in its records, the flag lost
    silently. (torch.compile is replaced here by a stand-in that records what it wraps: nothing is compiled on the CPU.)"""
    from fpt_nb.run import run_experiment
    from fpt_nb.checkpoint import read_json
    from fpt_nb.fast import encoder_block, decoder_block
    wrapped = []
    monkeypatch.setattr(torch, 'compile', lambda f, **kw: wrapped.append(f) or f)
    run_experiment(out_dir=str(tmp_path/'run'), **{**RUN, 'method': 'pt', 'steps': 2, 'fast': True, 'compile': True})
    assert wrapped == [encoder_block, decoder_block], wrapped
    fp = read_json(tmp_path/'run'/'config.json')['fingerprint']
    assert fp['compile'] is True and fp['fast'] is True, fp

def test_a_resumed_run_names_the_score_file_it_was_given(tmp_path, one_thread, monkeypatch, capsys):
    """resumed_config_names_copy, resumed_summary_names_copy: a run given another run's neuron scores (`--score-file F`),
    stopped and run again without naming F, goes on with its own copy of them (scores.safetensors) and its config.json and
    summary still name F, the file it was given. Dropped, the records of the resumed run named the copy in its own folder:
    the scores it was given were no longer said anywhere but in the first command's history."""
    import signal
    from conftest import sigterm_in_step
    from fpt_nb.run import run_experiment
    from fpt_nb.checkpoint import read_json
    run_experiment(out_dir=str(tmp_path/'a'), **RUN)
    named = str(tmp_path/'a'/'scores.safetensors')
    d = tmp_path/'b'
    sigterm_in_step(monkeypatch, 2)
    s = run_experiment(out_dir=str(d), score_file=named, **RUN)
    monkeypatch.undo()
    assert s['stopped'] == f'signal {int(signal.SIGTERM)} at step 2' and s['config']['score_file'] == named
    capsys.readouterr()
    s = run_experiment(out_dir=str(d), **RUN)   # F not named again
    assert f"this run was given the neuron scores in {named}: it goes on with its copy of them, {d/'scores.safetensors'}" \
        in capsys.readouterr().out
    assert (s['steps'], s['stopped'], s['resumed_at']) == (4, None, [2])
    assert read_json(d/'config.json')['score_file'] == named
    assert s['config']['score_file'] == read_json(d/'summary.json')['config']['score_file'] == named
    assert s['scores']['file'] == named

def test_the_tiny_bert_has_no_pooler_as_minilm_is_loaded():
    """tiny_bert_pooler_kept: `load_encoder` builds its BERTs without the pooler (a dense layer over the first token that a
    prompt-tuned classifier never reads), the built-in tiny BERT as the packaged MiniLM. Dropped, the tiny BERT carried an
    extra 64 x 64 layer that ran at every forward: its FLOPs and parameters were not the stand-in's for MiniLM's."""
    from fpt_nb.encoder import load_encoder
    for name in ('tiny-bert', 'minilm'):
        model = load_encoder(name)[0]
        assert model.pooler is None, name
        assert not [n for n, _ in model.named_parameters() if 'pooler' in n], name

@pytest.mark.parametrize('given', [True, False])
def test_the_data_parallel_launcher_gets_its_folder_its_settings_and_its_stop_timeout(tmp_path, monkeypatch, given):
    """dp_out_parents_dropped, dp_out_dir_dropped, dp_shutdown_timeout_dropped: `run_distributed` makes the run folder with
    its parents, passes that folder on to the workers (launch.json's `out_dir`, its default too) and gives the launcher 600 s
    for its workers to stop after a SIGTERM unless TORCH_ELASTIC_SHUTDOWN_TIMEOUT is set (then the user's). Dropped, a new
    nested folder failed, a run without `--out-dir` had its workers write under their own default folder while the command
    read the summary of the one it made, or torch's agent cut a large model's stop off after its own 30 s. (The launcher is a
    stand-in here that records how it is started and writes the summary where the workers would.)"""
    import subprocess
    from fpt_nb.run import run_distributed
    from fpt_nb.checkpoint import read_json, write_json
    monkeypatch.chdir(tmp_path)
    if given: monkeypatch.delenv('TORCH_ELASTIC_SHUTDOWN_TIMEOUT', raising=False)
    else: monkeypatch.setenv('TORCH_ELASTIC_SHUTDOWN_TIMEOUT', '45')
    started = []
    class Launcher:
        def __init__(self, cmd, **kw):
            started.append((cmd, kw))
            out = Path(read_json(cmd[-1]).get('out_dir') or 'runs/the-workers-own-default')
            out.mkdir(parents=True, exist_ok=True); write_json(out/'summary.json', dict(steps=1, processes=2))
        def poll(self): return 0
        def wait(self): return 0
        def send_signal(self, s): pass
        def kill(self): pass
    monkeypatch.setattr(subprocess, 'Popen', Launcher)
    out = tmp_path/'new'/'folders'/'dp' if given else Path('runs/toy-pt-dp2')   # (the default: task, method, processes)
    args = dict(out_dir=str(out)) if given else {}
    assert run_distributed(2, task='toy', method='pt', steps=1, **args) == dict(steps=1, processes=2)
    (cmd, kw), = started
    assert read_json(out/'launch.json') == dict(out_dir=str(out), task='toy', method='pt', steps=1)
    assert cmd[-1] == str(out/'launch.json') and (out/'summary.json').is_file()
    assert kw['env']['TORCH_ELASTIC_SHUTDOWN_TIMEOUT'] == ('600' if given else '45')
    # dp_launcher_same_session (the fifteenth audit): the launcher runs in a session of its own, so a SIGTERM to this process's
    # group (a terminal's, a scheduler's) reaches it once, passed on by this process, not twice
    assert kw['start_new_session'] is True
