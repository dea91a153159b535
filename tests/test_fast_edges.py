"""Edges of the fast step (`fpt_nb.fast`, issue 12's CPU part) that a seventh mutation audit (session 23) found no pytest test
held (the notebook tests some of them: these are the ones `tools/mutants.py` can count). Each test below failed under the bug
named in its docstring."""
import pytest, torch, torch.nn as nn
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.fast import (FastOptions, fast_options, pad_batch, agreement, cast_linears, t5_loss, TOLERANCES, CUDA_DEFAULTS)

pytestmark = pytest.mark.usefixtures('one_thread')   # (conftest.py)

def tiny(name='tiny') -> PromptT5:
    torch.manual_seed(0)
    return PromptT5(load_t5(name)[0], prompt_length=4)

def test_the_fast_step_on_a_cpu_is_sdpa_alone():
    """fast_cpu_attention_eager, fast_bucket_without_compile: `--fast` on a CPU pulls SDPA (and bf16 weights where autocast is on) and
    nothing that needs compiling: no padding bucket, no compile; a GPU's bucket came with it though nothing compiled."""
    pt = tiny()
    assert fast_options(pt, 'cpu', False, fast=True) == FastOptions(attention='sdpa')
    assert fast_options(pt, 'cpu', True, fast=True) == FastOptions(bf16_weights=True, attention='sdpa')
    assert fast_options(pt, 'cpu', True, fast=True, compile=True) == FastOptions(bf16_weights=True, attention='sdpa', compile=True,
                                                                                   compile_mode=CUDA_DEFAULTS['compile_mode'], bucket=CUDA_DEFAULTS['bucket'])
    assert fast_options(pt, 'cpu', False) == FastOptions()   # (None: off on a CPU)

@pytest.mark.parametrize('options, device, says', [
    (FastOptions(bucket=8), 'cpu', 'compile and bucket work on our T5 forward'),
    (FastOptions(attention='sdpa', bucket=-8), 'cpu', r'bucket must be 0 \(no padding\) or a positive multiple, got -8'),
    (FastOptions(attention='flex'), 'cuda', "attention 'flex' needs CUDA and compile=True"),
    (FastOptions(attention='eager', fused_sdpa=True), 'cpu', "fused_sdpa limits SDPA's kernels: give attention 'sdpa'"),
    (FastOptions(attention='sdpa', compile_scope='stack'), 'cpu', "compile_scope 'stack' says what is compiled: give compile=True too"),
    (FastOptions(attention='sdpa', compile=True, compile_scope='model'), 'cpu', "unknown compile_scope 'model': expected one of"),
])
def test_fast_options_that_cannot_work_are_refused(options, device, says):
    """fast_bucket_without_attention, fast_bucket_negative_ok, fast_flex_without_compile, fast_fused_sdpa_on_eager, fast_scope_without_compile, fast_scope_unknown: padding buckets without our forward (the stock one
    ignores them), a negative bucket, and FlexAttention uncompiled on a GPU (unfused: slower than SDPA, and its backward
    untried) were taken, to fail or do nothing later."""
    with pytest.raises(ValueError, match=says): options.check(device, False)

def test_padding_multiples_must_be_positive():
    "fast_pad_multiple_zero_ok: a multiple of 0 failed with a ZeroDivisionError that named nothing."
    b = dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 5, dtype=torch.long), labels=torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match='padding multiples must be positive, got 0 and 8'): pad_batch(b, 0)
    with pytest.raises(ValueError, match='padding multiples must be positive, got 8 and 0'): pad_batch(b, 8, target_multiple=0)

