"The GPU benchmark of issue 12 (`benchmarks/gpu_stages.py`) end to end on a tiny T5 on the CPU: its logic, so a GPU session's one run does not fail on first contact."
import json, math, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'benchmarks'))
import gpu_stages

HEADLINE = ('pt_step_ms_before', 'pt_step_ms', 'peft_step_ms', 'tflops_per_s', 'peak_share', 'max_wall_over_flops', 'peak_gib')


def test_gpu_benchmark_runs_on_a_cpu(tmp_path):
    "`--smoke` runs every part a GPU run does except compiling and FlexAttention, and writes the fields issue 12 asks for."
    gpu_stages.main(['--smoke', '--steps', '1', '--warmup', '0', '--out-dir', str(tmp_path)])
    rep = json.loads((tmp_path/'gpu_efficiency.json').read_text())
    assert rep['device'] == 'cpu' and rep['tolerance']['loss_rtol'] == 1e-2 and rep['tolerance']['grad_cos'] == 0.99
    assert rep['versions']['torch'] == gpu_stages.torch.__version__ and 'transformers' in rep['versions'] and 'cpu_capability' in rep['versions']
    assert f"transformers {rep['versions']['transformers']}, CUDA -;" in (tmp_path/'gpu_efficiency.md').read_text()   # (no CUDA on a CPU)
    r = rep['tiny']
    assert 'error' not in r, r.get('error')
    assert all(k in r for k in HEADLINE) and r['peak_share'] is None   # no peak for a CPU
    assert r['pt_step_ms_before'] > 0 and r['pt_step_ms'] > 0 and r['peft_step_ms'] > 0 and r['tflops_per_s'] > 0
    assert [l['name'] for l in r['levers']] == ['one wait per step', '+ bf16 weights', '+ bias once, SDPA', '+ fused SDPA']
    assert all(l['cr_step_ms'] > 0 for l in r['levers']) and r['cr_step_ms_before'] > 0 and r['best_by'] == 'full model + smallest CR stage'
    assert r['sdpa_probe']['FLASH_ATTENTION'] > 0 and r['sdpa_probe']['MATH'] > 0   # a CPU's two kernels; the CUDA ones refused
    assert r['sdpa_probe']['EFFICIENT_ATTENTION'].startswith('RuntimeError: No viable backend')
    assert all(l['ok'] for l in r['levers']), [l.get('agreement') or l.get('error') for l in r['levers']]
    assert r['levers'][0]['agreement']['loss_rdiff'] == 0 and r['levers'][1]['agreement']['grad_cos'] > 1 - 1e-9   # same arithmetic
    assert r['best_lever'] in [l['name'] for l in r['levers']]
    assert [s['stage'] for s in r['stages']] == [name for name, _ in gpu_stages.stages('tiny')]
    pt, partial = r['stages'][0], r['stages'][1:]
    assert pt['flops'] == r['step_flops'] and all(0 < s['flops'] < pt['flops'] for s in partial)
    assert math.isclose(r['max_wall_over_flops'], max(s['wall_over_flops'] for s in partial))
    assert set(r['profile']) == {'stage', 'before', 'after'} and r['profile']['before']['top']
    assert (tmp_path/'gpu_profile_tiny.txt').read_text().count('old step') == 1
    assert 'summary' in (tmp_path/'gpu_efficiency.log').read_text()
    md = (tmp_path/'gpu_efficiency.md').read_text()   # the results page's table
    assert f"| tiny | {r['pt_step_ms_before']:.1f} | {r['pt_step_ms']:.1f} | " in md and md.count('| CR ') == 3
    assert all(f"| {l['name']} | {l['step_ms']:.1f} | " in md for l in r['levers']) and 'profile after' in md
    assert r['skipped'] == [f'tiny {name} (compiling is measured on a GPU; --compile-on-cpu to try)'
                            for name in ('+ compiled blocks', '+ FlexAttention', '+ CUDA graphs', '+ one graph per stack')]

    assert 'old step (plain_step)' in (tmp_path/'gpu_profile_tiny.txt').read_text()   # the trainer's step before FastStep

