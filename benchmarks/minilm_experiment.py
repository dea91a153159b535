"""FPT on a real pretrained encoder: all-MiniLM-L6-v2 on MNLI and QQP, PT vs FPT_LD/FR/CR, several seeds.

    python benchmarks/minilm_experiment.py --data-dir ../shared/data            # the full experiment (GPU: minutes)
    python benchmarks/minilm_experiment.py --model tiny-bert --steps 8 --seeds 0 --train-limit 64 --eval-limit 32   # smoke

Each run is an ordinary `run_experiment` run folder (summary.json, log.jsonl, prompts) under --out;
`fpt tables <the --out folder>` or the tables notebook turn them into the paper's tables. An optional learning-rate
probe (--lr-probe) trains PT on the first task for --probe-steps at each rate and keeps the best.
With --tar, the run folders (without checkpoints) are packed after every run, so a run cut short
still leaves what finished.
"""
import argparse, itertools, json, statistics, sys, tarfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fpt_nb.run import run_experiment

def pack(out:Path, tar:Path):
    tmp = tar.with_suffix('.tmp')
    with tarfile.open(tmp, 'w:gz') as t:
        for f in sorted(out.rglob('*')):
            if f.is_file() and 'checkpoints' not in f.parts and 'tb' not in f.parts: t.add(f, f.relative_to(out.parent))
    tmp.replace(tar)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='minilm'); ap.add_argument('--data-dir', default=None)
    ap.add_argument('--tasks', nargs='+', default=['mnli', 'qqp']); ap.add_argument('--methods', nargs='+', default=['pt', 'fpt_ld', 'fpt_fr', 'fpt_cr'])
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2]); ap.add_argument('--steps', type=int, default=1000)
    ap.add_argument('--batch-size', type=int, default=32); ap.add_argument('--lr', type=float, default=0.3)
    ap.add_argument('--lr-probe', nargs='*', type=float, default=[]); ap.add_argument('--probe-steps', type=int, default=300)
    ap.add_argument('--eval-every', type=int, default=100); ap.add_argument('--eval-limit', type=int, default=2000)
    ap.add_argument('--train-limit', type=int, default=None); ap.add_argument('--eval-batch-size', type=int, default=256)
    ap.add_argument('--out', default='runs/minilm'); ap.add_argument('--tar', default=None); ap.add_argument('--device', default='auto')
    a = ap.parse_args(argv)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    common = dict(model=a.model, data_dir=a.data_dir, batch_size=a.batch_size, eval_every=a.eval_every, eval_limit=a.eval_limit,
                  train_limit=a.train_limit, eval_batch_size=a.eval_batch_size, device=a.device, progress=False, checkpoint_every=0)
    lr = a.lr
    if a.lr_probe:
        res = {}
        for p in a.lr_probe:
            s = run_experiment(a.tasks[0], method='pt', out_dir=out/f'probe-lr{p}', steps=a.probe_steps, lr=p, seed=0, **common)
            res[p] = s['final_metrics'][s['metric']]
            print(f"lr probe {p}: {s['metric']} {res[p]:.2f} after {a.probe_steps} steps ({s['wall_seconds']:.0f}s)", flush=True)
        lr = max(res, key=res.get)
        print(f"using lr {lr}", flush=True)
        if a.tar: pack(out, Path(a.tar))
    rows = []
    for seed, task, method in itertools.product(a.seeds, a.tasks, a.methods):   # seeds outermost: a cut-short run keeps whole seeds
        t = time.perf_counter()
        s = run_experiment(task, method=method, out_dir=out/f'{task}-{method}-s{seed}', steps=a.steps, lr=lr, seed=seed, **common)
        rows.append(s)
        print(f"{task:5} {method:7} seed {seed}: {s['metric']} {s['final_metrics'][s['metric']]:.2f}  "
              f"GFLOPs {s['total_flops']/1e9:.0f}  train {s['train_seconds']:.0f}s  ({time.perf_counter()-t:.0f}s)", flush=True)
        if a.tar: pack(out, Path(a.tar))
        if str(s['stopped']).startswith('signal'):   # SIGTERM stopped this run cleanly: stop the experiment too
            print(f"stopped by {s['stopped']}: {task}/{method}/seed {seed} is incomplete", flush=True)
            break
    rows = [r for r in rows if r['steps'] == r['planned_steps']]   # tables use complete runs only
    print("\ntask  method   metric mean ± std (n)   FLOPs vs PT   train time vs PT")
    for task in a.tasks:
        pt = [r for r in rows if r['task'] == task and r['method'] == 'pt']
        for method in a.methods:
            rs = [r for r in rows if r['task'] == task and r['method'] == method]
            if not rs: continue
            v = [r['final_metrics'][r['metric']] for r in rs]
            f = statistics.mean(r['total_flops'] for r in rs) / statistics.mean(r['total_flops'] for r in pt) if pt else float('nan')
            w = statistics.mean(r['train_seconds'] for r in rs) / statistics.mean(r['train_seconds'] for r in pt) if pt else float('nan')
            print(f"{task:5} {method:7} {statistics.mean(v):6.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:4.2f} ({len(v)})   {100*f:6.1f}%      {100*w:6.1f}%")
    (out/'lr.json').write_text(json.dumps(dict(lr=lr)))
    if a.tar: pack(out, Path(a.tar))

if __name__ == '__main__': main()