def test_agreement_fails_outside_its_tolerance():
    """fast_grad_cos_any, fast_grad_rtol_any, fast_loss_rtol_loose: `agreement` (the benchmark's and the tests' check of the fast step against the reference)
    passed any gradient pointing the same half-space (fp32), or any cosine above 0 (bf16); with fp32's loss tolerance
    loosened to bf16's (1e-2), an fp32 loss 1e-4 off the reference passed."""
    loss, grad = torch.tensor(2.0), torch.tensor([1.0, 2.0, 3.0])
    assert agreement(loss, grad, loss, grad)['ok'] and agreement(loss, grad, loss, grad, 'bf16')['ok']
    off = grad + torch.tensor([0.0, 0.0, 0.01])   # max relative difference 1/300 > 1e-4; cosine still 0.99999
    assert not agreement(loss, off, loss, grad)['ok'] and agreement(loss, off, loss, grad, 'bf16')['ok']
    turned = torch.tensor([3.0, 2.0, 1.0])        # cosine 10/14
    assert not agreement(loss, turned, loss, grad, 'bf16')['ok']
    assert TOLERANCES['bf16']['grad_cos'] > 10 / 14
    near, far = torch.tensor(2.0002), torch.tensor(2.04)   # losses 1e-4 and 2e-2 off, relative
    assert not agreement(near, grad, loss, grad)['ok'] and agreement(near, grad, loss, grad, 'bf16')['ok']
    assert not agreement(far, grad, loss, grad, 'bf16')['ok']

def test_a_trainable_linear_is_never_cast():
    """fast_cast_trainable_ok: `cast_linears` casts frozen weights only; a trainable linear was cast to bf16, its fp32 master lost.
    A refusal casts nothing: it cast the frozen layers before the trainable one, then refused, leaving the model half cast."""
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    m[0].weight.requires_grad_(False); m[0].bias.requires_grad_(False)
    with pytest.raises(ValueError, match=r'a trainable linear layer \(4, 4\) would be cast to torch.bfloat16'): cast_linears(m)
    assert m[0].weight.dtype == m[0].bias.dtype == torch.float32
    # cast_check_skips_first (the twelfth audit): the first linear layer trainable, the rest frozen: refused all the same
    first = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)); first[1].requires_grad_(False)
    with pytest.raises(ValueError, match=r'a trainable linear layer \(4, 4\) would be cast'): cast_linears(first)
    assert first[0].weight.dtype == first[1].weight.dtype == torch.float32
    m[1].requires_grad_(False)
    assert cast_linears(m) == 2 and m[1].weight.dtype == torch.bfloat16