def test_one_graph_per_stack_is_timed_after_the_table(tmp_path, monkeypatch):
    """(benchmarks/gpu_stages.py) A stack compiles for a minute or more, and again at each stage: it is timed after every
    size's table, on top of the chosen lever, first at the smallest CR stage, and checked there and at the full model
    against the old step from the same prompt (a first try compared it with the prompt the last stage's steps had
    trained, and disagreed). Its row is marked, is no candidate, and leaves the chosen lever and the table alone.
    Compiling is stood in for by the uncompiled function: the logic, in seconds."""
    import torch
    monkeypatch.setattr(torch, 'compile', lambda f, **k: f)
    gpu_stages.main(['--smoke', '--compile-on-cpu', '--steps', '1', '--warmup', '0', '--out-dir', str(tmp_path),
                     '--levers', '+ compiled blocks', '+ one graph per stack'])
    r = json.loads((tmp_path/'gpu_efficiency.json').read_text())['tiny']
    assert [l['name'] for l in r['levers']] == ['+ compiled blocks', '+ one graph per stack'] and r['best_lever'] == '+ compiled blocks'
    late = r['levers'][1]
    assert late['late'] and late['ok'] and late['options'] == dict(r['best_options'], compile_mode='reduce-overhead', compile_scope='stack')
    assert late['cr_agreement']['ok'] and late['agreement']['ok'] and late['cr_step_ms'] > 0 and late['step_ms'] > 0
    assert len(r['stages']) == len(gpu_stages.stages('tiny')) and 'errors' not in r
    md = (tmp_path/'gpu_efficiency.md').read_text()
    assert f"| + one graph per stack (after the table) | {late['step_ms']:.1f} | {late['cr_step_ms']:.1f} |" in md and '| no: timed after the table |' in md
    assert 'after the table: + one graph per stack' in (tmp_path/'gpu_efficiency.log').read_text()

def test_the_trainer_check_runs_kills_and_resumes(tmp_path):
    """(benchmarks/gpu_trainer_check.sh) The GPU session's end-to-end check, on this CPU in a few short runs: the demo with and
    without the fast step, then an FPT_CR run sent SIGTERM after a checkpoint past KILL_AT and run again, which resumes
    there; the log summarises every run folder, and the folders are packed without their checkpoints."""
    import shutil, tarfile
    if not shutil.which('bash'): pytest.skip('needs bash')
    env = dict(os.environ, PYTHON=sys.executable, KILL_AT='20', CHECKPOINT_EVERY='10')
    r = subprocess.run(['bash', str(ROOT/'benchmarks'/'gpu_trainer_check.sh'), str(tmp_path), '--steps', '60', '--device', 'cpu',
                        '--train-limit', '64', '--eval-limit', '16'], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path/'check.log').read_text()
    assert 'SIGTERM at checkpoint' in log and 'resumed run: exit 0' in log, log[-3000:]
    lines = {l.split(':')[0]: l for l in log.splitlines() if l.startswith(('fast/', 'no-fast/', 'killed:'))}
    assert set(lines) == {'fast/pt', 'fast/fpt_cr', 'no-fast/pt', 'no-fast/fpt_cr', 'killed'}, sorted(lines)
    at = int(re.search(r'resumed at \[(\d+)\]', lines['killed']).group(1))
    assert 20 <= at < 60 and 'steps 60' in lines['killed']
    assert all('fast False, compile False' in l for l in lines.values())   # (a CPU: the fast step stays off unless asked)
    with tarfile.open(tmp_path/'runs.tgz') as tar: names = tar.getnames()
    assert any(n.endswith('killed/summary.json') for n in names) and not any('checkpoints' in n for n in names)

