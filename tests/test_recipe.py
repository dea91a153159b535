"""The paper's recipe (issue 11), checked where a run uses it, not only in the notebook that defines each piece.

The notebooks test each piece on its own (`02_scores`, `10_tasks`, `07_causal`, `29_faithfulness`), but a notebook runs
its own definitions, so a bug planted in the exported library is invisible to it; these tests import the library as
`fpt run` does. Each one failed under a planted bug of `tools/mutants.py` (the mutant is named in the test).
"""
from pathlib import Path
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.tasks import get_task, load_examples, record_entities, format_record, toy_examples
from fpt_nb.batches import encode, collate
from fpt_nb.scores import activation_scores, NeuronScores
from fpt_nb.checkpoint import latest_checkpoint, load_prompt, read_json
from fpt_nb.train import Trainer, TrainConfig, paper_schedule
from fpt_nb.run import run_experiment
from fpt_nb.causal import load_causal, PromptCausalLM
from fpt_nb.partial import Stage, FULL, apply_stage

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

TOK = load_t5('tiny')[1]
SCORES = NeuronScores({s: torch.rand(4, 128, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(('encoder', 'decoder'))})


def test_best_prompt_is_the_papers_rule(tmp_path):
    "best_tie_goes_to_the_earlier, best_from_the_full_stage_only: the best over all evaluations, a tie to the later."
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    items = encode('toy', TOK, toy_examples('train', 32))
    # FPT_CR over 10 steps: stages end at steps 2, 4, 6 and 10; with eval_every 2 the evaluations are at 2, 4, 6, 8, 10.
    values, prompts = iter([50.0, 70.0, 70.0, 60.0, 65.0]), []
    def evaluate(pt):   # `accuracy` first and best at step 2: the selection must read paper_mean, not the first metric
        prompts.append(pt.prompt.weight.detach().clone())
        v = next(values)
        return dict(accuracy=100.0 - v, paper_mean=v)
    tr = Trainer(pt, paper_schedule('fpt_cr', 10, pt.model), items, TrainConfig(batch_size=4, eval_every=2), tmp_path/'run',
                 evaluate=evaluate, scores=SCORES, progress=False)
    st = tr.fit()
    best, best_last = read_json(tmp_path/'run'/'best.json', 'best'), read_json(tmp_path/'run'/'best_last.json', 'best_last')
    assert (st['best_step'], st['best_stage'], st['best']) == (6, 2, 70.0)   # the tie at 70 goes to step 6, a partial stage
    assert (best['step'], best['stage'], best['metric']) == (6, 2, 'paper_mean')
    assert (st['best_last_step'], best_last['step'], best_last['paper_mean']) == (10, 10, 65.0)   # the full model's best
    assert torch.equal(load_prompt(tmp_path/'run'/'best_prompt.safetensors'), prompts[2])        # the prompt evaluated at step 6
    assert torch.equal(load_prompt(tmp_path/'run'/'best_last_prompt.safetensors'), prompts[4])   # and at step 10
    assert not torch.equal(prompts[1], prompts[2])


@pytest.fixture(scope='module')
def squad_run(tmp_path_factory, data_dir) -> Path:
    "FPT_CR on SQuAD 2.0 with no recipe flag: the task's own recipe decides the decoder, the scores and the selection."
    d = tmp_path_factory.mktemp('squad')/'run'
    run_experiment(task='squad2', model='tiny', method='fpt_cr', steps=4, batch_size=4, prompt_length=4, train_limit=16,
                   eval_limit=4, score_examples=8, data_dir=str(data_dir), device='cpu', progress=False, out_dir=str(d))
    return d

def test_squad_reduces_the_decoder_too(squad_run):
    "decoder_recipe_ignored: SQuAD 2.0, ReCoRD and XSum shrink both stacks in the official scripts."
    s = read_json(squad_run/'summary.json', 'summary')
    assert s['decoder'] is True
    assert [x['name'] for x in s['stages']][:3] == [f'enc {k}L, enc ffn {f}, dec {k}L, dec ffn {f}' for k, f in ((1, 32), (2, 64), (3, 96))]

def test_scores_read_a_random_validation_sample(squad_run):
    "scores_on_training_data, scores_on_the_first_examples: 8 of the validation rows, sampled with the seed."
    sc = read_json(squad_run/'summary.json', 'summary')['scores']
    assert (sc['split'], sc['sampling'], sc['aggregation'], sc['rows']['rows']) == ('validation', 'random', 'example', 8)
    assert sc['rows']['source'] == 'local squad_v2/validation.jsonl.gz'

def test_best_prompt_is_chosen_by_the_mean_of_the_papers_metrics(squad_run):
    "selection_by_the_official_metric: the official trainer keeps the best by the mean of all the task's metrics."
    best = read_json(squad_run/'best.json', 'best')
    m = best['metrics'] if 'metrics' in best else best
    assert best['metric'] == 'paper_mean'
    assert m['paper_mean'] == pytest.approx((m['paper_acc'] + m['paper_em'] + m['paper_f1']) / 3)

def test_generation_stops_one_short_of_the_target_length(squad_run):
    "generation_one_token_too_long: the official generate(max_length=200) counts the start token: 199 new tokens."
    state = read_json(latest_checkpoint(squad_run/'checkpoints')/'state.json', 'checkpoint state')
    assert state['fingerprint']['evaluation']['max_new_tokens'] == get_task('squad2').target_max_length - 1 == 199

def test_the_evaluator_generates_what_the_run_records(monkeypatch, tmp_path):
    """eval_generates_full_length: the number of new tokens the run's evaluator is asked for on T5 is the one its fingerprint
    records (evaluation.max_new_tokens), one short of the task's target length (the start token counts)."""
    import fpt_nb.run as run
    asked, real = [], run.evaluator
    def evaluator(task, tok, items, rows, batch_size, num_beams, device, max_new_tokens, progress):
        asked.append(max_new_tokens)
        return real(task, tok, items, rows, batch_size, num_beams, device, max_new_tokens, progress)
    monkeypatch.setattr(run, 'evaluator', evaluator)
    d = tmp_path/'run'
    run_experiment(task='toy', model='tiny', method='pt', steps=2, batch_size=4, prompt_length=4, train_limit=8, eval_limit=4,
                   device='cpu', progress=False, out_dir=str(d))
    state = read_json(latest_checkpoint(d/'checkpoints')/'state.json', 'checkpoint state')
    assert asked == [state['fingerprint']['evaluation']['max_new_tokens']] == [get_task('toy').target_max_length - 1]


def test_neuron_scores_average_each_example_first():
    "scores_pool_tokens: per example, the mean |activation| over its own tokens; then the mean over examples."
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4).eval()
    rows = toy_examples('validation', 6)
    rows[0] = dict(rows[0], text=rows[0]['text'] * 12)   # one long input among short ones: pooling tokens would favour it
    items = encode('toy', TOK, rows)
    # examples_of_one_token_uncounted (the fifteenth audit): an example that gives a stack one token (here a target of EOS
    # alone, the decoder's one position) is an example too; counted only from two tokens on, the decoder's sums were divided by 5
    items[1] = dict(items[1], labels=items[1]['labels'][-1:])
    wo = {s: [b.layer[-1].DenseReluDense.wo for b in getattr(pt.model, s).block] for s in ('encoder', 'decoder')}
    got = activation_scores(pt, [collate(items)], n_examples=6, progress=False)['abs_mean'].scores
    for stack, layers in wo.items():
        per_example = []
        for it in items:   # batch size 1, no padding: every position the stack reads counts
            seen = []
            hooks = [m.register_forward_pre_hook(lambda m, a: seen.append(a[0].abs().double().mean((0, 1)))) for m in layers]
            with torch.no_grad(): pt(torch.tensor([it['input_ids']]), labels=torch.tensor([it['labels']]))
            for h in hooks: h.remove()
            per_example.append(torch.stack(seen))
        expected = torch.stack(per_example).mean(0).float()
        assert torch.allclose(got[stack], expected, rtol=1e-5, atol=1e-7), stack
        pooled = activation_scores(pt, [collate(items)], n_examples=6, progress=False, aggregation='token')['abs_mean'].scores[stack]
        assert not torch.allclose(pooled, expected, rtol=1e-3)   # the two aggregations differ on these inputs