@pytest.mark.parametrize('attention', ['eager'])
def test_the_fast_forward_drops_out_where_the_stock_one_does(attention):
    """fast_encoder_embed_dropout, fast_encoder_final_dropout, fast_decoder_embed_dropout, fast_decoder_final_dropout: our T5 forward applies the
    stacks' dropout where the stock one does (the paper trains with none, so every test ran without): with dropout 0.1 in
    training mode and one seed, our loss is the stock model's."""
    pt = tiny()
    for m in pt.modules():
        if isinstance(m, nn.Dropout): m.p = 0.1
    pt.train()
    ids, keep = torch.randint(3, 300, (3, 9), generator=torch.Generator().manual_seed(1)), torch.ones(3, 9, dtype=torch.long)
    labels = torch.randint(3, 300, (3, 4), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.manual_seed(5); ref = pt(ids, keep, labels=labels).loss
        torch.manual_seed(5); ours = t5_loss(pt, ids, keep, labels, attention)
        torch.manual_seed(6); other = t5_loss(pt, ids, keep, labels, attention)
    assert torch.allclose(ours, ref, rtol=1e-5), (ours, ref)
    assert not torch.allclose(other, ref, rtol=1e-3)   # (the dropout is live: another seed, another loss)

def test_sdpa_under_bf16_autocast_gets_its_mask_in_bf16():
    """fast_sdpa_mask_fp32: under bf16 autocast SDPA's additive mask is built in bf16, the dtype of its queries; built in fp32 it
    costs twice the memory per head and position, and torch's fused kernels refuse a mask of another dtype."""
    from fpt_nb.fast import attention_biases
    pt = tiny()
    keep = torch.ones(2, 6, dtype=torch.long); keep[1, 4:] = 0
    with torch.autocast('cpu', dtype=torch.bfloat16):
        b = attention_biases(pt.model, keep, 3, 'sdpa')
    assert b['encoder'].dtype == b['decoder'].dtype == b['cross'].dtype == torch.bfloat16
    assert attention_biases(pt.model, keep, 3, 'sdpa')['encoder'].dtype == torch.float32   # (no autocast: fp32)

def test_sdpa_masks_are_laid_out_for_the_fused_cuda_kernels():
    """fast_encoder_bias_strided: the masks SDPA gets are contiguous, their last dimension at
    stride 1. `compute_bias` puts the heads innermost, and SDPA's fused CUDA kernels refuse a mask laid out so: on an
    H200 every encoder layer then ran SDPA's math kernel (5.9 ms forward and backward on LARGE against cuDNN's 1.2 ms).
    A CPU's kernel takes either layout, so only the layout shows it here."""
    from fpt_nb.fast import attention_biases
    pt = tiny()
    keep = torch.ones(2, 6, dtype=torch.long); keep[1, 4:] = 0
    for autocast in (False, True):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            b = attention_biases(pt.model, keep, 3, 'sdpa')
        assert pt.model.config.num_heads > 1 and b['encoder'].shape == (2, pt.model.config.num_heads, 6, 6)
        assert b['encoder'].is_contiguous() and b['decoder'].is_contiguous() and b['cross'].stride(-1) == 1


def test_a_fast_run_casts_what_an_expansion_brings_back_and_times_each_stage_once(tmp_path):
    """fast_expansion_not_cast, fast_first_steps_every_step, fast_first_step_time_zero: with bf16 weights, the layers and FFN rows an expansion brings back come in
    fp32 (where the model was partial when the step was built) and are cast at the stage's first step; the first step of each stage (where compiling shows) is timed once per stage."""
    from fpt_nb.tasks import toy_examples
    from fpt_nb.batches import encode
    from fpt_nb.partial import FULL, compound_reduction, layer_dropping, apply_stage
    from fpt_nb.scores import NeuronScores
    from fpt_nb.train import Trainer, TrainConfig, Phase
    pt, tok = tiny(), load_t5('tiny')[1]
    scores = NeuronScores({s: torch.rand(4, 128, generator=torch.Generator().manual_seed(1)) for s in ('encoder', 'decoder')})
    phases = [Phase(compound_reduction(2, 64), 2), Phase(layer_dropping(3), 2), Phase(FULL, 2)]
    apply_stage(pt.model, phases[0].stage, scores)   # partial already (as a notebook may leave it): the full layers set aside stay fp32
    tr = Trainer(pt, phases, encode('toy', tok, toy_examples('train', 16)), TrainConfig(batch_size=4, prompt_length=4, bf16=True, fast=True),
                 tmp_path/'run', scores=scores, progress=False)
    import time
    t0 = time.perf_counter(); tr.fit(); took = time.perf_counter() - t0
    assert tr.stepper.options == FastOptions(bf16_weights=True, attention='sdpa')
    assert [s.describe() for s, _ in tr.stepper.first_steps] == ['enc 2L, enc ffn 64', 'enc 3L', 'full']
    assert all(0 < sec < took for _, sec in tr.stepper.first_steps)   # first_step_clock_added (session 24): each a step's seconds
    frozen = {m.weight.dtype for m in pt.model.modules() if isinstance(m, nn.Linear) and m.weight is not pt.model.get_input_embeddings().weight}
    assert frozen == {torch.bfloat16}, frozen

def test_a_gradient_that_overflows_is_named_and_undone(tmp_path):
    """fast_norm_not_checked: a finite loss whose gradient overflowed (an infinite norm) was not caught as such: the update ran, and
    the run stopped on a prompt gone non-finite, blaming the learning rate. It stops on the gradient, named, with the prompt
    and optimizer state as they were."""
    from fpt_nb.tasks import toy_examples
    from fpt_nb.batches import encode
    from fpt_nb.partial import FULL
    from fpt_nb.train import Trainer, TrainConfig, Phase
    pt, tok = tiny(), load_t5('tiny')[1]
    before = pt.prompt.weight.detach().clone()
    pt.prompt.weight.register_hook(lambda g: torch.full_like(g, float('inf')))
    tr = Trainer(pt, [Phase(FULL, 2)], encode('toy', tok, toy_examples('train', 8)), TrainConfig(batch_size=4, prompt_length=4),
                 tmp_path/'run', progress=False)
    with pytest.raises(Exception, match=r"the prompt's gradient norm became inf \(loss [0-9.]+\) at step 1"): tr.fit()
    assert torch.equal(pt.prompt.weight.detach(), before) and not tr.opt.state.get(pt.prompt.weight)

def test_compiling_raises_dynamos_recompile_limit_and_never_lowers_it():
    """fast_recompile_limit_lowered: a compiled step raises dynamo's per-function recompile limit to RECOMPILE_LIMIT (FFN widths x padded
    lengths over a schedule), and leaves a higher one as it is; lowered, a schedule's later stages ran uncompiled. (Nothing is
    compiled here: torch.compile wraps the runners, and compiles at their first call.)"""
    import torch._dynamo
    from fpt_nb.fast import FastStep, RECOMPILE_LIMIT, encoder_block, decoder_block
    dyn = torch._dynamo.config
    name = 'recompile_limit' if hasattr(dyn, 'recompile_limit') else 'cache_size_limit'
    was = getattr(dyn, name)
    pt = tiny()
    opt = torch.optim.SGD([pt.prompt.weight], lr=0.1)
    make = lambda: FastStep(pt, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), 1, 1.0, lambda *a: 0,
                            options=FastOptions(attention='sdpa', compile=True))
    try:
        for before, after in ((8, RECOMPILE_LIMIT), (10 * RECOMPILE_LIMIT, 10 * RECOMPILE_LIMIT)):
            setattr(dyn, name, before)
            step = make()
            assert getattr(dyn, name) == after
            # compiled_runners_skip_first (the twelfth audit): both runners compiled, the encoder's first (the step unpacks them)
            assert [getattr(r, '_torchdynamo_orig_callable', None) for r in step.runners] == [encoder_block, decoder_block]
    finally: setattr(dyn, name, was)

