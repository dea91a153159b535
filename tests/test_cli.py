"The `fpt` command: bad input gives one clear line and exit code 2, before anything runs or is overwritten."
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from conftest import ROOT
from fpt_nb.cli import main

def fpt_here(*args, capsys=None):
    "`fpt args` in this process: (exit code, stderr)."
    try: code = main(list(map(str, args)))
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err

def fpt(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-c', 'import sys; from fpt_nb.cli import main; sys.exit(main())', *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

SMALL = ['--steps', 4, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 16, '--eval-limit', 8, '--score-examples', 8, '--no-progress']

@pytest.mark.parametrize('args, says', [
    (['run', '--task', 'sst2'], "unknown task 'sst2'"),
    (['run', '--method', 'fpt'], "invalid choice: 'fpt'"),
    (['run', '--method', 'fpt_ld', '--stage-steps', 4, 4], "method 'fpt_ld' has 4 stages but 2 stage_steps"),
    (['run', '--method', 'fpt_ld', '--steps', 8, '--stage-steps', 2, 2, 2, 4], 'add up to 10, not steps=8'),
    (['run', '--method', 'fpt_cr', '--stage-steps', 4, 0, 4, 4], 'stage 2 (enc 2L, enc ffn 64) has 0 steps'),
    (['run', '--method', 'fpt_cr', '--steps', 3], "steps=3 is too few for method 'fpt_cr'"),
    (['run', '--method', 'ld', '--level', 4], 'argument --level: invalid choice: 4 (choose from 1, 2, 3)'),
    (['run', '--method', 'ld', '--level', 0, 2], 'argument --level: invalid choice: 0'),   # level_zero_is_one: trained level 1 into ld-L0
    (['run', '--steps', 0], 'steps must be at least 1'),
    (['run', '--num-processes', 0], 'argument --num-processes: must be at least 1, got 0'),   # (refused after '== pt ...', before)
    (['run', '--micro-batch-size', 0], 'argument --micro-batch-size: must be at least 1, got 0'),   # (session 24)
    # stage_steps_ignored, score_file_ignored (session 19): recorded in the run's config and not done
    (['run', '--method', 'pt', '--stage-steps', 1, 1, 1, 3, '--no-progress'], '--stage-steps sets the stages of FPT (fpt_ld, fpt_fr, fpt_cr); pt train(s) one stage'),
    (['run', '--method', 'pt', 'ld', '--score-file', 'x.safetensors', *SMALL], '--score-file gives the neuron scores FFN reduction keeps neurons by'),
    (['run', '--task', 'mnli', '--data-dir', 'no/such/dir', '--method', 'pt', *SMALL], "data directory 'no/such/dir' does not exist"),
    # data_dir_of_toy (session 20): the built-in task's run recorded a data folder it never read
    (['run', '--data-dir', 'no/such/dir', *SMALL], "task 'toy' is built in: it reads no data, so data_dir no/such/dir"),
    (['run', '--preset', 'base'], "invalid choice: 'base'"),
    (['run', '--pt-run', 'no/such/run'], 'does not exist'),
    # before PT, the plan's first method, trains: it used to run to the end and leave its summary first
    (['run', '--task', 'toy', '--method', 'pt', 'fpt_cr', '--score-file', 'no/such.safetensors', *SMALL],
     'score file no/such.safetensors does not exist'),
    (['tables', 'no/such/runs'], 'runs folder no/such/runs does not exist'),
    (['export-peft', 'no/such/run', 'out'], 'no/such/run'),
    (['evaluate', 'no/such/run'], 'summary.json does not exist'),
    ([], 'the following arguments are required: command'),
])
def test_bad_input(args, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    code, err = fpt_here(*args, capsys=capsys)
    torch.set_num_threads(threads)
    assert code == 2, err
    assert says in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.rglob('summary.json'))

@pytest.mark.parametrize('flag, least', [('--batch-size', 1), ('--micro-batch-size', 1), ('--loss-group', 1), ('--seed', 0),
                                         ('--max-target-length', 2), ('--num-beams', 1), ('--eval-batch-size', 1),
                                         ('--max-input-length', 2), ('--threads', 1), ('--num-processes', 1)])
def test_each_counted_flag_refuses_a_value_below_its_least(flag, least, capsys, monkeypatch, tmp_path):
    "Each whole-number flag of `fpt run` refuses one below its least (0, or -1 for the seed) by name, as it parses."
    monkeypatch.chdir(tmp_path)
    def launch(n, **kw): raise AssertionError(f'{flag} {least - 1} was taken: the run was launched')
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    code, err = fpt_here('run', flag, least - 1, capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1] == f"fpt run: error: argument {flag}: must be at least {least}, got {least - 1} (see fpt run --help)", err

def test_a_run_stopped_before_its_first_evaluation_says_so(tmp_path, monkeypatch, capsys):
    "stopped_line_scores_nan: a run stopped by SIGTERM before any evaluation printed 'best paper_acc nan, last evaluation nan'."
    from conftest import sigterm_in_step
    monkeypatch.chdir(tmp_path)
    sigterm_in_step(monkeypatch, 2)
    threads = torch.get_num_threads()
    code = main(list(map(str, ['run', '--method', 'pt', '--steps', 8, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 16,
                                '--eval-limit', 8, '--eval-every', 8, '--no-progress', '--out-dir', 'r'])))
    torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert code == 143 and '   pt: no evaluation yet, stopped at step 2 of 8; ' in out and 'nan' not in out, out
    # best_none_step_dropped (the fourteenth audit): the summary of a run with no best yet says so under both rules, step too
    s = json.loads((tmp_path/'r'/'summary.json').read_text())
    assert s['best'] == s['best_last_stage'] == dict(step=None, value=None), (s['best'], s['best_last_stage'])

def test_a_sigterm_in_the_last_step_of_the_first_method_starts_no_other(tmp_path, monkeypatch, capsys):
    """finished_run_signal_dropped (session 22): `fpt run --method pt fpt_cr` got SIGTERM in PT's last step; PT finished, as it
    should, and the command went on to train FPT_CR (a scheduler's SIGKILL then cut it wherever it was). It stops with 143."""
    from conftest import sigterm_in_step
    monkeypatch.chdir(tmp_path)
    sigterm_in_step(monkeypatch, 4)
    threads = torch.get_num_threads()
    code, err = fpt_here('run', '--method', 'pt', 'fpt_cr', *SMALL, '--out-dir', 'r', capsys=capsys)
    torch.set_num_threads(threads)
    assert code == 143 and 'stopped by signal 15 (SIGTERM) after the run had finished' in err, err
    s = json.loads((tmp_path/'r'/'pt'/'summary.json').read_text())
    assert (s['steps'], s['stopped']) == (4, None) and not (tmp_path/'r'/'fpt_cr').exists()

def test_a_data_parallel_worker_that_finished_leaves_the_stop_to_fpt(tmp_path, monkeypatch, capsys):
    """A worker of a data-parallel run that got SIGTERM in its last step finishes, writes its summary and returns: the command's
    143 is fpt's to give, as its launcher's caller (test_distributed tests that it does). A worker that raised it itself made its
    launcher report a failed worker. Here the worker's process state is a stand-in of one process, as `accelerate` gives it."""
    from types import SimpleNamespace
    from conftest import sigterm_in_step
    import fpt_nb.run as run_mod, fpt_nb.train as train_mod
    from fpt_nb.run import run_experiment
    state = SimpleNamespace(num_processes=1, process_index=0, is_main_process=True, device=torch.device('cpu'), wait_for_everyone=lambda: None)
    for m in (run_mod, train_mod): monkeypatch.setattr(m, 'distributed_state', lambda *a, **k: state)
    sigterm_in_step(monkeypatch, 4)
    threads = torch.get_num_threads()
    try: s = run_experiment(task='toy', model='tiny', method='pt', steps=4, batch_size=4, prompt_length=4, train_limit=16, eval_limit=8,
                            out_dir=str(tmp_path/'r'), progress=False)
    finally: torch.set_num_threads(threads)
    assert (s['steps'], s['stopped'], s['processes']) == (4, None, 1) and 'after the run had finished' not in capsys.readouterr().err

def test_bad_input_from_a_shell(tmp_path):
    r = fpt('run', '--task', 'sst2', cwd=tmp_path)
    assert (r.returncode, r.stderr.strip()) == (2, "fpt run: error: unknown task 'sst2': expected one of ['mnli', 'qqp', 'record', 'squad2', 'toy', 'xsum']")

def test_missing_score_file_keeps_the_finished_run(tmp_path):
    "A named score file that does not exist is refused, and a finished run in that folder keeps its results."
    run = tmp_path/'fr'
    assert fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', run, *SMALL).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.suffix in ('.safetensors', '.jsonl') or p.name == 'summary.json'}
    r = fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', run, '--score-file', tmp_path/'nope.safetensors', *SMALL)
    assert r.returncode == 2 and 'nope.safetensors does not exist' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {p: (run/p).read_bytes() for p in before} == before

def test_score_file_for_another_model(tmp_path):
    "Scores with fewer layers than the model are refused, naming the shapes."
    run = tmp_path/'fr'
    assert fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', run, *SMALL).returncode == 0
    from safetensors.torch import load_file, save_file
    sc = load_file(str(run/'scores.safetensors'))
    save_file({k: v[:2].contiguous() for k, v in sc.items()}, str(tmp_path/'small.safetensors'))
    r = fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', tmp_path/'fr2', '--score-file', tmp_path/'small.safetensors', *SMALL)
    assert r.returncode == 2 and 'do not fit the model' in r.stderr, r.stderr

def test_official_csv_score_file_runs(tmp_path):
    """cli_refuses_csv_scores: a score file in the official CSV layout (one row per layer, encoder first) is what the docs say
    `--score-file` reads; the CLI refused every CSV ("needs the model") before it loaded one. Now it trains with it, as with
    the same scores in safetensors, and a CSV of the wrong shape is refused before the model loads."""
    import csv
    run = tmp_path/'fr'
    assert fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', run, *SMALL).returncode == 0
    from safetensors.torch import load_file
    sc = load_file(str(run/'scores.safetensors'))
    with open(tmp_path/'official.csv', 'w', newline='') as f: csv.writer(f).writerows(torch.cat([sc['encoder'], sc['decoder']]).tolist())
    r = fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', tmp_path/'csv', '--score-file', tmp_path/'official.csv', *SMALL)
    assert r.returncode == 0, r.stderr
    s, ref = (json.loads((d/'summary.json').read_text()) for d in (tmp_path/'csv', run))
    assert s['final_metrics'] == ref['final_metrics']
    with open(tmp_path/'short.csv', 'w', newline='') as f: csv.writer(f).writerows(sc['encoder'].tolist())
    r = fpt('run', '--task', 'toy', '--method', 'fr', '--out-dir', tmp_path/'short', '--score-file', tmp_path/'short.csv', *SMALL)
    assert r.returncode == 2 and 'the model needs 4 encoder + 4 decoder rows of 128' in r.stderr, r.stderr
    assert not (tmp_path/'short').exists()

def test_an_unreachable_hub_is_said_at_once(monkeypatch, capsys):
    """hub_retries: `fpt run --model org/name` with no network and nothing cached waited through huggingface_hub's retries
    (about 25 s) before failing; where the hub's host name does not resolve and no proxy is set, it fails at once, saying so.
    A cached config, a proxy or a local folder are left to the normal path."""
    import socket
    from fpt_nb.cli import hub_unreachable
    def no_dns(*a, **k): raise socket.gaierror(-2, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    for k in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'): monkeypatch.delenv(k, raising=False)
    code, err = fpt_here('run', '--model', 'no-such-org/no-such-t5', '--method', 'pt', '--steps', 2, capsys=capsys)
    assert code == 2 and "the hub cannot be reached from here (huggingface.co does not resolve" in err, err
    assert 'the local Hugging Face cache holds no config of no-such-org/no-such-t5' in err and len(err.strip().splitlines()) == 1, err
    assert hub_unreachable(str(ROOT)) is None   # a folder here
    assert 'the local Hugging Face cache holds no config of nosuch-t5' in hub_unreachable('nosuch-t5')   # an id without an owner (as t5-small)
    from fpt_nb.run import BUILT_IN_MODELS
    assert [hub_unreachable(m) for m in BUILT_IN_MODELS] == [None] * len(BUILT_IN_MODELS)   # built in: never looked up on the hub
    monkeypatch.setenv('HTTPS_PROXY', 'http://proxy:3128')
    assert hub_unreachable('no-such-org/no-such-t5') is None
    monkeypatch.delenv('HTTPS_PROXY')
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'try_to_load_from_cache', lambda repo, f, **k: f'/cache/{repo}/{f}')
    assert hub_unreachable('no-such-org/no-such-t5') is None

def test_data_that_cannot_be_read_is_said_before_anything_runs(tmp_path, monkeypatch, capsys):
    """data_checked_late: a data folder without the task's files was found only after the run's header, its notes on "the
    local data" and the model's setup, leaving an empty folder behind; with no folder and no network, `datasets` retried for
    about 35 s, then failed without naming --data-dir. Now each is one line, before anything is made."""
    import socket, datasets.config, huggingface_hub.constants as hc
    from fpt_nb.cli import unreadable_data
    monkeypatch.chdir(tmp_path)
    def refused(*args, env=None):
        if env is None: monkeypatch.delenv('FPT_DATA_DIR', raising=False)
        else: monkeypatch.setenv('FPT_DATA_DIR', str(env))
        code, err = fpt_here('run', *args, '--method', 'pt', '--out-dir', tmp_path/'out', *SMALL, capsys=capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path/'out').exists(), err
        return err
    (tmp_path/'data'/'mnli').mkdir(parents=True)
    assert "data directory 'no/such' does not exist: expected a folder holding mnli/" in refused('--task', 'mnli', '--data-dir', 'no/such')
    err = refused('--task', 'record', '--data-dir', tmp_path/'data')
    assert f"no file for split 'train' of task 'record': expected {tmp_path/'data'/'record'/'train'}.jsonl" in err, err
    err = refused('--task', 'qqp', env=tmp_path/'nowhere')
    assert f"data directory '{tmp_path/'nowhere'}' does not exist: expected a folder holding qqp/ (the folder FPT_DATA_DIR names)" in err, err
    def no_dns(*a, **k): raise socket.gaierror(-2, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)
    for k in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'): monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(hc, 'HF_HUB_CACHE', str(tmp_path/'hub')); monkeypatch.setattr(datasets.config, 'HF_DATASETS_CACHE', tmp_path/'ds')
    err = refused('--task', 'mnli')
    assert ("no --data-dir and no FPT_DATA_DIR: mnli's data would come from the hub (nyu-mll/glue), and the hub cannot be reached "
            "from here (huggingface.co does not resolve") in err and 'pass --data-dir DIR, or set FPT_DATA_DIR=DIR' in err, err
    (tmp_path/'ds'/'nyu-mll___glue').mkdir(parents=True)
    assert unreadable_data('mnli', None) is None   # something of it cached: left to `datasets`
    assert 'the hub cannot be reached' in unreadable_data('squad2', None) and unreadable_data('toy', None) is None
    for hub, ds in ((True, False), (False, True)):   # either offline mode: the caches alone, as asked, and no word of the hub
        monkeypatch.setattr(hc, 'HF_HUB_OFFLINE', hub); monkeypatch.setattr(datasets.config, 'HF_DATASETS_OFFLINE', ds)
        assert unreadable_data('squad2', None) is None, (hub, ds)
    monkeypatch.setattr(hc, 'HF_HUB_OFFLINE', False); monkeypatch.setattr(datasets.config, 'HF_DATASETS_OFFLINE', False)
    monkeypatch.setenv('HTTPS_PROXY', 'http://proxy:3128')
    assert unreadable_data('squad2', None) is None

@pytest.mark.parametrize('flag, says', [(['--eval-limit', -3], 'eval_limit must be a whole number of at least 1, or None for all, got -3'),
                                         (['--prompt-length', 0], 'prompt_length must be a whole number of at least 1, got 0'),
                                         (['--device', 'gpu'], "unknown device 'gpu'"),
                                         (['--compile'], 'compile=True (--compile) compiles the fast step'),
                                         (['--model', 'tiny-llama', '--no-decoder'], 'decoder=False (--no-decoder) keeps the decoder whole'),
                                         (['--model', 'tiny-llama', '--padding', 'max'], "padding='max' (--padding max) pads T5's inputs")])
def test_bad_values_are_refused_before_the_first_run_is_announced(flag, says, tmp_path, capsys):
    "values_checked_late: a value no run takes was refused by the first run, after its '== pt on toy ...' line: as if it had begun."
    try: code = main(list(map(str, ['run', '--method', 'pt', 'fpt_cr', '--steps', 4, '--out-dir', tmp_path/'out', *flag])))
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert '==' not in out and not (tmp_path/'out').exists(), out

def test_a_bad_value_for_the_demo_is_refused_before_it_is_announced(tmp_path, capsys, monkeypatch):
    "demo_announced_then_refused: `fpt run --prompt-length 0` printed 'the built-in demo: ... into runs/default/', then the error."
    monkeypatch.chdir(tmp_path)
    try: code = main(['run', '--prompt-length', '0'])
    except SystemExit as e: code = e.code
    torch.set_num_threads(1)
    out, err = capsys.readouterr()
    assert code == 2 and 'prompt_length must be a whole number of at least 1, got 0' in err, err
    assert 'demo' not in out and not (tmp_path/'runs').exists(), out

def test_a_full_disk_while_a_prompt_is_written_is_one_line(tmp_path, capsys, monkeypatch):
    """safetensors_error_traceback: a full disk while a prompt or checkpoint was written ended `fpt run` with a traceback
    (safetensors' SafetensorError is not an OSError), not the one-line error."""
    from safetensors import SafetensorError
    from fpt_nb import checkpoint
    def full(*a, **k): raise SafetensorError('Error while serializing: No space left on device (os error 28)')
    monkeypatch.setattr(checkpoint, 'save_file', full)
    code = main(['run', '--method', 'pt', '--steps', '2', '--eval-limit', '4', '--no-progress', '--out-dir', str(tmp_path/'r')])
    err = capsys.readouterr().err
    assert code == 2 and 'Traceback' not in err, err
    assert "fpt run: error: a .safetensors file could not be written or read (Error while serializing: No space left on device" in err, err

def test_a_full_disk_is_said_as_such(tmp_path, capsys, monkeypatch):
    """enospc_bare (an adversarial review): a full disk while a record was written ended `fpt run` with the bare
    "[Errno 28] No space left on device", naming no file and not saying that what was saved is kept."""
    import errno, os
    from fpt_nb import checkpoint
    def full(fd): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint.os, 'fsync', full)
    code = main(['run', '--method', 'pt', '--steps', '2', '--eval-limit', '4', '--no-progress', '--out-dir', str(tmp_path/'r')])
    err = capsys.readouterr().err
    assert code == 2 and ("fpt run: error: the disk is full ([Errno 28] No space left on device): what was saved before is kept; "
                          "free some space and run the same command again") in err, err


