"A trained prompt exported for HF PEFT: PEFT's own loader gives the same loss and the same generations as our PromptT5."
import json
import pytest, torch
from peft import PeftModel, PeftConfig
from fpt_nb.prompt import load_t5, PromptT5
from fpt_nb.tasks import get_task, load_examples
from fpt_nb.batches import encode, collate
from fpt_nb.checkpoint import load_prompt
from fpt_nb.run import run_experiment
from fpt_nb.peft import export_peft

@pytest.mark.parametrize('model', ['tiny', 'tiny-relu'])
def test_peft_loss_equals_ours(model, tmp_path, data_dir):
    torch.set_num_threads(1)
    run = tmp_path/'run'
    run_experiment('mnli', model, 'fpt_ld', run, data_dir=data_dir, steps=8, batch_size=4, train_limit=32, eval_limit=8,
                   eval_every=4, progress=False)
    out = export_peft(run, tmp_path/'peft')
    cfg = PeftConfig.from_pretrained(out)
    assert (cfg.peft_type, cfg.task_type, cfg.num_virtual_tokens, cfg.num_transformer_submodules, cfg.token_dim) == \
           ('PROMPT_TUNING', 'SEQ_2_SEQ_LM', 20, 1, 64)
    prompt = load_prompt(run/'best_prompt.safetensors')
    base, tok = load_t5(model)
    ours = PromptT5(base, prompt_length=20)
    with torch.no_grad(): ours.prompt.weight.copy_(prompt)
    assert not torch.equal(prompt, PromptT5(load_t5(model)[0], prompt_length=20).prompt.weight.detach())   # it trained
    theirs = PeftModel.from_pretrained(load_t5(model)[0], out).eval()
    rows = load_examples('mnli', 'validation', data_dir, limit=6)
    b = collate(encode(get_task('mnli'), tok, rows))
    with torch.no_grad():
        ref = ours(b['input_ids'], b['attention_mask'], labels=b['labels']).loss
        got = theirs(input_ids=b['input_ids'], attention_mask=b['attention_mask'], labels=b['labels']).loss
    assert torch.equal(got, ref), (got.item(), ref.item())
    assert torch.equal(theirs.generate(input_ids=b['input_ids'], attention_mask=b['attention_mask'], max_new_tokens=8),
                       ours.generate(b['input_ids'], b['attention_mask'], max_new_tokens=8))
    # and a prompt other than the one exported gives another loss: the comparison can fail
    with torch.no_grad():
        ours.prompt.weight.add_(0.1)
        assert not torch.equal(ours(b['input_ids'], b['attention_mask'], labels=b['labels']).loss, got)


def test_export_of_a_run_takes_its_best_last_stage_prompt_and_names_the_backbone(tmp_path):
    """Catches peft_exports_best_not_best_last (the overall best prompt, possibly from a partial stage, exported instead of
    the full model's best) and peft_base_model_unnamed (an adapter_config.json without base_model_name_or_path)."""
    from safetensors.torch import load_file
    from fpt_nb.checkpoint import save_prompt, write_json
    run = tmp_path/'run'; run.mkdir()
    best, best_last, last = (torch.full((5, 64), v) for v in (1.0, 2.0, 3.0))
    for name, p in (('best_prompt', best), ('best_last_prompt', best_last), ('prompt', last)): save_prompt(p, run/f'{name}.safetensors')
    write_json(run/'config.json', dict(model='tiny'))
    write_json(run/'summary.json', dict(steps=10, planned_steps=10, stopped=None, stages=[dict(name='full')]))
    out = export_peft(run, tmp_path/'peft')
    cfg = json.loads((out/'adapter_config.json').read_text())
    assert (cfg['base_model_name_or_path'], cfg['task_type'], cfg['num_virtual_tokens'], cfg['token_dim']) == ('tiny', 'SEQ_2_SEQ_LM', 5, 64)
    assert torch.equal(load_file(str(out/'adapter_model.safetensors'))['prompt_embeddings'], best_last)


def test_export_of_a_prompt_trained_on_a_partial_model_warns(tmp_path):
    """peft_partial_warning_off: a prompt chosen on a partial stage (a one-stage `ld` run, or an FPT run's best from
    before the full model) is exported with a warning that PEFT will apply it to the full model; a full-stage one without."""
    import warnings
    from fpt_nb.checkpoint import save_prompt, write_json
    def run_with(name, stages, chosen_stage):
        run = tmp_path/name; run.mkdir()
        save_prompt(torch.ones(5, 64), run/'best_last_prompt.safetensors')
        write_json(run/'config.json', dict(model='tiny'))
        write_json(run/'summary.json', dict(steps=4, planned_steps=4, stopped=None, stages=[dict(name=s) for s in stages]))
        write_json(run/'best_last.json', dict(step=4, stage=chosen_stage))
        return run
    with pytest.warns(UserWarning, match=r'trained this prompt on a partial model \(enc 1L\)'):
        export_peft(run_with('ld', ['enc 1L'], 0), tmp_path/'peft-ld')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        export_peft(run_with('fpt', ['enc 1L', 'enc 2L', 'enc 3L', 'full'], 3), tmp_path/'peft-fpt')
    assert not [w for w in caught if 'partial model' in str(w.message)]


