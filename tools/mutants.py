#!/usr/bin/env python
"""Plant known bugs in a copy of fpt_nb, one at a time, and check that the tests catch each (`make mutants`).

    python tools/mutants.py                        # every mutant; table -> results/mutants/mutants.md and .json
    python tools/mutants.py --only optimizer_rebuilt_at_stage_start evaluator_scores_empty_strings
    python tools/mutants.py --without tests/test_method.py tests/test_scoring.py tests/test_bf16.py --out results/mutants/before
    python tools/mutants.py --check                # only say whether every mutant still applies to the source
    python tools/mutants.py --only bf16_ignored --update   # re-run one mutant (its pattern refreshed) into the existing table

Each mutant is one textual change to the exported library (`fpt_nb/*.py`, what the tests import): `old` must occur
exactly once in its file, or the mutant is reported as "no longer applies" (the source moved: refresh the pattern).
The tree (tracked and untracked files, not the ignored ones) is copied to a temporary folder; the unmutated copy
must pass every selected test first, so that a failure under a mutant means the mutant was caught. Then for each
mutant its file is changed in the copy and its tests run there with pytest (`-x`: the first failure is enough),
with the copy first on PYTHONPATH (a guard plugin checks that `fpt_nb` really is imported from the copy, in pytest
and in every process it starts). caught: a test failed; SURVIVED: all passed; error: pytest could not run them.

A curated list rather than mutmut or cosmic-ray: those generate every operator swap they can (hundreds of mutants
for this library, most of them crashes or equivalent code) and run the whole suite for each; what we want to know
is whether the tests see the bugs that would quietly break the method's claims. Slow (tens of minutes when
mutants survive): run it before a release, not in CI.
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys, tempfile, time
from dataclasses import dataclass, asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tests a reviewer would run for a change to the trainer, as in issue 16.
RUN = ('tests/test_resume.py', 'tests/test_reliability.py', 'tests/test_distributed.py')
M = 'tests/test_method.py::'
S = 'tests/test_scoring.py::'
R = 'tests/test_records.py'
P = 'tests/test_recipe.py::'
FAST = 'tests/test_fast.py::'


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str              # under fpt_nb/
    old: str               # occurs exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest paths or node ids, run in this order (put the quick, sharp ones first)
    what: str              # the bug, in words

MUTANTS = [
    # -- the trainer: the prompt and its optimizer state across expansions, resume, evaluation, FLOPs
    Mutant('optimizer_rebuilt_at_stage_start', 'train.py',
           "phase = self.phase_at(st['step'])",
           "phase = self.phase_at(st['step']); self.opt, self.sched = make_optimizer([self.pt.prompt.weight], self.cfg)"
           " if st['step'] == sum(p.steps for p in self.phases[:phase]) else (self.opt, self.sched);"
           " self.stepper.opt, self.stepper.sched = self.opt, self.sched",
           (M + 'test_expansions_carry_the_prompt_and_its_optimizer_state', M + 'test_fpt_run_equals_the_loop_written_out_by_hand', *RUN),
           'a new Adafactor (empty state) at every stage start'),
    Mutant('resume_skips_rng_restore', 'train.py',
           "set_rng_state(unflatten_state(state.pop('rng'), tensors))", "state.pop('rng')",
           (M + 'test_resume_with_dropout_is_bit_identical', *RUN), '`Trainer.resume` does not restore the RNG states'),
    Mutant('resume_skips_optimizer_state', 'train.py',
           "self.opt.load_state_dict(unflatten_state(state.pop('optimizer'), tensors))", "state.pop('optimizer')",
           (M + 'test_resume_with_dropout_is_bit_identical', *RUN), '`Trainer.resume` starts a fresh optimizer'),
    Mutant('evaluator_scores_empty_strings', 'train.py',
           'return score(task, preds, examples)', "return score(task, [''] * len(preds), examples)",
           (M + 'test_evaluator_scores_the_generations', *RUN),
           "the trainer's evaluator scores empty strings, not the generations"),
    Mutant('step_flops_without_prompt', 'train.py',
           "pt_step_flops(pt.model.config, pt.prompt_length + batch['input_ids'].shape[1],",
           "pt_step_flops(pt.model.config, batch['input_ids'].shape[1],",
           (M + 'test_logged_flops_are_what_pytorch_counts', 'tests/test_flops.py', *RUN),
           "per-step FLOPs leave out the prompt's positions"),
    Mutant('flops_widths_stale_after_expansion', 'train.py',
           'widths = ffn_widths(self.pt.model)\n', 'pass\n',
           (M + 'test_logged_flops_are_what_pytorch_counts', 'tests/test_flops.py', *RUN),
           'FLOPs counted at the shapes before the expansion'),
    Mutant('stage_boundary_off_by_one', 'train.py',
           'if step < p.steps: return i', 'if step <= p.steps: return i',
           (M + 'test_each_stage_trains_the_planned_layers_and_neurons', *RUN),
           'each stage but the last trains one step too many'),
    Mutant('epoch_not_advanced', 'train.py',
           "self.state['epoch'] += 1; self.state['pos'] = 0", "self.state['pos'] = 0",
           (M + 'test_fpt_run_equals_the_loop_written_out_by_hand', *RUN), 'every epoch replays the first epoch\'s order'),
    Mutant('bf16_ignored', 'fast.py',
           'with torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast else nullcontext():', 'with nullcontext():',
           ('tests/test_bf16.py', *RUN), 'bf16=True trains in float32'),
    # -- stage planning
    Mutant('method_stages_round_down', 'train.py',
           'k, f = max(1, int(n * q / 4 + 0.5)), max(1, int(d_ff * q / 4 + 0.5))', 'k, f = max(1, int(n * q / 4)), max(1, int(d_ff * q / 4))',
           (M + 'test_stages_are_quarters_rounded_half_up', 'tests/test_cli.py', 'tests/test_encoder.py'),
           'stage sizes rounded down, not half up'),
    Mutant('paper_fractions_swapped', 'train.py',
           'PAPER_FRACTIONS = (0.2, 0.2, 0.2, 0.4)', 'PAPER_FRACTIONS = (0.2, 0.2, 0.4, 0.2)',
           (M + 'test_schedule_in_the_papers_proportions', 'tests/test_cli.py', *RUN),
           'the third stage gets the full stage\'s 40%'),
    Mutant('growth_check_off', 'partial.py',
           'if i: _check_grows(stages[i - 1], st, model, i)', 'pass',
           (M + 'test_a_shrinking_schedule_is_refused', 'tests/test_cli.py', 'tests/test_reliability.py'),
           'a schedule whose stages shrink is accepted'),
    Mutant('stage_plan_layer0_scores', 'partial.py',
           "scores.scores[s][i] if stage.ffn_selection == 'score' else None", "scores.scores[s][0] if stage.ffn_selection == 'score' else None",
           (M + 'test_each_stage_trains_the_planned_layers_and_neurons', 'tests/test_flops.py', *RUN),
           "every layer keeps the neurons layer 0's scores pick"),
    # -- partial models and expansion
    Mutant('select_neurons_lowest', 'partial.py',
           'torch.argsort(scores, descending=True, stable=True)[:k]', 'torch.argsort(scores, descending=False, stable=True)[:k]',
           (M + 'test_each_stage_trains_the_planned_layers_and_neurons', 'tests/test_flops.py', *RUN),
           'FFN reduction keeps the lowest-scoring neurons'),
    Mutant('evenly_spaced_off_by_one', 'partial.py',
           'q, r = divmod(n - 1, k - 1)', 'q, r = divmod(n - 2, k - 1)',
           (M + 'test_each_stage_trains_the_planned_layers_and_neurons', 'tests/test_flops.py', *RUN),
           'layer dropping never keeps the last layer'),
    Mutant('kept_layers_first_k', 'partial.py',
           'nn.ModuleList([full[i] for i, _ in plan[s]])', 'nn.ModuleList(list(full)[:len(plan[s])])',
           (M + 'test_each_stage_trains_the_planned_layers_and_neurons', 'tests/test_flops.py', *RUN),
           'a partial model runs its first k layers, not the planned ones'),
    Mutant('restore_full_keeps_narrow_ffns', 'partial.py',
           'for owner, name, lin in p.linears: setattr(owner, name, lin)', 'pass',
           (M + 'test_partial_then_full_is_the_original_model', 'tests/test_flops.py', *RUN),
           'growing back leaves the FFNs narrow'),
    # -- checkpoints
    Mutant('rng_torch_not_restored', 'checkpoint.py',
           "torch.set_rng_state(st['torch'])", 'pass',
           (M + 'test_resume_with_dropout_is_bit_identical', *RUN), "a checkpoint's torch RNG state is not restored"),
    Mutant('fingerprint_without_identity', 'train.py',
           'identity = dict(identity or {})', 'identity = {}',
           (M + 'test_checkpoint_of_another_task_is_refused', 'tests/test_resume.py', 'tests/test_reliability.py'),
           "a run resumes another task's checkpoint"),
    Mutant('fingerprint_without_seed', 'train.py',
           '                seed=cfg.seed, padding=cfg.padding, bucket=cfg.bucket,', '                padding=cfg.padding, bucket=cfg.bucket,',
           ('tests/test_reliability.py',), "a run resumes another seed's checkpoint"),
    # -- the paper's recipe (issue 11) and the run's record (issue 13)
    Mutant('best_tie_goes_to_the_earlier', 'train.py',
           "return math.isnan(best) or v >= best", "return math.isnan(best) or v > best",
           (P + 'test_best_prompt_is_the_papers_rule', R, 'tests/test_method.py', *RUN),
           'the best prompt keeps the earlier of two equal evaluations'),
    Mutant('best_from_the_full_stage_only', 'train.py',
           "if _better(v, st['best']):",
           "if phase == len(self.phases) - 1 and _better(v, st['best']):",
           (P + 'test_best_prompt_is_the_papers_rule', R, 'tests/test_method.py', *RUN),
           'the best prompt is chosen from the full-model stage only, not over all evaluations'),
    Mutant('selection_by_the_official_metric', 'run.py',
           "key = 'paper_mean' if generates and task_.paper_scorer else task_.metric_name", 'key = task_.metric_name',
           (P + 'test_best_prompt_is_chosen_by_the_mean_of_the_papers_metrics', R, 'tests/test_cli.py'),
           "the best prompt is chosen by the official metric, not the mean of the paper's metrics"),
    Mutant('scores_pool_tokens', 'scores.py',
           "if aggregation == 'example': m = m / m.sum(1, keepdim=True).clamp(min=1)", 'pass',
           (P + 'test_neuron_scores_average_each_example_first', R, 'tests/test_method.py'),
           'neuron scores pool all tokens (long examples weigh more), not per example'),
    Mutant('scores_on_the_first_examples', 'run.py',
           "score_sampling:str='random'", "score_sampling:str='first'",
           (P + 'test_scores_read_a_random_validation_sample', R, 'tests/test_cli.py'),
           'neuron scores read the first examples, not a seeded random sample'),
    Mutant('scores_on_training_data', 'run.py',
           "score_split:str='validation'", "score_split:str='train'",
           (P + 'test_scores_read_a_random_validation_sample', R, 'tests/test_cli.py'),
           'neuron scores read the training split, not validation'),
    Mutant('decoder_recipe_ignored', 'run.py',
           'decoder = task_.reduce_decoder if a.decoder is None else a.decoder', 'decoder = bool(a.decoder)',
           (P + 'test_squad_reduces_the_decoder_too', R, 'tests/test_cli.py'),
           'SQuAD 2.0, ReCoRD and XSum keep the whole decoder unless told'),
    Mutant('generation_one_token_too_long', 'run.py',
           'else max(1, target_length - 1)', 'else target_length',
           (P + 'test_generation_stops_one_short_of_the_target_length', R, 'tests/test_cli.py'),
           'T5 generates up to the target length, not one fewer (the start token counts)'),
    Mutant('fingerprint_without_training_data', 'run.py',
           'steps=a.steps, train_data=train_data,', 'steps=a.steps,',
           (R, *RUN), 'a run resumes on other training data'),
    Mutant('finished_run_trained_again', 'run.py',
           'if done is not None:   # a finished run is not trained again', 'if False:',
           (R, *RUN), 'a finished run is trained and recorded again'),
    Mutant('tables_pool_other_settings', 'tables.py',
           'out = {k: v for k, v in c.items() if k not in WHERE + ROW_KEYS}', 'out = {}',
           (R, S + 'test_table2_by_hand'), 'runs with other settings (e.g. lr) are pooled as seeds'),
    Mutant('target_cut_drops_eos', 'batches.py',
           'return ids[:n - 1] + ids[-1:], len(ids) - n', 'return ids[:n], len(ids) - n',
           (P + 'test_cut_targets_keep_their_end_of_sequence_token', 'tests/test_tasks.py', R),
           'a target cut to its length loses its end-of-sequence token'),
    Mutant('record_entities_sorted', 'tasks.py',
           "texts = [t for _, t in sorted(zip(spans['start'], spans['text']), key=lambda p: p[0])]", "texts = sorted(spans['text'])",
           (P + 'test_record_entities_in_passage_order', 'tests/test_tasks.py'),
           'ReCoRD entities listed alphabetically, not in passage order'),
    Mutant('causal_layers_not_renumbered', 'causal.py',
           '        attn.layer_idx = i\n', '        pass\n',
           (P + 'test_a_partial_decoder_only_model_numbers_its_layers_from_zero', 'tests/test_causal.py'),
           "a decoder-only partial model's layers keep their full-model cache index"),
    # -- batching order
    Mutant('batch_order_ignores_epoch', 'batches.py',
           'rng = np.random.default_rng([seed, epoch])', 'rng = np.random.default_rng(seed)',
           (M + 'test_every_epoch_has_its_own_order', 'tests/test_tasks.py', *RUN), 'every epoch has the same order'),
    Mutant('buckets_not_shuffled', 'batches.py',
           'if bucket and shuffle: groups = [groups[i] for i in rng.permutation(len(groups))]', 'pass',
           (M + 'test_length_buckets_come_in_shuffled_order', 'tests/test_tasks.py'), 'length buckets come longest first'),
    Mutant('batches_ignore_start', 'batches.py',
           'for group in order[start:]:', 'for group in order:',
           ('tests/test_tasks.py', 'tests/test_resume.py'), 'a resumed epoch starts from its first batch again'),
    # -- metrics
    Mutant('squad_no_answer_mapping_removed', 'metrics.py',
           "if pred.lower() == NO_ANSWER: pred = ''", 'pass',
           (S + 'test_squad_v2_by_hand', 'tests/test_tasks.py'), "'unanswerable' is not read as no answer"),
    Mutant('token_f1_no_answer_rule_off', 'metrics.py',
           'if no_answer and (not gold_toks or not pred_toks): return float(gold_toks == pred_toks)', 'pass',
           (S + 'test_squad_v2_by_hand', 'tests/test_tasks.py'), 'SQuAD 2.0 F1 without the empty-answer rule'),
    Mutant('record_first_gold_only', 'metrics.py',
           'em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)',
           'em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds[:1])',
           (S + 'test_record_takes_the_best_gold_answer', 'tests/test_tasks.py'),
           'ReCoRD exact match against the first gold answer only'),
    Mutant('rouge_without_stemming', 'metrics.py',
           'use_stemmer=True', 'use_stemmer=False', (S + 'test_rouge_stems_words', 'tests/test_tasks.py'), 'ROUGE without the stemmer'),
    Mutant('accuracy_as_fraction', 'metrics.py',
           'accuracy=100 * correct / len(references)', 'accuracy=correct / len(references)',
           (S + 'test_accuracy_is_a_percentage', 'tests/test_tasks.py'), 'accuracy as a fraction, not a percentage'),
    # -- FLOPs
    Mutant('flops_cross_attention_dropped', 'flops.py',
           "attention('decoder', i, 'cross', T, L, stream, True)", 'pass', ('tests/test_flops.py',), "the decoder's cross-attention is not counted"),
    Mutant('flops_cross_attention_grad_flag', 'flops.py',
           "attention('decoder', i, 'cross', T, L, stream, True)", "attention('decoder', i, 'cross', T, L, stream, stream)",
           ('tests/test_flops.py',), "cross-attention's keys/values counted without a gradient in decoder layer 0"),
    # -- tables
    Mutant('improve_against_pt_final', 'tables.py',
           "metric_at_flops(pt['run_dir'], r['total_flops'], key)", 'run_score(pt, score, scoring)',
           (S + 'test_table2_by_hand', 'tests/test_papermill.py::test_table2_notebook'),
           "Improve against PT's final score, not PT at equal FLOPs"),
    Mutant('pt_seed_not_matched', 'tables.py',
           "pt = by_seed.get(r.get('seed'), pts[0]) if pts else None", 'pt = pts[0] if pts else None',
           (S + 'test_table2_by_hand', 'tests/test_papermill.py::test_table2_notebook'),
           'every seed compared with PT seed 0'),
    Mutant('std_population', 'tables.py',
           'statistics.stdev(xs) if len(xs) > 1 else 0.0', 'statistics.pstdev(xs) if len(xs) > 1 else 0.0',
           (S + 'test_table2_by_hand', 'tests/test_papermill.py::test_table2_notebook'),
           "the seeds' population std, not the sample std"),
    # -- a run writes over nothing it did not write, and its records say what ran
    Mutant('run_folder_not_checked', 'run.py',
           '    check_run_dir(run_dir, resume or not main)', '    pass',
           (R + '::test_a_folder_that_is_not_a_run_is_not_written_over', R + '::test_no_resume_on_a_run_is_refused'),
           "a run writes over a folder's config.json and log.jsonl that no run wrote"),
    Mutant('no_resume_writes_over_a_run', 'run.py',
           '    if not resume and theirs:', '    if False and theirs:',
           (R + '::test_no_resume_on_a_run_is_refused',), 'resume=False starts a new run over a finished one'),
    Mutant('num_beams_zero_allowed', 'run.py',
           "(('num_beams', num_beams, 1)", "(('num_beams', num_beams, 0)",
           (R + '::test_run_experiment_refuses_numbers_out_of_range',), 'num_beams 0 accepted (a ZeroDivisionError later)'),
    Mutant('eval_file_without_prompt', 'run.py',
           "('' if prompt == 'best' else f'-{prompt}')", "''",
           (R + '::test_evaluations_of_other_prompts_keep_their_own_files',), "the final prompt's evaluation overwrites the best's"),
    Mutant('evaluate_any_kind_of_model', 'run.py',
           'if arch and type(pt.model).__name__ != arch:', 'if False:',
           (R + '::test_evaluate_refuses_another_kind_of_model',), "a T5 run's prompt scored on a decoder-only model of the same width"),
    Mutant('tables_keep_unfinished_runs', 'tables.py',
           'if not unfinished and (why := run_unfinished(r)):', 'if False and (why := run_unfinished(r)):',
           (R + '::test_tables_leave_out_unfinished_runs_and_unreadable_summaries',), 'a killed run tabulated as a finished one'),
    Mutant('ctrl_c_without_checkpoint', 'train.py',
           'or self._stop_signal or self._interrupted:', 'or self._stop_signal:',
           ('tests/test_reliability.py::test_ctrl_c_checkpoints_its_step_then_stops_and_resumes',),
           'Ctrl-C stops without checkpointing the step it finished'),
    # -- the official loss and decoding (the fidelity audit of session 19)
    Mutant('loss_group_ignored', 'train.py',
           'self.loss_group = cfg.group if cfg.group != cfg.micro', 'self.loss_group = None if cfg.group != cfg.micro',
           (P + 'test_the_loss_is_a_token_mean_per_official_gpu_batch',), 'loss_group ignored: a token mean over the whole forward pass'),
    Mutant('loss_weights_per_micro_batch', 'fast.py',
           'w = (1 / (tokens * len(tokens))).repeat_interleave(group).float()', 'w = (1 / (n.sum() * 0 + tokens * len(tokens))).repeat_interleave(group).float().flip(0)',
           (P + 'test_the_loss_is_a_token_mean_per_official_gpu_batch',), "each example weighted by another group's token count"),
    Mutant('auto_preset_ignored', 'cli.py',
           "if preset == 'auto': return paper_preset(model)", "if preset == 'auto': return None",
           (P + 'test_the_papers_backbones_get_the_papers_recipe_by_default',), "the paper's backbones run without the paper's recipe unless a preset is named"),
    Mutant('preset_overrides_given_values', 'cli.py',
           "return dict(params, **{k: v for k, v in p.items() if k not in given})",
           "return dict(params, **p)",
           (P + 'test_the_papers_backbones_get_the_papers_recipe_by_default',), "a preset writes over the steps and batch size a run was given"),
    Mutant('preset_loss_group_not_fitted', 'cli.py',
           'fitted = math.gcd(batch_size, loss_group)', 'fitted = loss_group',
           (P + 'test_the_papers_backbones_get_the_papers_recipe_by_default',), "a batch size given with a preset that its loss group does not divide is refused"),
    Mutant('config_read_per_check', 'cli.py',
           '@functools.lru_cache(maxsize=16)', '',
           (P + 'test_a_run_reads_its_models_config_once',), "the model's config read again at every check (an offline hub id waits once per method)"),
    Mutant('preset_loss_group_dropped', 'cli.py',
           "loss_group=p['loss_group'])", "loss_group=a.loss_group)",
           (P + 'test_presets_set_the_official_per_gpu_batch',), "--preset leaves the loss a token mean over the whole batch"),
    Mutant('decode_without_clean_up', 'train.py',
           'skip_special_tokens=True, clean_up_tokenization_spaces=True)', 'skip_special_tokens=True, clean_up_tokenization_spaces=False)',
           (P + 'test_generations_are_decoded_with_the_official_space_clean_up',), "generations decoded without the official ' ,' -> ',' clean-up"),
    Mutant('record_scores_sample_rows', 'run.py',
           'if get_task(task).train_format is None:', 'if True:',
           (P + 'test_record_scores_sample_query_answer_pairs',), 'ReCoRD neuron scores drawn from queries (first answer only), not (query, answer) pairs'),
    # -- found by a mutation audit of session 19 (each passed every test before its test was written)
    Mutant('layers_by_score_lowest', 'partial.py',
           'torch.argsort(torch.as_tensor(scores), descending=True, stable=True)', 'torch.argsort(torch.as_tensor(scores), descending=False, stable=True)',
           (M + 'test_layers_kept_by_score_are_the_best_in_model_order',), "layer_selection='score' keeps the lowest-scoring layers"),
    Mutant('score_layers_unsorted', 'partial.py',
           'return sorted(list(required) + rest[:k - len(required)])', 'return list(required) + rest[:k - len(required)]',
           (M + 'test_layers_kept_by_score_are_the_best_in_model_order',), 'layers kept by score run in score order, not the model\'s'),
    Mutant('score_sample_ignores_seed', 'scores.py',
           'return sorted(random.Random(seed).sample(range(n_rows), k))', 'return sorted(random.Random(0).sample(range(n_rows), k))',
           (P + 'test_a_run_ranks_neurons_by_mean_absolute_activation',), 'every seed scores neurons on the same sample'),
    Mutant('scores_take_whole_last_batch', 'scores.py',
           "take = min(n_examples - seen, b['input_ids'].shape[0])", "take = b['input_ids'].shape[0]",
           (P + 'test_scores_read_exactly_n_examples',), 'activation_scores reads past n_examples'),
    Mutant('scores_csv_decoder_first', 'scores.py',
           'for s, k in n.items(): out[s], start = t[start:start + k], start + k',
           'for s, k in reversed(list(n.items())): out[s], start = t[start:start + k], start + k',
           (P + 'test_official_csv_scores_are_encoder_rows_then_decoder_rows',), "the official CSV's encoder and decoder rows swapped"),
    Mutant('run_scores_signed_mean', 'run.py',
           "aggregation=aggregation)['abs_mean']", "aggregation=aggregation)['mean']",
           (P + 'test_a_run_ranks_neurons_by_mean_absolute_activation',), 'runs rank neurons by signed mean activation'),
    Mutant('prompt_init_bound_by_length', 'prompt.py',
           'bound = math.sqrt(1 / w.shape[1])', 'bound = math.sqrt(1 / w.shape[0])',
           (M + 'test_prompt_starts_uniform_within_one_over_root_d_model',), 'prompt init bound sqrt(1/prompt_length), not sqrt(1/d_model)'),
    Mutant('adafactor_no_weight_decay', 'train.py',
           'weight_decay=cfg.weight_decay)', 'weight_decay=0.0)',
           (M + 'test_the_trainers_optimizer_is_the_papers_adafactor',), "the paper's weight decay 1e-5 dropped"),
    Mutant('adafactor_scale_parameter', 'train.py',
           'scale_parameter=False', 'scale_parameter=True',
           (M + 'test_the_trainers_optimizer_is_the_papers_adafactor',), "Adafactor scales the lr by the prompt's RMS"),
    Mutant('clip_norm_setting_ignored', 'train.py',
           'cfg.batch_size // cfg.micro, cfg.clip_norm, self.step_flops', 'cfg.batch_size // cfg.micro, 1.0, self.step_flops',
           (M + 'test_the_trainers_optimizer_is_the_papers_adafactor',), 'a non-default clip_norm ignored'),
    Mutant('early_stop_one_late', 'train.py',
           "return min(st['bad_evals'], here) >= cfg.early_stop", "return min(st['bad_evals'], here) > cfg.early_stop",
           (M + 'test_early_stop_counts_consecutive_evaluations_without_improvement',), 'early stop one evaluation late'),
    Mutant('bad_evals_not_reset', 'train.py',
           "st.update(best=v, best_step=st['step'], best_stage=phase, bad_evals=0)", "st.update(best=v, best_step=st['step'], best_stage=phase)",
           (M + 'test_early_stop_counts_consecutive_evaluations_without_improvement',), 'early stop counts all bad evaluations, not consecutive ones'),
    Mutant('nan_best_sticks', 'train.py',
           "    if math.isnan(v): return False\n    return math.isnan(best) or v >= best", "    return v >= best",
           (M + 'test_a_nan_evaluation_is_never_best_over_a_number',), 'a NaN first evaluation stays the best for the whole run'),
    Mutant('fast_checked_late', 'run.py',
           "    fast_options(pt, dev, autocast_bf16(cfg, dev), bool(cfg.fast), cfg.compile)", "    pass",
           ('tests/test_causal.py::test_a_flag_that_cannot_apply_to_a_decoder_only_model_is_refused',),
           '--fast on a model it does not serve is refused only after the neuron scores are computed'),
    Mutant('partial_micro_batch_kept', 'train.py',
           "epoch=self.state['epoch'], pad_id=self.pad_id, drop_last=True,", "epoch=self.state['epoch'], pad_id=self.pad_id, drop_last=False,",
           (M + 'test_an_epoch_is_only_whole_micro_batches',), "an epoch's short last micro-batch trained at full weight"),
    Mutant('paper_stages_cr_keeps_all_layers', 'flops.py',
           "if method in ('ld', 'cr') else c.num_layers", "if method in ('ld',) else c.num_layers",
           ('tests/test_flops.py::test_paper_stages_are_the_papers_shapes',), "the paper's CR stages counted with all layers"),
    Mutant('fast_decoder_not_causal', 'fast.py',
           'dec.compute_bias(T, T, device=dev).to(dt).masked_fill(~causal, _lowest(dt))', 'dec.compute_bias(T, T, device=dev).to(dt)',
           (FAST + 'test_fast_forward_is_the_stock_loss_in_fp32',), "the fast forward's decoder sees future target tokens"),
    Mutant('fast_loss_no_decoder_scaling', 'fast.py',
           'if model.config.scale_decoder_outputs: x = x * model.model_dim ** -0.5', 'pass',
           (FAST + 'test_fast_forward_is_the_stock_loss_in_fp32',), "the fast loss of T5 v1.0 (tied embeddings) without the decoder's output scaling"),
    Mutant('loss_group_stock_forward_computes_loss', 'fast.py',
           "token_loss(pt.logits(ids, keep, labels), labels, 'none')", "token_loss(pt(ids, keep, labels=labels).logits, labels, 'none')",
           (FAST + 'test_a_loss_group_on_the_stock_forward_computes_no_discarded_loss',), "a loss group's stock forward (T5, decoder-only) also computes a loss it throws away"),
    Mutant('bucket_pads_targets_with_0', 'fast.py',
           'labels=F.pad(labels, (0, extra_t), value=-100))', 'labels=F.pad(labels, (0, extra_t), value=0))',
           (FAST + 'test_bucket_padding_is_masked_and_ignored',), 'bucket padding trains the padded target positions as pad tokens'),
    Mutant('normalize_keeps_a', 'metrics.py',
           r"re.sub(r'\b(a|an|the)\b', ' ', s)", r"re.sub(r'\b(an|the)\b', ' ', s)",
           ('tests/test_scoring.py::test_normalize_strips_every_article',), "SQuAD normalisation keeps the article 'a'"),
    Mutant('token_f1_sets', 'metrics.py',
           'same = sum((collections.Counter(pred_toks) & collections.Counter(gold_toks)).values())', 'same = len(set(pred_toks) & set(gold_toks))',
           ('tests/test_scoring.py::test_token_f1_counts_repeated_tokens',), 'token F1 counts repeated tokens once'),
    Mutant('paper_squad2_f1_all_answerable', 'metrics.py',
           '[bool(g) for g in references])', '[bool(g) for g in golds])',
           ('tests/test_scoring.py::test_paper_squad2_f1_is_answerable_vs_not',), "the paper's SQuAD 2.0 F1 treats every question as answerable"),
    Mutant('paper_qqp_unparseable_negative', 'metrics.py',
           'pred_pos = [clean_generation(p) != negative for p in predictions]', 'pred_pos = [clean_generation(p) == positive for p in predictions]',
           ('tests/test_scoring.py::test_paper_qqp_unparseable_counts_as_duplicate',), "an unparseable QQP generation counted negative, unlike the paper's code"),
    Mutant('paper_qqp_classes_swapped', 'metrics.py',
           'task.label_words[1], task.label_words[0]', 'task.label_words[0], task.label_words[1]',
           ('tests/test_scoring.py::test_paper_qqp_f1_is_for_is_duplicate',), "the paper's QQP F1 computed for not_duplicate"),
    Mutant('paper_record_f1_recall', 'metrics.py',
           'return 0.0 if same == 0 else 2 * same / (len(p) + len(g))', 'return 0.0 if same == 0 else same / len(g)',
           ('tests/test_scoring.py::test_paper_record_f1_is_harmonic_mean',), "the paper's ReCoRD F1 is recall"),
    Mutant('mnli_words_swapped', 'tasks.py',
           "MNLI_WORDS = ('entailment', 'neutral', 'contradiction')", "MNLI_WORDS = ('entailment', 'contradiction', 'neutral')",
           ('tests/test_tasks.py::test_mnli_real_rows_pinned',), 'MNLI labels 1 and 2 trained as each other'),
    Mutant('qqp_words_swapped', 'tasks.py',
           "QQP_WORDS = ('not_duplicate', 'is_duplicate')", "QQP_WORDS = ('is_duplicate', 'not_duplicate')",
           ('tests/test_tasks.py::test_qqp_real_rows_pinned',), 'every QQP label inverted'),
    Mutant('squad_target_last_answer', 'tasks.py',
           'SENTINEL + (answers[0] if answers else NO_ANSWER))', 'SENTINEL + (answers[-1] if answers else NO_ANSWER))',
           ('tests/test_tasks.py::test_squad2_target_is_the_first_answer',), 'the SQuAD target is not the first answer'),
    Mutant('mnli_template_swapped', 'tasks.py',
           "'hypothesis: {hypothesis} premise: {premise}'", "'premise: {premise} hypothesis: {hypothesis}'",
           ('tests/test_tasks.py::test_mnli_real_rows_pinned',), "MNLI's input not in the official order"),
    Mutant('encoder_pools_prompt_too', 'encoder.py',
           'last_hidden_state[:, self.prompt_length:]\n        z = F.normalize(mean_pool(h, mask[:, self.prompt_length:]), dim=-1)',
           'last_hidden_state\n        z = F.normalize(mean_pool(h, mask), dim=-1)',
           ('tests/test_encoder.py::test_logits_pool_the_input_positions_only',), "the encoder classifier's embedding averages the prompt in"),
    Mutant('mean_pool_counts_padding', 'encoder.py',
           'return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)', 'return (hidden * m).sum(1) / hidden.shape[1]',
           ('tests/test_encoder.py::test_mean_pool_ignores_padding',), 'mean pooling divides by the padded length'),
    Mutant('encoder_flops_attention_backward', 'encoder.py',
           '(3 if backward else 1) * 2 * (2 * L * L * d)', '(2 if backward else 1) * 2 * (2 * L * L * d)',
           ('tests/test_encoder.py::test_step_flops_match_the_counter',), "the encoder's step FLOPs undercount attention's backward"),
    Mutant('encoder_mnli_label_texts_swapped', 'encoder.py',
           '"the second sentence may or may not be true given the first",\n             "the second sentence contradicts the first"),',
           '"the second sentence contradicts the first",\n             "the second sentence may or may not be true given the first"),',
           ('tests/test_encoder.py::test_mnli_label_texts_in_glue_order',), "MNLI's neutral and contradiction described as each other"),
    # -- found by a second mutation audit of session 19 (batches, tables, decoder-only, PEFT, checkpoints)
    Mutant('collate_pad_id_ignored', 'batches.py',
           'input_ids = torch.full((len(items), width), pad_id,',
           'input_ids = torch.full((len(items), width), 0,',
           ('tests/test_tasks.py::test_collate_pads_with_pad_id_and_fixed_padding_pads_to_the_limit',), 'inputs padded with 0 whatever pad_id says'),
    Mutant('max_padding_ignored', 'batches.py',
           '        width = max_input_length\n',
           '        pass\n',
           ('tests/test_tasks.py::test_collate_pads_with_pad_id_and_fixed_padding_pads_to_the_limit',), "padding='max' pads to the batch's longest input, not max_input_length"),
    Mutant('bucket_window_ignored', 'batches.py',
           'window = (100 if bucket is True else int(bucket)) * batch_size',
           'window = 100 * batch_size',
           ('tests/test_tasks.py::test_buckets_sort_within_windows_of_the_shuffled_order',), 'bucket=k buckets over windows of 100 batches, not k'),
    Mutant('buckets_from_unshuffled_order', 'batches.py',
           'for c in np.array_split(order, range(window, n, window))',
           'for c in np.array_split(np.arange(n), range(window, n, window))',
           ('tests/test_tasks.py::test_buckets_sort_within_windows_of_the_shuffled_order',), 'length buckets cut from the items in file order: the same batches every epoch'),
    Mutant('drop_last_ignored', 'batches.py',
           'if drop_last and groups and len(groups[-1]) < batch_size: groups.pop()',
           'pass',
           ('tests/test_tasks.py::test_drop_last_drops_only_a_short_last_batch',), 'a short last micro-batch is trained on'),
    Mutant('input_cut_drops_eos', 'batches.py',
           '(x, cut), (y, cut_y) = _cut(x, max_input_length), _cut(y, max_target_length)',
           '(x, cut), (y, cut_y) = (x[:max_input_length], max(0, len(x) - max_input_length)), _cut(y, max_target_length)',
           ('tests/test_tasks.py::test_cut_inputs_keep_their_end_of_sequence_token',), 'an input cut to max_input_length loses its end-of-sequence token'),
    Mutant('cache_key_ignores_max_length', 'batches.py',
           '{_tokenizer_key(tokenizer)}|{max_input_length}|{max_target_length}',
           '{_tokenizer_key(tokenizer)}|{max_target_length}',
           ('tests/test_tasks.py::test_encode_cache_tells_lengths_and_tokenizers_apart',), "encode's cache returns items cut to another max_input_length"),
    Mutant('cache_key_ignores_tokenizer', 'batches.py',
           '{task.name}|{_tokenizer_key(tokenizer)}|',
           '{task.name}||',
           ('tests/test_tasks.py::test_encode_cache_tells_lengths_and_tokenizers_apart',), "encode's cache returns another tokenizer's ids"),
    Mutant('best_last_reads_best', 'tables.py',
           "rec = run.get('best' if score == 'best' else 'best_last_stage') or {}",
           "rec = run.get('best') or {}",
           ('tests/test_scoring.py::test_table2_scores_and_improve_by_score_kind_and_scoring',), '--score best_last shows the overall best evaluation'),
    Mutant('final_reads_best', 'tables.py',
           "if score == 'final': v = run.get('final_metrics', {}).get(key)",
           'if False: pass',
           ('tests/test_scoring.py::test_table2_scores_and_improve_by_score_kind_and_scoring',), '--score final shows the best of the last stage'),
    Mutant('paper_scoring_ignored', 'tables.py',
           "return run.get('paper_metric') or run['metric'] if scoring == 'paper' else run['metric']",
           "return run['metric']",
           ('tests/test_scoring.py::test_table2_scores_and_improve_by_score_kind_and_scoring',), '--scoring paper shows the official metric'),
    Mutant('official_scoring_ignored', 'tables.py',
           "return run.get('paper_metric') or run['metric'] if scoring == 'paper' else run['metric']",
           "return run.get('paper_metric') or run['metric']",
           ('tests/test_scoring.py::test_table2_scores_and_improve_by_score_kind_and_scoring',), "--scoring official shows the paper's metric"),
    Mutant('improve_on_official_curve', 'tables.py',
           "metric_at_flops(pt['run_dir'], r['total_flops'], key)",
           "metric_at_flops(pt['run_dir'], r['total_flops'], r['metric'])",
           ('tests/test_scoring.py::test_table2_scores_and_improve_by_score_kind_and_scoring',), "Improve subtracts PT's official-metric curve from a paper-metric score"),
    Mutant('legacy_value_as_paper_metric', 'tables.py',
           "if v is None and 'metrics' not in rec and key == run['metric']: v = rec.get('value')",
           "if v is None and 'metrics' not in rec: v = rec.get('value')",
           ('tests/test_scoring.py::test_old_summaries_and_early_stopped_runs_in_the_tables',), "an old summary's official value shown as the paper's metric"),
    Mutant('early_stopped_runs_left_out', 'tables.py',
           "if s['steps'] >= planned or stopped.startswith('early stop'): return None",
           "if s['steps'] >= planned: return None",
           ('tests/test_scoring.py::test_old_summaries_and_early_stopped_runs_in_the_tables',), 'a run stopped early by its rule is left out of the tables as unfinished'),
    Mutant('causal_label_position_off_by_one', 'causal.py',
           'where = self.prompt_length + attention_mask.sum(1, keepdim=True) - 1 +',
           'where = self.prompt_length + attention_mask.sum(1, keepdim=True) +',
           ('tests/test_causal.py::test_the_loss_is_the_stock_models_on_the_completion_tokens',), 'decoder-only: each completion token scored at its own position (the answer leaks in)'),
    Mutant('causal_generate_right_padded', 'causal.py',
           'order = torch.argsort(mask, dim=1, stable=True)',
           'order = torch.arange(mask.shape[1]).expand_as(mask)',
           ('tests/test_causal.py::test_batched_generation_equals_one_row_at_a_time',), 'decoder-only: a shorter row generates after its padding'),
    Mutant('causal_text_cut_keeps_end', 'causal.py',
           'input_ids=bos + text[:room] + cue',
           'input_ids=bos + text[-room:] + cue',
           ('tests/test_causal.py::test_cut_prompts_keep_the_start_of_the_text_and_completions_their_eos',), "decoder-only: a cut prompt keeps the text's end, not its start"),
    Mutant('causal_completion_over_limit', 'causal.py',
           'min(len(completion), max_target_length - 1)',
           'min(len(completion), max_target_length)',
           ('tests/test_causal.py::test_cut_prompts_keep_the_start_of_the_text_and_completions_their_eos',), 'decoder-only: a cut completion is max_target_length tokens plus EOS'),
    Mutant('causal_flops_without_completion', 'causal.py',
           "(batch['attention_mask'].sum(1) + (batch['labels'] != -100).sum(1)).max()",
           "batch['attention_mask'].sum(1).max()",
           ('tests/test_causal.py::test_step_flops_are_pytorchs_count_full_and_partial',), 'decoder-only step FLOPs leave out the completion tokens'),
    Mutant('causal_backward_attention_once', 'causal.py',
           'return batch * (2 * lin + 3 * attn + 2 * head)',
           'return batch * (2 * lin + 2 * attn + 2 * head)',
           ('tests/test_causal.py::test_step_flops_are_pytorchs_count_full_and_partial',), "decoder-only step FLOPs count attention's backward as one matmul, not two"),
    Mutant('causal_stages_round_down', 'causal.py',
           'k = max(1, int(n * q / 4 + 0.5))',
           'k = max(1, int(n * q / 4))',
           ('tests/test_causal.py::test_causal_stages_round_quarters_half_up',), 'decoder-only stages round quarters of the layers down, not half up'),
    Mutant('causal_layer_types_not_renumbered', 'causal.py',
           '[model.__dict__[FULL_LAYER_TYPES][layer.self_attn._fpt_layer_idx] for layer in layers]',
           'model.__dict__[FULL_LAYER_TYPES][:len(layers)]',
           ('tests/test_causal.py::test_a_partial_qwen2_keeps_each_layers_attention_type',), "a partial Qwen2 takes the first layers' attention types (sliding window) for its kept layers"),
    Mutant('peft_base_model_unnamed', 'peft.py',
           'base.name_or_path = name ',
           'pass ',
           ('tests/test_peft.py::test_export_of_a_run_takes_its_best_last_stage_prompt_and_names_the_backbone',), 'the PEFT adapter config names no base model'),
    Mutant('checkpoint_prune_keeps_one_more', 'checkpoint.py',
           "sorted(ckpt_dir.glob('step-*'))[:-keep]",
           "sorted(ckpt_dir.glob('step-*'))[:-keep - 1]",
           ('tests/test_resume.py::test_checkpoints_are_pruned_to_the_newest_keep',), 'one checkpoint more than keep is left on disk'),
    Mutant('checkpoint_names_unpadded', 'checkpoint.py',
           "name = f'step-{step:07d}'",
           "name = f'step-{step}'",
           ('tests/test_resume.py::test_checkpoints_are_pruned_to_the_newest_keep',), 'checkpoint names sort step-10 before step-9: pruning deletes the newest'),
    Mutant('checkpoint_same_step_not_replaced', 'checkpoint.py',
           'if final.exists(): shutil.rmtree(final)',
           'pass',
           ('tests/test_resume.py::test_a_checkpoint_saved_again_at_its_step_replaces_the_old_one',), 'a checkpoint saved again at its step fails (old folder not replaced)'),
    Mutant('rng_python_not_restored', 'checkpoint.py',
           'random.setstate((v, tuple(inner), g))',
           'pass',
           ('tests/test_resume.py::test_rng_states_survive_the_trip_through_a_checkpoint',), "a checkpoint's Python random state is not restored"),
    Mutant('rng_numpy_not_restored', 'checkpoint.py',
           'np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, gauss))',
           'pass',
           ('tests/test_resume.py::test_rng_states_survive_the_trip_through_a_checkpoint',), "a checkpoint's numpy RNG state is not restored"),
    Mutant('t5_layer0_not_required', 'arch.py',
           "T5_ARCH = Arch('t5', _t5_stacks, _t5_ffn, required_layers=(0,))", "T5_ARCH = Arch('t5', _t5_stacks, _t5_ffn)",
           (M + 'test_a_partial_t5_keeps_layer_0_which_holds_the_position_bias',), 'a partial T5 chosen by score may drop layer 0 and its position bias'),
    Mutant('signature_current_widths', 'arch.py',
           'widths=full_widths(model),', 'widths=ffn_widths(model),',
           (M + 'test_a_models_signature_is_its_full_shape_at_every_stage',), "a partial model's signature names its current widths, not the full model"),
    Mutant('relative_flops_step_swapped', 'flops.py',
           'count = pt_step_flops if step else forward_flops', 'count = forward_flops if step else pt_step_flops',
           ('tests/test_flops.py::test_relative_flops_are_the_measured_ratios',), 'relative FLOPs per step and per forward swapped'),
    # -- records that cannot lie, from a new user's audit (session 6)
    Mutant('finished_run_without_checkpoints_retrained', 'run.py',
           "done = _finished(tr, run_dir) or _finished_without_checkpoints(tr, run_dir) if a.resume else None",
           "done = _finished(tr, run_dir) if a.resume else None",
           (R + '::test_a_run_without_its_checkpoints_is_not_written_over',),
           'a finished run whose checkpoints were deleted is trained again from scratch, with other settings too'),
    Mutant('fingerprint_without_run_settings', 'train.py',
           "run = dict(precision='bf16' if self.bf16 else 'fp32', fast=bool(cfg.fast), compile=bool(cfg.compile), early_stop=cfg.early_stop)",
           "run = {}",
           (R + '::test_resume_with_other_data_or_settings_is_refused',),
           'a run resumes with another precision, fast step or early stop, and its summary names one setting for the whole run'),
    Mutant('early_stop_on_a_partial_stage', 'train.py',
           "if not cfg.early_stop or phase < len(self.phases) - 1: return False", "if not cfg.early_stop: return False",
           (M + 'test_early_stop_waits_for_the_full_model',),
           'early stopping ends an FPT run before it reaches the full model'),
    Mutant('tensorboard_not_purged', 'train.py',
           "purge_step=step + 1 if resumed else 0", "purge_step=step if resumed else 0",
           (R + '::test_tensorboard_drops_the_steps_a_killed_run_took_after_its_checkpoint',),
           "a resumed run's TensorBoard keeps the steps a killed run took after its checkpoint"),
    Mutant('negative_seed_accepted', 'run.py',
           "('checkpoint_every', checkpoint_every, 0), ('seed', seed, 0)):", "('checkpoint_every', checkpoint_every, 0)):",
           (R + '::test_run_experiment_refuses_numbers_out_of_range',), 'a negative seed fails late, after the run folder is written'),
    Mutant('pt_run_not_checked', 'cli.py',
           "if a.pt_run is not None: check_pt_run(Path(a.pt_run), task, model, a.seed)",
           "if a.pt_run is not None: read_summary(Path(a.pt_run)/'summary.json')",
           (R + '::test_pt_run_must_be_a_finished_pt_run_of_the_same_task_and_model',),
           '`--pt-run` takes an unfinished PT run, an FPT run or another task\'s run to compare with'),
    Mutant('methods_into_a_run_folder', 'cli.py',
           "if len(methods) > 1 and any((out/n).exists() for n in RUN_FILES):", "if False:",
           (R + '::test_several_methods_do_not_go_inside_a_run_folder',), "several methods' runs go into folders inside another run's folder"),
    Mutant('tables_hide_unfinished_rows', 'tables.py',
           """+ (f" (unfinished: {r['unfinished']} steps)" if r.get('unfinished') else '')""", "+ ''",
           (R + '::test_tables_say_which_rows_are_unfinished_and_which_runs_have_no_summary',), 'a table row of an unfinished run looks finished'),
    Mutant('tables_miss_killed_runs_silently', 'tables.py',
           "if not (c.parent/'summary.json').exists() and is_run_config(c):", "if False:",
           (R + '::test_tables_say_which_rows_are_unfinished_and_which_runs_have_no_summary',), 'a killed run (no summary) is left out of the tables unsaid'),
    Mutant('resume_over_a_lost_log', 'train.py',
           "if step not in got: return", "if False: return",
           (R + '::test_resume_with_its_log_gone_or_cut_is_refused',), 'a run resumes over a deleted or cut log: its plot and Improve start at the checkpoint'),
    Mutant('finished_prompt_gone_unsaid', 'run.py',
           "if gone and main: print(", "if False and main: print(",
           (R + '::test_rerunning_a_finished_run_says_which_of_its_prompts_are_gone',), "a finished run's deleted best prompt goes unsaid"),
    Mutant('unfinished_pt_unsaid', 'tables.py',
           "if pt is not None and pt is not r and run_unfinished(pt): pt_cut = True", "pass",
           (R + '::test_tables_say_which_rows_are_unfinished_and_which_runs_have_no_summary',),
           "a finished run's row compared with an unfinished PT run does not say so"),
    Mutant('resume_over_an_edited_log', 'train.py',
           "if got != want:", "if False:",
           (R + '::test_resume_with_its_log_edited_is_refused',), 'a run resumes over a log with a step deleted or repeated in the middle'),
    Mutant('resume_over_another_runs_log', 'train.py',
           "if flops is not None and steps[-1].get('flops') != flops:", "if False:",
           (R + '::test_resume_with_its_log_edited_is_refused',), "a run resumes over another run's log that reaches its checkpoint's step"),
    Mutant('resume_over_a_lost_best_evaluation', 'train.py',
           "if not any(u == v or (u != u and v != v) for u in evaluated.get(at, [])):", "if False:",
           (R + '::test_resume_with_its_log_edited_is_refused',), "a run resumes over a log that lacks its best prompt's evaluation"),
    Mutant('own_scores_refused', 'run.py',
           "if score_file is not None and given is None and _same_scores(score_file, saved):", "if False:",
           (R + '::test_a_run_given_back_its_own_scores_goes_on', R + '::test_a_run_given_back_its_own_scores_saved_again_goes_on'), "a run given back the scores it computed itself (--score-file) is refused as another run"),
    Mutant('other_scores_taken_as_own', 'run.py',
           "return scores_digest(x) == scores_digest(y) and (x.kind, x.source) == (y.kind, y.source)", "return True",
           (R + '::test_a_run_given_other_scores_is_still_refused',), "a run given other scores than its own goes on as if they were its own"),
    Mutant('papermill_unknown_parameter_ignored', 'cli.py',
           "if unknown := [n for n in given if n not in known]:", "if unknown := []:",
           ('tests/test_cli.py::test_notebooks_refuse_a_parameter_papermill_only_warns_about',),
           "a parameter papermill injects that the notebook does not define (a typo) is ignored: papermill only warns"),
    Mutant('t5_checkpoint_dtype_kept', 'prompt.py',
           "dtype=dtype or torch.float32, ", "",
           (P + 'test_a_checkpoint_stored_in_bf16_is_loaded_in_fp32',), "a T5 checkpoint stored in bf16 trains and is scored in bf16 (transformers 5 keeps its dtype)"),
    Mutant('causal_checkpoint_dtype_kept', 'causal.py',
           "dtype=dtype or torch.float32, ", "",
           (P + 'test_a_checkpoint_stored_in_bf16_is_loaded_in_fp32',), "a decoder-only checkpoint stored in bf16 trains and is scored in bf16"),
    Mutant('prompt_init_not_recorded', 'train.py',
           "prompt_init=getattr(pt, 'init', 'uniform'),", "prompt_init='uniform',",
           (R + '::test_the_fingerprint_records_the_prompt_init_the_model_used',), "a prompt initialised from the vocabulary is recorded as uniform"),
    Mutant('unsupported_model_built_as_t5', 'prompt.py',
           "check_t5_config(AutoConfig.from_pretrained(name), name)", "None",
           ('tests/test_causal.py::test_an_unsupported_decoder_only_folder_is_refused_by_name',), "a Qwen3 or GPT-2 folder is loaded as a random T5 (then a traceback)"),
    Mutant('generation_config_leaks', 'prompt.py',
           "model.generation_config = GenerationConfig(**{k: getattr(g, k) for k in GENERATION_IDS if getattr(g, k, None) is not None})",
           "model.generation_config = g",
           ('tests/test_causal.py::test_evaluation_generates_greedily_whatever_the_checkpoints_generation_config',),
           "a checkpoint's generation_config (a repetition penalty) changes what evaluation generates"),
    Mutant('generation_past_tokenizer_eos', 'train.py',
           "out, stop = [None] * len(items), stop_ids(pt, tokenizer)", "out, stop = [None] * len(items), {}",
           ('tests/test_causal.py::test_evaluation_stops_at_the_tokenizers_end_of_sequence_too',),
           "generation stops only at the model's EOS, not at the tokenizer's that ends every training target"),
    Mutant('label_words_cut', 'run.py',
           "if task.label_words:", "if False:",
           ('tests/test_causal.py::test_tiny_llama_completions_of_class_labels_are_not_cut',), "a tokenizer that spells a label word in more tokens than the task's target length gets it cut"),
    Mutant('expansion_lost_on_resume', 'train.py',
           "or self._expansion_unlogged(phase):", ":",
           ('tests/test_causal.py::test_a_resume_at_the_last_stage_boundary_keeps_the_expansion_record',),
           "a run resumed from the checkpoint that ends a stage loses that expansion from its log and plot"),
    Mutant('partial_config_shared', 'causal.py',
           "_own_config(model); model.__dict__", "model.__dict__",
           ('tests/test_causal.py::test_a_partial_model_leaves_other_models_of_the_same_config_alone',), "a partial model changes the layer types of other models sharing its config"),
    Mutant('no_decoder_ignored_on_causal', 'run.py',
           "if a.decoder is False:", "if False:",
           ('tests/test_causal.py::test_a_flag_that_cannot_apply_to_a_decoder_only_model_is_refused',), "--no-decoder on a decoder-only model is recorded and not done"),
    Mutant('fast_ignored_off_t5', 'fast.py',
           "if asked and not t5:", "if False:",
           ('tests/test_causal.py::test_a_flag_that_cannot_apply_to_a_decoder_only_model_is_refused',), "--fast on a model it does not serve is recorded and not done"),
    Mutant('own_scores_compared_by_bytes', 'run.py',
           "return scores_digest(x) == scores_digest(y) and (x.kind, x.source) == (y.kind, y.source)",
           "return Path(a).read_bytes() == Path(b).read_bytes()",
           (R + '::test_a_run_given_back_its_own_scores_saved_again_goes_on',), "the same scores saved again (other metadata order) are taken for other scores"),
    Mutant('given_scores_forgotten', 'run.py',
           "if score_file is None and given is not None:", "if False:",
           (R + '::test_a_run_given_scores_resumes_without_naming_them_again',), "a run started with --score-file is refused when resumed without naming it again"),
    Mutant('papermill_paths_refused', 'cli.py',
           "for n in _assigned(hist[i]) or [] if not n.startswith('PAPERMILL_')]", "for n in _assigned(hist[i]) or []]",
           ('tests/test_cli.py::test_papermill_inject_paths_is_not_an_unknown_parameter',), "papermill --inject-paths is refused as unknown parameters"),
    Mutant('injected_check_reads_the_wrong_cell', 'cli.py',
           "known = _assigned(hist[injected[0] - 1])", "known = _assigned(hist[injected[-1] - 1])",
           ('tests/test_cli.py::test_rerunning_the_injected_cell_by_hand_is_not_refused',), "rerunning papermill's cell by hand makes the check read the wrong cell as the parameters"),
    Mutant('torch_dtype_ignored', 'prompt.py',
           "config_kwargs.pop('dtype', config_kwargs.pop('torch_dtype', None))", "config_kwargs.pop('dtype', None)",
           ('tests/test_recipe.py::test_torch_dtype_still_picks_the_precision',), "torch_dtype= (transformers 4's name) is overridden to fp32"),
    Mutant('tiny_llama_dtype_ignored', 'causal.py',
           "if dtype is not None: model.to(dtype)", "pass",
           ('tests/test_recipe.py::test_torch_dtype_still_picks_the_precision',), "dtype= on the built-in tiny-llama is silently ignored"),
    Mutant('eos_list_as_pad', 'causal.py',
           "pad = pad[0] if isinstance(pad, (list, tuple)) else pad", "pad = pad",
           ('tests/test_causal.py::test_a_checkpoint_whose_generation_config_lists_its_eos_ids_and_no_pad_evaluates',),
           "a checkpoint with a list of EOS ids and no pad id crashes at its first evaluation"),
    Mutant('fit_again_deletes_log', 'train.py',
           "self.record.open(self.resumed or self.state['step'] > 0,", "self.record.open(self.resumed,",
           (R + '::test_fit_again_after_ctrl_c_keeps_the_log',), "fit() again on the same Trainer after Ctrl-C deletes the log of the steps before"),
    Mutant('workers_outlive_launcher', 'run.py',
           "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)", "None",
           ('tests/test_distributed.py::test_killing_the_launch_kills_its_workers',), "data-parallel workers train on after their launcher is killed"),
    Mutant('encoder_paper_metric_claimed', 'run.py',
           "paper = task.paper_metric if not evals or task.paper_metric in evals[-1] else None", "paper = task.paper_metric",
           ('tests/test_encoder.py::test_short_run',), "an encoder's summary names a paper metric it never logs: its tables and CLI show nan"),
    # -- found by a mutation audit of the lightly planted modules (prompt, arch, scores, flops, encoder, tasks, partial,
    #    peft, plots): each passed every pytest test before its test was written
    Mutant('prompt_init_nonnegative', 'prompt.py',
           'w.copy_(torch.rand(w.shape, generator=g) * 2 * bound - bound)',
           'w.copy_(torch.rand(w.shape, generator=g) * bound)',
           ('tests/test_method.py::test_prompt_init_is_centred_and_follows_the_seed',),
           'the uniform prompt init draws from [0, sqrt(1/d_model)), not ±sqrt(1/d_model)'),
    Mutant('prompt_init_ignores_seed', 'prompt.py',
           'init_prompt(SoftPrompt(prompt_length, table.shape[1]), init, table, seed), init',
           'init_prompt(SoftPrompt(prompt_length, table.shape[1]), init, table, 0), init',
           ('tests/test_method.py::test_prompt_init_is_centred_and_follows_the_seed',),
           "every seed starts from the same prompt (a run's --seed never reaches it)"),
    Mutant('vocab_init_first_rows', 'prompt.py',
           'w.copy_(embedding[rows])',
           'w.copy_(embedding[:w.shape[0]])',
           ('tests/test_method.py::test_prompt_init_is_centred_and_follows_the_seed',),
           "`init='vocab'` copies the embedding's first rows, not rows drawn with the seed"),
    Mutant('tiny_head_tied', 'prompt.py',
           "if name == 'tiny': untie_lm_head(model, seed)",
           'pass',
           ('tests/test_method.py::test_tiny_t5_has_its_own_output_head_like_lm_adapt',),
           "the gated 'tiny' T5 keeps its output head tied to the embedding (v1.0 style), not LM-adapt's own head"),
    Mutant('signature_without_embedding', 'arch.py',
           'embedding=hashlib.sha1(sample.numpy().tobytes()).hexdigest()[:16])',
           'embedding=str(tuple(emb.shape)))',
           ('tests/test_reliability.py::test_score_file_of_the_same_architecture_with_other_weights_is_refused',),
           'the model signature checks shapes only: scores of another model of the same shapes are accepted'),
    Mutant('layer_scores_max', 'scores.py',
           'return self.scores[stack].mean(1)',
           'return self.scores[stack].max(1).values',
           ('tests/test_recipe.py::test_layers_chosen_by_score_rank_by_their_mean_neuron_score',),
           'layers chosen by score are ranked by their loudest neuron, not the mean over their neurons'),
    Mutant('sampling_never_last_row', 'scores.py',
           'random.Random(seed).sample(range(n_rows), k)',
           'random.Random(seed).sample(range(max(k, n_rows - 1)), k)',
           ('tests/test_recipe.py::test_a_random_score_sample_can_draw_any_row',),
           'the random score sample never draws the last row'),
    Mutant('scores_meta_kind_dropped', 'scores.py',
           "meta.get('kind', 'abs_mean')",
           "'abs_mean'",
           ('tests/test_recipe.py::test_score_files_keep_what_the_scores_are',),
           'a score file read back says `abs_mean` whatever statistic it holds'),
    Mutant('flops_linear_only_ignored', 'flops.py',
           'if not linear_only:',
           'if True:',
           ('tests/test_flops.py::test_linear_only_counts_the_linear_layers',),
           "`linear_only=True` still counts attention's score and mix matmuls"),
    Mutant('schedule_flops_denominator', 'flops.py',
           'return sum(c * s for c, s in zip(stage_costs, steps)) / (stage_costs[-1] * sum(steps))',
           'return sum(c * s for c, s in zip(stage_costs, steps)) / (stage_costs[-1] * steps[-1])',
           ('tests/test_flops.py::test_schedule_flops_by_hand',),
           "a schedule's FLOPs are divided by the last stage's steps, not all the steps at full cost"),
    Mutant('paper_steps_xl_wrong', 'flops.py',
           'xl=(3000, 3000, 3000, 6000)',
           'xl=(6000, 6000, 6000, 12000)',
           ('tests/test_flops.py::test_schedule_flops_by_hand',),
           "T5-XL's schedule given LARGE's 30,000 steps, not the paper's 15,000"),
    Mutant('enc_mnli_pair_swapped', 'encoder.py',
           "PAIR_FIELDS = {'mnli': ('premise', 'hypothesis')",
           "PAIR_FIELDS = {'mnli': ('hypothesis', 'premise')",
           ('tests/test_encoder.py::test_pairs_are_encoded_first_sentence_first',),
           "the encoder reads MNLI hypothesis first, the label texts' 'first' and 'second' swapped"),
    Mutant('enc_qqp_label_texts_swapped', 'encoder.py',
           '\'qqp\': ("the two questions ask different things", "the two questions ask the same thing")',
           '\'qqp\': ("the two questions ask the same thing", "the two questions ask different things")',
           ('tests/test_encoder.py::test_qqp_and_toy_label_texts_in_label_order',),
           "QQP's encoder label descriptions swapped (duplicate described as different)"),
    Mutant('enc_toy_label_texts_swapped', 'encoder.py',
           '\'toy\': ("a negative review", "a positive review")',
           '\'toy\': ("a positive review", "a negative review")',
           ('tests/test_encoder.py::test_qqp_and_toy_label_texts_in_label_order',),
           "the toy task's encoder label descriptions swapped (positive described as negative)"),
    Mutant('enc_accuracy_first_batch_only', 'encoder.py',
           "right += int((pred == bt['labels'][:, 0]).sum())",
           "right = int((pred == bt['labels'][:, 0]).sum())",
           ('tests/test_encoder.py::test_accuracy_counts_every_batch',),
           "the encoder's accuracy counts only the last batch's right answers"),
    Mutant('enc_truncation_max_length_ignored', 'encoder.py',
           'truncation=True, max_length=max_length)',
           'truncation=True)',
           ('tests/test_encoder.py::test_pairs_are_encoded_first_sentence_first',),
           'encoder inputs are not cut to leave room for the prompt (512 + prompt positions)'),
    Mutant('no_answer_text', 'tasks.py',
           "NO_ANSWER = 'no answer'",
           "NO_ANSWER = 'unanswerable'",
           ('tests/test_tasks.py::test_squad2_unanswerable_target_is_no_answer',),
           "an unanswerable SQuAD 2.0 question's target is not the official `no answer`"),
    Mutant('record_highlight_double_period', 'tasks.py',
           'passage = re.sub(r\'([.?!"\\\'])\\n@highlight\\n\', r\'\\1 \', passage)',
           'pass',
           ('tests/test_tasks.py::test_record_passage_is_cleaned_as_t5_does',),
           'a ReCoRD highlight after a sentence mark becomes \'. \' too (\'.. \', \'". \')'),
    Mutant('record_highlight_space', 'tasks.py',
           "return re.sub(r'\\n@highlight\\n', '. ', passage)",
           "return re.sub(r'\\n@highlight\\n', ' ', passage)",
           ('tests/test_tasks.py::test_record_passage_is_cleaned_as_t5_does',),
           'ReCoRD highlights joined with a space, not a sentence break'),
    Mutant('record_no_final_period', 'tasks.py',
           'return passage if passage[-1:] in (\'.\', \'"\', "\'", \'?\', \'!\') else passage + \'.\'',
           'return passage',
           ('tests/test_tasks.py::test_record_passage_is_cleaned_as_t5_does',),
           'a ReCoRD passage is not ended with a period where it lacks a sentence mark'),
    Mutant('record_answers_not_deduped', 'tasks.py',
           'return list(dict.fromkeys(answers))',
           'return list(answers)',
           ('tests/test_tasks.py::test_record_passage_is_cleaned_as_t5_does',),
           'a ReCoRD gold entity listed twice makes two identical training pairs'),
    Mutant('xsum_summarize_prefix', 'tasks.py',
           "return example['document'], SENTINEL + example['summary']",
           "return 'summarize: ' + example['document'], SENTINEL + example['summary']",
           ('tests/test_tasks.py::test_xsum_input_is_the_document_alone',),
           "XSum inputs get T5's `summarize:` prefix, which prompt tuning leaves to the prompt"),
    Mutant('max_new_tokens_full_length', 'tasks.py',
           'return max(1, self.target_max_length - 1)',
           'return max(1, self.target_max_length)',
           ('tests/test_method.py::test_generation_length_is_one_short_of_each_tasks_target_length',),
           "a task's default generation length counts no decoder start token (one token too long)"),
    Mutant('toy_validation_train_nouns', 'tasks.py',
           'text = rng.choice(TOY_TEMPLATES).format(n=rng.choice(TOY_NOUNS[split]),',
           "text = rng.choice(TOY_TEMPLATES).format(n=rng.choice(TOY_NOUNS['train']),",
           ('tests/test_tasks.py::test_toy_validation_rows_are_unseen_in_training',),
           'the toy validation rows draw the training nouns: validation overlaps training'),
    Mutant('record_references_first_only', 'tasks.py',
           "references=lambda e: list(e['answers']),",
           "references=lambda e: list(e['answers'])[:1],",
           ('tests/test_tasks.py::test_answers_are_scored_against_every_gold_answer',),
           'ReCoRD is scored against the first gold entity only, not the best of all'),
    Mutant('squad_references_first_only', 'tasks.py',
           "references=lambda e: list(e['answers']['text']),",
           "references=lambda e: list(e['answers']['text'])[:1],",
           ('tests/test_tasks.py::test_answers_are_scored_against_every_gold_answer',),
           'SQuAD 2.0 is scored against the first gold answer only, not the best of all'),
    Mutant('record_keeps_decoder', 'tasks.py',
           'reduce_decoder=True, train_format=record_train_pairs',
           'reduce_decoder=False, train_format=record_train_pairs',
           ('tests/test_tasks.py::test_the_generation_tasks_shrink_the_decoder_too',),
           'ReCoRD runs keep the decoder full (the official script shrinks it too)'),
    Mutant('xsum_keeps_decoder', 'tasks.py',
           "reduce_decoder=True, paper_scorer='rouge'",
           "reduce_decoder=False, paper_scorer='rouge'",
           ('tests/test_tasks.py::test_the_generation_tasks_shrink_the_decoder_too',),
           'XSum runs keep the decoder full (the official script shrinks it too)'),
    Mutant('layer_dropping_decoder_ignored', 'partial.py',
           'return Stage(encoder_layers=layers, decoder_layers=layers if decoder else None)',
           'return Stage(encoder_layers=layers, decoder_layers=None)',
           ('tests/test_method.py::test_every_fpt_method_shrinks_the_decoder_when_the_task_does',),
           'FPT_LD never drops decoder layers, even for the tasks whose recipe shrinks the decoder'),
    Mutant('expand_no_growth_check', 'partial.py',
           '_check_grows(current_stage(model), stage, model, 1)',
           'pass',
           ('tests/test_method.py::test_expand_refuses_a_smaller_stage',),
           '`expand` shrinks a partial model without complaint'),
    Mutant('score_layers_required_twice', 'partial.py',
           '.tolist() if i not in required]',
           '.tolist()]',
           ('tests/test_method.py::test_layers_by_score_never_keep_a_layer_twice',),
           'layers chosen by score keep layer 0 twice when it also scores best (k-1 distinct layers)'),
    Mutant('peft_partial_warning_off', 'peft.py',
           "if name and name != 'full':",
           'if False:',
           ('tests/test_peft.py::test_export_of_a_prompt_trained_on_a_partial_model_warns',),
           'a prompt trained on a partial stage is exported for the full model without a warning'),
    Mutant('stage_start_marked', 'plots.py',
           "for r in log['expand'] if r['step'] > 0]",
           "for r in log['expand'] if r['step'] >= 0]",
           ('tests/test_plots.py',),
           "the stage plot marks the first stage's start (step 0) as an expansion"),
    Mutant('stage_lines_at_flops_on_wall_axis', 'plots.py',
           "ax.axvline(b[x_key], color='C3'",
           "ax.axvline(b['flops'], color='C3'",
           ('tests/test_plots.py',),
           'the wall-clock panels mark the expansions at their FLOPs, not their time'),
    Mutant('metric_panel_official_first', 'plots.py',
           "for m in (info.get('paper_metric') or get_task(info['task']).paper_metric, info['metric'])",
           "for m in (info['metric'], info.get('paper_metric') or get_task(info['task']).paper_metric)",
           ('tests/test_plots.py',),
           "the plot's metric panel shows the official metric where the tables show the paper's"),
    Mutant('smooth_divides_by_the_window', 'plots.py',
           'return (c[i] - c[i - n]) / n',
           'return (c[i] - c[i - n]) / window',
           ('tests/test_plots.py',),
           "the smoothed loss divides the first points' sums by the whole window (it starts too low)"),
    Mutant('overlay_is_the_run_itself', 'plots.py',
           'runs.append((read_log(pt_run), f"{run_info(pt_run)[\'method\']} (overlay)", \'0.45\'))',
           'runs.append((read_log(run_dir), f"{run_info(pt_run)[\'method\']} (overlay)", \'0.45\'))',
           ('tests/test_plots.py',),
           "the PT overlay draws the FPT run's own curve"),
    Mutant('metric_x_is_step', 'plots.py',
           'x, y = [r[x_key] for r in evals], [r[metric] for r in evals if metric in r]',
           "x, y = [r['step'] for r in evals], [r[metric] for r in evals if metric in r]",
           ('tests/test_plots.py',),
           'the metric panels put evaluations at their step, not their FLOPs or wall clock'),
    Mutant('toy_labels_inverted', 'tasks.py',
           'a=rng.choice(TOY_POSITIVE if label else TOY_NEGATIVE))',
           'a=rng.choice(TOY_NEGATIVE if label else TOY_POSITIVE))',
           ('tests/test_encoder.py::test_qqp_and_toy_label_texts_in_label_order',),
           'toy label 1 (`yes`) rows carry the negative adjectives'),
]

GUARD = '''"Loaded by tools/mutants.py: the tests must import fpt_nb from the mutated copy, not from the installed checkout."
import os
from pathlib import Path
import pytest

def pytest_configure(config):
    import fpt_nb
    root, got = Path(os.environ['FPT_MUTANT_ROOT']).resolve(), Path(fpt_nb.__file__).resolve()
    if root not in got.parents: raise pytest.UsageError(f"fpt_nb is imported from {got}, not from the copy under test {root}")
'''


def apply(m:Mutant, src:str) -> str:
    "The mutated source; ValueError (`no longer applies`) unless `m.old` occurs exactly once."
    n = src.count(m.old)
    if n != 1: raise ValueError(f"mutant {m.name} no longer applies: its pattern occurs {n} times in fpt_nb/{m.file} (expected once): {m.old!r}")
    out = src.replace(m.old, m.new)
    compile(out, m.file, 'exec')
    return out


def copy_tree(dst:Path):
    "The working tree as git sees it (tracked and untracked, not ignored), without bytecode."
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    for f in filter(None, files.decode().split('\0')):
        s = ROOT/f
        if not s.is_file() or '__pycache__' in s.parts: continue
        (dst/f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, dst/f)
    (dst/'_mutant_guard.py').write_text(GUARD)


def pytest_run(copy:Path, tests:list[str], log:Path, timeout:float) -> tuple[int|None, float, str]:
    "Exit code (None: timed out), seconds and the first failing test of `pytest -x tests` in `copy`."
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(copy)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]),
               PYTHONDONTWRITEBYTECODE='1', OMP_NUM_THREADS='1', FPT_MUTANT_ROOT=str(copy))
    if 'FPT_DATA_DIR' not in env and (ROOT.parent/'shared'/'data').is_dir(): env['FPT_DATA_DIR'] = str(ROOT.parent/'shared'/'data')
    cmd = [sys.executable, '-m', 'pytest', '-x', '-q', '-rfE', '-p', 'no:cacheprovider', '-p', '_mutant_guard',
           f'--basetemp={copy}/.pytest-tmp', *tests]
    t = time.perf_counter()
    with open(log, 'w') as f:
        try: rc = subprocess.run(cmd, cwd=copy, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired: rc = None
    failed = next((l.split()[1] for l in log.read_text().splitlines() if l.startswith(('FAILED ', 'ERROR '))), '')
    return rc, time.perf_counter() - t, failed


def outcome(rc:int|None) -> str:
    return {0: 'SURVIVED', 1: 'caught'}.get(rc, 'timeout' if rc is None else f'error (pytest exit {rc})')


def short(t:str) -> str: return t.removeprefix('tests/').replace('.py::', '::')


def merged(rows:list[dict], meta:dict, out:Path) -> tuple[list[dict], dict]:
    "The table at `out` (.json) with `rows` put in place of the rows of the same mutants (`--update`)."
    old = json.loads(out.with_suffix('.json').read_text())
    if sorted(old['without']) != meta['without']:
        raise SystemExit(f"{out}.json was made with tests {old['without'] or 'none'} left out, this run with {meta['without'] or 'none'}: "
                         f"update it with the same --without")
    new = {r['name']: r for r in rows}
    kept = [new.pop(r['name'], r) for r in old['mutants']]
    updates = old.get('updates', []) + [dict(date=meta['date'], command=meta['command'], mutants=[r['name'] for r in rows])]
    return kept + list(new.values()), dict({k: v for k, v in old.items() if k != 'mutants'}, updates=updates)


def write_table(rows:list[dict], meta:dict, out:Path):
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix('.json').write_text(json.dumps(dict(meta, mutants=rows), indent=1) + '\n')
    n = {k: sum(r['outcome'].startswith(k) for r in rows) for k in ('caught', 'SURVIVED')}
    lines = [f"# Mutation check ({meta['date']})", '',
             f"{n['caught']} of {len(rows)} mutants caught, {n['SURVIVED']} survived; {meta['seconds'] / 60:.1f} min in all "
             f"(baseline {meta['baseline_seconds'] / 60:.1f} min). Tests left out: {', '.join(meta['without']) or 'none'}.", '',
             f"`{meta['command']}`", '',
             *[f"Updated {u['date']}: {', '.join(u['mutants'])} (`{u['command']}`).\n" for u in meta.get('updates', [])],
             '| mutant | file | the bug | tests run | result | first failure | time |', '|---|---|---|---|---|---|--:|']
    for r in rows:
        lines.append(f"| {r['name']} | {r['file']} | {r['what']} | {', '.join(map(short, r['tests'])) or '(none left)'} | {r['outcome']} | "
                     f"{short(r['failed']) if r['failed'] else ''} | {r['seconds']:.0f} s |")
    out.with_suffix('.md').write_text('\n'.join(lines) + '\n')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', nargs='+', metavar='MUTANT', help='run only these mutants')
    ap.add_argument('--without', nargs='+', default=[], metavar='TEST_FILE', help='leave these test files out (e.g. to see what older tests catch)')
    ap.add_argument('--out', default='results/mutants/mutants', help='table path without suffix: writes .md and .json (default %(default)s)')
    ap.add_argument('--timeout', type=float, default=1800, help='seconds per pytest run (default %(default)s)')
    ap.add_argument('--check', action='store_true', help='only check that every mutant applies')
    ap.add_argument('--keep', action='store_true', help='keep the temporary copy and the pytest logs')
    ap.add_argument('--update', action='store_true', help='put the rows of the mutants run into the existing table at --out (e.g. after refreshing a pattern)')
    a = ap.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    if a.only and (bad := [n for n in a.only if n not in known]): ap.error(f"unknown mutant(s) {bad}: expected some of {sorted(known)}")
    chosen = [known[n] for n in a.only] if a.only else MUTANTS
    stale = []
    for m in chosen:
        try: apply(m, (ROOT/'fpt_nb'/m.file).read_text())
        except (ValueError, SyntaxError) as e: stale.append(m.name); print(f"NO LONGER APPLIES: {e}")
    if a.check:
        print(f"{len(chosen) - len(stale)} of {len(chosen)} mutants apply")
        return 1 if stale else 0
    without = {w.removeprefix('./') for w in a.without}
    tests_of = {m.name: [t for t in m.tests if t.split('::')[0] not in without] for m in chosen}
    baseline_tests = list(dict.fromkeys(t for m in chosen if m.name not in stale for t in tests_of[m.name]))
    work = Path(tempfile.mkdtemp(prefix='fpt-mutants-'))
    copy, logs = work/'tree', work/'logs'
    copy.mkdir(); logs.mkdir()
    t0 = time.perf_counter()
    try:
        copy_tree(copy)
        print(f"baseline: {len(baseline_tests)} test selections on the unmutated copy in {copy} ...", flush=True)
        rc, base_s, failed = pytest_run(copy, baseline_tests, logs/'baseline.log', a.timeout)
        if rc != 0:
            print(f"the unmutated copy does not pass its tests ({outcome(rc)}, first failure {failed or '?'}): fix that first; "
                  f"log: {logs/'baseline.log'}", file=sys.stderr)
            a.keep = True
            return 2
        print(f"baseline passes ({base_s:.0f} s)", flush=True)
        rows = []
        for m in chosen:
            row = dict(name=m.name, file=f'fpt_nb/{m.file}', what=m.what, tests=tests_of[m.name], failed='', seconds=0.0)
            if m.name in stale: rows.append(dict(row, outcome='no longer applies')); continue
            if not tests_of[m.name]: rows.append(dict(row, outcome='SURVIVED (no test selected)')); continue
            target = copy/'fpt_nb'/m.file
            original = target.read_text()
            target.write_text(apply(m, original))
            try: rc, secs, failed = pytest_run(copy, tests_of[m.name], logs/f'{m.name}.log', a.timeout)
            finally: target.write_text(original)
            rows.append(dict(row, outcome=outcome(rc), failed=failed, seconds=round(secs, 1)))
            print(f"{m.name:36s} {outcome(rc):9s} {secs:6.0f} s  {short(failed)}", flush=True)
        meta = dict(date=time.strftime('%Y-%m-%d %H:%M'), command=' '.join(['python tools/mutants.py', *(argv if argv is not None else sys.argv[1:])]),
                    without=sorted(without), baseline_seconds=round(base_s, 1), seconds=round(time.perf_counter() - t0, 1))
        if a.update and (ROOT/a.out).with_suffix('.json').is_file(): rows, meta = merged(rows, meta, ROOT/a.out)
        write_table(rows, meta, ROOT/a.out)
        print(f"table: {ROOT/a.out}.md ({meta['seconds'] / 60:.1f} min)")
        return 0 if all(r['outcome'] == 'caught' for r in rows) else 1
    finally:
        if a.keep: print(f"kept: {work}")
        else: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
