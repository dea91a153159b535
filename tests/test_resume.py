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
    # resumed_unsaid: the summary and the line say the run went on from a checkpoint (its wall_seconds is the last command's)
    assert s['resumed_at'] == [killed_at] and json.loads((uninterrupted/'summary.json').read_text())['resumed_at'] == []
    assert f" s for this command (resumed at step {killed_at})" in out, out
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
    # stopped_called_final: the score line of a stopped run names its last evaluation and where it stopped, not a "final" one
    line = [l for l in out.splitlines() if l.startswith('   fpt_cr: ')]   # (best ..., or no evaluation yet where it stopped before one)
    assert len(line) == 1 and f", stopped at step {stopped_at} of 48; " in line[0] and 'final' not in line[0], out
    assert json.loads((run/'summary.json').read_text())['steps'] == stopped_at
    finish(fpt(run))
    assert torch.equal(prompt(run), prompt(uninterrupted))


# ---------------------------------------------------------------------------------------------------------------
# The checkpoint files themselves, in-process (a second or less)

def test_checkpoints_are_pruned_to_the_newest_keep():
    """Catches checkpoint_prune_keeps_one_more (one checkpoint more than `keep` left on disk) and checkpoint_names_unpadded
    (names that sort step-10 before step-9, so pruning deletes the newest and `latest` names a removed folder)."""
    import tempfile
    from fpt_nb.checkpoint import save_checkpoint, latest_checkpoint, load_checkpoint
    with tempfile.TemporaryDirectory() as d:
        for step in (8, 9, 10, 11):
            save_checkpoint(Path(d), step, torch.full((2, 3), float(step)), dict(epoch=0), {}, keep=2)
        kept = sorted(p.name for p in Path(d).iterdir() if not p.name.startswith('.') and p.name != 'latest')
        assert len(kept) == 2 and [json.loads((Path(d)/k/'state.json').read_text())['step'] for k in kept] == [10, 11]
        prompt, state, _ = load_checkpoint(latest_checkpoint(d))
        assert state['step'] == 11 and torch.equal(prompt, torch.full((2, 3), 11.0))


def test_a_deleted_latest_checkpoint_names_the_newest_one_left(tmp_path):
    """latest_hint_oldest: with three checkpoints kept and the newest deleted by hand, the way out names the newest one
    left (step 2), not the oldest, which would throw away a step of training."""
    import re
    from fpt_nb.checkpoint import save_checkpoint, latest_checkpoint
    import shutil
    for step in (1, 2, 3): save_checkpoint(tmp_path, step, torch.zeros(2, 3), dict(epoch=0), {}, keep=3)
    shutil.rmtree(tmp_path/'step-0000003')
    with pytest.raises(ValueError, match=re.escape(f"to resume from the newest one left, write 'step-0000002' into {tmp_path/'latest'}")):
        latest_checkpoint(tmp_path)


def test_a_checkpoint_saved_again_at_its_step_replaces_the_old_one():
    "Catches checkpoint_same_step_not_replaced: a checkpoint written again at the same step (a resumed run) must hold the new prompt."
    import tempfile
    from fpt_nb.checkpoint import save_checkpoint, latest_checkpoint, load_checkpoint
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(Path(d), 5, torch.zeros(2, 3), dict(epoch=0), {})
        save_checkpoint(Path(d), 5, torch.ones(2, 3), dict(epoch=1), {})
        prompt, state, _ = load_checkpoint(latest_checkpoint(d))
        assert torch.equal(prompt, torch.ones(2, 3)) and state['epoch'] == 1


def test_rng_states_survive_the_trip_through_a_checkpoint():
    """Catches rng_python_not_restored and rng_numpy_not_restored: the states saved, written as safetensors + JSON and read
    back, give the same draws from torch, numpy and Python's random as right after saving."""
    import random, tempfile
    import numpy as np
    from fpt_nb.checkpoint import rng_state, set_rng_state, flatten_state, unflatten_state, save_checkpoint, load_checkpoint
    draw = lambda: (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])
    with tempfile.TemporaryDirectory() as d:
        tensors, skeleton = flatten_state(rng_state())
        path = save_checkpoint(Path(d), 1, torch.zeros(1, 1), dict(rng=skeleton), tensors)
        want = draw()
        draw()   # move every generator on
        _, state, tensors = load_checkpoint(path)
        set_rng_state(unflatten_state(state['rng'], tensors))
        assert draw() == want
