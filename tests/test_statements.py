"""Statements no test would miss (the thirteenth audit): each library line that is a bare call, kept for what it does rather
than what it returns (closing a file, seeding, logging, registering), was replaced by `pass` in a copy and the tests covering
it were run. Each test here catches one such deletion that every test let through before; its docstring names the mutant
(`tools/mutants.py`). All take seconds on the tiny T5 or the toy task."""
import json, os
from pathlib import Path
import pytest, torch


def open_files_under(folder) -> list[str]:
    "What this process's open file descriptors name under `folder` (by /proc/self/fd)."
    out = []
    for fd in os.listdir('/proc/self/fd'):
        try: target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError: continue   # (the listing's own descriptor, closed meanwhile)
        if target.startswith(str(folder) + os.sep): out.append(target)
    return sorted(out)

def test_atomic_writes_close_their_temporary_files(tmp_path):
    """temp_file_left_open: `write_atomic` (every record a run writes: its log's summary, prompts, pointers) closes the temporary
    file it made before renaming it over the path. Left open, each write kept a descriptor: a long run with frequent checkpoints
    stops at the process's limit of open files (often 1,024), and a notebook that runs many leaks them all."""
    from fpt_nb.checkpoint import write_atomic, write_json
    for i in range(3):
        write_atomic(tmp_path/'a.txt', f'text {i}'); write_json(tmp_path/'b.json', dict(i=i))
    assert (tmp_path/'a.txt').read_text() == 'text 2' and json.loads((tmp_path/'b.json').read_text()) == dict(i=2)
    assert open_files_under(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# Scoring: every scorer refuses predictions that are not one per example

SCORERS = ['squad_v2_scores', 'record_scores', 'rouge_scores', 'paper_accuracy', 'paper_qqp', 'paper_squad2', 'paper_record',
           'paper_rouge']

@pytest.mark.parametrize('name', SCORERS)
def test_every_scorer_refuses_predictions_that_are_not_one_per_example(name):
    """<scorer>_lengths_unchecked: each scorer of `fpt_nb.metrics` refuses a different number of predictions and references,
    and none at all. Only `accuracy`'s check was tested; without the others, `zip` scored the shorter list silently (two
    references, one prediction: a score over half the examples) or divided by zero."""
    from fpt_nb import metrics
    f = getattr(metrics, name)
    text = name in ('rouge_scores', 'paper_rouge', 'paper_accuracy', 'paper_qqp')
    refs = ['a b', 'c d'] if text else [['a b'], ['c d']]
    if name == 'paper_qqp': refs = ['is_duplicate', 'not_duplicate']
    preds = [r if isinstance(r, str) else r[0] for r in refs]
    assert f(preds, refs)   # the same lists, one prediction each: scored
    with pytest.raises(ValueError, match='1 predictions for 2 references: expected one prediction per example'): f(preds[:1], refs)
    with pytest.raises(ValueError, match='no predictions to score'): f([], [])


# ---------------------------------------------------------------------------------------------------------------
# The stage plot says what it shows

def test_the_stage_plot_labels_its_axes_runs_and_title_and_draws_the_raw_loss(tmp_path):
    """plot_raw_loss_missing, plot_xlabel_missing, plot_legend_missing, plot_title_missing, plot_grid_missing: under each
    smoothed loss curve the raw per-step loss is drawn faintly (the smoothing hides a spike); the bottom panels name their x
    axes, the first panel has a legend naming the run and its overlay, the figure's title names task, model, method and
    metric, and each panel has its grid."""
    from test_plots import write_run
    from fpt_nb.plots import plot_run
    fpt = write_run(tmp_path/'fpt', 'fpt_ld', [('enc 1L', 2), ('full', 6)], [1.0, 4.0], evals=(2, 8))
    pt = write_run(tmp_path/'pt', 'pt', [('full', 8)], [4.0], evals=(8,))
    fig = plot_run(fpt, pt, save=False)
    loss_flops, loss_wall, metric_flops, metric_wall = fig.axes
    for ax in (loss_flops, loss_wall):   # per run: the raw curve (no label), then the smoothed one (labelled)
        raw = [l for l in ax.lines if l.get_gid() != 'stage' and l.get_label().startswith('_') and l.get_alpha() == 0.25]
        assert [list(l.get_ydata()) for l in raw] == [[10.0 / s for s in range(1, 9)]] * 2
    assert [ax.get_xlabel() for ax in fig.axes] == ['', '', 'cumulative training FLOPs', 'training wall clock (s)']
    assert [t.get_text() for t in loss_flops.get_legend().get_texts()] == ['pt (overlay)', 'fpt_ld']
    assert fig.get_suptitle() == 'toy · tiny · fpt_ld: loss and paper_acc by cost; dotted lines: expansions'
    assert all(ax.xaxis.get_gridlines()[0].get_visible() and ax.yaxis.get_gridlines()[0].get_visible() for ax in fig.axes)

def test_the_stage_plot_names_each_expansion_and_writes_flops_in_powers_of_ten(tmp_path):
    """plot_expansion_names_missing, plot_flops_plain_numbers: the top panels name the stage each dotted line grew to, and
    the FLOPs axes are written as a mantissa and one power of ten (a LARGE run's 10^17 FLOPs in plain digits were unreadable)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from test_plots import write_run
    from fpt_nb.plots import plot_run
    fpt = write_run(tmp_path/'fpt', 'fpt_ld', [('enc 1L', 2), ('enc 2L', 2), ('full', 4)], [1.0, 2.0, 4.0], evals=(2, 8))
    fig = plot_run(fpt, save=False); FigureCanvasAgg(fig).draw()
    assert [[t.get_text() for t in ax.texts] for ax in fig.axes] == [['→ enc 2L', '→ full']] * 2 + [[], []]
    assert [ax.xaxis.get_offset_text().get_text() for ax in fig.axes] == ['1e1', '', '1e1', '']   # FLOPs to 22; the wall axes plain


# ---------------------------------------------------------------------------------------------------------------
# Loading and signals: what a context changes is put back

def test_a_dropped_warning_is_printed_again_after_the_load():
    """warning_filter_left_on: `warning_dropped` (the untied-head warning of every LM-adapt load, Accelerate's offload warning)
    removes its filter on leaving: a filter left behind hid that warning from every later load in the process, and from the
    user's own code."""
    import logging
    from fpt_nb.prompt import warning_dropped
    seen = []
    class Keep(logging.Handler):
        def emit(self, record): seen.append(record.getMessage())
    log = logging.getLogger('fpt_nb.test_statements'); h = Keep(); log.addHandler(h)
    try:
        with warning_dropped('fpt_nb.test_statements', 'noisy'):
            log.warning('a noisy line'); log.warning('a plain line')
        log.warning('a noisy line again')
    finally: log.removeHandler(h)
    assert seen == ['a plain line', 'a noisy line again'] and log.filters == []

def test_a_tiny_model_is_loaded_in_the_dtype_asked():
    """tiny_dtype_ignored: `load_t5('tiny', dtype=torch.bfloat16)` gives bf16 weights, as a folder's load does (the fast
    step's and the benchmarks' tiny stand-ins); the dtype was dropped for the built-in models, and fp32 came back."""
    from fpt_nb.prompt import load_t5
    assert {p.dtype for p in load_t5('tiny', dtype=torch.bfloat16)[0].parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_t5('tiny-relu', torch_dtype=torch.bfloat16)[0].parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_t5('tiny')[0].parameters()} == {torch.float32}

def test_sigterm_has_its_default_action_again_after_a_run():
    """sigterm_handler_left_on: `sigterm_exits` (around loading, scoring and evaluating in `run_experiment`) gives SIGTERM its
    default action back on leaving. Left on, a SIGTERM after a run in a notebook or script raised SystemExit with the message
    that a run's loading was stopped, though no run was going on."""
    import subprocess, sys
    code = ("import os, signal, time\nfrom fpt_nb.run import sigterm_exits\nwith sigterm_exits(): pass\n"
            "os.kill(os.getpid(), signal.SIGTERM); time.sleep(10); print('not stopped', flush=True)")
    child = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert (child.returncode, child.stdout, child.stderr) == (-15, '', '')

def test_a_sigterm_while_a_run_loads_says_what_is_kept():
    """sigterm_exit_unsaid: a SIGTERM inside `sigterm_exits` (a run loading, scoring neurons or evaluating) exits 143 saying
    why, on stderr, and what is kept; the notebook checks the exit and the `finally` blocks, not the message."""
    import subprocess, sys
    code = ("import os, signal, time\nfrom fpt_nb.run import sigterm_exits\nwith sigterm_exits():\n"
            "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(10)")
    child = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert child.returncode == 143 and child.stderr == (
        "stopped by signal 15 (SIGTERM) outside training (loading, scoring neurons or evaluating): what the run had saved is "
        "kept, a folder it had not begun a run in is removed\n"), child.stderr


# ---------------------------------------------------------------------------------------------------------------
# `fpt run`: the demo, shrunk, says what it wrote and what it shows, on one thread

def test_the_demo_ends_with_its_plots_tables_and_what_it_shows_on_one_thread(tmp_path, monkeypatch, capsys):
    """demo_explanation_unsaid, plot_paths_unsaid, threads_not_set: a bare `fpt run` (the README's `make run`, here shrunk to
    4 steps of 4 examples by a stand-in launcher that runs the real `run_experiment`) trains its tiny T5 on one thread (the
    toy's few products run slower on more), names the plot it wrote for each run, and ends with what the demo shows and what
    it does not. Before, only the announcement at its start was tested."""
    from fpt_nb import cli, run as R
    real = R.launch
    threads = []
    def small(n, **kw):
        threads.append(torch.get_num_threads())
        return real(n, **dict(kw, steps=4, stage_steps=None if kw['method'] == 'pt' else [1, 1, 1, 1], batch_size=4,
                              prompt_length=4, train_limit=16, eval_limit=8, eval_every=4, score_examples=8, progress=False))
    monkeypatch.setattr(R, 'launch', small)
    monkeypatch.chdir(tmp_path)
    n = torch.get_num_threads(); torch.set_num_threads(2)
    try: code = cli.main(['run'])
    finally: torch.set_num_threads(n)
    out = capsys.readouterr().out
    assert code == 0 and threads == [1, 1], (threads, out)
    d = Path('runs/default')
    assert f"plot: {d/'pt'/'stages.png'}\n" in out and f"plot: {d/'fpt_cr'/'stages.png'}\n" in out, out
    assert out.endswith(cli.WHAT_THE_DEFAULT_SHOWS + '\n'), out[-400:]
    assert (tmp_path/d/'fpt_cr'/'stages.png').is_file()

def test_a_run_whose_tokenizer_spells_a_label_longer_says_its_target_length(tmp_path, data_dir, capsys):
    """target_length_note_unsaid: MNLI on the byte-level tiny T5 needs targets of 15 tokens ('contradiction' and EOS, in
    bytes), not the task's 10 (T5's count); the run says so before it trains, as a label cut short could never be generated
    whole. The length itself was tested, the note that it differs from the paper's was not."""
    from fpt_nb.run import run_experiment
    run_experiment(task='mnli', model='tiny', method='pt', steps=1, batch_size=2, prompt_length=4, train_limit=4, eval_limit=2,
                   data_dir=data_dir, out_dir=str(tmp_path/'r'), progress=False)
    out = capsys.readouterr().out
    assert ("note: targets of up to 15 tokens, not mnli's 10: this tokenizer (ByT5Tokenizer; the paper's counts are T5's) spells a "
            "label word in 15 (end of sequence included), and a label cut short could never be generated whole\n") in out, out

def test_evaluate_prints_what_it_wrote_and_export_peft_says_where(tmp_path, capsys):
    """evaluate_result_unprinted, export_peft_unsaid: `fpt evaluate` prints the record it wrote (the metrics, as JSON) before
    its line on the prompt, and `fpt export-peft` names the adapter's folder. Tests read the files each writes and the line
    on the prompt; neither the printed metrics nor where the adapter went was read."""
    from fpt_nb.cli import main
    from fpt_nb.run import run_experiment
    run_experiment(task='toy', model='tiny', method='pt', steps=2, batch_size=2, prompt_length=4, train_limit=4, eval_limit=2,
                   out_dir=str(tmp_path/'r'), progress=False)
    capsys.readouterr()
    assert main(['evaluate', str(tmp_path/'r'), '--limit', '2', '--no-progress']) == 0
    out = capsys.readouterr().out
    written = (tmp_path/'r'/'eval-validation-2.json').read_text()
    assert out.startswith(json.dumps(json.loads(written), indent=1) + '\n') and json.loads(written)['n'] == 2, out
    assert main(['export-peft', str(tmp_path/'r'), str(tmp_path/'adapter')]) == 0
    assert capsys.readouterr().out.endswith(f"wrote a PEFT prompt-tuning adapter to {tmp_path/'adapter'}\n")
    assert (tmp_path/'adapter'/'adapter_config.json').is_file()

@pytest.mark.parametrize('args, says', [
    (['--method', 'pt', 'fpt_cr', '--steps', '3'], "steps=3 is too few for method 'fpt_cr'"),
    (['--method', 'pt', 'fr', '--score-file', 'wrong.safetensors'], 'score file wrong.safetensors'),
])
def test_a_later_methods_bad_setting_is_refused_before_the_first_trains(args, says, tmp_path, monkeypatch, capsys):
    """run_checks_skipped, score_file_shape_unchecked: `fpt run` checks every method's schedule, and a score file's shapes
    against the model, before anything loads or trains: here PT would train first, then FPT_CR's 3 steps (too few for its
    four stages) or FR's score file (made for another model's widths) be refused, its cost spent."""
    from fpt_nb.cli import main
    from fpt_nb.scores import NeuronScores, save_scores
    monkeypatch.chdir(tmp_path)
    # the tiny T5's FFNs are 128 wide
    save_scores(NeuronScores({s: torch.rand(4, 96) for s in ('encoder', 'decoder')}), 'wrong.safetensors')
    def launch(n, **kw): raise AssertionError(f"{kw['method']} was launched")
    monkeypatch.setattr('fpt_nb.run.launch', launch)
    n = torch.get_num_threads()
    try: code = main(['run', *args, '--out-dir', 'r', '--no-progress'])
    finally: torch.set_num_threads(n)
    err = capsys.readouterr().err
    assert code == 2 and says in err, err
    assert not (tmp_path/'r').exists()


# ---------------------------------------------------------------------------------------------------------------
# The encoder backbone (all-MiniLM-L6-v2 and other BERT-family folders)

def test_accuracy_is_measured_in_eval_mode_and_the_mode_put_back():
    """encoder_accuracy_in_train_mode: `classify_accuracy` runs the classifier in eval mode (a BERT folder of the user's with
    dropout would otherwise score noise) and leaves it in the mode it found (training goes on with dropout as configured)."""
    from fpt_nb.encoder import load_encoder, PromptEncoder, LABEL_TEXTS, classify_accuracy, encode_pairs
    from fpt_nb.tasks import toy_examples
    model, tok = load_encoder('tiny-bert', seed=0)
    pe = PromptEncoder(model, tok, LABEL_TEXTS['toy'], prompt_length=3, seed=0).train()
    modes = []
    pe.model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    items = encode_pairs('toy', tok, toy_examples('validation', 4))
    assert classify_accuracy(pe, items, batch_size=2)['total'] == 4
    assert modes == [False, False] and pe.training and pe.model.training   # as found

def test_an_encoder_folder_with_another_models_tokenizer_is_refused(tmp_path):
    """encoder_tokenizer_unchecked: a BERT folder whose tokenizer gives ids past the model's embeddings (another model's
    tokenizer saved beside it) is refused as it loads, naming the files to fix, as a T5 or decoder-only folder is; the packaged
    MiniLM and tiny-bert (whose tokenizer is checked by construction) were the only encoders tested."""
    from transformers import AutoTokenizer, BertConfig, BertModel
    from fpt_nb.encoder import load_encoder, minilm_dir
    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
              add_pooling_layer=False).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(str(minilm_dir())).save_pretrained(tmp_path)   # 30,522 ids
    with pytest.raises(ValueError, match="beyond the model.s 100 embeddings.*it is not this model's tokenizer"):
        load_encoder(str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# Locks and launchers: what a refusal or an error leaves behind

def test_a_refused_run_lock_closes_what_it_opened(tmp_path):
    """refused_lock_left_open: a run folder in use is refused with the holder's process id, and the refusal closes the file it
    opened to try the lock; it was left open, one descriptor per refused try, holding the lock file of a run that may end."""
    from fpt_nb.run import run_lock
    d = tmp_path/'run'
    with run_lock(d):
        held = open_files_under(tmp_path)
        with pytest.raises(RuntimeError, match=f'run folder {d} is in use by process {os.getpid()}'):
            with run_lock(d): pass
        assert open_files_under(tmp_path) == held == [str(d), str(d/'run.lock')]
    assert open_files_under(tmp_path) == []

def test_a_lock_taken_over_a_dead_runs_file_names_this_process_alone(tmp_path):
    """lock_file_not_truncated: a run.lock left by a killed run (its process id, here longer than ours) is taken over and
    holds this process's id alone; written over without truncating it, it read as a mix of both ids ('in use by process
    4242999999...'), naming a process that does not exist to the next run refused."""
    from fpt_nb.run import run_lock
    d = tmp_path/'run'; d.mkdir()
    (d/'run.lock').write_text('9' * 40)
    with run_lock(d): assert (d/'run.lock').read_text() == str(os.getpid())

def test_a_launcher_still_running_when_the_command_fails_is_killed(tmp_path, monkeypatch):
    """launcher_left_running: should `run_distributed` fail while its launcher runs (here waiting for it raises), the launcher
    (and with it the workers) is killed rather than left training with no one to report to."""
    import subprocess
    from fpt_nb.run import run_distributed
    killed = []
    class Launcher:
        def __init__(self, *a, **k): pass
        def send_signal(self, s): pass
        def poll(self): return None if not killed else -9
        def wait(self): raise OSError('lost the launcher')
        def kill(self): killed.append(True)
    monkeypatch.setattr(subprocess, 'Popen', Launcher)
    with pytest.raises(OSError, match='lost the launcher'): run_distributed(2, out_dir=str(tmp_path/'dp'), task='toy')
    assert killed == [True]


# ---------------------------------------------------------------------------------------------------------------
# The trainer: schedules checked, best files of steps a resume goes back before

def test_a_schedule_that_shrinks_or_does_not_fit_is_refused_by_check_phases():
    """phases_stages_unchecked: `check_phases` (what `Trainer` and `fpt run` check a schedule with) refuses a stage smaller than
    the one before it and one larger than the model, naming the stage; it checked only the step counts, and a schedule built
    by hand then failed inside training, at the expansion."""
    from fpt_nb.train import check_phases, Phase
    from fpt_nb.partial import Stage, FULL
    from fpt_nb.prompt import load_t5
    m = load_t5('tiny')[0]   # 4 encoder layers
    shrinks = [Phase(Stage(encoder_layers=3), 2), Phase(Stage(encoder_layers=2), 2)]
    with pytest.raises(ValueError, match='stage 2 keeps 2 encoder layers but stage 1 kept 3: stages must grow'): check_phases(shrinks, m)
    with pytest.raises(ValueError, match=r'stage 1 \(enc 6L\)'): check_phases([Phase(Stage(encoder_layers=6), 2), Phase(FULL, 2)], m)
    assert len(check_phases([Phase(Stage(encoder_layers=2), 2), Phase(FULL, 2)], m)) == 2

class Crash(Exception): "The process dies here."

def test_a_resume_to_a_checkpoint_without_a_best_removes_the_later_best_files(tmp_path, monkeypatch):
    """bestless_checkpoint_keeps_later_files: a run killed after step 2's evaluation wrote best.json and its prompt, before step 2's checkpoint,
    goes on from step 1's checkpoint, which has no best yet; those files, of a step the resumed run has not reached, are removed
    as it resumes (here it is stopped again inside step 2, before evaluating). Kept, they named step 2's prompt the run's best
    beside a log and checkpoint that end at step 1."""
    import fpt_nb.train as T
    from fpt_nb.run import run_experiment
    from fpt_nb.checkpoint import read_json, latest_checkpoint
    d = tmp_path/'run'
    kw = dict(task='toy', model='tiny', method='pt', steps=4, batch_size=2, prompt_length=4, train_limit=8, eval_limit=2, eval_every=2,
              checkpoint_every=1, out_dir=str(d), progress=False)
    real = T.save_checkpoint
    def dies_at_2(ckpt_dir, step, *a, **k):
        if step == 2: raise Crash('killed before the checkpoint of step 2')
        return real(ckpt_dir, step, *a, **k)
    monkeypatch.setattr(T, 'save_checkpoint', dies_at_2)
    with pytest.raises(Crash): run_experiment(**kw)
    monkeypatch.undo()
    best = ('best.json', 'best_prompt.safetensors', 'best_last.json', 'best_last_prompt.safetensors')
    assert read_json(d/'best.json')['step'] == 2 and all((d/f).is_file() for f in best)
    assert latest_checkpoint(d/'checkpoints').name == 'step-0000001'
    def dies_in_step(*a, **k): raise Crash('killed inside step 2 again')
    monkeypatch.setattr(torch.nn.utils, 'clip_grad_norm_', dies_in_step)
    with pytest.raises(Crash): run_experiment(**kw)
    assert [f for f in best if (d/f).exists()] == []


# ---------------------------------------------------------------------------------------------------------------
# The fast step (issue 12) and its reference

@pytest.mark.filterwarnings('ignore:Seems like .optimizer.step')
def test_each_good_step_advances_the_schedule_once_in_both_steps():
    """fast_sched_not_stepped, plain_sched_not_stepped: `FastStep` and `plain_step` each advance the learning-rate schedule
    they are given once per good step (the trainer's is constant, 1.0, and its count is what a checkpoint keeps; a schedule of
    the user's decays here); neither advanced it, and every test gave a constant one."""
    from types import SimpleNamespace
    from fpt_nb.fast import FastStep, plain_step
    from fpt_nb.train import make_optimizer, TrainConfig
    from fpt_nb.prompt import load_t5, PromptT5
    from fpt_nb.tasks import toy_examples
    from fpt_nb.batches import encode, batches
    m, tok = load_t5('tiny')
    b = next(batches(encode('toy', tok, toy_examples('train', 4)), 4, shuffle=False))
    for which in ('fast', 'plain'):
        pt = PromptT5(m, prompt_length=4)
        opt, _ = make_optimizer([pt.prompt.weight], TrainConfig())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s))
        if which == 'fast': step = lambda: FastStep(pt, opt, sched, 1, 1.0, lambda *a: 0)(iter([b]), {})
        else:
            tr = SimpleNamespace(cfg=TrainConfig(batch_size=4), pt=pt, device=torch.device('cpu'), bf16=False, opt=opt, sched=sched,
                                 step_flops=lambda *a: 0)
            step = lambda: plain_step(tr, iter([b]), {})
        for _ in range(2): assert step()[2] is None
        assert (sched.state_dict()['last_epoch'], sched.get_last_lr()) == (2, [0.3 / 3]), which

