"""Issue-6 benchmarks on this CPU: stage cost at the paper's shapes, against HF PEFT, padding, expansion cost;
and issue 12's trainer step, old against fast (fpt_nb.fast), at small shapes.

    python benchmarks/cpu_stages.py                   # the issue-6 parts, about 10 minutes on 2 cores; writes results/perf/cpu_benchmarks.md/json and wall_vs_flops.png
    python benchmarks/cpu_stages.py --parts stages --sizes large --rounds 2
    python benchmarks/cpu_stages.py --parts step      # issue 12 on the CPU, a few minutes; writes results/perf/cpu_fast_step.md/json

Everything is measured as ratios inside one run (interleaved rounds, medians), since these machines are noisy.
Random weights: cost does not depend on weight values. FLOPs are counted analytically (fpt_nb.flops, exact
against FlopCounterMode with eager attention); timing uses the same eager attention.
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from transformers import T5ForConditionalGeneration
from fpt_nb.prompt import paper_config, t5_config, untie_lm_head, freeze, PromptT5
from fpt_nb.partial import FULL, apply_stage
from fpt_nb.scores import NeuronScores
from fpt_nb.arch import ffn_widths
from fpt_nb.flops import pt_step_flops

from gpu_stages import stages   # the paper's stages, the same list the GPU benchmark times
from gpu_stages import synthetic_items, make_trainer, fast_step, import_train

OUT = Path(__file__).resolve().parents[1]/'results'/'perf'

def build(cfg):
    torch.manual_seed(0)
    return freeze(untie_lm_head(T5ForConditionalGeneration(cfg)).eval())

def rss_peak_reset():
    "Reset the kernel's peak-RSS counter of this process (Linux), so VmHWM measures from now on."
    try: Path('/proc/self/clear_refs').write_text('5')
    except OSError: pass

def rss_peak_gib() -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 2**20
    return float('nan')

def batch(model, b, n_in, n_tgt, seed=0):
    g = torch.Generator().manual_seed(seed)
    V = model.config.vocab_size
    return torch.randint(2, V, (b, n_in), generator=g), torch.randint(2, V, (b, n_tgt), generator=g)

def step_fn(pt, ids, labels):
    def step():
        pt.prompt.weight.grad = None
        pt(ids, labels=labels).loss.backward()
    return step

def timeit(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

def part_stages(size, b, n_in, n_tgt, rounds, report):
    model = build(paper_config(size)); pt = PromptT5(model, 20)
    ids, labels = batch(model, b, n_in, n_tgt)
    sc = NeuronScores({s: torch.rand(24, model.config.d_ff, generator=torch.Generator().manual_seed(1)) for s in ('encoder', 'decoder')})
    st = stages(size)
    flops, times, expand, peaks, expand_peaks = {}, {n: [] for n, _ in st}, {n: [] for n, _ in st}, {}, {}
    for n, s in st:   # FLOPs and a warm-up step per stage
        apply_stage(model, s, sc)
        w = ffn_widths(model)
        flops[n] = pt_step_flops(model.config, 20 + n_in, n_tgt, w['encoder'], w['decoder'], batch=b)
        step_fn(pt, ids, labels)()
    for r in range(rounds):   # interleaved: every round times every stage once, in a rotated order
        order = st[r % len(st):] + st[:r % len(st)]
        for n, s in order:
            rss_peak_reset()
            t = time.perf_counter(); apply_stage(model, s, sc); expand[n].append(time.perf_counter() - t)
            expand_peaks[n] = max(expand_peaks.get(n, 0), rss_peak_gib())
            rss_peak_reset()
            times[n].append(timeit(step_fn(pt, ids, labels)))
            peaks[n] = max(peaks.get(n, 0), rss_peak_gib())
        print(f"  {size} round {r + 1}/{rounds} done", flush=True)
    apply_stage(model, FULL)
    # each round's stage time relative to that round's PT time, then the median over rounds
    rel = {n: statistics.median(t / p for t, p in zip(times[n], times['PT'])) for n in times}
    rows = []
    for n, _ in st:
        f = flops[n] / flops['PT']
        rows.append(dict(size=size, stage=n, flops=flops[n], flops_frac=f, wall_frac=rel[n], wall_over_flops=rel[n] / f,
                         step_s=statistics.median(times[n]), expand_s=statistics.median(expand[n]), peak_rss_gib=peaks[n],
                         expand_peak_rss_gib=expand_peaks[n]))
    report['stages'] += rows
    del model, pt
    return rows

def part_peft(size, b, n_in, n_tgt, rounds, report):
    from peft import PromptTuningConfig, TaskType, get_peft_model
    model = build(paper_config(size)); pt = PromptT5(model, 20)
    ids, labels = batch(model, b, n_in, n_tgt)
    c = model.config
    pm = get_peft_model(model, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=20, num_transformer_submodules=1,
                                                  token_dim=c.d_model, num_attention_heads=c.num_heads, num_layers=c.num_layers))
    emb = pm.prompt_encoder['default'].embedding
    with torch.no_grad(): emb.weight.copy_(pt.prompt.weight)
    with torch.no_grad(): losses = (pt(ids, labels=labels).loss.item(), pm(input_ids=ids, labels=labels).loss.item())
    def peft_step():
        emb.weight.grad = None
        pm(input_ids=ids, labels=labels).loss.backward()
    ours_fn = step_fn(pt, ids, labels)
    ours_fn(); peft_step()
    ours, theirs = [], []
    for r in range(rounds):
        a, p = (timeit(ours_fn), timeit(peft_step)) if r % 2 == 0 else tuple(reversed((timeit(peft_step), timeit(ours_fn))))
        ours.append(a); theirs.append(p)
    ratio = statistics.median(o / t for o, t in zip(ours, theirs))
    report['peft'] = dict(size=size, batch=b, input=n_in, target=n_tgt, ours_s=statistics.median(ours), peft_s=statistics.median(theirs),
                          ratio=ratio, loss_ours=losses[0], loss_peft=losses[1], rounds=rounds)
    return report['peft']

def part_padding(data_dir, b, steps, report):
    "Tokens per step on real MNLI: dynamic padding vs the paper's pad-to-492, with a SentencePiece vocabulary trained on MNLI."
    import sentencepiece as spm
    from fpt_nb.tasks import load_examples, get_task
    from fpt_nb.batches import padding_waste, collate
    task = get_task('mnli')
    rows = load_examples(task, 'train', data_dir)
    texts = [task.format(r)[0] for r in rows]
    d = Path(tempfile.mkdtemp())
    (d/'text.txt').write_text('\n'.join(texts))
    spm.SentencePieceTrainer.train(input=str(d/'text.txt'), model_prefix=str(d/'sp'), vocab_size=8000, model_type='unigram',
                                   character_coverage=1.0, bos_id=-1, eos_id=1, pad_id=0, unk_id=2, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(d/'sp.model'))
    items = [dict(input_ids=ids[:491] + [1], labels=[1]) for ids in sp.encode(texts)]
    dyn, fix = padding_waste(items, b, 'dynamic'), padding_waste(items, b, 'max')
    buck = padding_waste(items, b, 'dynamic', bucket=True)
    steps_per_epoch = len(items) // b
    # step time of a T5-small-shaped model (the shape the brief times on this CPU), dynamic vs fixed padding
    model = build(t5_config(512, 2048, 6, 8, vocab_size=32128)); pt = PromptT5(model, 20)
    from fpt_nb.batches import batch_order
    groups = batch_order([len(i['input_ids']) for i in items], b, seed=0)[:steps]
    tdyn, tfix = [], []
    for g in groups:
        bd = collate([items[i] for i in g], padding='dynamic'); bf = collate([items[i] for i in g], padding='max')
        tdyn.append(timeit(step_fn(pt, bd['input_ids'], bd['labels']))); tfix.append(timeit(step_fn(pt, bf['input_ids'], bf['labels'])))
    report['padding'] = dict(examples=len(items), batch=b, tokens_per_step_dynamic=dyn['total'] / (len(dyn['per_batch'])),
                             tokens_per_step_fixed=fix['total'] / len(fix['per_batch']), real_tokens_per_step=dyn['real'] / len(dyn['per_batch']),
                             fixed_over_dynamic=fix['total'] / dyn['total'], fixed_over_bucketed=fix['total'] / buck['total'],
                             waste_dynamic=dyn['waste'], waste_fixed=fix['waste'], waste_bucketed=buck['waste'],
                             step_s_dynamic=statistics.median(tdyn), step_s_fixed=statistics.median(tfix),
                             time_fixed_over_dynamic=statistics.median(f / d for f, d in zip(tfix, tdyn)), timed_steps=len(groups),
                             model='T5-small shape (d 512, ff 2048, 6+6 layers), SentencePiece 8k trained on MNLI')
    return report['padding']

def part_step(size, b, n_in, n_tgt, rounds, compile_too=False) -> dict:
    """The trainer's step on this CPU: the old step (`fpt_nb.fast.plain_step`, the trainer's before `FastStep`) against `FastStep`
    with the levers a CPU can pull (no lever: the trainer's step as it is), in fp32
    (what a CPU run trains in) and under bf16 autocast (what a GPU run trains in). Interleaved rounds, medians."""
    from types import SimpleNamespace
    from fpt_nb.fast import FastOptions, agreement, plain_step
    from fpt_nb.batches import collate
    import_train()
    model = build(paper_config(size)); pt = PromptT5(model, 20)
    items = synthetic_items(2 * b, n_in, n_tgt, model.config.vocab_size)
    a, run = SimpleNamespace(batch=b, micro=b), Path(tempfile.mkdtemp())
    b0 = collate(items[:b])
    p0 = pt.prompt.weight.detach().clone()
    def loss_grad(fn, autocast):
        with torch.no_grad(): pt.prompt.weight.copy_(p0)
        pt.prompt.weight.grad = None
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast): loss = fn()
        loss.backward()
        g, pt.prompt.weight.grad = pt.prompt.weight.grad.clone(), None
        return loss.detach(), g
    groups = {False: [('old step (plain_step)', None), ('one wait per step', FastOptions()),
                      ('our forward, eager attention', FastOptions(attention='eager')), ('our forward, SDPA', FastOptions(attention='sdpa'))]
                     + ([('+ compiled blocks', FastOptions(attention='sdpa', compile=True))] if compile_too else []),
              True: [('old step (plain_step)', None), ('+ bf16 weights', FastOptions(bf16_weights=True)),
                     ('+ our forward, SDPA', FastOptions(bf16_weights=True, attention='sdpa'))]}
    out = dict(size=size, batch=b, input=n_in, target=n_tgt, rounds=rounds, rows=[])
    for autocast in (False, True):   # fp32 first: bf16 weights are cast in place
        precision = 'bf16' if autocast else 'fp32'
        steppers = []
        for name, options in groups[autocast]:
            tr = make_trainer(pt, items, a, 'cpu', run, bf16=autocast)
            step = (lambda it, w, tr=tr: plain_step(tr, it, w)) if options is None else fast_step(tr, options)
            ref = loss_grad(lambda: pt(b0['input_ids'], b0['attention_mask'], labels=b0['labels']).loss, autocast) if options is None else ref
            t = time.perf_counter()
            got = loss_grad(lambda: step.loss(b0), autocast) if options is not None else ref
            first = time.perf_counter() - t
            it, w = tr._micro_batches(), ffn_widths(model)
            step(it, w)   # warm-up
            steppers.append((name, options, step, it, w, agreement(*got, *ref, precision=precision), first))
        times = {name: [] for name, *_ in steppers}
        for r in range(rounds):
            order = steppers[r % len(steppers):] + steppers[:r % len(steppers)]
            for name, options, step, it, w, _, _ in order: times[name].append(timeit(lambda: step(it, w)))
        old = times[steppers[0][0]]
        for name, options, step, it, w, agree, first in steppers:
            out['rows'].append(dict(precision=precision, name=name, options=None if options is None else options.__dict__,
                                    step_s=statistics.median(times[name]), vs_old=statistics.median(t / o for t, o in zip(times[name], old)),
                                    spread=max(times[name]) / min(times[name]), first_call_s=first, agreement=agree))
            print(f"  {precision} {name:<30} {statistics.median(times[name]):6.3f} s  x{out['rows'][-1]['vs_old']:.3f} of the old step  "
                  f"loss rdiff {agree['loss_rdiff']:.1e}  grad cos {agree['grad_cos']:.5f}", flush=True)
    return out

def write_step(rep):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT/'cpu_fast_step.json').write_text(json.dumps(rep, indent=1))
    md = [f"# The trainer's step on a CPU, old and fast ({rep['machine']})", '',
          f"T5-{rep['size'].upper()} shapes, batch {rep['batch']}, input {rep['input']}+20 prompt, target {rep['target']}; "
          f"{rep['rounds']} interleaved rounds, medians; 'x' is the median of each round's step time over the old step's. "
          f"Agreement: the loss and the prompt's gradient at the same prompt and batch against the old step's "
          f"(fpt_nb.fast.TOLERANCES: fp32 loss rtol 1e-5, gradient 1e-4 of its largest entry; bf16 loss rtol 1e-2, gradient cosine 0.99). "
          f"'spread' is the slowest round over the fastest: how much this shared machine moved during the run. A CPU step is matrix "
          f"products; what the levers remove (waits for a GPU, weight casts, kernel launches) costs little here, so these times say "
          f"that nothing got slower, within the spread, and the agreement columns are what the CPU checks.", '',
          '| precision | step | s | x old | spread | first call, s | loss rel. diff | gradient cosine | agrees |',
          '|---|---|---|---|---|---|---|---|---|']
    for r in rep['rows']:
        a = r['agreement']
        md.append(f"| {r['precision']} | {r['name']} | {r['step_s']:.3f} | {r['vs_old']:.3f} | {r['spread']:.2f} | {r['first_call_s']:.1f} | "
                  f"{a['loss_rdiff']:.1e} | {a['grad_cos']:.6f} | {'yes' if a['ok'] else 'NO'} |")
    (OUT/'cpu_fast_step.md').write_text('\n'.join(md) + '\n')

def write(report):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT/'cpu_benchmarks.json').write_text(json.dumps(report, indent=1))
    md = [f"# CPU benchmarks ({report['machine']})", '', report['shape_note'], '',
          '| model | stage | FLOPs % of PT | wall % of PT | wall / FLOPs | step s | expand into it, ms | peak RSS in step, GiB | peak RSS in expansion, GiB |',
          '|---|---|---|---|---|---|---|---|---|']
    for r in report['stages']:
        md.append(f"| {r['size']} | {r['stage']} | {100*r['flops_frac']:.1f} | {100*r['wall_frac']:.1f} | {r['wall_over_flops']:.2f} | "
                  f"{r['step_s']:.2f} | {1e3*r['expand_s']:.1f} | {r['peak_rss_gib']:.2f} | {r['expand_peak_rss_gib']:.2f} |")
    if 'peft' in report:
        p = report['peft']
        md += ['', f"**Against HF PEFT** ({p['size']}, batch {p['batch']}, input {p['input']}+20, target {p['target']}, {p['rounds']} interleaved rounds): "
               f"ours/PEFT step time {p['ratio']:.3f} (ours {p['ours_s']:.2f} s, PEFT {p['peft_s']:.2f} s); loss ours {p['loss_ours']:.6f}, PEFT {p['loss_peft']:.6f}."]
    if 'padding' in report:
        p = report['padding']
        md += ['', f"**Padding on real MNLI** ({p['examples']} training examples, batch {p['batch']}, {p['model']}): "
               f"{p['tokens_per_step_fixed']:.0f} input tokens per step padded to 492 vs {p['tokens_per_step_dynamic']:.0f} with dynamic padding "
               f"({p['fixed_over_dynamic']:.1f}x fewer; {p['fixed_over_bucketed']:.1f}x with length bucketing); real tokens {p['real_tokens_per_step']:.0f}. "
               f"Step time fixed/dynamic: {p['time_fixed_over_dynamic']:.1f}x ({p['step_s_fixed']:.2f} s vs {p['step_s_dynamic']:.2f} s, median of {p['timed_steps']} steps)."]
    (OUT/'cpu_benchmarks.md').write_text('\n'.join(md) + '\n')
    if report['stages']:
        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 5))
        gpu = OUT/'gpu_stages_h200.json'
        series = [('CPU ' + s, [r for r in report['stages'] if r['size'] == s], 'o') for s in sorted({r['size'] for r in report['stages']})]
        if gpu.exists():
            g = json.loads(gpu.read_text())['results']
            series += [('H200 ' + s, [r for r in g if r.get('size') == s and 'flops_frac' in r], 's') for s in ('large', 'xl')]
        for name, rs, mk in series:
            ax.scatter([r['flops_frac'] for r in rs], [r['wall_frac'] for r in rs], marker=mk, label=name)
        ax.plot([0, 1], [0, 1], 'k--', lw=1, label='ideal (wall = FLOPs)')
        ax.scatter([0.58, 0.20], [0.72, 0.28], marker='x', c='k', label='paper: FR 704, CR 6/704')
        ax.set_xlabel('FLOPs per step, fraction of full-model PT'); ax.set_ylabel('wall time per step, fraction of PT')
        ax.set_xlim(0, 1.05); ax.set_ylim(0, 1.05); ax.legend(fontsize=8); ax.set_title('Partial-model stages: wall vs FLOPs')
        fig.tight_layout(); fig.savefig(OUT/'wall_vs_flops.png', dpi=110)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--parts', nargs='+', default=['stages', 'peft', 'padding'], help="also 'step': issue 12's trainer step, old and fast")
    ap.add_argument('--compile', action='store_true', help="part 'step': time compiled blocks too (inductor takes minutes here)")
    ap.add_argument('--sizes', nargs='+', default=['large', 'xl'])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--data-dir', default=os.environ.get('FPT_DATA_DIR', str(Path(__file__).resolve().parents[2]/'shared'/'data')))
    a = ap.parse_args(argv)
    shapes = {'large': (2, 108, 4), 'xl': (1, 44, 4)}   # batch, input tokens (the prompt adds 20), target tokens
    report = dict(machine=f"{os.cpu_count()}-core CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, eager attention",
                  shape_note='Reduced shapes for this CPU: ' + '; '.join(f"{s.upper()} batch {b}, input {i}+20 prompt, target {t}" for s, (b, i, t) in shapes.items() if s in a.sizes)
                  + '. Each stage is timed once per round, rounds interleaved; wall % is the median over rounds of stage time / that round\'s PT time.',
                  stages=[])
    if 'stages' in a.parts:
        for s in a.sizes:
            print(f"stage cost, {s}", flush=True)
            part_stages(s, *shapes[s], a.rounds if s == 'large' else max(2, a.rounds - 1), report); write(report)
    if 'peft' in a.parts:
        print("PEFT comparison", flush=True); print(part_peft('large', *shapes['large'], max(5, a.rounds), report), flush=True); write(report)
    if 'padding' in a.parts:
        print("padding", flush=True); print(part_padding(a.data_dir, 32, 3, report), flush=True); write(report)
    if 'step' in a.parts:
        print("the trainer's step, old and fast", flush=True)
        rep = dict(machine=report['machine'].replace(', fp32, eager attention', ''),
                   **part_step('large', *shapes['large'], max(3, a.rounds), compile_too=a.compile))
        write_step(rep)
        print((OUT/'cpu_fast_step.md').read_text())
    if set(a.parts) & {'stages', 'peft', 'padding'}: print((OUT/'cpu_benchmarks.md').read_text())

if __name__ == '__main__': main()
