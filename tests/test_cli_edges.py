"""Edges of the `fpt` command and the scores file that a ninth mutation audit (session 24: operator mutants of cli.py and the
smaller modules) found no test held. Each test below failed under the planted bug named in its docstring."""
import json, re
from pathlib import Path
import pytest, torch
from fpt_nb.cli import main, check_run, model_config, _read_config

def test_fpt_run_says_each_runs_best_and_final_and_prints_only_the_tables_it_has(tmp_path, monkeypatch, capsys):
    """best_line_without_best (`s.get('best') and {}`): the line `fpt run` prints for each run named no best value or step; lone_table2
    (`len(t2) > 0`): PT beside a Table 1 method printed a Table 2 of PT alone; pt_level_two (`l or 2`): a PT run's config recorded a
    level no one gave."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    code = main(list(map(str, ['run', '--method', 'pt', 'ld', '--steps', 4, '--batch-size', 4, '--prompt-length', 4, '--train-limit', 16,
                               '--eval-limit', 8, '--eval-every', 2, '--no-progress', '--out-dir', 'r'])))
    torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert code == 0, out
    assert '%|' not in err and 'it/s' not in err, err   # progress_always (session 24): --no-progress showed the bars anyway
    for name in ('pt', 'ld'):
        s = json.loads((tmp_path/'r'/name/'summary.json').read_text())
        key, best = s['paper_metric'] or s['metric'], s['best']
        line = next(l for l in out.splitlines() if l.startswith(f'   {name}: '))
        assert line.startswith(f"   {name}: best {key} {best['metrics'][key]:.1f} (step {best['step']}, {best['stage_name']}), "
                               f"final {s['final_metrics'][key]:.1f}; "), line
    assert 'Table 1 (PT on a partial model)' in out and 'Table 2' not in out, out
    assert json.loads((tmp_path/'r'/'pt'/'config.json').read_text())['level'] == 1
    # processes_two (session 24): a one-process run recorded 2 processes; and the log holds every step
    from fpt_nb.plots import read_log
    assert json.loads((tmp_path/'r'/'pt'/'summary.json').read_text())['processes'] == 1
    assert [r['step'] for r in read_log(tmp_path/'r'/'pt')['step']] == [1, 2, 3, 4]

def test_a_run_may_reduce_the_decoder_where_its_task_would_not():
    "decoder_true_refused (`(None, False, False)`): decoder=True (--decoder), reducing the decoder on MNLI as well, was refused."
    import inspect
    from fpt_nb.run import run_experiment, check_values
    args = {k: p.default for k, p in inspect.signature(run_experiment).parameters.items()}
    for decoder in (None, True, False): check_values(**dict(args, task='mnli', decoder=decoder))
    with pytest.raises(ValueError, match="decoder must be True, False or None"): check_values(**dict(args, decoder='yes'))

def test_check_run_takes_a_run_of_one_step():
    "steps_le_one (`steps <= 1`): check_run refused `--steps 1`, which argparse and the trainer take, as 'steps must be at least 1'."
    check_run('toy', 'tiny', 'pt', 1)
    with pytest.raises(ValueError, match='steps must be at least 1, got 0'): check_run('toy', 'tiny', 'pt', 0)

@pytest.mark.parametrize('model', ['tiny', 'tiny-llama'])
def test_check_run_refuses_a_schedule_the_models_shape_cannot_take(model):
    """check_run builds the model's shape without weights and checks the method's schedule on it, before anything big is
    loaded: 3 steps cannot make fpt_cr's 4 stages, on a T5 or a decoder-only model alike."""
    with pytest.raises(ValueError, match=re.escape("steps=3 is too few for method 'fpt_cr': its 4 stages in the paper's proportions would "
                                                   "get [1, 1, 1, 0] steps; give steps >= 4, or stage_steps")):
        check_run('toy', model, 'fpt_cr', 3)
    check_run('toy', model, 'fpt_cr', 4)

