"""Stage cost of FPT on decoder-only shapes on a GPU: the companion of gpu_stages.py (T5) for Qwen2.5 and Llama 3.2.

    python benchmarks/gpu_stages_causal.py          # qwen2.5-0.5b, qwen2.5-1.5b, llama-3.2-1b; bf16, batch 32, 20 + 492 + 10 positions
    python benchmarks/gpu_stages_causal.py --sizes tiny --batch 2 --input-len 20 --steps 2 --dtype float32   # a CPU smoke run

For every stage (full-model PT, LD, FR and CR at a quarter, a half and three quarters of the layers and MLP
width, as in fpt_nb.causal.causal_stages) it prints the FLOPs of one prompt-tuning step (FlopCounterMode, eager
attention, batch 1 scaled by the batch size, checked against the analytic count), the median step time
(forward + backward to the prompt) relative to the full model, their ratio (wall/FLOPs, 1.00 is ideal), the
time to expand into the stage and the peak memory. Random weights built from the configs' shapes: cost does
not depend on weight values. Also times HF PEFT's CAUSAL_LM prompt tuning against ours on the full model (PEFT
runs the LM head at every position, ours at the completion's). Writes everything as JSON with --out.
"""
import argparse, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from torch.utils.flop_counter import FlopCounterMode
from fpt_nb.causal import CAUSAL_FAMILIES, CAUSAL_SHAPES, shape_config, tiny_causal_config, PromptCausalLM, causal_stages, causal_batch_flops
from fpt_nb.prompt import freeze
from fpt_nb.arch import ffn_widths
from fpt_nb.partial import FULL, Stage, apply_stage
from fpt_nb.scores import NeuronScores

from gpu_stages import sync, timed, set_attn   # the T5 benchmark's timing helpers

def stages(config):
    "(name, Stage) of full-model PT and the paper's quarters for LD, FR and CR."
    out = [('PT', FULL)]
    for method, label in (('ld', 'LD'), ('fr', 'FR'), ('cr', 'CR')):
        for widths in causal_stages(config, method):
            k, f = len(widths), widths[0]
            st = Stage(decoder_layers=k if k < config.num_hidden_layers else None, decoder_ffn=f if f < config.intermediate_size else None)
            out.append((f"{label} {k}L/{f}", st))
    return out

def build(size, dev, dtype):
    config = tiny_causal_config('llama') if size == 'tiny' else shape_config(size)
    family = 'llama' if size == 'tiny' else CAUSAL_SHAPES[size][0]
    with torch.device(dev): model = CAUSAL_FAMILIES[family][1](config)
    return freeze(model.to(dtype).eval())

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', nargs='+', default=list(CAUSAL_SHAPES), help=f"any of {list(CAUSAL_SHAPES)} or tiny")
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--input-len', type=int, default=492, help='input tokens (the prompt adds 20)')
    ap.add_argument('--target-len', type=int, default=10, help='completion tokens, EOS included')
    ap.add_argument('--steps', type=int, default=10, help='timed steps per stage (after 3 warm-up steps)')
    ap.add_argument('--dtype', default='bfloat16')
    ap.add_argument('--attn', default='sdpa', help='attention used for timing (FLOPs are always counted with eager)')
    ap.add_argument('--no-peft', action='store_true')
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dtype = getattr(torch, a.dtype)
    print(f"device {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}, {a.dtype}, "
          f"batch {a.batch}, 20 prompt + {a.input_len} input + {a.target_len} completion", flush=True)
    results = []
    for size in a.sizes:
        t0 = time.perf_counter()
        model = build(size, dev, dtype)
        pt = PromptCausalLM(model, 20).to(dev)
        c = model.config
        g = torch.Generator(device='cpu').manual_seed(0)
        ids = torch.randint(3, c.vocab_size, (a.batch, a.input_len), generator=g).to(dev)
        labels = torch.randint(3, c.vocab_size, (a.batch, a.target_len), generator=g).to(dev)
        mask = torch.ones_like(ids)
        sc = NeuronScores({'decoder': torch.rand(c.num_hidden_layers, c.intermediate_size, generator=g)})
        def step(n=a.batch):
            pt.prompt.weight.grad = None
            pt(ids[:n], mask[:n], labels=labels[:n]).loss.backward()
        print(f"\n{size}: built in {time.perf_counter() - t0:.1f}s", flush=True)
        rows = []
        for name, st in stages(c):
            sync(dev); t = time.perf_counter()
            apply_stage(model, st, sc); sync(dev)
            expand_s = time.perf_counter() - t
            set_attn(model, 'eager')   # FLOP counters see eager attention's matmuls on every device
            with FlopCounterMode(display=False) as fc: step(1)
            flops = fc.get_total_flops() * a.batch
            analytic = causal_batch_flops(pt, dict(input_ids=ids, attention_mask=mask, labels=labels), ffn_widths(model))
            set_attn(model, a.attn)
            for _ in range(3): step()
            if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
            sec = timed(step, dev, a.steps)
            peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else float('nan')
            rows.append(dict(size=size, stage=name, flops=flops, analytic_flops=analytic, step_s=sec, expand_s=expand_s, peak_gib=peak))
            print(f"  {name:<14} {flops/1e12:9.3f} TFLOP (analytic {'equal' if analytic == flops else f'{analytic/1e12:.3f}'})  "
                  f"{sec*1e3:9.1f} ms  expand {expand_s*1e3:7.1f} ms  peak {peak:6.1f} GiB", flush=True)
        apply_stage(model, FULL)
        full = rows[0]
        for r in rows:
            r['flops_frac'], r['wall_frac'] = r['flops'] / full['flops'], r['step_s'] / full['step_s']
            r['wall_over_flops'] = r['wall_frac'] / r['flops_frac']
        if not a.no_peft:
            try:
                from peft import PromptTuningConfig, TaskType, get_peft_model
                pcfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=20, num_transformer_submodules=1,
                                          token_dim=c.hidden_size, num_attention_heads=c.num_attention_heads, num_layers=c.num_hidden_layers)
                pm = get_peft_model(model, pcfg)
                pemb = pm.prompt_encoder['default'].embedding
                with torch.no_grad(): pemb.weight.copy_(pt.prompt.weight)
                seq = torch.cat([ids, labels], 1)
                plain = torch.cat([torch.full_like(ids, -100), labels], 1)
                def peft_step():
                    pemb.weight.grad = None
                    pm(input_ids=seq, attention_mask=torch.ones_like(seq), labels=plain).loss.backward()
                with torch.no_grad():
                    same = (pm(input_ids=seq[:2], attention_mask=torch.ones_like(seq[:2]), labels=plain[:2]).loss.item(),
                            pt(ids[:2], mask[:2], labels=labels[:2]).loss.item())
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
        print(f"\n{size}: stage  FLOPs%  wall%  wall/FLOPs")
        for r in rows: print(f"  {r['stage']:<14} {100*r['flops_frac']:6.1f} {100*r['wall_frac']:6.1f} {r['wall_over_flops']:8.2f}")
        del model, pt
        if dev.type == 'cuda': torch.cuda.empty_cache()
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(dict(device=str(torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'),
                                               args=vars(a), results=results), indent=1))
    return results

if __name__ == '__main__': main()
