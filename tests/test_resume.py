"Kill-and-resume with a real process: the final prompt equals the uninterrupted run's bit for bit (CPU)."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from conftest import ROOT

# FPT with compound reduction: scores are computed, saved and found again on resume, and the run
# crosses expansions after the kill. One thread: the same arithmetic in every process.
ARGS = ['run', '--task', 'toy', '--model', 'tiny', '--method', 'fpt_cr', '--steps', '48', '--batch-size', '8',
        '--prompt-length', '8', '--train-limit', '256', '--eval-limit', '16', '--eval-every', '12', '--score-examples', '32',
        '--checkpoint-every', '2', '--threads', '1', '--no-progress']

def fpt(out, *extra, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return subprocess.Popen([sys.executable, '-c', 'import sys; from fpt_nb.cli import main; sys.exit(main())', *ARGS, '--out-dir', str(out), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

def finish(p, timeout=240) -> str:
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out
    return out

def checkpoint_step(run) -> int:
    latest = run/'checkpoints'/'latest'
    return json.loads((run/'checkpoints'/latest.read_text().strip()/'state.json').read_text())['step'] if latest.is_file() else 0

def wait_for_checkpoint(p, run, at_least:int, timeout=180):
    t = time.time()
    while checkpoint_step(run) < at_least:
        assert p.poll() is None, f"the run ended before a checkpoint at step {at_least}: {p.stdout.read()}"
        assert time.time() - t < timeout, 'no checkpoint in time'
        time.sleep(0.05)

def prompt(run) -> torch.Tensor: return load_file(str(run/'prompt.safetensors'))['prompt']

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp('whole')/'run'
    finish(fpt(run))
    return run

def test_sigkill_then_resume(uninterrupted, tmp_path):
    run = tmp_path/'run'
    p = fpt(run)
    wait_for_checkpoint(p, run, 8)     # in stage 1 or 2 of 4 (stages of 10, 10, 10, 18 steps)
    p.kill(); p.wait()
    killed_at = checkpoint_step(run)
    assert 8 <= killed_at < 48 and not (run/'summary.json').exists()
    out = finish(fpt(run))
    s = json.loads((run/'summary.json').read_text())
    assert s['steps'] == 48 and s['stopped'] is None
    assert torch.equal(prompt(run), prompt(uninterrupted))
    assert s['total_flops'] == json.loads((uninterrupted/'summary.json').read_text())['total_flops']
    steps = [json.loads(l)['step'] for l in (run/'log.jsonl').read_text().splitlines() if '"kind": "step"' in l]
    assert steps == list(range(1, 49))   # steps logged after the last checkpoint were dropped and run again, once

def test_sigterm_stops_cleanly_then_resumes(uninterrupted, tmp_path):
    run = tmp_path/'run'
    p = fpt(run)
    wait_for_checkpoint(p, run, 4)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 143, out
    assert 'stopped by signal 15' in out and 'run the same command to resume' in out
    stopped_at = checkpoint_step(run)
    assert 4 <= stopped_at < 48
    assert json.loads((run/'summary.json').read_text())['steps'] == stopped_at
    finish(fpt(run))
    assert torch.equal(prompt(run), prompt(uninterrupted))