def test_a_model_whose_config_cannot_be_read_has_no_config(monkeypatch):
    """config_error_copied (`c is None and isinstance(c, Exception)`): model_config gave a copy of the error it met reading a hub id's
    config, as if it were the config, where it must give None (loading the model says why)."""
    import fpt_nb.cli as cli
    monkeypatch.setattr(cli, 'hub_unreachable', lambda model: 'the hub cannot be reached from here (a test)')
    _read_config.cache_clear()
    try:
        assert isinstance(_read_config('no-such-org/no-such-t5', None), OSError)
        assert model_config('no-such-org/no-such-t5') is None
    finally: _read_config.cache_clear()

def test_a_score_file_that_fails_to_write_says_why_and_leaves_nothing(tmp_path, monkeypatch):
    """failed_scores_tmp_left: a write of neuron scores that failed (a full disk) must say why and leave no temporary file beside
    where the scores would go. (The audit's own mutant here, `unlink(missing_ok=False)`, is equivalent: the file always exists.)"""
    import fpt_nb.scores as sc
    scores = sc.NeuronScores({'encoder': torch.rand(2, 8)}, n_examples=4)
    def full(*a, **k): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(sc, 'save_file', full)
    with pytest.raises(OSError, match='No space left on device'): sc.save_scores(scores, tmp_path/'scores.safetensors')
    assert list(tmp_path.iterdir()) == []

def test_whether_a_hub_id_is_an_encoder_asks_only_the_cache(monkeypatch):
    """encoder_hub_asked (`local_files_only=False`): telling whether a hub id names a BERT encoder asked the hub, where it must read
    the local cache only (offline, each look waits through the hub's retries)."""
    from types import SimpleNamespace
    import fpt_nb.encoder as enc
    asked, kind = [], [None]
    def config(name, **k):
        asked.append((name, k))
        if kind[0] is None: raise OSError(f"{name} is not in the cache")
        return SimpleNamespace(model_type=kind[0])
    monkeypatch.setattr(enc.AutoConfig, 'from_pretrained', config)
    assert enc.is_encoder('some-org/some-model') is False
    kind[0] = 'bert'
    assert enc.is_encoder('some-org/some-bert') is True
    assert asked == [('some-org/some-model', dict(local_files_only=True)), ('some-org/some-bert', dict(local_files_only=True))]

def test_fpt_run_defaults_checkpoint_and_progress_as_the_api_does():
    """checkpoint_every_default_one, progress_default_off: with no flag, `fpt run` checkpoints at evaluations and stage ends
    (0) and shows progress bars, as `run_experiment` does (a default of 1 wrote a checkpoint at every step), and `fpt evaluate`
    shows them too, as `evaluate_run` does."""
    import inspect
    from fpt_nb.cli import make_parser
    from fpt_nb.run import run_experiment
    from fpt_nb.run import evaluate_run
    a, api = make_parser().parse_args(['run']), inspect.signature(run_experiment).parameters
    assert (a.checkpoint_every, a.progress) == (0, True) == (api['checkpoint_every'].default, api['progress'].default)
    assert make_parser().parse_args(['evaluate', 'r']).progress is True is inspect.signature(evaluate_run).parameters['progress'].default

def test_a_failed_run_in_a_folder_the_user_made_keeps_the_folder_and_its_files(tmp_path, capsys):
    """user_folder_removed (`created = main or ...`): a run that failed to load its model, told to write into a folder the user
    had made (holding a file of theirs), removed the folder with the file: only a folder the run made itself is removed."""
    from fpt_nb.prompt import tiny_t5_config
    tiny_t5_config().save_pretrained(tmp_path/'no-weights')
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'notes.txt').write_text('keep me')
    assert main(['run', '--model', str(tmp_path/'no-weights'), '--method', 'pt', '--steps', '4', '--out-dir', str(tmp_path/'mine')]) == 2
    assert "could not load model" in capsys.readouterr().err
    assert (tmp_path/'mine'/'notes.txt').read_text() == 'keep me'