def test_the_fast_step_with_bf16_weights_holds_the_frozen_linears_in_bf16():
    """fast_weights_not_cast: a `FastStep` with `bf16_weights` casts the frozen linear layers to bf16 as it is built (the
    lever's point: no fp32 weight is cast again at every step), and leaves the prompt, and the embeddings, in fp32. Its loss
    under autocast is within the lever's tolerance of the fp32 weights', so the comparison alone could not tell."""
    from fpt_nb.fast import FastStep, FastOptions
    from fpt_nb.prompt import load_t5, PromptT5
    pt = PromptT5(load_t5('tiny')[0], prompt_length=4)
    FastStep(pt, None, None, 1, 1.0, lambda *a: 0, autocast=True, options=FastOptions(bf16_weights=True, attention='sdpa'))
    linears = {m.weight.dtype for m in pt.model.modules() if isinstance(m, torch.nn.Linear)}
    assert linears == {torch.bfloat16} and pt.prompt.weight.dtype == torch.float32
    assert pt.model.shared.weight.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------------------
# Decoder-only configs and the PEFT export

def test_decoder_only_configs_take_eager_attention_unless_told():
    """causal_config_attention_default: `causal_config` (and the tiny ones built on it) asks for eager attention, as its
    docstring says: the attention FLOPs the trainer counts are then what PyTorch runs, and a partial model's attention is
    checked against the full one's on the same kernel; transformers' default is SDPA. An attention asked for is kept."""
    from fpt_nb.causal import causal_config, tiny_causal_config
    for family in ('llama', 'qwen2', 'mistral'):
        assert causal_config(family)._attn_implementation == 'eager'
        assert tiny_causal_config(family)._attn_implementation == 'eager'
    assert causal_config('llama', attn_implementation='sdpa')._attn_implementation == 'sdpa'