def test_a_loss_group_of_one_weighs_each_example_by_its_own_tokens():
    """loss_group_one_refused (`group <= 1`): a loss group of 1 (the official XL XSum script's per-GPU batch, `--preset xl
    --task xsum`) was refused; each example is its own group: weight 1 / (its target tokens x the examples)."""
    from fpt_nb.fast import loss_weights
    labels = [torch.tensor([[5, 6, 1, -100], [5, 1, -100, -100]]), torch.tensor([[5, 6, 7, 1], [-100, -100, -100, -100]])]
    w = loss_weights(labels, 1)
    assert torch.cat(w).tolist() == pytest.approx([1 / 12, 1 / 8, 1 / 16, 1 / 4])   # 3, 2, 4 and 0 (counted as 1) tokens, 4 examples
    with pytest.raises(ValueError, match='cannot be cut into loss groups of 0'): loss_weights(labels, 0)

def test_the_gpu_defaults_never_reach_a_cpu(monkeypatch):
    """cpu_compiled_by_default, cpu_gets_gpu_attention: whatever issue 12's GPU figures make the CUDA defaults (compiling, a
    fused attention), a CPU run keeps the plain path: not compiled unless asked, and SDPA even where compiling is asked."""
    import fpt_nb.fast as fast
    monkeypatch.setitem(fast.CUDA_DEFAULTS, 'compile', True)
    monkeypatch.setitem(fast.CUDA_DEFAULTS, 'attention', 'flex')
    pt = tiny()
    assert fast.fast_options(pt, 'cpu', False, fast=True) == FastOptions(attention='sdpa')   # (not compiled, no buckets)
    assert fast.fast_options(pt, 'cpu', False, fast=True, compile=True).attention == 'sdpa'


# Issue 12's GPU session (4 December): the levers measured on an H200 and the fixes it asked for

def _sgd_step(pt, options, n_micro=2):
    "One `FastStep` over 4 toy examples in `n_micro` micro-batches: its loss and the prompt's move."
    from fpt_nb.fast import FastStep
    from fpt_nb.tasks import toy_examples
    from fpt_nb.batches import encode, collate
    items = encode('toy', load_t5('tiny')[1], toy_examples('train', 4))
    start = pt.prompt.weight.detach().clone()
    opt = torch.optim.SGD([pt.prompt.weight], lr=1.0)
    step = FastStep(pt, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), n_micro, 1e9, lambda *a: 0, options=options)
    k = 4 // n_micro
    loss, _, problem = step(iter([collate(items[i:i + k]) for i in range(0, 4, k)]), {})
    assert problem is None
    moved = start - pt.prompt.weight.detach()
    with torch.no_grad(): pt.prompt.weight.copy_(start)
    return loss, moved