def test_a_path_of_several_parts_is_no_hub_id_to_look_up(monkeypatch):
    """path_sent_to_hub (`count('/') > 1 and HF_HUB_OFFLINE`): a model named by a path of several parts that is not here
    (`runs/models/t5`) was looked up as a hub id, the hub's host name resolved on the way; it is left to the folder check."""
    import fpt_nb.cli as cli
    from huggingface_hub import constants
    asked = []
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(cli, '_hub_host_unreachable', lambda: asked.append(1) or 'the hub cannot be reached from here (a test)')
    assert cli.hub_unreachable('runs/models/no-such-t5') is None and asked == []
    assert cli.hub_unreachable('no-such-org/no-such-t5') is not None and asked == [1]

@pytest.mark.parametrize('arg', ['max_input_length', 'max_target_length'])
def test_a_run_of_one_token_inputs_or_targets_is_refused_before_anything_loads(arg, tmp_path):
    """An input or target is a token and EOS at least: `run_experiment` (and `fpt run`, as it parses) refuse 1 by name before
    any model loads or folder is made, as `encode` would only after the run's header and its model's setup."""
    from fpt_nb.run import run_experiment
    with pytest.raises(ValueError, match=f'{arg} must be a whole number of at least 2.*got 1'):
        run_experiment(out_dir=str(tmp_path/'run'), steps=2, **{arg: 1})
    assert not (tmp_path/'run').exists()

def test_an_encoder_or_no_model_has_no_backbone_config():
    "`model_config` gives a T5 or decoder-only backbone's config, and None for an encoder classifier (no FPT stages) or no model."
    from transformers import T5Config
    from fpt_nb.cli import model_config
    assert isinstance(model_config('tiny'), T5Config) and model_config('tiny-llama').model_type == 'llama'
    assert model_config('tiny-bert') is None and model_config(None) is None

def test_a_run_reduces_the_decoder_as_told_and_else_as_its_task_does(tmp_path):
    """`run_experiment(decoder=...)` (`fpt run --decoder`) reduces the decoder with the encoder as told, against the task's
    recipe (the toy task's keeps it whole); not told, the run follows the task."""
    from fpt_nb.run import run_experiment
    kw = dict(task='toy', model='tiny', method='fpt_ld', steps=4, batch_size=4, prompt_length=4, train_limit=16, eval_limit=4, device='cpu',
              progress=False)
    told = run_experiment(out_dir=str(tmp_path/'told'), decoder=True, **kw)
    assert [s['name'] for s in told['stages']] == ['enc 1L, dec 1L', 'enc 2L, dec 2L', 'enc 3L, dec 3L', 'full']
    assert [s['name'] for s in run_experiment(out_dir=str(tmp_path/'task'), **kw)['stages']] == ['enc 1L', 'enc 2L', 'enc 3L', 'full']

def test_stage_steps_alone_give_the_runs_steps():
    """`--stage-steps` without `--steps` makes the run as long as they add up to; neither given leaves both to the preset; a
    one-stage method takes its total only."""
    from fpt_nb.cli import method_stage_steps
    assert method_stage_steps('fpt_cr', None, [1, 1, 1, 2]) == (5, [1, 1, 1, 2])
    assert method_stage_steps('fpt_cr', None, None) == (None, None) and method_stage_steps('pt', 8, None) == (8, None)
    with pytest.raises(ValueError, match=re.escape('stage_steps [1, 1, 1, 2] add up to 5, not steps=6')): method_stage_steps('fpt_cr', 6, [1, 1, 1, 2])

def test_a_cpu_named_with_its_index_is_the_cpu():
    "`pick_device('cpu:0')` is the CPU: the check of a CUDA device's index (against the GPUs there are) is for CUDA devices only."
    from fpt_nb.run import pick_device
    assert pick_device('cpu:0') == torch.device('cpu:0') and pick_device('cpu') == torch.device('cpu')

def test_a_data_parallel_run_of_no_processes_is_refused_before_anything_is_made(tmp_path):
    "`run_distributed(0)` refuses by name before it makes the run folder or starts a launcher."
    from fpt_nb.run import run_distributed
    with pytest.raises(ValueError, match='num_processes must be at least 1, got 0'): run_distributed(0, out_dir=str(tmp_path/'dp'))
    assert not (tmp_path/'dp').exists()
