"""Stage cost of FPT at the paper's shapes on a GPU: one command, a few minutes on an H100/H200.

    python benchmarks/gpu_stages.py                 # LARGE and XL, bf16, batch 32, 492+20 input, the paper's stages
    python benchmarks/gpu_stages.py --sizes tiny --batch 2 --input-len 20 --steps 2   # a CPU smoke run

For every stage (full-model PT, LD 6/12/18, FR, CR) it prints the FLOPs of one prompt-tuning step
(FlopCounterMode, eager attention, batch 1 scaled by the batch size) relative to the full model,
the median step time (forward + backward to the prompt) relative to the full model, their ratio
(wall/FLOPs, 1.00 is ideal), the time to expand into the stage and the peak memory. Random
weights: cost does not depend on weight values. Also times HF PEFT's prompt tuning against ours
on the full model, interleaved. Writes everything as JSON with --out.
"""
import argparse, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5ForConditionalGeneration
from fpt_nb.prompt import paper_config, tiny_t5_config, untie_lm_head, freeze, PromptT5
from fpt_nb.partial import FULL, apply_stage, layer_dropping, ffn_reduction, compound_reduction
from fpt_nb.scores import NeuronScores

PAPER_WIDTHS = {'large': (704, 1408, 2112), 'xl': (1280, 2560, 3840), 'tiny': (32, 64, 96)}
PAPER_LAYERS = {'large': (6, 12, 18), 'xl': (6, 12, 18), 'tiny': (1, 2, 3)}

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

def set_attn(model, impl):
    try: model.set_attn_implementation(impl)
    except Exception as e: print(f"  (attention stays {model.config._attn_implementation}: {e})")

def build(size, dev, dtype):
    cfg = tiny_t5_config() if size == 'tiny' else paper_config(size)
    with torch.device(dev): model = T5ForConditionalGeneration(cfg)
    return freeze(untie_lm_head(model).to(dtype).eval())

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', nargs='+', default=['large', 'xl'])
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--input-len', type=int, default=492, help='input tokens (the prompt adds 20)')
    ap.add_argument('--target-len', type=int, default=4)
    ap.add_argument('--steps', type=int, default=10, help='timed steps per stage (after 3 warm-up steps)')
    ap.add_argument('--dtype', default='bfloat16')
    ap.add_argument('--attn', default='sdpa', help='attention used for timing (FLOPs are always counted with eager)')
    ap.add_argument('--no-peft', action='store_true')
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
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
        rows = []
        for name, st in stages(size):
            sync(dev); t = time.perf_counter()
            apply_stage(model, st, sc); sync(dev)
            expand_s = time.perf_counter() - t
            set_attn(model, 'eager')   # FLOP counters see eager attention's matmuls on every device
            with FlopCounterMode(display=False) as fc: step(1)
            flops = fc.get_total_flops() * a.batch
            set_attn(model, a.attn)
            for _ in range(3): step()
            if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
            sec = timed(step, dev, a.steps)
            peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')
            rows.append(dict(size=size, stage=name, flops=flops, step_s=sec, expand_s=expand_s, peak_gib=peak))
            print(f"  {name:<12} {flops/1e12:9.2f} TFLOP  {sec*1e3:9.1f} ms  expand {expand_s*1e3:7.1f} ms  peak {peak:6.1f} GiB", flush=True)
        apply_stage(model, FULL)
        full = rows[0]
        for r in rows:
            r['flops_frac'], r['wall_frac'] = r['flops'] / full['flops'], r['step_s'] / full['step_s']
            r['wall_over_flops'] = r['wall_frac'] / r['flops_frac']
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
                    same = (pm(input_ids=ids[:2], labels=labels[:2]).loss.item(), pt(ids[:2], labels=labels[:2]).loss.item())
                for _ in range(2): peft_step(); step()
                ours, theirs = [], []
                for _ in range(5): ours.append(timed(step, dev, 3)); theirs.append(timed(peft_step, dev, 3))
                ratio = statistics.median(o / t for o, t in zip(ours, theirs))
                results.append(dict(size=size, stage='PEFT vs ours', ours_s=statistics.median(ours), peft_s=statistics.median(theirs),
                                    ratio=ratio, loss_ours=same[1], loss_peft=same[0]))
                print(f"  ours/PEFT step time {ratio:.3f} (ours {statistics.median(ours)*1e3:.1f} ms, PEFT {statistics.median(theirs)*1e3:.1f} ms); "
                      f"loss ours {same[1]:.5f} PEFT {same[0]:.5f}", flush=True)
                pm.unload() if hasattr(pm, 'unload') else None
            except Exception as e: print(f"  PEFT comparison failed: {type(e).__name__}: {e}", flush=True)
        results += rows
        print(f"\n{size}: stage  FLOPs%  wall%  wall/FLOPs  (paper LARGE: FR704 58/72 = 1.24, CR6/704 20/28 = 1.40)")
        for r in rows: print(f"  {r['stage']:<12} {100*r['flops_frac']:6.1f} {100*r['wall_frac']:6.1f} {r['wall_over_flops']:8.2f}")
        del model, pt
        if dev.type == 'cuda': torch.cuda.empty_cache()
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(dict(device=str(torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'),
                                               args=vars(a), results=results), indent=1))
    return results

if __name__ == '__main__': main()