def test_a_part_that_fails_loses_nothing_else(tmp_path, monkeypatch):
    """(A bug of benchmarks/gpu_stages.py, outside the mutation table, which plants bugs in fpt_nb.) One exception after
    the levers (a stage, a profile) replaced everything measured for the size with the error, and the files were written
    only when a size ended (a kill at the time limit lost it). Now a failed part is recorded and the rest measured, and
    the files are rewritten after every part."""
    real, written = gpu_stages.apply_stage, []
    def fails_on_fr(model, st, scores=None):
        if st.describe().startswith('enc ffn'): raise RuntimeError('planted')
        return real(model, st, scores)
    monkeypatch.setattr(gpu_stages, 'apply_stage', fails_on_fr)
    real_md = gpu_stages.markdown_report
    monkeypatch.setattr(gpu_stages, 'markdown_report', lambda rep: written.append(json.loads(json.dumps(rep))) or real_md(rep))
    gpu_stages.main(['--smoke', '--steps', '1', '--warmup', '0', '--out-dir', str(tmp_path)])
    r = json.loads((tmp_path/'gpu_efficiency.json').read_text())['tiny']
    assert r['errors'] == [f'tiny stage FR {w}: RuntimeError: planted' for w in (32, 64, 96)]
    assert [s['stage'] for s in r['stages']] == ['PT', 'LD 1', 'LD 2', 'LD 3', 'CR 1/32', 'CR 2/64', 'CR 3/96']
    assert r['pt_step_ms'] > 0 and r['bare_bf16_sdpa_ms'] > 0 and 'after' in r['profile'] and 'error' not in r
    assert 'failed (the rest was measured): tiny stage FR 32' in (tmp_path/'gpu_efficiency.md').read_text()
    assert len(written) > 10 and 'pt_step_ms_before' in written[1]['tiny'], len(written)   # after the old step, not only at the end


# The GPU image (/work/.library/device/KINDS.md) holds torch, transformers, accelerate, peft, safetensors, numpy,
# matplotlib and tqdm, but not these: both GPU benchmarks must run there all the same.
MISSING_ON_THE_GPU_IMAGE = ('datasets', 'rouge_score', 'rouge')

def test_gpu_benchmarks_run_without_the_packages_the_gpu_image_lacks(tmp_path):
    "Both benchmarks' CPU smoke runs in a fresh interpreter where the packages the GPU image lacks cannot be imported."
    block = (f"import sys, importlib.abc\n"
             f"class Block(importlib.abc.MetaPathFinder):\n"
             f"    def find_spec(self, name, path=None, target=None):\n"
             f"        if name.split('.')[0] in {MISSING_ON_THE_GPU_IMAGE!r}: raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)\n"
             f"sys.meta_path.insert(0, Block())\n"
             f"sys.path.insert(0, {str(ROOT/'benchmarks')!r})\n"
             f"import gpu_stages, gpu_stages_causal\n"
             f"gpu_stages.main(['--smoke', '--steps', '1', '--warmup', '0', '--levers', 'one wait per step', '--out-dir', {str(tmp_path)!r}])\n"
             f"gpu_stages_causal.main(['--sizes', 'tiny', '--batch', '2', '--input-len', '8', '--steps', '1', '--dtype', 'float32', "
             f"'--out', {str(tmp_path/'causal.json')!r}])\n")
    r = subprocess.run([sys.executable, '-c', block], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-3000:]
    t5, causal = (json.loads(p.read_text()) for p in (tmp_path/'gpu_efficiency.json', tmp_path/'causal.json'))
    assert 'error' not in t5['tiny'], t5['tiny'].get('error')
    assert t5['tiny']['pt_step_ms'] > 0 and [s['stage'] for s in t5['tiny']['stages']] == [n for n, _ in gpu_stages.stages('tiny')]
    # (fpt_nb imports none of them at the start now, so a benchmark may need no stand-in at all)
    assert set(t5['stand_ins']) <= set(MISSING_ON_THE_GPU_IMAGE) and set(causal['stand_ins']) <= set(MISSING_ON_THE_GPU_IMAGE)
    assert len(causal['results']) == 11   # PEFT's race and the ten stages