def test_a_prompt_file_of_a_run_is_not_exported_for_another_kind_of_model(tmp_path):
    """peft_file_family_unchecked: a run folder's prompt file given alone, with --model naming a decoder-only model as wide
    as the run's T5, was exported as a CAUSAL_LM adapter; the run says which model it trained on, and where its config and
    summary are gone, its checkpoints still say which kind."""
    run = tmp_path/'run'
    run_experiment('toy', 'tiny', 'pt', run, steps=2, batch_size=4, prompt_length=2, train_limit=8, eval_limit=4, progress=False)
    with pytest.raises(ValueError, match=r"trained its prompt on 'tiny', and 'tiny-llama' is another model"):
        export_peft(run/'prompt.safetensors', tmp_path/'llama', 'tiny-llama')
    for f in ('config.json', 'summary.json'): (run/f).unlink()
    with pytest.raises(ValueError, match=r'trained its prompt on a T5ForConditionalGeneration, but tiny-llama is a LlamaForCausalLM: '
                       r'a prompt is not portable across kinds of model; name the backbone it was trained on$'):
        export_peft(run/'prompt.safetensors', tmp_path/'llama', 'tiny-llama')   # (no config left to name it: the user must)
    assert not (tmp_path/'llama').exists()
    assert json.loads((export_peft(run/'prompt.safetensors', tmp_path/'t5', 'tiny')/'adapter_config.json').read_text())['task_type'] == 'SEQ_2_SEQ_LM'


def test_export_writes_no_file_of_the_users(tmp_path):
    """peft_readme_rewritten: PEFT's save_pretrained edited a README.md already in OUT (front matter before it, its versions
    after). The user's README is left as it was; a folder without one gets PEFT's model card; a second export with force
    replaces the adapter's files and leaves no temporary folder."""
    from fpt_nb.checkpoint import save_prompt
    save_prompt(torch.ones(3, 64), tmp_path/'p.safetensors')
    mine = tmp_path/'proj'; mine.mkdir(); (mine/'README.md').write_text('# My project\n\nImportant notes.\n')
    export_peft(tmp_path/'p.safetensors', mine, 'tiny')
    assert (mine/'README.md').read_text() == '# My project\n\nImportant notes.\n'
    assert sorted(f.name for f in mine.iterdir()) == ['README.md', 'adapter_config.json', 'adapter_model.safetensors']
    fresh = export_peft(tmp_path/'p.safetensors', tmp_path/'fresh', 'tiny')
    assert (fresh/'README.md').is_file() and 'PEFT' in (fresh/'README.md').read_text()   # PEFT's own card
    # card_base_model_empty (session 20): the card named the base model '' (the adapter's config named it)
    assert "base_model: tiny\n" in (fresh/'README.md').read_text(), (fresh/'README.md').read_text()[:200]
    save_prompt(torch.full((3, 64), 2.0), tmp_path/'p.safetensors')
    export_peft(tmp_path/'p.safetensors', mine, 'tiny', force=True)
    assert sorted(f.name for f in mine.iterdir()) == ['README.md', 'adapter_config.json', 'adapter_model.safetensors']
    from safetensors.torch import load_file
    assert (next(iter(load_file(str(mine/'adapter_model.safetensors')).values())) == 2).all()


def test_export_for_a_folder_without_a_config_says_so(tmp_path):
    "peft_model_folder_unchecked: transformers said 'Unrecognized model ... should have a model_type key' of a folder with no config.json."
    from fpt_nb.checkpoint import save_prompt
    save_prompt(torch.ones(5, 64), tmp_path/'p.safetensors')
    (tmp_path/'m').mkdir()
    with pytest.raises(ValueError, match=f"model folder {tmp_path/'m'} has no config.json"):
        export_peft(tmp_path/'p.safetensors', tmp_path/'out', str(tmp_path/'m'))


def test_export_for_another_model_is_refused(tmp_path):
    """export_for_any_model: `export_peft(run, out, model)` wrote an adapter for any model of the run's kind and width, where
    `fpt evaluate` refuses the same model: another built-in one, or a folder whose weights differ from the run's. Now both are
    refused, and the run's own folder, named, is taken."""
    from fpt_nb.checkpoint import load_prompt
    folders = {}
    for name, seed in (('mine', 0), ('other', 1)):
        m, tok = load_t5('tiny', seed=seed)
        m.save_pretrained(tmp_path/name); tok.save_pretrained(tmp_path/name)
        folders[name] = str(tmp_path/name)
    run = tmp_path/'run'
    run_experiment('toy', folders['mine'], 'pt', run, steps=2, batch_size=4, prompt_length=4, train_limit=8, eval_limit=4, progress=False)
    with pytest.raises(ValueError, match='is not the model run .* was trained with: its weights or config differ'):
        export_peft(run, tmp_path/'x', folders['other'])
    with pytest.raises(ValueError, match=r"is another model \(a built-in model is only itself\): leave model out to export it"):
        export_peft(run, tmp_path/'y', 'tiny')
    assert not (tmp_path/'x'/'adapter_config.json').exists() and not (tmp_path/'y'/'adapter_config.json').exists()
    out = export_peft(run, tmp_path/'ok', folders['mine'])
    assert json.loads((out/'adapter_config.json').read_text())['base_model_name_or_path'] == folders['mine']