def test_cut_targets_keep_their_end_of_sequence_token(data_dir):
    "target_cut_drops_eos: a target cut to its length keeps EOS last, as the official tokenizer call with truncation does."
    rows = load_examples('xsum', 'validation', data_dir, limit=4)
    full = encode('xsum', TOK, rows)
    cut = encode('xsum', TOK, rows, max_target_length=6)
    for f, c in zip(full, cut):
        assert len(f['labels']) > 6 and f['labels'][-1] == TOK.eos_token_id
        assert c['labels'] == f['labels'][:5] + [TOK.eos_token_id]
        assert c['target_truncated'] == len(f['labels']) - 6


def test_record_entities_in_passage_order(data_dir):
    "record_entities_sorted: entities once each, in the order they first appear in the passage (hub rows sort them)."
    row = dict(query='@placeholder won.', passage='Zeta met Alpha. Then Alpha left.', answers=['Alpha'], entities=['Alpha', 'Zeta'],
               entity_spans=dict(start=[9, 0, 21], end=[14, 4, 26], text=['Alpha', 'Zeta', 'Alpha']))
    assert record_entities(row) == ['Zeta', 'Alpha']
    assert 'entities: Zeta, Alpha passage:' in format_record(row)[0]
    # spans_need_text_or_start: spans without starts (or without texts) give no order: the row's `entities` list is taken
    for spans in (dict(text=['Zeta', 'Alpha']), dict(start=[9, 0], text=[])):
        assert record_entities(dict(row, entity_spans=spans)) == ['Alpha', 'Zeta'], spans
    for r in load_examples('record', 'validation', data_dir, limit=8):   # real rows: first appearances increase
        spans = r['entity_spans']
        first = {t: min(s for s, u in zip(spans['start'], spans['text']) if u == t) for t in spans['text']}
        ents = record_entities(r)
        assert sorted(ents) == sorted(first) and [first[e] for e in ents] == sorted(first[e] for e in ents)


