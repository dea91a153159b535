"""The prompt-tuning step on an H100/H200: the trainer's old step against the fast one (fpt_nb.fast), T5-LARGE and XL.

    python benchmarks/gpu_stages.py               # issue 12: LARGE and XL, bf16, batch 32, 492+20 input, target 4;
                                                  # about 8 minutes (a 7.5-minute budget, then start-up); writes results/perf/gpu_efficiency.{json,md,log}, gpu_profile_<size>.txt
    python benchmarks/gpu_stages.py --smoke       # the same logic on tiny T5s on the CPU, in seconds (figures not worth keeping)
    python benchmarks/gpu_stages.py --bare-stages --out results/perf/x.json   # issue 6's table: a bare loop over a bf16 model

For each size (random weights: cost does not depend on weight values), in this order:

1. The old step: `fpt_nb.fast.plain_step`, the step `Trainer` took before `FastStep` (fp32 weights under bf16
   autocast, eager attention, the host waiting for the GPU during the step: a loss read per micro-batch, the
   gradient norm, the prompt's check), fed by the trainer's own batch iterator. Median wall time of a step,
   peak memory, host waits per step (torch.cuda sync debug mode), and a profile on the smallest CR stage.
2. The levers of `fpt_nb.fast`, one added at a time, each as a `FastStep` built from a trainer's parts
   (what `Trainer` runs): one wait per step (no lever); bf16 weights; our forward with the attention bias built once and
   SDPA; SDPA kept to its fused kernels; compiled blocks; FlexAttention; CUDA graphs. Each is also timed at the smallest
   CR stage, and the fastest over both is used below. Before them, a probe times SDPA's kernels on the encoder's bias
   mask one by one (which serve it, and how fast). Each one's loss and prompt gradient
   at the same prompt and batch are checked against the old step's (`fpt_nb.fast.TOLERANCES['bf16']`:
   relative loss difference <= 1e-2, gradient cosine >= 0.99); a lever that disagrees is not used.
3. HF PEFT's prompt tuning on the same model, batch and sequence (forward, backward, clip, Adafactor step,
   reading the loss; autocast, SDPA, the bf16 weights): the peer. PEFT/ours is the headline ratio.
4. Table 1's stages with the fastest agreeing lever set: wall/FLOPs per stage (1.00 is ideal), first step
   of each stage (compiling shows there), then a profile of the smallest CR stage (the "after").
5. A bare loop (forward + backward, whole model cast to bf16, SDPA, stock forward): what issue 6 timed.
6. After every size, where the budget leaves time: one graph per stack (`LATE`) on the first size, on top of its
   fastest lever, at the smallest CR stage, then the full model. A stack compiles several times as long as a block,
   and again at every stage, so it is no candidate for the table; its rows are marked "after the table".

FLOPs are the trainer's count (fpt_nb.flops, exact against FlopCounterMode). Share of peak is against the
GPU's dense bf16 peak (H200/H100 SXM: 989 TFLOP/s; `--peak-tflops` for others), and against what one large bf16
matmul reaches on this card (measured first). A time budget (`--budget-min`) skips optional parts (extra levers,
profiles) rather than overrun; what was skipped is recorded. The report files are rewritten after every part, so a
run killed at its time limit keeps what it measured; a part that fails is recorded and the rest goes on.
"""
import argparse, gc, importlib, json, statistics, sys, tempfile, time, types, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5ForConditionalGeneration
from fpt_nb.prompt import paper_config, tiny_t5_config, untie_lm_head, freeze, PromptT5
from fpt_nb.partial import FULL, apply_stage, layer_dropping, ffn_reduction, compound_reduction
from fpt_nb.arch import ffn_widths
from fpt_nb.scores import NeuronScores

PAPER_WIDTHS = {'large': (704, 1408, 2112), 'xl': (1280, 2560, 3840), 'tiny': (32, 64, 96)}
PAPER_LAYERS = {'large': (6, 12, 18), 'xl': (6, 12, 18), 'tiny': (1, 2, 3)}
GOALS = dict(large_step_ms=95, xl_step_ms=230, wall_over_flops=1.10)   # issue 12, on an H200
PEAK_BF16_TFLOPS = {'H200': 989.0, 'H100 80GB HBM3': 989.0, 'H100 SXM': 989.0, 'H100 NVL': 835.0, 'H100 PCIe': 756.0,
                    'A100': 312.0}   # dense bf16, the vendors' figures
OUT = Path(__file__).resolve().parents[1]/'results'/'perf'

def stages(size):
    L, W = PAPER_LAYERS[size], PAPER_WIDTHS[size]
    out = [('PT', FULL)]
    out += [(f'LD {l}', layer_dropping(l)) for l in L]
    out += [(f'FR {w}', ffn_reduction(w)) for w in W]
    out += [(f'CR {l}/{w}', compound_reduction(l, w)) for l, w in zip(L, W)]
    return out

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def timed(fn, dev, n):
    "Median seconds of `n` calls of fn after it has been warmed up."
    ts = []
    for _ in range(n):
        if dev.type == 'cuda':
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); fn(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b) / 1000)
        else:
            t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

MATMUL_N = 8192

def matmul_tflops(dev) -> float|None:
    "What one large bf16 matmul reaches on this GPU (TFLOP/s): the share of it is the step's share of what the card gives."
    if dev.type != 'cuda': return None
    x = torch.randn(MATMUL_N, MATMUL_N, device=dev, dtype=torch.bfloat16); y = torch.randn_like(x)
    for _ in range(3): x @ y
    return 2 * MATMUL_N**3 / timed(lambda: x @ y, dev, 10) / 1e12

def set_attn(model, impl):
    try: model.set_attn_implementation(impl)
    except Exception as e: print(f"  (attention stays {model.config._attn_implementation}: {e})")

def build(size, dev, dtype):
    cfg = tiny_t5_config() if size == 'tiny' else paper_config(size)
    with torch.device(dev): model = T5ForConditionalGeneration(cfg)
    return freeze(untie_lm_head(model).to(dtype).eval())

# ---------------------------------------------------------------- issue 12: the trainer's step, old and fast

LEVERS = [   # (name, FastOptions fields); each adds to the one before
    ('one wait per step', dict()),
    ('+ bf16 weights', dict(bf16_weights=True)),
    ('+ bias once, SDPA', dict(bf16_weights=True, attention='sdpa')),
    ('+ fused SDPA', dict(bf16_weights=True, attention='sdpa', fused_sdpa=True)),   # no math fallback (the compiled ones too, if it agreed)
    ('+ compiled blocks', dict(bf16_weights=True, attention='sdpa', compile=True)),
    ('+ FlexAttention', dict(bf16_weights=True, attention='flex', compile=True)),
    ('+ CUDA graphs', dict(bf16_weights=True, attention=None, compile=True, compile_mode='reduce-overhead')),  # attention: the faster compiled one
    ('+ one graph per stack', dict(bf16_weights=True, attention=None, compile=True, compile_mode='reduce-overhead', compile_scope='stack')),
]
RESTAGE = dict(block=0.3, stack=1.0)   # a stage's recompile, as a share of the first compile: a new FFN width of one block, or
                                       # the whole stack again
STACK_COMPILE = 6.4   # a stack's first compile over a block's: 87 s against 13.5 s on this project's CPU (24+24 blocks, narrow)
LATE = ('+ one graph per stack',)   # levers timed after every size's table, on the first size (`late_levers`): not candidates
                                    # for the table, whose every stage would recompile a stack for a minute or more