def _run_folder(d, stages, summary=None, chosen=None, prompt='best_last_prompt'):
    "A run folder of the tiny T5 with one prompt file, `stages` named, a summary (default: finished) and the prompt's record."
    from fpt_nb.checkpoint import save_prompt, write_json
    d.mkdir()
    save_prompt(torch.ones(5, 64), d/f'{prompt}.safetensors')
    write_json(d/'config.json', dict(model='tiny'))
    write_json(d/'summary.json', {**dict(steps=10, planned_steps=10, stopped=None, stages=[dict(name=s) for s in stages]), **(summary or {})})
    if chosen is not None: write_json(d/f"{prompt.removesuffix('_prompt')}.json", chosen)
    return d

def test_an_early_stopped_run_is_exported_as_finished(tmp_path):
    """peft_early_stop_unfinished: a run that stopped early by its own rule (`early_stop`) is finished, as `fpt tables` and a
    rerun say; export-peft called it 'unfinished'. A run stopped by a signal still is."""
    heard = []
    run = _run_folder(tmp_path/'early', ['full'], dict(steps=6, stopped='early stop at step 6'), dict(step=4, stage=0))
    export_peft(run, tmp_path/'a', say=heard.append)
    assert heard == [f"exporting best_last_prompt.safetensors of {run} (from step 4)"]
    run = _run_folder(tmp_path/'killed', ['full'], dict(steps=6, stopped='signal 15 at step 6'), dict(step=4, stage=0))
    export_peft(run, tmp_path/'b', say=heard.append)
    assert heard[-1] == f"run {run} is unfinished: it stopped at step 6 of 10 (signal 15 at step 6); exporting best_last_prompt.safetensors as it is"

def test_a_final_prompt_of_an_fpt_run_is_the_full_models(tmp_path):
    """peft_final_prompt_stage_first: an FPT run's final prompt (no record of a choice) was trained on the last stage, the full
    model: no 'partial model' warning; a one-stage LD run's is warned about."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        export_peft(_run_folder(tmp_path/'fpt', ['enc 1L', 'enc 2L', 'enc 3L', 'full'], prompt='prompt'), tmp_path/'a')
    assert not [w for w in caught if 'partial model' in str(w.message)]
    with pytest.warns(UserWarning, match=r'trained this prompt on a partial model \(enc 2L\)'):
        export_peft(_run_folder(tmp_path/'ld', ['enc 2L'], prompt='prompt'), tmp_path/'b')

def test_a_prompt_of_another_width_is_refused(tmp_path):
    "peft_width_unchecked: a prompt as wide as another backbone's embeddings made an adapter PEFT cannot load; now refused, nothing written."
    with pytest.raises(ValueError, match='has d_model 64'):
        export_peft(torch.ones(5, 32), tmp_path/'out', 'tiny')
    assert not (tmp_path/'out'/'adapter_config.json').exists()

def test_an_export_names_the_step_of_the_prompt_it_writes(tmp_path):
    """The export says which step its prompt is from: the final prompt of a run, where its file records no step (an earlier
    version's), is of the run's last step (the summary's); a file that records its step is of that step."""
    from fpt_nb.checkpoint import save_prompt
    heard = []
    run = _run_folder(tmp_path/'old', ['full'], prompt='prompt')
    export_peft(run, tmp_path/'a', say=heard.append)
    assert heard == [f"exporting prompt.safetensors of {run} (from step 10)"]
    save_prompt(torch.ones(5, 64), run/'prompt.safetensors', step=9)
    export_peft(run, tmp_path/'b', say=heard.append)
    assert heard[-1] == f"exporting prompt.safetensors of {run} (from step 9)"

@pytest.mark.parametrize('gone', ['summary.json', 'config.json'])
def test_a_prompt_file_of_a_run_missing_one_record_is_still_the_runs(gone, tmp_path):
    """A prompt file named by its path is a run's where its folder holds the run's config.json or its summary.json, either
    one: exported with the run's checks and words (a run killed before its summary is unfinished), not as a loose file."""
    heard = []
    run = _run_folder(tmp_path/'run', ['full'], prompt='prompt')
    (run/gone).unlink()
    export_peft(run/'prompt.safetensors', tmp_path/'out', 'tiny', say=heard.append)
    assert heard[0] == f"exporting prompt.safetensors of {run} (from step {'unknown' if gone == 'summary.json' else 10})", heard
    if gone == 'summary.json': assert heard[1] == f"run {run} is unfinished: it has no summary.json yet; exporting prompt.safetensors as it is"
