"Data parallel with Accelerate: two CPU processes (gloo) give the prompt one process gives, and resume after a kill."
import os, signal, subprocess, time
from pathlib import Path
import pytest, torch
from fpt_nb.checkpoint import load_prompt, read_json
from fpt_nb.run import run_experiment, run_distributed, launch_command

RUN = dict(task='toy', model='tiny', method='fpt_ld', steps=6, batch_size=8, micro_batch_size=4, prompt_length=4,
           train_limit=64, eval_limit=8, eval_batch_size=8, progress=False, device='cpu')
# The launcher gives each process one CPU thread; the reference runs with one thread too, so both do the same
# float32 reductions in the same order. Gloo then sums the two processes' gradient shares where one process
# adds them in turn. We hold them to this tolerance.
TOL = dict(rtol=1e-6, atol=1e-7)

@pytest.fixture(scope='module')
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp('single')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: run_experiment(out_dir=str(out), **RUN)
    finally: torch.set_num_threads(threads)
    return out

def test_two_processes_match_one(single, tmp_path):
    s = run_distributed(2, out_dir=str(tmp_path/'dp'), **RUN)
    assert s['processes'] == 2 and s['steps'] == 6
    torch.testing.assert_close(load_prompt(tmp_path/'dp'/'prompt.safetensors'), load_prompt(single/'prompt.safetensors'), **TOL)
    one = read_json(single/'summary.json')
    assert s['total_flops'] == one['total_flops']          # the same micro-batches were processed, split over two processes
    assert [x['name'] for x in s['stages']] == [x['name'] for x in one['stages']]
    logs = (tmp_path/'dp'/'log.jsonl').read_text().splitlines()
    assert sum('"kind": "step"' in l for l in logs) == 6    # one log, from the main process only

def test_two_processes_match_one_on_a_decoder_only_model(tmp_path):
    "The same for a decoder-only backbone (its prompt goes before the input, its loss is over the completion only)."
    kw = dict(RUN, model='tiny-llama', out_dir=str(tmp_path/'one'))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try: one = run_experiment(**kw)
    finally: torch.set_num_threads(threads)
    s = run_distributed(2, **dict(kw, out_dir=str(tmp_path/'dp')))
    assert s['processes'] == 2 and s['steps'] == 6 and s['total_flops'] == one['total_flops']
    torch.testing.assert_close(load_prompt(tmp_path/'dp'/'prompt.safetensors'), load_prompt(tmp_path/'one'/'prompt.safetensors'), **TOL)