def test_fused_sdpa_bars_the_math_kernel_in_the_forward_only():
    """fast_fused_sdpa_ignored: `fused_sdpa` keeps SDPA off its math kernel during each micro-batch's forward (on an H200 the
    math kernel took 5.9 ms a LARGE encoder layer against cuDNN's 1.1), and only there; on a CPU, where one fused
    kernel serves both, the step is the same bits."""
    pt = tiny()
    seen = []
    hook = pt.model.encoder.block[0].layer[0].SelfAttention.register_forward_hook(lambda *a: seen.append(torch.backends.cuda.math_sdp_enabled()))
    try: plain, fused = _sgd_step(pt, FastOptions(attention='sdpa')), _sgd_step(pt, FastOptions(attention='sdpa', fused_sdpa=True))
    finally: hook.remove()
    assert seen == [True, True, False, False] and torch.backends.cuda.math_sdp_enabled()
    assert plain[0] == fused[0] and torch.equal(plain[1], fused[1])

def test_cuda_graphs_start_a_new_step_before_each_micro_batch(monkeypatch):
    """fast_cudagraph_mark_missing: with CUDA graphs (compile_mode 'reduce-overhead') each micro-batch's forward is marked as a new
    step of the graphs: unmarked, the 24 calls of one compiled block before their backward kept CUDA graphs off their fast
    path on an H200 (130 ms a LARGE step, no faster than without graphs; marked, 88 ms). Without graphs nothing is marked."""
    pt, calls, marks = tiny(), [], []
    hook = pt.model.encoder.block[0].layer[0].SelfAttention.register_forward_hook(lambda *a: calls.append(1))
    monkeypatch.setattr(torch, 'compile', lambda f, mode=None: f)   # (no inductor in a CPU test: the marks are the point)
    monkeypatch.setattr(torch.compiler, 'cudagraph_mark_step_begin', lambda: marks.append(len(calls)))
    try:
        _sgd_step(pt, FastOptions(attention='sdpa', compile=True, compile_mode='reduce-overhead'))
        _sgd_step(pt, FastOptions(attention='sdpa', compile=True))
    finally: hook.remove()
    assert marks == [0, 1], marks

def test_the_gpu_defaults_are_the_levers_measured_fastest():
    """fast_gpu_defaults_uncompiled, fast_gpu_defaults_no_graphs, fast_gpu_defaults_stack_scope: on a GPU a prompt-tuned T5 gets the lever set the H200 run found
    fastest (`results/perf/gpu_efficiency.json`: compiled blocks replayed as CUDA graphs, 86.6 ms a LARGE step against 121
    compiled alone and 383 for the old step). `fused_sdpa` is left to torch (its probe: the same fused kernel, as fast).
    One graph per stack is on only where it measured faster than a graph per block at the smallest CR stage (it took the
    same 38.3 ms there, after a 97 s compile that each stage repeats)."""
    import json
    from pathlib import Path
    rep = json.loads((Path(__file__).resolve().parents[1]/'results'/'perf'/'gpu_efficiency.json').read_text())
    best = rep['large']['best_options']
    o = fast_options(tiny(), 'cuda', autocast=True)
    assert (o.bf16_weights, o.attention, o.compile, o.compile_mode) == (best['bf16_weights'], best['attention'], best['compile'], best['compile_mode'])
    assert o.compile and o.compile_mode == 'reduce-overhead' and not o.fused_sdpa and o.bucket == CUDA_DEFAULTS['bucket']
    stack = next(l for l in rep['large']['levers'] if l['name'] == '+ one graph per stack')
    per_block = next(r['step_ms'] for r in rep['large']['stages'] if r['stage'] == 'CR 6/704')
    assert stack['late'] and stack['ok'] and o.compile_scope == ('stack' if stack['cr_step_ms'] < 0.95 * per_block else 'block')