def test_a_partial_decoder_only_model_numbers_its_layers_from_zero():
    "causal_layers_not_renumbered: kept layers take cache slots 0, 1, ...; cached generation equals uncached."
    model, tok = load_causal('tiny-llama')
    pt = PromptCausalLM(model, prompt_length=4, seed=1).eval()
    apply_stage(model, Stage(decoder_layers=2))
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    x = tok(['to be or not', 'a'], padding=True, return_tensors='pt')
    cached = pt.generate(x.input_ids, x.attention_mask, max_new_tokens=6)
    assert torch.equal(cached, pt.generate(x.input_ids, x.attention_mask, max_new_tokens=6, use_cache=False))
    apply_stage(model, FULL)
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2, 3]


def _squad_trainer(tmp_path, name, data_dir, **cfg):
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    items = encode('squad2', TOK, load_examples('squad2', 'train', str(data_dir), limit=24))
    return Trainer(pt, paper_schedule('pt', 3, pt.model), items, TrainConfig(batch_size=8, **cfg), tmp_path/name, progress=False)

def _losses(tr) -> list[float]:
    return [r['loss'] for r in map(__import__('json').loads, (tr.record.dir/'log.jsonl').read_text().splitlines()) if r['kind'] == 'step']

@pytest.mark.parametrize('fast', [False, True])
def test_the_loss_is_a_token_mean_per_official_gpu_batch(fast, tmp_path, data_dir):
    """loss_group_ignored, loss_weights_per_micro_batch: the official loss is the mean over GPUs and accumulation steps of
    each forward pass's token mean. One forward pass of 8 with loss_group=4 trains as two micro-batches of 4 do (SQuAD
    answers of 2 to 30 tokens), on the stock forward and on ours (fast); a token mean over all 8 trains differently."""
    grouped = _squad_trainer(tmp_path, 'grouped', data_dir, loss_group=4, fast=fast); grouped.fit()
    micro = _squad_trainer(tmp_path, 'micro', data_dir, micro_batch_size=4, fast=fast); micro.fit()
    whole = _squad_trainer(tmp_path, 'whole', data_dir, fast=fast); whole.fit()
    straddle = _squad_trainer(tmp_path, 'straddle', data_dir, micro_batch_size=2, loss_group=4, fast=fast); straddle.fit()
    assert grouped.loss_group == 4 and micro.loss_group is None
    for tr in (grouped, straddle):
        assert _losses(tr) == pytest.approx(_losses(micro), rel=1e-5)
        assert torch.allclose(tr.pt.prompt.weight, micro.pt.prompt.weight, rtol=1e-4, atol=1e-6)
    assert abs(_losses(whole)[0] - _losses(micro)[0]) > 1e-3 * _losses(micro)[0]
    assert read_json(latest_checkpoint(grouped.record.checkpoints)/'state.json')['fingerprint']['loss_group'] == 4   # resumed only with 4