# The fast step's own forward against the stock model, in fp32 (the session-19 mutation audit: these bugs passed every test)

import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.fast import t5_loss, pad_batch

@pytest.mark.parametrize('name', ['tiny', 'tiny-relu'])
@pytest.mark.parametrize('attention', ['eager', 'sdpa', 'flex'])
@pytest.mark.filterwarnings('ignore:.*flex_attention')   # (unfused on a CPU: torch says so)
def test_fast_forward_is_the_stock_loss_in_fp32(name, attention):
    """fast_decoder_not_causal, fast_loss_no_decoder_scaling: our T5 forward (attention biases built once, eager or SDPA)
    gives the stock model's loss and per-token losses to fp32 rounding, on the gated T5 v1.1 (`tiny`) and on T5 v1.0
    with tied embeddings (`tiny-relu`, whose decoder output is scaled); targets of several tokens, padded."""
    torch.manual_seed(0)
    pt = PromptT5(load_t5(name)[0], prompt_length=4)
    ids, keep = torch.randint(3, 300, (3, 9)), torch.ones(3, 9, dtype=torch.long)
    keep[1, 6:] = 0
    labels = torch.randint(3, 300, (3, 6)); labels[0, 3:] = -100
    with torch.no_grad():
        ref = pt(ids, keep, labels=labels)
        ours = t5_loss(pt, ids, keep, labels, attention)
        tok = t5_loss(pt, ids, keep, labels, attention, reduction='none')
    assert torch.allclose(ours, ref.loss, rtol=1e-5), (ours, ref.loss)
    stock_tok = torch.nn.functional.cross_entropy(ref.logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction='none')
    assert torch.allclose(tok.flatten(), stock_tok, rtol=1e-4, atol=1e-5)

def test_bucket_padding_is_masked_and_ignored():
    "bucket_pads_targets_with_0: padding for shape buckets adds masked input positions and ignored (-100) target positions."
    b = dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 5, dtype=torch.long), labels=torch.ones(2, 3, dtype=torch.long))
    p = pad_batch(b, 8, prompt_length=4)
    assert p['input_ids'].shape == (2, 12) and p['attention_mask'][:, 5:].sum() == 0 and (p['attention_mask'][:, :5] == 1).all()
    assert p['labels'].shape == (2, 8) and (p['labels'][:, 3:] == -100).all() and (p['labels'][:, :3] == 1).all()

@pytest.mark.parametrize('name', ['tiny', 'tiny-llama'])
def test_a_loss_group_on_the_stock_forward_computes_no_discarded_loss(monkeypatch, name):
    """loss_group_stock_forward_computes_loss: with a loss group the step takes per-token losses from the prompt model's
    `logits`; a forward given `labels` would also compute a mean loss that the step throws away (a cross-entropy over
    batch x targets x vocabulary per micro-batch, for nothing). The same loss, one cross-entropy per micro-batch, on
    T5 and on a decoder-only model."""
    from fpt_nb.batches import collate
    from fpt_nb.fast import FastStep
    from fpt_nb.causal import load_causal, PromptCausalLM
    pt = PromptT5(load_t5(name)[0], prompt_length=4) if name == 'tiny' else PromptCausalLM(load_causal(name)[0], prompt_length=4)
    items = [dict(input_ids=[5, 6, 7 + i], labels=[8, 9 + i, 1][:2 + i % 2]) for i in range(4)]
    opt = torch.optim.SGD([pt.prompt.weight], lr=1.0)
    step = FastStep(pt, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 2, 1e9, lambda *a: 0, loss_group=4)
    with torch.no_grad(): ref = pt(**collate(items)).loss   # a group of 4 over 4 examples: the token mean of the batch
    ce, calls = torch.nn.functional.cross_entropy, []
    monkeypatch.setattr(torch.nn.functional, 'cross_entropy', lambda *a, **k: calls.append(k.get('reduction', 'mean')) or ce(*a, **k))
    loss, _, problem = step(iter([collate(items[:2]), collate(items[2:])]), {})
    assert problem is None and calls == ['none', 'none'], calls
    assert math.isclose(loss, float(ref), rel_tol=1e-5), (loss, ref)