def test_a_failed_first_run_leaves_no_empty_folder(tmp_path, capsys):
    """empty_runs_folder_left: `fpt run --method pt fpt_cr` on a model folder that cannot load (a config, no weights) left its
    --out-dir behind, empty: the run removed its own folder, not the folder of runs made for it."""
    from fpt_nb.prompt import tiny_t5_config
    tiny_t5_config().save_pretrained(tmp_path/'no-weights')
    code = main(['run', '--model', str(tmp_path/'no-weights'), '--method', 'pt', 'fpt_cr', '--steps', '4', '--out-dir', str(tmp_path/'out')])
    err = capsys.readouterr().err
    assert code == 2 and f"could not load model '{tmp_path/'no-weights'}'" in err and not (tmp_path/'out').exists(), err
    (tmp_path/'out').mkdir()   # a folder the user made is theirs: kept
    assert main(['run', '--model', str(tmp_path/'no-weights'), '--method', 'pt', 'fpt_cr', '--steps', '4', '--out-dir', str(tmp_path/'out')]) == 2
    assert (tmp_path/'out').is_dir()

def test_a_failed_first_run_removes_its_folder_while_still_holding_it(tmp_path, monkeypatch):
    """A run that failed in a folder it made removed the folder after letting go of it: a run that took the folder in between
    lost its lock and its run.lock to the removal. The folder goes while its lock is still held."""
    import shutil
    import fpt_nb.run as run_mod
    from fpt_nb.checkpoint import lock_holder
    from fpt_nb.prompt import tiny_t5_config
    tiny_t5_config().save_pretrained(tmp_path/'no-weights')
    real, held = shutil.rmtree, []
    def rmtree(path, *a, **kw):
        held.append(lock_holder(path)); return real(path, *a, **kw)
    monkeypatch.setattr(run_mod.shutil, 'rmtree', rmtree)
    assert main(['run', '--model', str(tmp_path/'no-weights'), '--method', 'pt', '--steps', '4', '--out-dir', str(tmp_path/'out')]) == 2
    assert held == [os.getpid()] and not (tmp_path/'out').exists()