def test_the_trainer_takes_the_measured_levers_unless_told_and_records_them(tmp_path, monkeypatch):
    """trainer_fast_default_off, trainer_fast_recorded_as_asked: the trainer leaves `fast`/`compile` at None to `fast_options`,
    which turns the levers on for a T5 on a GPU, and records the levers it runs (`fast`, `compile` in the run's
    fingerprint), not what was asked: a GPU run left at the defaults is recorded as fast and compiled."""
    import fpt_nb.train as train
    from fpt_nb.tasks import toy_examples
    from fpt_nb.batches import encode
    from fpt_nb.partial import FULL
    asked = []
    def on_a_gpu(pt, device, autocast, fast=None, compile=None):   # what fast_options gives on a GPU, on this CPU
        asked.append((fast, compile))
        return FastOptions(attention='sdpa') if fast is None else fast_options(pt, device, autocast, fast, compile)
    monkeypatch.setattr(train, 'fast_options', on_a_gpu)
    items = encode('toy', load_t5('tiny')[1], toy_examples('train', 8))
    tr = train.Trainer(tiny(), [train.Phase(FULL, 1)], items, train.TrainConfig(batch_size=4, prompt_length=4), tmp_path/'a', progress=False)
    assert asked == [(None, None)] and tr.stepper.options == FastOptions(attention='sdpa')
    assert tr.fp['fast'] is True and tr.fp['compile'] is False
    off = train.Trainer(tiny(), [train.Phase(FULL, 1)], items, train.TrainConfig(batch_size=4, prompt_length=4, fast=False), tmp_path/'b', progress=False)
    assert asked[-1] == (False, None) and off.stepper.options == FastOptions() and off.fp['fast'] is False

@pytest.mark.parametrize('scope', ['block', 'stack'])
def test_a_compiled_step_compiles_its_blocks_or_its_stacks(monkeypatch, scope):
    """fast_stack_scope_ignored, fast_stack_compiles_blocks_too, fast_stacks_skip_runners: `compile_scope` says what one
    graph runs: each block ('block': the two block runners compiled, the stacks loop over them in Python) or a whole stack
    ('stack': the encoder's and decoder's loops compiled, blocks inlined: one graph, one CUDA-graph replay, per stack and
    forward instead of one per block; the H200's smallest CR stage spent 0.3-0.4 ms of host time per block call). Either
    way the step computes the uncompiled step's loss and gradient."""
    from fpt_nb.fast import encoder_block, decoder_block, encoder_stack, decoder_stack
    compiled, calls = [], []
    def fake_compile(f, mode=None):   # (no inductor in a CPU test: what is compiled, and that it runs, is the point)
        compiled.append(name := getattr(f, 'func', f))
        return lambda *a, **k: calls.append(name) or f(*a, **k)
    pt = tiny()
    ref = _sgd_step(pt, FastOptions(attention='sdpa'))
    monkeypatch.setattr(torch, 'compile', fake_compile)
    got = _sgd_step(pt, FastOptions(attention='sdpa', compile=True, compile_scope=scope))
    assert compiled == ([encoder_block, decoder_block] if scope == 'block' else [encoder_stack, decoder_stack]), compiled
    n_enc, n_dec = len(pt.model.encoder.block), len(pt.model.decoder.block)
    per_forward = [encoder_block] * n_enc + [decoder_block] * n_dec if scope == 'block' else [encoder_stack, decoder_stack]
    assert calls == per_forward * 2, calls   # each compiled function runs, in each of the 2 micro-batches' forwards
    assert got[0] == ref[0] and torch.equal(got[1], ref[1])

def test_the_stacks_run_every_block_through_their_runner():
    """fast_stack_skips_a_block, fast_stacks_skip_runners: `encoder_stack` and `decoder_stack` run each of their blocks in
    turn through the runner they are given (the compiled block, with compile_scope 'block')."""
    from fpt_nb.fast import encoder_stack, decoder_stack
    seen = []
    enc = lambda block, h, mask, bias: seen.append(('e', block)) or h + block
    dec = lambda block, x, mask, bias, encoder_h, cross: seen.append(('d', block)) or x * block
    assert encoder_stack([1, 2, 3], 0, None, None, run=enc) == 6 and decoder_stack([2, 3], 1, None, None, None, None, run=dec) == 6
    assert seen == [('e', 1), ('e', 2), ('e', 3), ('d', 2), ('d', 3)]