def test_presets_set_the_official_per_gpu_batch(monkeypatch, tmp_path):
    "preset_loss_group_dropped: --preset gives the run the official per-GPU batch as its loss group; a flag wins."
    import fpt_nb.cli as cli
    seen = []
    def launch(n, **kw): seen.append(kw['loss_group']); raise SystemExit(0)
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    for args in (['--preset', 'large'], ['--preset', 'xl', '--task', 'xsum'], ['--preset', 'xl'], ['--preset', 'large', '--loss-group', 8], []):
        with pytest.raises(SystemExit):
            cli.main(['run', '--model', 'tiny-llama', '--method', 'pt', '--out-dir', str(tmp_path/'x'), *map(str, args)])
    assert seen == [4, 1, 2, 8, None]

def test_the_papers_backbones_get_the_papers_recipe_by_default(monkeypatch, tmp_path, capsys):
    """auto_preset_ignored, preset_overrides_given_values: `fpt run` on a model with T5-LARGE-LM-adapt's shape (a folder
    holding its config.json, by shape alone) runs the paper's recipe with no preset named, and says so; flags given win;
    `--preset none` turns it off; another shape gets no preset."""
    import fpt_nb.cli as cli
    from fpt_nb.prompt import paper_config, t5_config, PAPER_CONFIGS
    paper_config('large').save_pretrained(tmp_path/'large')
    t5_config(**dict(PAPER_CONFIGS['large'], d_ff=2048)).save_pretrained(tmp_path/'other')
    seen = []
    def launch(n, **kw): seen.append({k: kw[k] for k in ('steps', 'stage_steps', 'batch_size', 'eval_every', 'loss_group')}); raise SystemExit(0)
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    runs = [('large', []), ('large', ['--steps', '100', '--batch-size', '8']), ('large', ['--preset', 'none']), ('other', []),
            ('tiny', ['--preset', 'large'])]   # a model named stays, with the preset's schedule
    for model, args in runs:
        with pytest.raises(SystemExit):
            cli.main(['run', '--model', str(tmp_path/model) if model != 'tiny' else model, '--method', 'fpt_cr', '--task', 'toy',
                      '--out-dir', str(tmp_path/'x'), *args])
    assert seen == [dict(steps=30000, stage_steps=[6000, 6000, 6000, 12000], batch_size=32, eval_every=500, loss_group=4),
                    dict(steps=100, stage_steps=None, batch_size=8, eval_every=500, loss_group=4),
                    dict(steps=2500, stage_steps=None, batch_size=32, eval_every=125, loss_group=None),
                    dict(steps=2500, stage_steps=None, batch_size=32, eval_every=125, loss_group=None),
                    dict(steps=30000, stage_steps=[6000, 6000, 6000, 12000], batch_size=32, eval_every=500, loss_group=4)]
    out = capsys.readouterr().out
    assert out.count("has the shape of the paper's T5-LARGE (T5 v1.1): it takes the paper's recipe (--preset large)") == 2
    assert "the preset's evaluation every 500 steps is more than the run's 100" in out and out.count("is more than the run's") == 1
    assert '== fpt_cr on toy with tiny: 30000 steps' in out and "note: --preset large is the paper's recipe for T5-LARGE, and tiny does not have its shape" in out
    with pytest.raises(SystemExit):   # a batch the preset's loss group does not divide: the largest group that does, said
        cli.main(['run', '--model', str(tmp_path/'large'), '--batch-size', '6', '--method', 'pt', '--out-dir', str(tmp_path/'y')])
    assert seen[-1]['loss_group'] == 2 and "preset large's loss group of 4 examples" in capsys.readouterr().out
    code = cli.main(['run', '--model', str(tmp_path/'large'), '--batch-size', '6', '--loss-group', '4', '--out-dir', str(tmp_path/'z')])
    assert code == 2 and 'loss_group 4 does not divide batch_size 6' in capsys.readouterr().err and len(seen) == 6   # given: refused