class Log:
    "Print and keep every line, for the log file."
    def __init__(self): self.lines = []
    def __call__(self, *args):
        s = ' '.join(str(a) for a in args)
        print(s, flush=True); self.lines.append(s)

class Budget:
    "Wall-clock budget of the whole run: optional parts are skipped when what is left would not cover them."
    def __init__(self, minutes:float, log): self.end, self.log = time.perf_counter() + 60 * minutes, log
    def left(self) -> float: return self.end - time.perf_counter()
    def allow(self, need_s:float, what:str, skipped:list, reserve_s:float=0) -> bool:
        "Whether `need_s` fits in what is left after `reserve_s` (kept for what must come later); logs and records a skip."
        if self.left() - reserve_s >= need_s: return True
        self.log(f"  skipped {what}: about {need_s:.0f} s needed, {self.left():.0f} s left ({reserve_s:.0f} s of it kept for later parts)")
        skipped.append(what)
        return False

def peak_tflops(name:str, given:float|None) -> float|None:
    if given: return given
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)

def synthetic_items(n:int, input_len:int, target_len:int, vocab:int, seed:int=0) -> list[dict]:
    "Items as `fpt_nb.batches.encode` makes them: every input `input_len` tokens ending in EOS, every target `target_len`."
    g = torch.Generator().manual_seed(seed)
    ids, labels = torch.randint(2, vocab, (n, input_len), generator=g), torch.randint(2, vocab, (n, target_len), generator=g)
    ids[:, -1] = 1
    return [dict(input_ids=i.tolist(), labels=l.tolist()) for i, l in zip(ids, labels)]

STAND_INS = []   # packages missing here that an inert module stood in for (see import_fpt)

class _Inert:
    "Stands in for anything taken from a package the step never uses: calling it, or any attribute of it, gives another."
    def __init__(self, *args, **kwargs): pass
    def __call__(self, *args, **kwargs): return _Inert()
    def __getattr__(self, name):
        if name.startswith('__'): raise AttributeError(name)
        return _Inert()

def _inert_module(name:str) -> types.ModuleType:
    mod = types.ModuleType(name)
    def attr(a):
        if a.startswith('__'): raise AttributeError(a)
        return _Inert()
    mod.__getattr__ = attr
    return mod

def import_fpt(module:str='fpt_nb.train'):
    """`module` of fpt_nb, also on a GPU image that lacks packages fpt_nb imports at the top of modules a benchmark never
    runs (datasets for task data, rouge_score/rouge for scoring generations): an inert module stands in for each one
    missing, and the report names them (`stand_ins`). torch, transformers and fpt_nb itself must be there."""
    for _ in range(10):
        try: return importlib.import_module(module)
        except ModuleNotFoundError as e:
            name = (e.name or '').split('.')[0]
            if not name or name in ('fpt_nb', 'torch', 'transformers', 'safetensors', 'numpy') or name in STAND_INS: raise
            sys.modules[name] = _inert_module(name)
            STAND_INS.append(name)
    raise ImportError(f"{module} still does not import after standing in for {STAND_INS}")

def import_train(): return import_fpt('fpt_nb.train')

def make_trainer(pt, items, a, dev, run_dir, bf16:bool=True):
    "A trainer on the full-model schedule, as `run_experiment` makes one (bf16 autocast on, as on a GPU)."
    train = import_train()
    Trainer, TrainConfig, Phase = train.Trainer, train.TrainConfig, train.Phase
    cfg = TrainConfig(batch_size=a.batch, micro_batch_size=a.micro, prompt_length=pt.prompt_length, bf16=bf16)
    return Trainer(pt, [Phase(FULL, 10**6)], items, cfg, run_dir, device=dev, progress=False)