def test_console_script_is_installed():
    exe = Path(sys.executable).parent/'fpt'
    assert exe.is_file(), f"{exe} missing: reinstall the package (make install) so the `fpt` console script exists"
    r = subprocess.run([str(exe), 'run', '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and '--stage-steps' in r.stdout and '--pt-run' in r.stdout

def test_help_and_a_mistyped_flag_load_no_torch():
    """help_loads_torch: `fpt --help`, `fpt run --help` and a mistyped flag load neither torch nor transformers (9 s on a busy
    2-core CPU, 0.15 s without): the parser is made of plain names (`fpt_nb.names`), and a command imports what it runs on."""
    code = ("import sys\nfrom fpt_nb.cli import main\nfor args in (['--help'], ['run', '--help'], ['run', '--bogus'], ['tables', '--help']):\n"
            "    try: main(args)\n    except SystemExit: pass\n"
            "print('loaded:', sorted(m for m in ('torch', 'transformers', 'datasets', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == 'loaded: []', r.stdout[-500:] + r.stderr[-2000:]
    assert 'unrecognized arguments: --bogus' in r.stderr and '--stage-steps' in r.stdout

def test_python_dash_m_is_the_fpt_command(tmp_path):
    "`python -m fpt_nb.cli ARGS` runs `fpt ARGS` (for a venv whose bin/ is not on PATH): same parser, same one-line errors."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    m = lambda *a: subprocess.run([sys.executable, '-m', 'fpt_nb.cli', *map(str, a)], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
    r = m('run', '--help')
    assert r.returncode == 0 and '--stage-steps' in r.stdout, (r.returncode, r.stdout, r.stderr)
    r = m('run', '--num-beams', 0)
    assert (r.returncode, r.stderr.strip()) == (2, 'fpt run: error: argument --num-beams: must be at least 1, got 0 (see fpt run --help)')
    assert 'RuntimeWarning' not in r.stderr

# libraries that only one command or task needs, each seconds of imports: every `fpt` command, its --help and its one-line
# errors would wait for them (about a third of the CPU time of starting `fpt` when they were imported at the top)
ONLY_WHEN_NEEDED = ('peft', 'datasets', 'rouge_score', 'nltk', 'matplotlib.figure', 'transformers.optimization', 'pandas')

def test_starting_fpt_imports_no_library_only_one_command_needs(tmp_path):
    """The modules `fpt run` imports as it starts (the CLI imports each where a command needs it) leave out PEFT (export),
    datasets (data files), rouge_score/nltk (XSum), a matplotlib figure (plots)."""
    code = ("import sys, fpt_nb.cli, fpt_nb.train, fpt_nb.run, fpt_nb.plots, fpt_nb.tables, fpt_nb.peft, fpt_nb.encoder\n"
            f"print(' '.join(m for m in {ONLY_WHEN_NEEDED!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS='1'),
                       capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout.strip()) == (0, ''), (r.stdout, r.stderr)

@pytest.mark.parametrize('name', ['table1', 'table2', 'scores', 'tables'])
def test_notebooks_refuse_a_parameter_papermill_only_warns_about(name):
    "The kernel history as papermill leaves it: each notebook's parameters cell, then the cell papermill's own translator writes."
    import nbformat
    from papermill.translators import translate_parameters
    from fpt_nb.cli import check_injected
    nb = nbformat.read(ROOT/'nbs'/'experiments'/f'{name}.ipynb', as_version=4)
    params = next(c.source for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
    injected = lambda **p: ['', params, translate_parameters('python3', 'python', p), 'import torch']
    check_injected({'In': injected(out_dir='x', seed=1) if name != 'tables' else injected(out_dir='x', root='r')})   # its own: fine
    with pytest.raises(ValueError, match="unknown parameter 'stepz' given to this notebook"): check_injected({'In': injected(out_dir='x', stepz=40)})
    other = 'levels' if name != 'table1' else 'root'   # another notebook's parameter
    with pytest.raises(ValueError, match=f"unknown parameter '{other}'"): check_injected({'In': injected(**{other: 1})})

def test_papermill_inject_paths_is_not_an_unknown_parameter():
    """Review of d675f54: `papermill --inject-paths` (or --inject-input-path / --inject-output-path) adds PAPERMILL_INPUT_PATH
    and PAPERMILL_OUTPUT_PATH to the injected cell, a documented papermill feature; check_injected refuses them as unknown."""
    import nbformat
    from papermill.translators import translate_parameters
    from fpt_nb.cli import check_injected
    nb = nbformat.read(ROOT/'nbs'/'experiments'/'tables.ipynb', as_version=4)
    params = next(c.source for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
    injected = translate_parameters('python3', 'python', dict(root='r', PAPERMILL_INPUT_PATH='in.ipynb', PAPERMILL_OUTPUT_PATH='out.ipynb'))
    check_injected({'In': ['', params, injected, 'import torch']})

def test_rerunning_the_injected_cell_by_hand_is_not_refused():
    """Review of d675f54: in JupyterLab, on papermill's output notebook, running the (edited) injected-parameters cell again and
    then the check cell: check_injected takes whatever cell ran just before as the parameters cell and refuses a valid
    parameter ("unknown parameter 'root' ... its parameters are x")."""
    import nbformat
    from papermill.translators import translate_parameters
    from fpt_nb.cli import check_injected
    nb = nbformat.read(ROOT/'nbs'/'experiments'/'tables.ipynb', as_version=4)
    params = next(c.source for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
    injected = translate_parameters('python3', 'python', dict(root='runs2'))
    check_injected({'In': ['', params, injected, 'check_injected(globals())', 'x = 1', injected, 'check_injected(globals())']})

def test_tables_of_a_file_says_it_is_a_file(tmp_path, capsys):
    (tmp_path/'afile').write_text('')
    code, err = fpt_here('tables', tmp_path/'afile', capsys=capsys)
    assert code == 2 and f"runs folder {tmp_path/'afile'} is a file: give the folder holding the run folders" in err, err


def test_a_diverged_run_exits_1_in_one_line(monkeypatch, capsys):
    """nonfinite_exit_2: a run whose loss became NaN exits 1 (it failed), not 2, which means bad input, with one line naming
    the step and the last good checkpoint."""
    import fpt_nb.cli as cli
    from fpt_nb.train import NonFiniteLoss
    def launch(n, **kw): raise NonFiniteLoss('the loss is nan at step 3 (stage 1, full): training stopped; the last good checkpoint is none')
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    code, err = fpt_here('run', '--method', 'pt', '--steps', 4, '--out-dir', '/nonexistent/never-written', capsys=capsys)
    assert code == 1 and err.splitlines() == ['fpt run: error: the loss is nan at step 3 (stage 1, full): training stopped; the last good checkpoint is none']


@pytest.mark.parametrize('params,says', [
    (dict(levels=[0, 1]), 'parameter levels must be a list of levels 1 to 3, got [0, 1]'),          # levels_accept_zero
    (dict(levels='4'), "parameter levels must be a list of levels 1 to 3, got '4'"),
    (dict(lr=True), 'parameter lr must be a number, got True (bool)'),                               # float_param_bool
    (dict(steps=4.5), 'parameter steps must be a whole number, got 4.5 (float)'),
    (dict(methods='pt ftp'), "parameter methods: unknown method 'ftp'"),
    (dict(stage_steps='2 2 x'), 'parameter stage_steps must be a list of whole numbers'),
    (dict(progress='yes'), "parameter progress must be True or False, got 'yes' (str)"),
    (dict(task=None), 'parameter task must be given (it is None)'),
    (dict(nope=1), "unknown parameter 'nope'"),
    (dict(score_split='valid'), "parameter score_split must be one of ['validation', 'train'], got 'valid'"),   # notebook_choice_unchecked:
    (dict(scoring='offical'), "parameter scoring must be one of ['paper', 'official'], got 'offical'"),       # trained the runs before it
    (dict(threads=0), 'parameter threads must be at least 1 (None: the default), got 0'),
    (dict(seed=-1), 'parameter seed must be at least 0, got -1'),   # the scores notebook took it, where fpt run refuses it
    (dict(score_examples=0), 'parameter score_examples must be at least 1, got 0'),
    (dict(max_input_length=None), 'parameter max_input_length must be given (it is None)'),   # a None met only deep in encoding
    (dict(root=None), 'parameter root must be given (it is None)'),
    (dict(force=None), 'parameter force must be given (it is None)'),
    (dict(steps='8'), "parameter steps must be a whole number, got '8' (str)"),
    (dict(max_input_length=1), 'parameter max_input_length must be at least 2, got 1'),   # (a token and EOS)
    (dict(batch_size=True), 'parameter batch_size must be a whole number, got True (bool)'),
    # param_choices_scoring_dropped: every parameter that takes one of a few values, and every least value, is checked
    (dict(score_sampling='all'), "parameter score_sampling must be one of ['random', 'first'], got 'all'"),
    (dict(score_aggregation='mean'), "parameter score_aggregation must be one of ['example', 'token'], got 'mean'"),
    (dict(score='last'), "parameter score must be one of ['best', 'best_last', 'final'], got 'last'"),
    (dict(batch_size=0), 'parameter batch_size must be at least 1'),
    (dict(prompt_length=0), 'parameter prompt_length must be at least 1'),
])
def test_bad_notebook_parameters_are_refused_by_name(params, says):
    "The papermill notebooks' parameters, checked before anything runs (`check_params`): one error naming the parameter."
    import re
    from fpt_nb.cli import check_params
    with pytest.raises(ValueError, match=re.escape(says)): check_params(params)

@pytest.mark.parametrize('name', ['table1', 'table2', 'scores', 'tables'])
def test_each_experiment_notebooks_own_parameters_pass_its_checks(name):
    """The parameter cell of each papermill notebook, as committed (None meaning "the default" for the model, steps, the
    evaluation interval...), passes `check_params` unchanged: a notebook run with no -p at all is not refused."""
    import ast, json
    from pathlib import Path
    from fpt_nb.cli import check_params
    nb = json.loads((Path(__file__).parent.parent/'nbs'/'experiments'/f'{name}.ipynb').read_text())
    cell, = [c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', [])]
    params = {t.id: ast.literal_eval(a.value) for a in ast.parse(''.join(cell['source'])).body if isinstance(a, ast.Assign) for t in a.targets}
    assert None in params.values() and check_params(params) == {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}

def test_notebook_parameters_as_papermill_passes_them_are_normalised():
    "papermill's -p passes strings: lists and levels from strings, whole floats to ints, None where optional."
    from fpt_nb.cli import check_params
    got = check_params(dict(levels='1 3', methods="['pt', 'fpt_cr']", steps=8.0, stage_steps='2 2 2 4', lr=1, eval_limit=None))
    assert got == dict(levels=[1, 3], methods=['pt', 'fpt_cr'], steps=8, stage_steps=[2, 2, 2, 4], lr=1, eval_limit=None)

def test_fpt_run_defaults_are_the_papers_recipe():
    """score_examples_default: with no flag, `fpt run` parses to the paper's settings: lr 0.3, 20 prompt vectors, neuron scores
    over 1,000 examples sampled at random, averaged per example (the batch and steps are filled in later, by preset)."""
    from fpt_nb.cli import make_parser
    a = make_parser().parse_args(['run'])
    assert (a.lr, a.prompt_length, a.score_examples, a.score_sampling, a.score_aggregation) == (0.3, 20, 1000, 'random', 'example')
    import inspect   # run_experiment_defaults (session 19): the API's defaults, what notebooks and scripts get, are the same
    from fpt_nb.run import run_experiment
    api = {k: p.default for k, p in inspect.signature(run_experiment).parameters.items()}
    for k in ('lr', 'prompt_length', 'score_examples', 'score_split', 'score_sampling', 'score_aggregation', 'padding', 'max_input_length', 'seed'):
        assert api[k] == getattr(a, k), (k, api[k], getattr(a, k))
    given = {k: getattr(a, k) for k in api if getattr(a, k, None) is not None}   # every default the command line sets itself
    assert {k: api[k] for k in given} == given and {'early_stop', 'num_beams', 'eval_batch_size', 'checkpoint_every', 'device'} <= set(given)

def test_a_run_without_out_dir_goes_under_runs_named_for_its_task_and_model(tmp_path, monkeypatch, capsys):
    """With no --out-dir, the built-in default (toy on tiny) runs into runs/default/ as the README says, and any other task or
    model into runs/TASK-MODEL/ (the model folder's name); each method in a folder of its own there."""
    seen = []
    def launch(n, **kw): seen.append(kw['out_dir']); raise SystemExit(0)
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    monkeypatch.chdir(tmp_path)
    said = []
    for args in ([], ['--task', 'mnli', '--method', 'pt'], ['--model', 'tiny-relu', '--method', 'pt', 'fpt_cr'], ['--preset', 'none']):
        with pytest.raises(SystemExit): main(['run', *args])
        said.append('the built-in demo' in capsys.readouterr().out)
    assert [Path(d).parent for d in seen] == [Path('runs/default'), Path('runs/mnli-tiny'), Path('runs/toy-tiny-relu'), Path('runs/default')], seen
    assert said == [True, False, False, False], said   # demo_for_a_given_preset: only a bare `fpt run` is the demo