def test_the_papers_backbones_train_table_2_by_default(monkeypatch, tmp_path, capsys):
    """table2_not_default: `fpt run` on a model of the paper's shape with no --method trains the paper's Table 2 (PT, FPT_LD,
    FPT_FR, FPT_CR, each into its folder), and says so; --method chooses; no preset keeps the demo's two; Table 1's
    methods on T5-XL, which no official script runs, are said."""
    import fpt_nb.cli as cli
    from fpt_nb.prompt import paper_config
    for size in ('large', 'xl'): paper_config(size).save_pretrained(tmp_path/size)
    planned = []
    monkeypatch.setattr('fpt_nb.run.check_planned_run', lambda d, **kw: planned.append((Path(d).name, kw['method'])) or levels.append(kw['level']))
    levels = []
    def launch(n, **kw): raise SystemExit(0)
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    def run(*args):
        planned.clear()
        with pytest.raises(SystemExit): cli.main(['run', '--task', 'toy', '--out-dir', str(tmp_path/'x'), *map(str, args)])
        return [m for _, m in planned], capsys.readouterr().out
    methods, out = run('--model', tmp_path/'large')
    assert methods == ['pt', 'fpt_ld', 'fpt_fr', 'fpt_cr'] and [d for d, _ in planned] == methods, planned
    assert "fpt run: no --method: the paper's Table 2, pt fpt_ld fpt_fr fpt_cr, one run each" in out, out
    assert run('--model', 'tiny', '--preset', 'large')[0] == ['pt', 'fpt_ld', 'fpt_fr', 'fpt_cr']
    methods, out = run('--model', tmp_path/'large', '--method', 'pt', 'fpt_cr')
    assert methods == ['pt', 'fpt_cr'] and 'no --method' not in out
    assert run('--model', 'tiny')[0] == ['pt', 'fpt_cr']
    methods, out = run('--model', tmp_path/'xl', '--method', 'ld', '--level', 2)
    assert methods == ['ld'] and "the paper's Table 1 is T5-LARGE's only (no official script runs ld on T5-XL)" in out, out
    methods, out = run('--model', tmp_path/'large', '--method', 'pt', 'ld', 'cr')   # Table 1 as the scripts run it: three levels each
    assert planned == [('pt', 'pt'), ('ld-L1', 'ld'), ('ld-L2', 'ld'), ('ld-L3', 'ld'), ('cr-L1', 'cr'), ('cr-L2', 'cr'), ('cr-L3', 'cr')], planned
    assert "no --level: ld, cr at each of the paper's three partial stages (Table 1)" in out and 'Table 1 is' not in out, out
    levels.clear(); out = run('--model', tmp_path/'large', '--method', 'ld', '--level', 3, 1)[1]
    assert planned == [('ld-L3', 'ld'), ('ld-L1', 'ld')] and levels == [3, 1], (planned, levels)
    assert f"== ld level 3 on toy with {tmp_path/'large'}: 30000 steps -> {tmp_path/'x'/'ld-L3'}" in out, out   # the first run trains, said
    run('--model', 'tiny', '--method', 'pt', 'ld')   # no preset: level 1, as before
    assert planned == [('pt', 'pt'), ('ld', 'ld')], planned

def test_stage_steps_on_a_papers_backbone_set_the_total(monkeypatch, tmp_path):
    """preset_steps_kept_with_stage_steps: `--stage-steps` on a model of the paper's shape (or with --preset) and no --steps:
    the stages' sum is the run's length, not the preset's 30,000 (which the stages then did not add up to: refused)."""
    import fpt_nb.cli as cli
    from fpt_nb.prompt import paper_config
    paper_config('large').save_pretrained(tmp_path/'large')
    seen = []
    def launch(n, **kw): seen.append({k: kw[k] for k in ('steps', 'stage_steps', 'batch_size', 'loss_group')}); raise SystemExit(0)
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    for args in (['--model', str(tmp_path/'large')], ['--model', 'tiny', '--preset', 'large']):
        with pytest.raises(SystemExit):
            cli.main(['run', *args, '--method', 'fpt_cr', '--task', 'toy', '--stage-steps', '2', '2', '2', '4', '--out-dir', str(tmp_path/'x')])
    assert seen == [dict(steps=10, stage_steps=[2, 2, 2, 4], batch_size=32, loss_group=4)] * 2

def test_a_local_folder_named_like_the_hub_id_takes_its_own_shape(tmp_path, monkeypatch):
    """preset_by_name_of_a_folder: a local folder at ./google/t5-large-lm-adapt holding a small T5 took the LARGE preset (30k
    steps, batch 32), said as "has the shape of the paper's T5-LARGE", by its name; a folder is judged by its config."""
    import fpt_nb.cli as cli
    from fpt_nb.prompt import paper_config, tiny_t5_config
    monkeypatch.chdir(tmp_path)
    tiny_t5_config().save_pretrained(tmp_path/'google'/'t5-large-lm-adapt')
    assert cli.paper_preset('google/t5-large-lm-adapt') is None and cli.resolve_preset('auto', 'google/t5-large-lm-adapt') is None
    paper_config('large').save_pretrained(tmp_path/'google'/'t5-large-lm-adapt')   # the real one's shape: the preset, by its config
    assert cli.paper_preset('google/t5-large-lm-adapt') == 'large'