@pytest.mark.parametrize('loss_group', [None, 4])
def test_the_fast_steps_gradient_over_micro_batches_is_the_batchs(loss_group):
    """fast_micro_batch_scaling_swapped: a step of two micro-batches accumulates the gradient of the batch's loss: each
    micro-batch's mean divided by their number, or (with a loss group) the group-weighted losses as they are. With the two
    cases' scalings swapped, the step took twice the gradient without a group, half with one; its loss read the same."""
    from fpt_nb.batches import collate
    from fpt_nb.fast import FastStep
    torch.manual_seed(0)
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    items = [dict(input_ids=[5, 6, 7 + i], labels=[8, 9 + i, 1][:2 + i % 2]) for i in range(4)]
    halves = [collate(items[:2]), collate(items[2:])]
    w0 = pt.prompt.weight.detach().clone()
    if loss_group: ref = pt(**collate(items)).loss   # a group of the whole batch: its token mean
    else: ref = sum(pt(**h).loss for h in halves) / 2   # the micro-batches' means, averaged
    ref.backward(); grad = pt.prompt.weight.grad.clone(); pt.prompt.weight.grad = None
    opt = torch.optim.SGD([pt.prompt.weight], lr=1.0)
    step = FastStep(pt, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 2, 1e9, lambda *a: 0, loss_group=loss_group)
    loss, _, problem = step(iter(halves), {})
    assert problem is None and math.isclose(loss, float(ref), rel_tol=1e-5), (loss, ref)
    assert torch.allclose(w0 - pt.prompt.weight.detach(), grad, rtol=1e-4, atol=1e-7)


def test_casting_to_bf16_leaves_a_tied_embedding_alone():
    """cast_tied_linear: on a model whose output head shares the input embedding's weight (tiny-relu, like T5 v1.0), the
    fast step's cast of the frozen linear layers to bf16 leaves that weight in fp32 (the prompt is looked up beside it)."""
    import torch
    from fpt_nb.prompt import load_t5
    from fpt_nb.fast import cast_linears
    model = load_t5('tiny-relu')[0]
    assert model.lm_head.weight is model.get_input_embeddings().weight
    n = cast_linears(model)
    assert n > 0 and model.get_input_embeddings().weight.dtype == torch.float32
    assert model.encoder.block[0].layer[0].SelfAttention.q.weight.dtype == torch.bfloat16

def test_fast_options_that_cannot_work_are_refused_by_name():
    "bf16_weights_without_autocast: bf16 weights without bf16 autocast were let through to fail at the first step on a dtype mismatch."
    import pytest
    from fpt_nb.fast import FastOptions
    with pytest.raises(ValueError, match='bf16_weights needs bf16 autocast'): FastOptions(bf16_weights=True, attention='sdpa').check('cpu', False)
    with pytest.raises(ValueError, match='compile and bucket work on our T5 forward'): FastOptions(compile=True).check('cpu', False)
    assert FastOptions(attention='sdpa').check('cpu', False).attention == 'sdpa'

def test_a_loss_group_without_target_tokens_gets_a_finite_weight():
    """empty_loss_group_divides_by_zero: a group whose labels are all ignored gets a finite weight (on no token losses), not
    a division by 0 that makes the whole loss NaN; the other group is its own tokens' mean over the 2 groups."""
    import pytest
    import torch
    from fpt_nb.fast import loss_weights
    w = loss_weights([torch.full((2, 3), -100), torch.ones(2, 3, dtype=torch.long)], 2)
    assert all(torch.isfinite(x).all() for x in w) and w[1].tolist() == pytest.approx([1 / 12, 1 / 12])