def test_a_peft_export_says_no_deprecation_of_transformers(tmp_path):
    """peft_future_warnings_shown: `export_peft` builds the backbone and PEFT's model quietly; transformers' FutureWarnings
    raised inside PEFT (nothing the user can act on) are not shown."""
    import warnings
    from fpt_nb.peft import export_peft
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        export_peft(torch.zeros(4, 64), tmp_path/'a', 'tiny')
    assert [str(w.message) for w in seen if issubclass(w.category, FutureWarning)] == []


# ---------------------------------------------------------------------------------------------------------------
# Progress bars

class Bar:
    "Stands in for tqdm: records each bar's description, total and count."
    made = []
    def __init__(self, *a, total=None, initial=0, desc='', disable=False, **k):
        self.desc, self.total, self.n, self.disable, self.postfix = desc, total, initial, disable, []; Bar.made.append(self)
    def update(self, n=1): self.n += n
    def set_postfix(self, *a, **k): self.postfix.append((self.n, sorted(k)))
    def close(self): pass
    def __enter__(self): return self
    def __exit__(self, *a): pass

def test_every_progress_bar_of_a_run_reaches_its_total(tmp_path, monkeypatch):
    """scoring_bar_stuck, generating_bar_stuck, training_bar_stuck, encoder_bar_stuck: with progress on, each bar a run shows
    (scoring neurons, prompt tuning, generating at each evaluation; an encoder's evaluation) counts up to its total. A bar
    left at 0 (its update deleted) passed every test: they all run with progress off. The training bar shows the loss and
    stage every `log_every` steps (bar_postfix_off_beat, the sixteenth audit: negated, at every other step but those)."""
    import tqdm.auto
    from fpt_nb import scores, train
    from fpt_nb.run import run_experiment
    for mod in (scores, train, tqdm.auto): monkeypatch.setattr(mod, 'tqdm', Bar)
    Bar.made = []
    run_experiment(task='toy', model='tiny', method='fpt_cr', steps=4, batch_size=2, prompt_length=4, train_limit=8, eval_limit=3,
                   eval_every=2, score_examples=4, out_dir=str(tmp_path/'r'), progress=True)
    shown = [(b.desc, b.n, b.total) for b in Bar.made if not b.disable]
    assert {d for d, _, _ in shown} == {'scoring neurons', 'prompt tuning', 'evaluating toy'}, shown
    assert all(n == t for _, n, t in shown), shown
    assert ('scoring neurons', 4, 4) in shown and ('prompt tuning', 4, 4) in shown
    # (a run updates the bar's loss and stage at every step: log_every=1)
    assert [b.postfix for b in Bar.made if b.desc == 'prompt tuning'] == [[(s, ['loss', 'stage']) for s in range(1, 5)]]
    Bar.made = []
    run_experiment(task='toy', model='tiny-bert', method='pt', steps=1, batch_size=2, prompt_length=4, train_limit=4, eval_limit=3,
                   out_dir=str(tmp_path/'e'), progress=True)
    assert ('evaluating', 3, 3) in [(b.desc, b.n, b.total) for b in Bar.made if not b.disable]