def test_a_run_reads_its_models_config_once(monkeypatch, tmp_path, capsys):
    """config_read_per_check, unreadable_model_loaded: `fpt run` reads the model's config once, however many methods it checks
    (an unreachable hub id retries for tens of seconds at each read), and a config it cannot read stops it there, in one line
    that says why (loading the model read it twice more, then failed on the same error)."""
    import fpt_nb.cli as cli
    calls = []
    def offline(model): calls.append(model); raise OSError(f"no config for backbone {model!r}: the hub is unreachable")
    monkeypatch.setattr('fpt_nb.peft.backbone_config', offline)
    monkeypatch.setattr(cli, 'hub_unreachable', lambda model: None)   # the hub's name may or may not resolve here: the read is what is counted
    monkeypatch.setattr('fpt_nb.run.run_experiment', lambda *a, **k: pytest.fail('the run started'))
    for method in (['pt'], ['pt', 'fpt_ld', 'fpt_cr']):
        code = cli.main(['run', '--model', 'example/unreachable-t5', '--method', *method, '--steps', '8', '--out-dir', str(tmp_path/'r')])
        err = capsys.readouterr().err
        assert code == 2 and err.strip() == ("fpt run: error: model 'example/unreachable-t5' is not a folder here, and its config could "
                                             "not be read from the hub: no config for backbone 'example/unreachable-t5': the hub is unreachable")
    assert calls == ['example/unreachable-t5'] and not (tmp_path/'r').exists()

def test_generations_are_decoded_with_the_official_space_clean_up():
    "decode_without_clean_up: the official code decodes with clean_up_tokenization_spaces=True (' ,' -> ','), which the paper's raw-string metrics see."
    from fpt_nb.train import generate_texts
    class Echo:   # a model whose generation is its input
        def generate(self, ids, mask, **kw): return ids
    ids = TOK('It is , yes . Is it ?')['input_ids']
    assert generate_texts(Echo(), TOK, [dict(input_ids=ids, labels=[1])], 4) == ['It is, yes. Is it?']

def test_record_scores_sample_query_answer_pairs(data_dir):
    """record_scores_sample_rows: the official code builds ReCoRD's validation set with one example per distinct gold
    answer and draws the 1,000 scored examples from those pairs; the local sample's 32 queries hold 46 pairs."""
    from fpt_nb.run import run_scores
    rows = load_examples('record', 'validation', str(data_dir))
    enc = lambda rs, train=False: encode('record', TOK, rs, train=train)
    pairs = enc(rows, train=True)
    assert len(rows) == 32 and len(pairs) == 46
    sc = run_scores(PromptT5(load_t5('tiny')[0], prompt_length=4), 'record', enc, str(data_dir), n=1000, progress=False)
    assert sc.n_tokens['decoder'] == sum(len(p['labels']) for p in pairs)   # every pair's target read by the decoder
    assert sc.source['rows']['rows'] == 32


# ---------------------------------------------------------------------------------------------------------------
# Neuron scores as a run computes and reads them (the session-19 mutation audit: each bug passed every test before)

def test_a_run_ranks_neurons_by_mean_absolute_activation(data_dir):
    """run_scores_signed_mean, score_sample_ignores_seed: a run's scores are the mean |activation| (never negative) of
    a seeded sample of validation rows: what `activation_scores` gives on that sample; another seed, another sample."""
    from fpt_nb.run import run_scores
    from fpt_nb.scores import sample_examples
    from fpt_nb.batches import batches
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    enc = lambda rs, train=False: encode('mnli', TOK, rs, train=train)
    sc = run_scores(pt, 'mnli', enc, str(data_dir), n=6, seed=7, progress=False)
    rows = load_examples('mnli', 'validation', str(data_dir))
    items = enc([rows[i] for i in sample_examples(len(rows), 6, seed=7)])
    ref = activation_scores(pt, batches(items, 64, shuffle=False), n_examples=6, progress=False)
    assert all(torch.equal(sc.scores[s], ref['abs_mean'].scores[s]) for s in sc.scores)
    assert min(v.min().item() for v in sc.scores.values()) >= 0 and any((ref['mean'].scores[s] < 0).any() for s in sc.scores)
    assert sample_examples(len(rows), 6, seed=7) != sample_examples(len(rows), 6, seed=8)
    assert len(sample_examples(len(rows), 1, seed=7)) == 1 and sample_examples(5, 1, how='first') == [0]   # one example is a sample
    with pytest.raises(ValueError, match='the number of examples to score must be at least 1, got 0'): sample_examples(5, 0)

