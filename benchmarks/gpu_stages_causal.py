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
import argparse, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from gpu_stages import import_fpt, measure_stages, race_peft, print_stage_table, write_stage_results   # shared with the T5 benchmark
import_fpt('fpt_nb.causal')   # also where the GPU image lacks datasets or the ROUGE packages, which no step here uses
from fpt_nb.causal import CAUSAL_FAMILIES, CAUSAL_SHAPES, shape_config, tiny_causal_config, PromptCausalLM, causal_stages, causal_batch_flops
from fpt_nb.prompt import freeze
from fpt_nb.arch import ffn_widths
from fpt_nb.partial import FULL, Stage
from fpt_nb.scores import NeuronScores

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
        def analytic(flops):   # the analytic count of the same step, for the whole batch
            n = causal_batch_flops(pt, dict(input_ids=ids, attention_mask=mask, labels=labels), ffn_widths(model))
            return dict(analytic_flops=n), f" (analytic {'equal' if n == flops else f'{n/1e12:.3f}'})"
        rows = measure_stages(model, step, stages(c), sc, dev, a, size, analytic)
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
                    losses = (pt(ids[:2], mask[:2], labels=labels[:2]).loss.item(),
                              pm(input_ids=seq[:2], attention_mask=torch.ones_like(seq[:2]), labels=plain[:2]).loss.item())
                results.append(race_peft(step, peft_step, losses, dev, size))
                pm.unload() if hasattr(pm, 'unload') else None
            except Exception as e: print(f"  PEFT comparison failed: {type(e).__name__}: {e}", flush=True)
        results += rows
        print_stage_table(size, rows)
        del model, pt
        if dev.type == 'cuda': torch.cuda.empty_cache()
    write_stage_results(a, dev, results)
    return results

if __name__ == '__main__': main()