def fast_step(tr, options):
    "The `FastStep` the trainer runs once integrated, built from its optimizer, schedule and settings."
    from fpt_nb.fast import FastStep
    cfg = tr.cfg
    return FastStep(tr.pt, tr.opt, tr.sched, cfg.batch_size // cfg.micro, cfg.clip_norm, tr.step_flops, tr.device, tr.bf16, options, tr.world, tr.rank)

def reset_peak(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()

def peak_gib(dev) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')

def reserved_gib(dev) -> float:
    "What the caching allocator held at most (CUDA graphs' memory pools, which allocations while replaying do not show, included)."
    return torch.cuda.max_memory_reserved() / 2**30 if dev.type == 'cuda' else float('nan')

def time_steps(step, it, widths, dev, warmup:int, n:int) -> dict:
    "Median wall seconds of `n` trainer steps after `warmup`, the FLOPs of a step and the peak memory while timing."
    problems = []   # a non-finite step (random weights, lr 0.3) is recorded: the timing stands
    for _ in range(warmup):
        loss, flops, problem = step(it, widths)
        if problem: problems.append(problem)
    reset_peak(dev)
    ts = []
    for _ in range(n):
        sync(dev); t = time.perf_counter()
        loss, flops, problem = step(it, widths)
        sync(dev); ts.append(time.perf_counter() - t)
        if problem: problems.append(problem)
    return dict(step_s=statistics.median(ts), flops=flops, peak_gib=peak_gib(dev), reserved_gib=reserved_gib(dev), loss=loss, problems=problems[:3])

def host_waits(step, it, widths, dev) -> int|None:
    "How many times one step makes the host wait for the GPU (CUDA's sync debug mode counts them)."
    if dev.type != 'cuda': return None
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try: step(it, widths)
        finally: torch.cuda.set_sync_debug_mode(0)
    return sum('synchroniz' in str(w.message) for w in caught)

SDPA_BACKENDS = ('CUDNN_ATTENTION', 'FLASH_ATTENTION', 'EFFICIENT_ATTENTION', 'MATH')

def sdpa_probe(cfg, a, dev, compile_ok:bool, log) -> dict:
    """Which of SDPA's kernels serve the encoder's attention (T5's bias as a bf16 mask of batch x heads x positions x
    positions, as `attention_biases` builds it), and the forward + backward time of each: one kernel at a time, then
    compiled as torch chooses and compiled with the fused kernels only (`fpt_nb.fast.sdpa_kernels`)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from fpt_nb.fast import sdpa_kernels
    B, H, S, D = a.micro, cfg.num_heads, a.input_len + 20, cfg.d_kv
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(B, H, S, D, generator=g).to(dev, torch.bfloat16).requires_grad_() for _ in range(3))
    mask = torch.randn(B, H, S, S, generator=g).to(dev, torch.bfloat16)
    def attend(q, k, v, m): return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=1.0)
    def time_it(fn, ctx):
        def once():
            with ctx(): fn(q, k, v, mask).float().sum().backward()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                for _ in range(2): once()
                return round(1e3 * timed(once, dev, 5), 3)
            except Exception as e:
                why = [str(w.message).split('\n')[0][:160] for w in caught if 'not used because' in str(w.message) or 'kernel' in str(w.message).lower()]
                return f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" + (f" ({'; '.join(why[:3])})" if why else '')
    out = {n: time_it(attend, lambda n=n: sdpa_kernel(getattr(SDPBackend, n))) for n in SDPA_BACKENDS}
    if compile_ok:
        out['compiled, as torch chooses'] = time_it(torch.compile(lambda q, k, v, m: attend(q, k, v, m)), lambda: sdpa_kernels(False))
        out['compiled, fused only'] = time_it(torch.compile(lambda q, k, v, m: attend(q, k, v, m)), lambda: sdpa_kernels(True))
    q.grad = k.grad = v.grad = None
    log("  SDPA on the encoder's mask (forward + backward, ms): " + '; '.join(f"{n}: {r}" for n, r in out.items()))
    return out

def loss_grad(pt, fn) -> tuple[torch.Tensor, torch.Tensor]:
    pt.prompt.weight.grad = None
    loss = fn(); loss.backward()
    g, pt.prompt.weight.grad = pt.prompt.weight.grad.detach().float().cpu(), None
    return loss.detach().float().cpu(), g

def profile_step(step, it, widths, dev, steps:int=3) -> tuple[str, dict]:
    "torch.profiler over `steps` steps: the operator table, and a summary (top operators by own device time, busy vs wall)."
    from torch.profiler import profile, ProfilerActivity
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    step(it, widths); sync(dev)
    t = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(steps): step(it, widths)
        sync(dev)
    wall = (time.perf_counter() - t) / steps
    ka = prof.key_averages()
    def own(e):
        if dev.type != 'cuda': return e.self_cpu_time_total
        return getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)
    table = None
    for key in (('self_device_time_total', 'self_cuda_time_total') if dev.type == 'cuda' else ('self_cpu_time_total',)):
        try: table = ka.table(sort_by=key, row_limit=25); break
        except Exception: pass
    rows = sorted(ka, key=own, reverse=True)
    busy = sum(own(e) for e in rows) / 1e3 / steps
    top = [dict(op=e.key, own_ms_per_step=round(own(e) / 1e3 / steps, 3), calls_per_step=e.count / steps) for e in rows[:12]]
    return table or '', dict(wall_ms_per_step=round(1e3 * wall, 2), device_busy_ms_per_step=round(busy, 2),
                             busy_share=round(busy / (1e3 * wall), 3) if wall else None, top=top)

def peft_step_fn(model, pt, batch, dev, clip_norm:float=1.0):
    "One HF PEFT prompt-tuning step on the same model and batch: forward, backward, clip, Adafactor, loss read."
    from peft import PromptTuningConfig, TaskType, get_peft_model
    train = import_train()
    make_optimizer, TrainConfig = train.make_optimizer, train.TrainConfig
    c = model.config
    pm = get_peft_model(model, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=pt.prompt_length,
                                                  num_transformer_submodules=1, token_dim=c.d_model, num_attention_heads=c.num_heads,
                                                  num_layers=c.num_layers))
    emb = pm.prompt_encoder['default'].embedding
    with torch.no_grad(): emb.weight.copy_(pt.prompt.weight)
    opt, sched = make_optimizer([emb.weight], TrainConfig())
    ids, keep, labels = (batch[k].to(dev) for k in ('input_ids', 'attention_mask', 'labels'))
    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = pm(input_ids=ids, attention_mask=keep, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([emb.weight], clip_norm)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        return loss.item()
    return step

def size_setup(size, a, dev) -> types.SimpleNamespace:
    "A size's model (fp32 weights, eager attention: as `load_t5` gives the trainer one), prompt, batch, neuron scores and trainers."
    from fpt_nb.batches import collate
    model = build(size, dev, torch.float32)
    pt = PromptT5(model, 20).to(dev)
    c = model.config
    items = synthetic_items(max(2 * a.batch, 8), a.input_len, a.target_len, c.vocab_size)
    b0 = collate(items[:a.micro])
    g = torch.Generator().manual_seed(1)
    sc = NeuronScores({s: torch.rand(c.num_layers, c.d_ff, generator=g) for s in ('encoder', 'decoder')})
    p0 = pt.prompt.weight.detach().clone()
    run_dir = Path(tempfile.mkdtemp())
    def fresh_trainer():
        with torch.no_grad(): pt.prompt.weight.copy_(p0)
        return make_trainer(pt, items, a, dev, run_dir)
    def batch_dev(): return [b0[k].to(dev) for k in ('input_ids', 'attention_mask', 'labels')]
    smallest_cr = [st for name, st in stages(size) if name.startswith('CR')][0]
    return types.SimpleNamespace(model=model, pt=pt, c=c, b0=b0, sc=sc, fresh_trainer=fresh_trainer, batch_dev=batch_dev, smallest_cr=smallest_cr)

def measure_size(size, a, dev, budget, log, out_dir, res:dict, save, total=None, later_s:float=0) -> dict:
    """One size, into `res` (`save()` writes the report after each part): `budget` is its share of the run's time; the stage
    table may run on into `total`, keeping `later_s` for the sizes after. An optional part that fails is recorded in
    `res['errors']` and the rest goes on."""
    import_train()
    from fpt_nb.fast import FastOptions, agreement, plain_step
    t0 = time.perf_counter()
    res.update(skipped=[], levers=[], stages=[])
    def part(what, fn):
        try: fn()
        except Exception as e:
            res.setdefault('errors', []).append(f"{what}: {type(e).__name__}: {e}"[:500])
            log(f"  {what} failed: {res['errors'][-1]}")
        finally: save()
    S = size_setup(size, a, dev)
    model, pt, c, b0, sc, fresh_trainer, batch_dev, smallest_cr = S.model, S.pt, S.c, S.b0, S.sc, S.fresh_trainer, S.batch_dev, S.smallest_cr
    log(f"\n{size}: built in {time.perf_counter() - t0:.1f}s; {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters; "
        f"{budget.left():.0f} s left in the budget")

    # 1. the old step
    tr = fresh_trainer()
    widths = ffn_widths(model)
    with torch.autocast(dev.type, dtype=torch.bfloat16):
        ids, keep, labels = batch_dev()
        ref = loss_grad(pt, lambda: pt(ids, keep, labels=labels).loss)
    it = tr._micro_batches()
    plain = lambda it, w, tr=tr: plain_step(tr, it, w)   # the trainer's step before FastStep
    old = time_steps(plain, it, widths, dev, a.warmup, a.steps)
    old['host_waits'] = host_waits(plain, it, widths, dev)
    res.update(pt_step_ms_before=1e3 * old['step_s'], peak_gib_before=old['peak_gib'], reserved_gib_before=old['reserved_gib'], step_flops=old['flops'],
               host_waits_before=old['host_waits'], loss_ref=float(ref[0]), problems_before=old['problems'])
    log(f"  old step (plain_step: fp32 weights, autocast, eager attention, host checks): {1e3 * old['step_s']:.1f} ms, "
        f"{old['flops'] / old['step_s'] / 1e12:.1f} TFLOP/s, peak {old['peak_gib']:.1f} GiB, host waits per step {old['host_waits']}"
        + (f"; {old['problems'][0]}" if old['problems'] else ''))
    save()
    def profile_before():
        try:
            apply_stage(model, smallest_cr, sc)
            table, summary = profile_step(plain, it, ffn_widths(model), dev)
        finally: apply_stage(model, FULL)
        res['profile'] = dict(stage=smallest_cr.describe(), before=summary)
        (out_dir/f'gpu_profile_{size}.txt').write_text(f"{size}, {smallest_cr.describe()}, old step (plain_step)\n{table}\n")
        log(f"  profile before, {smallest_cr.describe()}: {summary['wall_ms_per_step']} ms wall, device busy {summary['device_busy_ms_per_step']} ms; "
            f"top: " + '; '.join(f"{r['op']} {r['own_ms_per_step']}" for r in summary['top'][:4]))
    if budget.allow(4 * old['step_s'] * 6 + 10, f'{size} profile before', res['skipped']): part(f'{size} profile before', profile_before)

    # 2. the levers, at the full model, and at the smallest CR stage (its time is the floor of a step)
    compile_s, best = None, None
    stage_steps = max(2, a.steps // 2 if size != 'tiny' else a.steps)   # timed steps per stage of Table 1
    def smallest_cr_ms(step, it) -> float:
        apply_stage(model, smallest_cr, sc)
        try: return 1e3 * time_steps(step, it, ffn_widths(model), dev, 2, stage_steps)['step_s']   # (a CUDA graph records on its 2nd call)
        finally: apply_stage(model, FULL)
    if budget.allow(4 * old['step_s'] + 5, f'{size} old step at {smallest_cr.describe()}', res['skipped']):
        part(f'{size} old step at the smallest CR stage', lambda: res.update(cr_step_ms_before=smallest_cr_ms(plain, it)))
        log(f"  old step at {smallest_cr.describe()}: {_f(res.get('cr_step_ms_before'))} ms")
    compile_ok = dev.type == 'cuda' or a.compile_on_cpu
    if budget.allow(30 if compile_ok else 5, f'{size} SDPA probe', res['skipped']):
        part(f'{size} SDPA probe', lambda: res.update(sdpa_probe=sdpa_probe(c, a, dev, compile_ok, log)))
    levers = [(n, o) for n, o in LEVERS if (not a.levers or n in a.levers) and n not in LATE]
    for name, fields in levers:
        fields = dict(fields)
        if fields.get('compile') and not (dev.type == 'cuda' or a.compile_on_cpu):
            res['skipped'].append(f'{size} {name} (compiling is measured on a GPU; --compile-on-cpu to try)'); continue
        if fields.get('attention') == 'flex' and dev.type != 'cuda':
            res['skipped'].append(f'{size} {name} (FlexAttention needs CUDA)'); continue
        if fields.get('compile') and a.best_first:   # a later size compiles only what was fastest on the first
            if name != a.best_first[0]: res['skipped'].append(f'{size} {name} (not the fastest lever on {a.sizes[0]})'); continue
            fields = dict(a.best_first[1])
        elif name in ('+ CUDA graphs', '+ one graph per stack'):
            compiled = [r for r in res['levers'] if r.get('options', {}).get('compile') and r.get('ok')]
            if not compiled: res['skipped'].append(f'{size} {name} (no compiled lever agreed)'); continue
            fastest_compiled = min(compiled, key=lambda r: r['step_ms'])['options']
            fields.update(attention=fastest_compiled['attention'], fused_sdpa=fastest_compiled.get('fused_sdpa', False))
        elif fields.get('compile'):   # compiled on the fused kernels where they served and agreed
            fields['fused_sdpa'] = any(r['name'] == '+ fused SDPA' and r.get('ok') for r in res['levers'])
        restage = RESTAGE[fields.get('compile_scope', 'block')]
        compiling = (compile_s or a.compile_s_seen or a.compile_guess_s) * 1.3 if fields.get('compile') else 0   # (a block's)
        lever_compile = compiling * (3 if restage > 1 else 1)   # a stack's: guessed at 3 blocks' compiles
        need = lever_compile + (a.warmup + a.steps + 2) * old['step_s']
        # Table 1 with this lever, at the fastest agreeing step's speed so far: each stage's warm-up and timed steps, and a
        # recompile of each of the 3 new FFN widths (one block graph of a new width: a fraction of the first compile)
        fastest = min([r['step_ms'] / 1e3 for r in res['levers'] if r.get('ok')] or [old['step_s']])
        table = len(stages(size)) * (a.warmup + stage_steps) * fastest + 3 * RESTAGE['block'] * compiling   # (a stack chosen: its stages skip as time runs out)
        if not budget.allow(need, f'{size} {name}', res['skipped'], reserve_s=table): continue
        row = dict(name=name, options=fields)
        try:
            options = FastOptions(**fields)
            tr = fresh_trainer()
            step = fast_step(tr, options)
            t = time.perf_counter()
            got = loss_grad(pt, lambda: step.loss(b0))
            row['first_call_s'] = time.perf_counter() - t   # compiling shows here
            if options.compile and options.compile_scope == 'block': compile_s = res['compile_s'] = max(compile_s or 0, row['first_call_s'])
            row['agreement'] = agreement(*got, *ref, precision='bf16')
            row['ok'] = row['agreement']['ok']
            it = tr._micro_batches()
            m = time_steps(step, it, widths, dev, a.warmup, a.steps)
            row.update(step_ms=1e3 * m['step_s'], peak_gib=m['peak_gib'], reserved_gib=m['reserved_gib'], host_waits=host_waits(step, it, widths, dev), problems=m['problems'])
            if row['ok'] and budget.allow(4 * m['step_s'] + restage * lever_compile, f'{size} {name} at {smallest_cr.describe()}', res['skipped'], reserve_s=table):
                row['cr_step_ms'] = smallest_cr_ms(step, it)
            log(f"  {name:<20} {row['step_ms']:8.1f} ms  {m['flops'] / m['step_s'] / 1e12:6.1f} TFLOP/s  peak {m['peak_gib']:5.1f} GiB (reserved {m['reserved_gib']:.1f})  "
                f"waits {row['host_waits']}  first call {row['first_call_s']:.1f} s  loss rdiff {row['agreement']['loss_rdiff']:.1e} "
                f"grad cos {row['agreement']['grad_cos']:.4f}  smallest CR {_f(row.get('cr_step_ms'))} ms{'' if row['ok'] else '  DISAGREES: not used'}")
        except Exception as e:
            row.update(ok=False, error=f"{type(e).__name__}: {e}"[:500])
            log(f"  {name:<20} failed: {row['error']}")
        res['levers'].append(row); save()
        if name == '+ bias once, SDPA' and 'peft_step_ms' not in res:   # PEFT now, while the model is the one the levers use
            peft(model, pt, b0, dev, res, budget, log, size)
    if 'peft_step_ms' not in res: peft(model, pt, b0, dev, res, budget, log, size)
    good = [r for r in res['levers'] if r.get('ok')]
    if not good: raise RuntimeError(f"{size}: no lever ran and agreed with the old step: {[r.get('error') for r in res['levers']]}")
    # the fastest over the full model and the smallest CR stage together (the two ends of Table 1's schedules), where
    # every agreeing lever was timed at both; else at the full model
    both = all('cr_step_ms' in r for r in good)
    best = min(good, key=lambda r: r['step_ms'] + (r['cr_step_ms'] if both else 0))
    res.update(best_lever=best['name'], best_options=best['options'], best_by='full model + smallest CR stage' if both else 'full model')
    log(f"  fastest agreeing ({res['best_by']}): {best['name']} ({best['step_ms']:.1f} ms, smallest CR {_f(best.get('cr_step_ms'))} ms)")

    # 4. Table 1's stages with the fastest lever set
    # the headline fields
    ms = best['step_ms']
    res.update(pt_step_ms=ms, peak_gib=best['peak_gib'], reserved_gib=best.get('reserved_gib'), tflops_per_s=res['step_flops'] / (ms / 1e3) / 1e12)
    res['peak_share'] = res['tflops_per_s'] / a.peak if a.peak else None
    res['matmul_share'] = res['tflops_per_s'] / a.matmul_tflops if a.matmul_tflops else None
    if res.get('peft_step_ms'): res['peft_over_ours'] = res['peft_step_ms'] / ms
    save()

    # 4. Table 1's stages with the fastest lever set
    tr = fresh_trainer()
    step = fast_step(tr, FastOptions(**best['options']))
    it = tr._micro_batches()
    def one_stage(name, st):
        t = time.perf_counter(); apply_stage(model, st, sc); sync(dev); expand_s = time.perf_counter() - t
        w = ffn_widths(model)
        t = time.perf_counter(); step(it, w); first = time.perf_counter() - t
        m = time_steps(step, it, w, dev, max(0, a.warmup - 1), stage_steps)
        res['stages'].append(dict(stage=name, flops=m['flops'], step_ms=1e3 * m['step_s'], first_step_s=first, expand_s=expand_s,
                                  peak_gib=m['peak_gib'], reserved_gib=m['reserved_gib'], problems=m['problems']))
        log(f"  {name:<12} {m['flops'] / 1e12:8.2f} TFLOP {1e3 * m['step_s']:8.1f} ms  first step {first:6.2f} s  peak {m['peak_gib']:5.1f} GiB")
        if (pt_row := res['stages'][0])['stage'] == 'PT':
            for r in res['stages']:
                r['flops_frac'], r['wall_frac'] = r['flops'] / pt_row['flops'], r['step_ms'] / pt_row['step_ms']
                r['wall_over_flops'] = r['wall_frac'] / r['flops_frac']
            partial = [r['wall_over_flops'] for r in res['stages'][1:]]
            res['max_wall_over_flops'] = max(partial) if partial else None
    for name, st in stages(size):
        need = (a.warmup + stage_steps) * best['step_ms'] / 1e3 + (RESTAGE[best['options'].get('compile_scope', 'block')] * 1.3 * max(compile_s or 0, best.get('first_call_s', 0))
                                                               if best['options'].get('compile') else 0)
        if name != 'PT' and not (total or budget).allow(need, f'{size} stage {name}', res['skipped'], reserve_s=later_s): continue
        part(f'{size} stage {name}', lambda: one_stage(name, st))
    def profile_after():
        try:
            apply_stage(model, smallest_cr, sc)
            table, summary = profile_step(step, it, ffn_widths(model), dev)
        finally: apply_stage(model, FULL)
        res.setdefault('profile', dict(stage=smallest_cr.describe()))['after'] = summary
        with open(out_dir/f'gpu_profile_{size}.txt', 'a') as f: f.write(f"\n{size}, {smallest_cr.describe()}, fast step ({best['name']})\n{table}\n")
        log(f"  profile after, {smallest_cr.describe()}: {summary['wall_ms_per_step']} ms wall, device busy {summary['device_busy_ms_per_step']} ms; "
            f"top: " + '; '.join(f"{r['op']} {r['own_ms_per_step']}" for r in summary['top'][:4]))
    if budget.allow(4 * best['step_ms'] / 1e3 * 6 + 10, f'{size} profile after', res['skipped']): part(f'{size} profile after', profile_after)
    apply_stage(model, FULL)

    # 5. the bare loop
    def bare_loop():
        model.to(torch.bfloat16); set_attn(model, 'sdpa')
        ids, keep, labels = batch_dev()
        def bare():
            pt.prompt.weight.grad = None
            pt(ids, keep, labels=labels).loss.backward()
        for _ in range(a.warmup): bare()
        res['bare_bf16_sdpa_ms'] = 1e3 * timed(bare, dev, a.steps)
        log(f"  bare loop (whole model bf16, SDPA, forward + backward): {res['bare_bf16_sdpa_ms']:.1f} ms")
    if budget.allow((a.warmup + a.steps) * ms / 1e3 + 5, f'{size} bare loop', res['skipped']): part(f'{size} bare loop', bare_loop)
    res['seconds'] = time.perf_counter() - t0
    return res

def late_levers(size, a, dev, budget, log, res:dict, save):
    """The levers of `LATE` on `size` (its `res` already holds its first pass), on top of its fastest lever, where the
    budget leaves time for them. A stack compiles for about `STACK_COMPILE` times as long as a block, and again at each
    stage, so each is timed first at the smallest CR stage, where the host's per-block replays cost most, then at the full
    model. Each call's loss and prompt gradient are checked against the old step's at the same stage. Rows join
    `res['levers']` marked `late`; they do not change the lever the table used."""
    from fpt_nb.fast import FastOptions, agreement
    names = [n for n in LATE if not a.levers or n in a.levers]
    best = res.get('best_options')
    if not names: return
    log(f"\n{size}, after the table: {', '.join(names)}")
    if not (dev.type == 'cuda' or a.compile_on_cpu):
        res['skipped'] += [f'{size} {n} (compiling is measured on a GPU; --compile-on-cpu to try)' for n in names]; return
    if not best or not best.get('compile'):
        res['skipped'] += [f'{size} {n} (no compiled lever was fastest)' for n in names]; return
    block_s = (res.get('compile_s') or a.compile_guess_s) * 1.3
    old_s = res['pt_step_ms_before'] / 1e3
    S = None
    for name in names:
        fields = dict(best, **dict(LEVERS)[name]); fields['attention'] = best['attention']   # the fastest's attention and kernels
        full_s = STACK_COMPILE * block_s + (a.warmup + a.steps + 2) * old_s
        if not budget.allow(0.7 * full_s + 20, f'{size} {name} (after the table)', res['skipped']): continue
        t0 = time.perf_counter()
        S = S or size_setup(size, a, dev)
        row = dict(name=name, options=fields, late=True)
        try:
            def check_and_time(stage, key):   # one stage: the old step's loss and gradient, this lever's first call, its steps
                apply_stage(S.model, stage, S.sc)
                try:
                    tr = S.fresh_trainer()   # the first prompt again (the last stage's steps trained it)
                    with torch.autocast(dev.type, dtype=torch.bfloat16):
                        ids, keep, labels = S.batch_dev()
                        ref = loss_grad(S.pt, lambda: S.pt(ids, keep, labels=labels).loss)
                    step = fast_step(tr, FastOptions(**fields))
                    t = time.perf_counter()
                    got = loss_grad(S.pt, lambda: step.loss(S.b0))
                    row[f'{key}first_call_s'] = time.perf_counter() - t
                    row[f'{key}agreement'] = agreement(*got, *ref, precision='bf16')
                    it = tr._micro_batches()
                    m = time_steps(step, it, ffn_widths(S.model), dev, a.warmup, a.steps)
                    row.update({f'{key}step_ms': 1e3 * m['step_s'], f'{key}peak_gib': m['peak_gib'], f'{key}reserved_gib': m['reserved_gib']})
                    if not key: row['host_waits'] = host_waits(step, it, ffn_widths(S.model), dev)
                finally: apply_stage(S.model, FULL)
            check_and_time(S.smallest_cr, 'cr_')
            row['ok'] = row['cr_agreement']['ok']
            log(f"  {name:<20} (after the table) at {S.smallest_cr.describe()}: {row['cr_step_ms']:.1f} ms, first call {row['cr_first_call_s']:.1f} s, "
                f"loss rdiff {row['cr_agreement']['loss_rdiff']:.1e} grad cos {row['cr_agreement']['grad_cos']:.4f}"
                + ('' if row['ok'] else '  DISAGREES'))
            save()
            if row['ok'] and budget.allow(max(row['cr_first_call_s'] / 0.6, full_s), f'{size} {name} at the full model (after the table)', res['skipped']):
                check_and_time(FULL, '')
                row['ok'] = row['agreement']['ok']
                log(f"  {name:<20} (after the table) at the full model: {row['step_ms']:.1f} ms, first call {row['first_call_s']:.1f} s, "
                    f"loss rdiff {row['agreement']['loss_rdiff']:.1e} grad cos {row['agreement']['grad_cos']:.4f}, reserved {row['reserved_gib']:.1f} GiB"
                    + ('' if row['ok'] else '  DISAGREES'))
        except Exception as e:
            row.update(ok=False, error=f"{type(e).__name__}: {e}"[:500])
            log(f"  {name:<20} (after the table) failed: {row['error']}")
        row['seconds'] = time.perf_counter() - t0
        res['levers'].append(row); save()

def peft(model, pt, b0, dev, res, budget, log, size):
    if not budget.allow(30, f'{size} PEFT', res['skipped']): return
    try:
        set_attn(model, 'sdpa')
        step = peft_step_fn(model, pt, b0, dev)
        for _ in range(2): step()
        ts = []
        for _ in range(6):
            sync(dev); t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
        res['peft_step_ms'] = 1e3 * statistics.median(ts)
        log(f"  HF PEFT step (autocast, SDPA, bf16 weights, Adafactor): {res['peft_step_ms']:.1f} ms")
    except Exception as e:
        res['peft_error'] = f"{type(e).__name__}: {e}"[:500]
        log(f"  PEFT failed: {res['peft_error']}")
    finally: set_attn(model, 'eager')

def _f(x, fmt:str='.1f', none:str='n/a') -> str:
    "`x` formatted, or `none` where it was not measured (None or NaN)."
    return none if x is None or (isinstance(x, float) and x != x) else format(x, fmt)

def markdown_report(report:dict) -> str:
    "The run's figures as the results page shows them: the headline against issue 12's goals, the levers, the stages, the profiles."
    st, tol, goals = report['settings'], report['tolerance'], report['goals']
    sizes = [k for k, v in report.items() if isinstance(v, dict) and ('levers' in v or 'error' in v)]
    peak = (f"Share of peak is against {report['peak_bf16_tflops']:.0f} TFLOP/s, the {report['peak_note']}. "
            if report['peak_bf16_tflops'] else 'No peak is known for this device. ')
    if report.get('matmul_bf16_tflops'):
        peak += (f"One {MATMUL_N}³ bf16 matmul reaches {report['matmul_bf16_tflops']:.0f} TFLOP/s on this card; the fast step's share of that: "
                 + ', '.join(f"{s.upper()} {_f(report[s].get('matmul_share') and 100 * report[s]['matmul_share'], '.0f')}%" for s in sizes) + '. ')
    md = [f"# The prompt-tuning step on {report['device']}: old and fast ({', '.join(s.upper() for s in sizes)})", '',
          f"torch {report['torch']}, transformers {report.get('versions', {}).get('transformers', '?')}, CUDA {report.get('versions', {}).get('cuda', '-')}; bf16, batch {st['batch']} (micro-batch {st['micro']}), {st['input']} input + {st['prompt']} prompt "
          f"positions, target {st['target']}; medians of {st['steps']} steps after {st['warmup']}. Written by `benchmarks/gpu_stages.py`. "
          f"{peak}Agreement with {tol['against']}: loss within rtol {tol['loss_rtol']:g}, prompt gradient cosine "
          f">= {tol['grad_cos']}; a lever that disagrees is not used.", '',
          f"Goals (issue 12): LARGE step <= {goals['large_step_ms']} ms, XL <= {goals['xl_step_ms']} ms, every partial stage "
          f"wall/FLOPs <= {goals['wall_over_flops']:.2f}, peak memory not above the old step's.", '',
          '| size | old step, ms | fast step, ms | x faster | lever | TFLOP/s | share of peak | max wall/FLOPs | peak GiB (old) | PEFT, ms | PEFT/ours |',
          '|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|']
    for size in sizes:
        r = report[size]
        if 'pt_step_ms' not in r: md.append(f"| {size} | failed: {r.get('error', 'incomplete')} |" + ' |' * 9); continue
        md.append(f"| {size} | {_f(r['pt_step_ms_before'])} | {_f(r['pt_step_ms'])} | {_f(r['pt_step_ms_before'] / r['pt_step_ms'], '.2f')} | "
                  f"{r['best_lever']} | {_f(r['tflops_per_s'])} | {_f(r['peak_share'] and 100 * r['peak_share'], '.0f') + '%' if r['peak_share'] else 'n/a'} | "
                  f"{_f(r.get('max_wall_over_flops'), '.2f')} | {_f(r['peak_gib'])} ({_f(r['peak_gib_before'])}) | "
                  f"{_f(r.get('peft_step_ms'))} | {_f(r.get('peft_over_ours'), '.2f')} |")
    for size in sizes:
        r = report[size]
        if r.get('levers'):
            md += ['', f"## {size}: the levers at the full model", '',
                   f"| lever | step, ms | {prof_stage(r)}, ms | host waits | first call, s | loss rel. diff | gradient cosine | used |", '|---|--:|--:|--:|--:|--:|--:|---|',
                   f"| old step (plain_step) | {_f(r.get('pt_step_ms_before'))} | {_f(r.get('cr_step_ms_before'))} | {_f(r.get('host_waits_before'), 'd')} | | | | |"]
            for l in r['levers']:
                ag = l.get('agreement') or l.get('cr_agreement') or {}
                md.append(f"| {l['name']}{' (after the table)' if l.get('late') else ''} | {_f(l.get('step_ms'))} | {_f(l.get('cr_step_ms'))} | {_f(l.get('host_waits'), 'd')} | {_f(l.get('first_call_s', l.get('cr_first_call_s')))} | "
                          f"{_f(ag.get('loss_rdiff'), '.1e')} | {_f(ag.get('grad_cos'), '.4f')} | "
                          f"{('no: timed after the table' if l.get('late') else 'yes') if l.get('ok') else 'no: ' + str(l.get('error', 'disagrees'))[:120]} |")
            if r.get('best_by'): md += ['', f"Chosen: {r['best_lever']}, the fastest agreeing lever over the {r['best_by']}."]
            if any(l.get('late') for l in r['levers']):
                md += ['', "Levers marked *after the table* were timed after every size's table, on top of the chosen one, first at "
                       "the smallest CR stage (their first call there, and their agreement, shown when the full model was not reached): "
                       "each stage recompiles them for a minute or more, so they were not candidates for the table."]
        if r.get('sdpa_probe'):
            md += ['', f"{size}, SDPA on the encoder's bias mask, forward + backward, ms (or why not): " +
                   '; '.join(f"{n}: {v}" for n, v in r['sdpa_probe'].items())]
        if r.get('stages'):
            md += ['', f"## {size}: Table 1's stages with {r.get('best_lever')}", '',
                   '| stage | FLOPs, % of PT | wall, % of PT | wall/FLOPs | first step, s | peak GiB |', '|---|--:|--:|--:|--:|--:|']
            md += [f"| {x['stage']} | {_f(100 * x['flops_frac'])} | {_f(100 * x['wall_frac'])} | {_f(x['wall_over_flops'], '.2f')} | "
                   f"{_f(x.get('first_step_s'), '.2f')} | {_f(x.get('peak_gib'))} |" for x in r['stages']]
        prof = r.get('profile') or {}
        for when in ('before', 'after'):
            if when not in prof: continue
            p = prof[when]
            md += ['', f"{size}, {prof['stage']}, profile {when}: {_f(p['wall_ms_per_step'], '.2f')} ms wall per step, device busy "
                       f"{_f(p['device_busy_ms_per_step'], '.2f')} ms; top operators by own time (ms per step): " +
                       '; '.join(f"{t['op']} {t['own_ms_per_step']}" for t in p['top'][:6])]
        if r.get('skipped'): md += ['', f"{size}, skipped: " + '; '.join(r['skipped'])]
        if r.get('errors'): md += ['', f"{size}, failed (the rest was measured): " + '; '.join(r['errors'])]
        if r.get('error'): md += ['', f"{size} stopped: {r['error']}"]
    if report.get('stand_ins'): md += ['', f"Packages missing on this machine, stood in for (never used by a step): {', '.join(report['stand_ins'])}."]
    return '\n'.join(md) + '\n'

def prof_stage(r:dict) -> str:
    "The smallest CR stage's name, as the size's profile records it."
    return 'smallest CR' + (f" ({r['profile']['stage']})" if r.get('profile', {}).get('stage') else '')

def efficiency(a):
    dev = torch.device('cuda' if torch.cuda.is_available() and not a.smoke else 'cpu')
    out_dir = Path(a.out_dir or (tempfile.mkdtemp(prefix='gpu_stages_smoke_') if a.smoke else OUT))
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Log()
    name = torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'
    a.peak = peak_tflops(name, a.peak_tflops) if dev.type == 'cuda' else None
    budget = Budget(a.budget_min, log)
    log(f"device {name}, torch {torch.__version__}, batch {a.batch} (micro {a.micro}), input {a.input_len}+20, target {a.target_len}; "
        f"peak bf16 {a.peak or 'unknown'} TFLOP/s; budget {a.budget_min} min")
    report = dict(device=name, torch=torch.__version__, versions=import_fpt('fpt_nb.run').software_versions(dev), peak_bf16_tflops=a.peak,
                  peak_note='dense bf16 peak of the GPU (H200/H100 SXM: 989 TFLOP/s)', goals=GOALS,
                  settings=dict(batch=a.batch, micro=a.micro, input=a.input_len, prompt=20, target=a.target_len, steps=a.steps, warmup=a.warmup),
                  tolerance=dict(precision='bf16', **__import__('fpt_nb.fast', fromlist=['TOLERANCES']).TOLERANCES['bf16'],
                                 against="the old step's forward (fp32 weights, bf16 autocast, eager attention), same prompt and batch"))
    old_record = OUT/'gpu_stages_h200.json'   # issue 6's bare loop on an H200, for reference
    if old_record.exists():
        rows = json.loads(old_record.read_text())['results']
        report['issue6_bare_pt_step_ms'] = {r['size']: 1e3 * r['step_s'] for r in rows if r.get('stage') == 'PT'}
    def write():
        report['stand_ins'] = STAND_INS   # packages absent here that an inert module stood in for (import_fpt)
        (out_dir/'gpu_efficiency.json').write_text(json.dumps(report, indent=1))   # first: the figures, whatever follows
        (out_dir/'gpu_efficiency.log').write_text('\n'.join(log.lines) + '\n')
        try: md = markdown_report(report)
        except Exception as e: md = f"(the report could not be laid out: {type(e).__name__}: {e}; gpu_efficiency.json holds the figures)\n"
        (out_dir/'gpu_efficiency.md').write_text(md)
    a.matmul_tflops = matmul_tflops(dev)
    if a.matmul_tflops:
        report['matmul_bf16_tflops'] = a.matmul_tflops
        log(f"one {MATMUL_N}^3 bf16 matmul: {a.matmul_tflops:.0f} TFLOP/s on this card")
    for i, size in enumerate(a.sizes):
        # LARGE before XL: LARGE measures every lever, XL compiles only LARGE's fastest (`best_first`), at twice the step time
        share = 0.55 if len(a.sizes) - i == 2 else 1 / (len(a.sizes) - i)
        size_budget = Budget(budget.left() * share / 60, log)
        report[size] = res = {}   # filled as it is measured, and written after each part: a kill keeps what was measured
        try: measure_size(size, a, dev, size_budget, log, out_dir, res, write, total=budget, later_s=120 * (len(a.sizes) - i - 1))
        except Exception as e:
            import traceback; traceback.print_exc()
            res['error'] = f"{type(e).__name__}: {e}"[:1000]
            log(f"{size} failed: {res['error']}")
        if i == 0: a.compile_s_seen = res.get('compile_s')   # the next size's compile guess: the same blocks, wider
        if i == 0 and 'best_options' in report[size] and report[size]['best_options'].get('compile'):
            a.best_first = (report[size]['best_lever'], report[size]['best_options'])
        write()
        gc.collect(); torch._dynamo.reset()
        if dev.type == 'cuda': torch.cuda.empty_cache()
    first = report[a.sizes[0]]
    if 'pt_step_ms' in first:
        try: late_levers(a.sizes[0], a, dev, budget, log, first, write)
        except Exception as e:
            import traceback; traceback.print_exc()
            first.setdefault('errors', []).append(f"late levers: {type(e).__name__}: {e}"[:500])
        write(); gc.collect(); torch._dynamo.reset()
    log("\nsummary (goals on an H200: LARGE <= 95 ms, XL <= 230 ms, every partial stage wall/FLOPs <= 1.10, peak memory not above the old step's)")
    for size in a.sizes:
        r = report[size]
        if 'pt_step_ms' not in r: log(f"  {size}: {r.get('error', 'incomplete')}"); continue
        share = f"{100 * r['peak_share']:.0f}% of peak" if r.get('peak_share') else 'peak unknown'
        log(f"  {size}: {r['pt_step_ms_before']:.1f} -> {r['pt_step_ms']:.1f} ms ({r['best_lever']}), {r['tflops_per_s']:.0f} TFLOP/s, {share}; "
            f"max wall/FLOPs {_f(r.get('max_wall_over_flops'), '.2f')}; "
            f"peak {r['peak_gib']:.1f} GiB, reserved {_f(r.get('reserved_gib'))} (old {r['peak_gib_before']:.1f}, {_f(r.get('reserved_gib_before'))}); PEFT {r.get('peft_step_ms', float('nan')):.1f} ms, "
            f"PEFT/ours {r.get('peft_over_ours', float('nan')):.2f}")
    log(f"wrote {out_dir/'gpu_efficiency.json'}, .md, .log in {a.budget_min * 60 - budget.left():.0f} s")
    write()
    return report

# ---------------------------------------------------------------- issue 6: a bare loop over a bf16 model, per stage

def measure_stages(model, step, stage_list, scores, dev, a, size, extra=None) -> list[dict]:
    """Per stage of `stage_list`: the step's FLOPs (FlopCounterMode on batch 1 with eager attention, times the batch),
    its median time with `a.attn`, the time to expand into it and peak memory; then each as a fraction of the first
    (full) stage's. `extra(flops)` may add fields and a note for the printed line."""
    rows = []
    for name, st in stage_list:
        sync(dev); t = time.perf_counter()
        apply_stage(model, st, scores); sync(dev)
        expand_s = time.perf_counter() - t
        set_attn(model, 'eager')   # FLOP counters see eager attention's matmuls on every device
        with FlopCounterMode(display=False) as fc: step(1)
        flops = fc.get_total_flops() * a.batch
        more, note = extra(flops) if extra else ({}, '')
        set_attn(model, a.attn)
        for _ in range(3): step()
        if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
        sec = timed(step, dev, a.steps)
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')
        rows.append(dict(size=size, stage=name, flops=flops, **more, step_s=sec, expand_s=expand_s, peak_gib=peak))
        print(f"  {name:<14} {flops/1e12:9.3f} TFLOP{note}  {sec*1e3:9.1f} ms  expand {expand_s*1e3:7.1f} ms  peak {peak:6.1f} GiB",
              flush=True)
    apply_stage(model, FULL)
    full = rows[0]
    for r in rows:
        r['flops_frac'], r['wall_frac'] = r['flops'] / full['flops'], r['step_s'] / full['step_s']
        r['wall_over_flops'] = r['wall_frac'] / r['flops_frac']
    return rows

def race_peft(step, peft_step, losses, dev, size) -> dict:
    "Our step against PEFT's, interleaved in 5 rounds of 3: the median times, their ratio and the two losses (ours, PEFT's)."
    for _ in range(2): peft_step(); step()
    ours, theirs = [], []
    for _ in range(5): ours.append(timed(step, dev, 3)); theirs.append(timed(peft_step, dev, 3))
    ratio = statistics.median(o / t for o, t in zip(ours, theirs))
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"  ours/PEFT step time {ratio:.3f} (ours {o*1e3:.1f} ms, PEFT {t*1e3:.1f} ms); "
          f"loss ours {losses[0]:.5f} PEFT {losses[1]:.5f}", flush=True)
    return dict(size=size, stage='PEFT vs ours', ours_s=o, peft_s=t, ratio=ratio, loss_ours=losses[0], loss_peft=losses[1])

def print_stage_table(size, rows, note=''):
    print(f"\n{size}: stage  FLOPs%  wall%  wall/FLOPs{note}")
    for r in rows: print(f"  {r['stage']:<14} {100*r['flops_frac']:6.1f} {100*r['wall_frac']:6.1f} {r['wall_over_flops']:8.2f}")

def write_stage_results(a, dev, results):
    if not a.out: return
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(dict(device=str(torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'),
                                           torch=torch.__version__, stand_ins=STAND_INS, args=vars(a), results=results), indent=1))

def bare_stages(a):
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dtype = getattr(torch, a.dtype)
    print(f"device {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}, {a.dtype}, "
          f"batch {a.batch}, input {a.input_len}+20, target {a.target_len}", flush=True)
    results = []
    for size in a.sizes:
        t0 = time.perf_counter()
        model = build(size, dev, dtype)
        pt = PromptT5(model, 20).to(dev)
        V = model.config.vocab_size
        g = torch.Generator(device='cpu').manual_seed(0)
        ids = torch.randint(2, V, (a.batch, a.input_len), generator=g).to(dev)
        labels = torch.randint(2, V, (a.batch, a.target_len), generator=g).to(dev)
        sc = NeuronScores({s: torch.rand(model.config.num_layers, model.config.d_ff, generator=g) for s in ('encoder', 'decoder')})
        def step(n=a.batch):
            pt.prompt.weight.grad = None
            pt(ids[:n], labels=labels[:n]).loss.backward()
        print(f"\n{size}: built in {time.perf_counter() - t0:.1f}s", flush=True)
        rows = measure_stages(model, step, stages(size), sc, dev, a, size)
        if not a.no_peft:
            try:
                from peft import PromptTuningConfig, TaskType, get_peft_model
                pcfg = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=20, num_transformer_submodules=1,
                                          token_dim=model.config.d_model, num_attention_heads=model.config.num_heads,
                                          num_layers=model.config.num_layers)
                pm = get_peft_model(model, pcfg)
                pemb = pm.prompt_encoder['default'].embedding
                with torch.no_grad(): pemb.weight.copy_(pt.prompt.weight)
                def peft_step():
                    pemb.weight.grad = None
                    pm(input_ids=ids, labels=labels).loss.backward()
                with torch.no_grad():
                    losses = (pt(ids[:2], labels=labels[:2]).loss.item(), pm(input_ids=ids[:2], labels=labels[:2]).loss.item())
                results.append(race_peft(step, peft_step, losses, dev, size))
                pm.unload() if hasattr(pm, 'unload') else None
            except Exception as e: print(f"  PEFT comparison failed: {type(e).__name__}: {e}", flush=True)
        results += rows
        print_stage_table(size, rows, '  (paper LARGE: FR704 58/72 = 1.24, CR6/704 20/28 = 1.40)')
        del model, pt
        if dev.type == 'cuda': torch.cuda.empty_cache()
    write_stage_results(a, dev, results)
    return results

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', nargs='+', default=None, help='large xl (default), tiny with --smoke')
    ap.add_argument('--batch', type=int, default=None, help='global batch (32; 2 with --smoke)')
    ap.add_argument('--micro', type=int, default=None, help='micro-batch (the whole batch)')
    ap.add_argument('--input-len', type=int, default=None, help='input tokens, the prompt adds 20 (492; 20 with --smoke)')
    ap.add_argument('--target-len', type=int, default=4)
    ap.add_argument('--steps', type=int, default=None, help='timed steps (8; 2 with --smoke)')
    ap.add_argument('--warmup', type=int, default=None, help='steps before timing (2; 1 with --smoke)')
    ap.add_argument('--levers', nargs='*', default=None, help=f'names of levers to measure (all): {[n for n, _ in LEVERS]}')
    ap.add_argument('--budget-min', type=float, default=7.5, help='wall-clock budget in minutes; optional parts are skipped past it')
    ap.add_argument('--compile-guess-s', type=float, default=60, help='compile time assumed before the first compile is measured')
    ap.add_argument('--compile-on-cpu', action='store_true', help='measure the compiled levers on a CPU too (minutes)')
    ap.add_argument('--peak-tflops', type=float, default=None, help='dense bf16 peak of the GPU, if not in the built-in table')
    ap.add_argument('--out-dir', default=None, help='where gpu_efficiency.json/.md/.log and gpu_profile_<size>.txt go (results/perf; a temporary folder with --smoke)')
    ap.add_argument('--smoke', action='store_true', help='tiny T5s on the CPU, seconds: checks the logic, not the speed')
    ap.add_argument('--bare-stages', action='store_true', help="issue 6's bare-loop stage table instead")
    ap.add_argument('--dtype', default='bfloat16', help='--bare-stages: model dtype')
    ap.add_argument('--attn', default='sdpa', help='--bare-stages: attention used for timing (FLOPs are counted with eager)')
    ap.add_argument('--no-peft', action='store_true', help='--bare-stages: skip the PEFT comparison')
    ap.add_argument('--out', default=None, help='--bare-stages: JSON output')
    a = ap.parse_args(argv)
    tiny = a.smoke
    a.sizes = a.sizes or (['tiny'] if tiny else ['large', 'xl'])
    a.batch = a.batch or (2 if tiny else 32)
    a.micro = a.micro or a.batch
    a.input_len = a.input_len or (20 if tiny else 492)
    a.steps = a.steps or (2 if tiny else (10 if a.bare_stages else 8))
    a.warmup = a.warmup if a.warmup is not None else (1 if tiny else 2)
    a.best_first, a.compile_s_seen = None, None
    if a.batch % a.micro: ap.error(f"--batch {a.batch} is not a multiple of --micro {a.micro}")
    if a.levers and (bad := set(a.levers) - {n for n, _ in LEVERS}): ap.error(f"unknown levers {sorted(bad)}: expected some of {[n for n, _ in LEVERS]}")
    return bare_stages(a) if a.bare_stages else efficiency(a)

if __name__ == '__main__': main()