def test_scores_read_exactly_n_examples():
    "scores_take_whole_last_batch: `n_examples=5` over batches of 4 reads the first 5 examples, no more."
    from fpt_nb.batches import batches
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    items = encode('toy', TOK, toy_examples('validation', 8))
    pt.train()
    five = activation_scores(pt, batches(items, 4, shuffle=False), n_examples=5, progress=False)['abs_mean']
    assert pt.model.training   # scores_leave_model_in_eval: scoring runs the model in eval mode, then gives it back as it was
    ref = activation_scores(pt, batches(items[:5], 5, shuffle=False), n_examples=5, progress=False)['abs_mean']
    assert five.n_examples == 5 and all(torch.allclose(five.scores[s], ref.scores[s], atol=1e-6) for s in ref.scores)

def test_official_csv_scores_are_encoder_rows_then_decoder_rows(tmp_path):
    "scores_csv_decoder_first: the official score CSV holds one row per layer, the encoder's first, then the decoder's."
    from fpt_nb.scores import load_scores
    model = load_t5('tiny')[0]   # 4 + 4 layers of 128 neurons
    rows = [[float(100 * i + j) for j in range(128)] for i in range(8)]
    (tmp_path/'s.csv').write_text('\n'.join(','.join(map(str, r)) for r in rows) + '\n')
    sc = load_scores(tmp_path/'s.csv', model)
    assert torch.equal(sc.scores['encoder'], torch.tensor(rows[:4])) and torch.equal(sc.scores['decoder'], torch.tensor(rows[4:]))

def test_a_checkpoint_stored_in_bf16_is_loaded_in_fp32(tmp_path):
    """The paper's model is fp32 (its checkpoint and transformers 4.13's default). transformers 5 keeps a checkpoint's own dtype,
    so before, a T5 folder saved in bf16 trained, scored neurons and evaluated in bf16, on a CPU and with `--no-bf16` too
    (mutants `t5_checkpoint_dtype_kept`, `causal_checkpoint_dtype_kept`)."""
    from fpt_nb.prompt import load_t5
    from fpt_nb.causal import load_causal
    model, tok = load_t5('tiny')
    model.to(torch.bfloat16).save_pretrained(tmp_path/'t5'); tok.save_pretrained(tmp_path/'t5')
    assert {p.dtype for p in load_t5(str(tmp_path/'t5'))[0].parameters()} == {torch.float32}
    load_causal('tiny-llama')[0].to(torch.bfloat16).save_pretrained(tmp_path/'llama')
    assert {p.dtype for p in load_causal(str(tmp_path/'llama'), tokenizer=str(tmp_path/'t5'))[0].parameters()} == {torch.float32}

def test_layers_chosen_by_score_rank_by_their_mean_neuron_score():
    """layer_scores_max: `layer_selection='score'` ranks a layer by the mean score of its FFN neurons: one loud neuron
    does not outrank a layer whose neurons are all active."""
    from fpt_nb.arch import layer_stacks
    enc = torch.zeros(4, 128)
    enc[1, 0] = 100.0    # layer 1: one neuron at 100, mean 0.78
    enc[2] = 1.0         # layer 2: every neuron at 1, mean 1
    enc[3] = 0.5
    sc = NeuronScores(dict(encoder=enc, decoder=torch.ones(4, 128)))
    torch.testing.assert_close(sc.layer_scores('encoder'), enc.mean(1))
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    full = list(pt.model.encoder.block)
    apply_stage(pt.model, Stage(encoder_layers=2, layer_selection='score'), sc)
    assert [full.index(b) for b in layer_stacks(pt.model)['encoder']] == [0, 2]   # layer 0 always, then the best mean

def test_score_files_keep_what_the_scores_are():
    """scores_meta_kind_dropped: a score file read back is the same statistic (`mean` stays `mean`), with its example
    and token counts, how it was made, and the model it was computed on."""
    from fpt_nb.scores import save_scores, load_scores
    from fpt_nb.batches import batches
    import tempfile
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    items = encode('toy', TOK, toy_examples('validation', 6))
    computed = activation_scores(pt, batches(items, 3, shuffle=False), n_examples=6, progress=False)
    with tempfile.TemporaryDirectory() as d:
        for kind, sc in computed.items():
            sc.source.update(split='validation', seed=3)
            back = load_scores(save_scores(sc, Path(d)/f'{kind}.safetensors'), pt.model)
            assert (back.kind, back.n_examples, back.n_tokens, back.source, back.model) == (kind, 6, sc.n_tokens, sc.source, sc.model)
            assert all(torch.equal(back.scores[s], sc.scores[s]) for s in sc.scores)