def launch_then_kill(out:Path, kw:dict) -> Path:
    "Launch a 2-process run of `kw` into `out` as `fpt run --num-processes 2` does, SIGKILL the launcher's process group once it has checkpointed step 2."
    out.mkdir()
    from fpt_nb.checkpoint import write_json
    from fpt_nb.run import LAUNCHER
    write_json(out/'launch.json', dict(kw, out_dir=str(out))); (out/'launch.py').write_text(LAUNCHER)
    p = subprocess.Popen(launch_command(2, out), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out/'checkpoints'/'step-0000002'
    t0 = time.time()
    while not ck.exists() and p.poll() is None and time.time() - t0 < 240: time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    return ck

def test_resume_after_kill(single, tmp_path):
    out = tmp_path/'dp'
    kw = dict(RUN, checkpoint_every=2)
    ck = launch_then_kill(out, kw)
    assert ck.exists(), "the data-parallel run wrote no checkpoint before it was killed"
    assert not (out/'summary.json').exists()                # it really was cut short
    s = run_distributed(2, out_dir=str(out), **kw)
    assert s['steps'] == 6
    torch.testing.assert_close(load_prompt(out/'prompt.safetensors'), load_prompt(single/'prompt.safetensors'), **TOL)

def test_two_processes_share_the_default_batch(tmp_path):
    """dp_default_micro: with no micro-batch size, `fpt run --num-processes 2` failed in both processes ("1 per step, which 2
    processes cannot share evenly: make it a multiple of 2", of a batch of 8). Now each process takes one micro-batch, its half,
    and the loss stays one token mean over the batch: the prompt one process trains with the whole batch at once."""
    kw = dict(RUN, micro_batch_size=None)
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        run_experiment(out_dir=str(tmp_path/'one'), **kw)   # one forward pass of the batch of 8, its token mean
        run_experiment(out_dir=str(tmp_path/'halves'), **dict(kw, micro_batch_size=4, loss_group=8))   # the same loss, in two halves
    finally: torch.set_num_threads(threads)
    s = run_distributed(2, out_dir=str(tmp_path/'dp'), **kw)
    assert s['processes'] == 2 and s['steps'] == 6
    dp, halves, one = (load_prompt(tmp_path/d/'prompt.safetensors') for d in ('dp', 'halves', 'one'))
    torch.testing.assert_close(dp, halves, **TOL)   # each process one half, the loss one token mean over both
    torch.testing.assert_close(dp, one, rtol=1e-3, atol=1e-5)   # the whole batch at once: the same loss, summed in another order

def test_batch_must_split_evenly(tmp_path):
    with pytest.raises(RuntimeError, match='data-parallel run failed .*: see its output above; it wrote no checkpoint'):
        run_distributed(2, out_dir=str(tmp_path/'odd'), **dict(RUN, batch_size=4, micro_batch_size=4))

def test_model_placed_with_a_device_map():
    "Accelerate's big-model placement (here encoder and decoder as separate parts): partial stages and expansion still exact."
    from fpt_nb.prompt import load_t5, PromptT5
    from fpt_nb.partial import apply_stage, compound_reduction, FULL
    from fpt_nb.scores import NeuronScores
    ref, tok = load_t5('tiny')
    placed, _ = load_t5('tiny', device_map={'shared': 'cpu', 'encoder': 'cpu', 'decoder': 'cpu', 'lm_head': 'cpu'})
    assert placed.hf_device_map['encoder'] == 'cpu' and hasattr(placed.encoder, '_hf_hook')
    x = tok(["premise: a cat sat. hypothesis: a cat."], return_tensors='pt')
    dec = torch.tensor([[0, 5, 9]])
    def logits(m):
        with torch.no_grad(): return m(**x, decoder_input_ids=dec).logits
    full = logits(ref)
    assert torch.equal(logits(placed), full)
    sc = NeuronScores({'encoder': torch.rand(4, 128), 'decoder': torch.rand(4, 128)})
    for m in (ref, placed): apply_stage(m, compound_reduction(2, 32, decoder=True), sc)
    assert torch.equal(logits(placed), logits(ref))
    apply_stage(placed, FULL)
    assert torch.equal(logits(placed), full)
    pt = PromptT5(placed, prompt_length=4)
    pt(x.input_ids, labels=dec).loss.backward()
    assert pt.prompt.weight.grad.abs().sum() > 0

def test_offloaded_weights_are_refused():
    from fpt_nb.prompt import load_t5
    from fpt_nb.partial import apply_stage, ffn_reduction
    from fpt_nb.scores import NeuronScores
    m, _ = load_t5('tiny')
    m.encoder.block[1].layer[-1].DenseReluDense.wo.to('meta')   # what disk/CPU offload leaves in the module
    with pytest.raises(ValueError, match='offloaded'):
        apply_stage(m, ffn_reduction(32), NeuronScores({'encoder': torch.rand(4, 128), 'decoder': torch.rand(4, 128)}))

def test_killing_the_launch_kills_its_workers(tmp_path):
    """Review of d675f54: torch's elastic agent starts the workers in a session of their own (start_new_session), so
    `os.killpg` on `accelerate launch` (what test_resume_after_kill does, and `timeout -s KILL fpt run --num-processes 2`)
    leaves them training to the end: that test then 'resumes' a run the orphans finished, and never tests a resume."""
    out = tmp_path/'dp'
    kw = dict(RUN, steps=200, checkpoint_every=2)
    launch_then_kill(out, kw)
    time.sleep(3)
    from fpt_nb.checkpoint import latest_checkpoint
    latest = latest_checkpoint(out/'checkpoints')   # (for the message; a kill can come before the first checkpoint's pointer)
    def cmdline(pid):
        try: return Path(f'/proc/{pid}/cmdline').read_bytes()
        except OSError: return b''
    orphans = [d for d in os.listdir('/proc') if d.isdigit() and str(out/'launch.json').encode() in cmdline(d)]
    for pid in orphans:
        try: os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError: pass
    assert not orphans, f"workers {orphans} outlived their launcher and trained on (latest checkpoint {latest})"

def _long_run_under_way(out, method:str) -> tuple[subprocess.Popen, list[int]]:
    "`fpt run --num-processes 2` of 4000 steps into `out`, once its first checkpoint is written; its process and the run's others."
    import sys
    cmd = [sys.executable, '-m', 'fpt_nb.cli', 'run', '--task', 'toy', '--model', 'tiny', '--method', method, '--steps', '4000',
           '--batch-size', '8', '--micro-batch-size', '4', '--prompt-length', '4', '--train-limit', '64', '--eval-limit', '8',
           '--eval-batch-size', '8', '--checkpoint-every', '2', '--device', 'cpu', '--num-processes', '2', '--no-progress', '--out-dir', str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while not (out/'checkpoints'/'latest').exists() and p.poll() is None and time.time() - t0 < 240: time.sleep(0.05)
    if p.poll() is not None: raise AssertionError(p.communicate()[0])
    return p, [int(d) for d in os.listdir('/proc') if d.isdigit() and str(out).encode() in _cmdline(d) and int(d) != p.pid]

@pytest.mark.parametrize('to', ['fpt', 'every process', 'one worker'])
def test_sigterm_to_fpt_stops_its_workers_after_their_step(tmp_path, to):
    """dp_sigterm_orphans (an adversarial review): `kill -TERM` of `fpt run --num-processes 2` (a scheduler stopping the job's
    main process) killed fpt at once and left the launcher and its workers training to the end, holding the run's lock,
    unasked. fpt now passes the signal on to the launcher and waits: the workers finish their step, checkpoint it and write a
    summary that says they stopped; fpt says so and exits 143, and nothing is left running. The same where every process of the
    run gets the signal (as Slurm's scancel sends it): a worker that gets it twice (itself, then from the launcher) took the
    second for "stop at once" and wrote no summary. And where one worker alone gets it (rank 1): each process stopped on its own
    signal, so one that got it a step later than another waited for it in that step's reduce (the run hung, unsummarized, and
    sometimes did so in the first two cases too); the processes now agree in each step's reduce and stop after the same step."""
    from fpt_nb.checkpoint import lock_holder
    out = tmp_path/'dp'
    p, run = _long_run_under_way(out, 'fpt_ld')
    rank1 = [pid for pid in run if b'\0RANK=1\0' in b'\0' + _environ(pid)]
    assert len(rank1) == 1, run
    for pid in {'fpt': [p.pid], 'every process': [p.pid] + run, 'one worker': rank1}[to]:
        try: os.kill(pid, signal.SIGTERM)
        except ProcessLookupError: pass
    try: said = p.communicate(timeout=120)[0]
    finally:
        for pid in [p.pid] + run:   # (a run that hung: nothing left behind)
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
    s = read_json(out/'summary.json')
    assert p.returncode == 143 and s['stopped'].startswith('signal 15 at step') and 2 <= s['steps'] < 4000, said
    assert f"stopped by {s['stopped']}; its checkpoint is kept" in said, said
    assert lock_holder(out) is None
    left = [d for d in os.listdir('/proc') if d.isdigit() and str(out/'launch.json').encode() in _cmdline(d)]
    assert not left, f"processes {left} of the run outlived fpt"


def test_sigterm_to_a_data_parallel_run_that_had_finished_still_stops_the_command(single, tmp_path, monkeypatch, capsys):
    """dp_sigterm_after_the_end_ignored (a review): a SIGTERM that reached `fpt run --num-processes 2` while its workers only
    found the run finished was dropped: fpt read the finished summary, went on to the next method and trained it. As with one
    process, the command now stops (143), saying that the run had finished."""
    import shutil
    out = tmp_path/'dp'
    shutil.copytree(single, out)   # a finished run of these settings (one process: the same fingerprint)
    real = subprocess.Popen
    def popen(*a, **k):   # the signal comes as the launcher starts
        p = real(*a, **k); os.kill(os.getpid(), signal.SIGTERM); return p
    monkeypatch.setattr(subprocess, 'Popen', popen)   # (the one run_distributed starts the launcher with)
    with pytest.raises(SystemExit) as e: run_distributed(2, out_dir=str(out), **RUN)
    assert e.value.code == 143 and 'stopped by signal 15 after the run had finished' in capsys.readouterr().err
    assert read_json(out/'summary.json') == read_json(single/'summary.json')

def _environ(pid) -> bytes:
    try: return Path(f'/proc/{pid}/environ').read_bytes()
    except OSError: return b''

def _cmdline(pid) -> bytes:
    try: return Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError: return b''


def test_each_launch_takes_a_free_port(tmp_path):
    "accelerate's default rendezvous port (29500) is one per machine: a second run there warned and fell back, or failed to meet."
    cmd = launch_command(2, tmp_path)
    assert cmd[cmd.index('--main_process_port') + 1] == '0'     # accelerate then asks the system for a free port
    cmd = launch_command(2, tmp_path, ['--main_process_port=29600'])
    assert [a for a in cmd if a.startswith('--main_process_port')] == ['--main_process_port=29600']   # the user's wins


def test_the_process_groups_threads_leave_the_stop_signals_to_python(tmp_path):
    """A SIGTERM sent to a worker (one worker alone, or the whole group as Slurm's scancel sends it) is taken by whichever of its
    threads does not block it: gloo's C++ loops among them, where Python's handler cannot run and the call it interrupts may
    fail. A worker of a 2-process run aborted so once (SIGABRT, "terminate called without an active exception") in about thirty
    runs of the test above. The threads the process group starts now block SIGTERM, SIGINT and SIGHUP, so a Python thread
    takes them."""
    out = tmp_path/'dp'
    p, run = _long_run_under_way(out, 'pt')
    try:
        workers = [pid for pid in run if b'\0RANK=' in b'\0' + _environ(pid)]
        assert len(workers) == 2, run
        stops = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGHUP - 1))
        for pid in workers:
            threads = {}
            for t in os.listdir(f'/proc/{pid}/task'):
                st = dict(l.split(':\t', 1) for l in open(f'/proc/{pid}/task/{t}/status').read().splitlines() if ':\t' in l)
                threads[t] = (st['Name'], int(st['SigBlk'], 16))
            gloo = [(n, m) for n, m in threads.values() if 'gloo' in n]
            assert gloo and all(m & stops == stops for _, m in gloo), threads
            assert threads[str(pid)][1] & stops == 0   # (the main thread takes them)
    finally:
        for pid in [p.pid] + [int(d) for d in os.listdir('/proc') if d.isdigit() and str(out).encode() in _cmdline(d)]:
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
        p.wait()