def test_a_random_score_sample_can_draw_any_row():
    "sampling_never_last_row: `sample_examples` draws distinct rows in order from all of them, the last included."
    from fpt_nb.scores import sample_examples
    draws = [sample_examples(5, 2, seed=s) for s in range(40)]
    assert all(len(set(d)) == 2 and d == sorted(d) and set(d) <= set(range(5)) for d in draws)
    assert set().union(*draws) == set(range(5))
    assert sample_examples(5, 9) == [0, 1, 2, 3, 4] and sample_examples(7, 3, how='first') == [0, 1, 2]

def test_torch_dtype_still_picks_the_precision(tmp_path):
    """Review of d675f54: `load_t5(folder, torch_dtype=torch.bfloat16)` (the name transformers documented until v5, still
    accepted there with a deprecation) is now silently overridden by the fp32 default (`dtype=` wins inside from_pretrained);
    before the commit it loaded bf16. `dtype=` on the built-in tiny models is silently ignored too."""
    from fpt_nb.prompt import load_t5
    model, tok = load_t5('tiny')
    model.to(torch.bfloat16).save_pretrained(tmp_path/'t5'); tok.save_pretrained(tmp_path/'t5')
    assert {p.dtype for p in load_t5(str(tmp_path/'t5'), torch_dtype=torch.bfloat16)[0].parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_t5('tiny', dtype=torch.bfloat16)[0].parameters()} == {torch.bfloat16}
    from fpt_nb.causal import load_causal
    assert {p.dtype for p in load_causal('tiny-llama', dtype=torch.bfloat16)[0].parameters()} == {torch.bfloat16}

@pytest.mark.parametrize('task', ['mnli', 'qqp'])
def test_local_mnli_and_qqp_say_they_are_samples(task, data_dir):
    """mnli_sample_unsaid: a run on the local MNLI or QQP files said nothing of them, while the paper's figures come from the
    full splits: 9,999 of MNLI's 392,702 training examples, 5,000 of its 9,815 matched dev; QQP's dev stood in for by training rows."""
    from fpt_nb.tasks import data_notes
    notes = data_notes(task, data_dir)
    assert [n.split(':')[0] for n in notes] == [f'{task} train', f'{task} validation'], notes


# ---- planted by a mutation audit (session 19): each test below failed under its bug

def test_a_seed_scores_its_own_sample_and_starts_its_own_prompt(tmp_path):
    """run_scores_seed_zero: every seed scored neurons on seed 0's sample (its neuron choice the same, the seeds' spread
    narrower), its summary saying seed 0. t5_prompt_init_ignores_run_seed: every seed started from one prompt."""
    from fpt_nb.run import setup
    s = run_experiment('toy', 'tiny', 'fr', tmp_path/'run', seed=1, steps=1, batch_size=4, prompt_length=4, train_limit=4, eval_limit=2,
                       score_examples=8, progress=False)
    assert s['scores']['seed'] == 1
    p0, p1 = (setup('toy', 'tiny', prompt_length=4, seed=seed)[0].prompt.weight for seed in (0, 1))
    assert not torch.equal(p0, p1)
    assert torch.equal(p1, PromptT5(load_t5('tiny')[0], prompt_length=4, seed=1).prompt.weight)

def test_the_summarys_best_value_is_its_selection_metric(squad_run):
    "summary_best_value_official_metric: `best.value` held the official metric, beside `metric` naming the paper's mean."
    b = read_json(squad_run/'summary.json', 'summary')['best']
    assert b['metric'] == 'paper_mean' and b['value'] == b['metrics']['paper_mean'] != b['metrics'].get(get_task('squad2').metric_name)

def test_a_record_run_counts_its_training_pairs(tmp_path, data_dir):
    "summary_n_train_items_rows: a ReCoRD run trains on one (row, answer) pair per gold answer: n_train_items counts the pairs."
    s = run_experiment('record', 'tiny', 'pt', tmp_path/'run', data_dir=str(data_dir), steps=1, batch_size=4, prompt_length=4,
                       train_limit=8, eval_limit=2, max_input_length=64, progress=False)
    rows = load_examples('record', 'train', str(data_dir), limit=8)
    assert s['n_train'] == 8 and s['n_train_items'] == len(encode('record', load_t5('tiny')[1], rows, train=True)) > 8
