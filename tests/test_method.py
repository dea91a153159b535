"""FPT's own claims, each asserted on a value that a bug in the method would change (issue 16).

A run of FPT_CR on the tiny T5 trains 2, 2, 2 and 4 steps on stages that keep 1, 2 and 3 of the 4 encoder
layers at 32, 64 and 96 of 128 FFN neurons, then the full model. We watch it from inside (the trainer's
`step_flops` hook is called at every micro-batch with the model as it is trained) and compare it with what the
paper says should happen: which layers and neurons each stage keeps, the prompt and its Adafactor state carried
across every expansion, the same numbers as a training loop written out by hand, a resume that is bit for bit the
uninterrupted run even with dropout drawing from the global RNG, FLOPs that PyTorch's own counter agrees with,
and an evaluator whose score on known generations is counted by hand. `tools/mutants.py` plants the bugs these
tests are here to catch.
"""
import json
from pathlib import Path
import numpy as np
import pytest, torch, torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode
from fpt_nb.prompt import load_t5, PromptT5, t5_config
from fpt_nb.tasks import toy_examples
from fpt_nb.batches import encode, batches, batch_order
from fpt_nb.scores import NeuronScores
from fpt_nb.arch import layer_stacks, ffn_widths
from fpt_nb.partial import FULL, apply_stage, current_stage, compound_reduction, layer_dropping, ffn_reduction, check_schedule
from fpt_nb.train import (Trainer, TrainConfig, Phase, make_optimizer, method_stages, paper_schedule, evaluator, t5_batch_flops)
from fpt_nb.checkpoint import latest_checkpoint, load_prompt
from fpt_nb.flops import PAPER_STEPS

CFG = dict(batch_size=8, micro_batch_size=4, prompt_length=4, seed=3)   # two micro-batches a step
N_TRAIN = 32                                                             # 8 micro-batches: an epoch is 4 steps


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Bit-for-bit comparisons within this process, and less load on a shared machine."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(dropout:float=0.0) -> PromptT5:
    "The tiny T5 (4+4 layers, FFN 128) with a 4-vector prompt; `dropout` on every dropout layer."
    model, _ = load_t5('tiny')
    for m in model.modules():
        if isinstance(m, nn.Dropout): m.p = dropout
    return PromptT5(model, prompt_length=4)

TOK = load_t5('tiny')[1]
ITEMS = encode('toy', TOK, toy_examples('train', N_TRAIN))
SCORES = NeuronScores({s: torch.rand(4, 128, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(('encoder', 'decoder'))})

# FPT_CR over 10 steps on the tiny T5, by hand: quarters of 4 layers rounded half up are 1, 2, 3 layers; of 128
# neurons 32, 64, 96. The paper's 20/20/20/40% of 10 steps are 2, 2, 2, 4. Evenly spaced layers keep the first and
# the last: 2 of 4 are 0 and 3; 3 of 4 are 0, 1, 3 (the longer gap last).
KEPT = {1: ([0], 32), 3: ([0, 3], 64), 5: ([0, 1, 3], 96), 7: ([0, 1, 2, 3], 128)}   # first step of each stage -> (layers, width)
def expected_at(step:int): return KEPT[max(s for s in KEPT if s <= step)]


class Watcher:
    "A `step_flops` that counts as the trainer does and notes, at the first micro-batch of every step, what is being trained."
    def __init__(self, pt):
        self.pt, self.trainer, self.seen = pt, None, []
        self.full = list(layer_stacks(pt.model)['encoder'])   # the full model's blocks, before any stage is applied
        self.full_wi = [b.layer[-1].DenseReluDense.wi_0.weight.detach().clone() for b in self.full]

    def __call__(self, pt, batch, widths):
        step = self.trainer.state['step'] + 1
        if not self.seen or self.seen[-1]['step'] != step:
            w, opt = pt.prompt.weight, self.trainer.opt
            st = opt.state.get(w, {})
            blocks = layer_stacks(pt.model)['encoder']
            self.seen.append(dict(step=step, opt=opt, prompt=w, state=dict(st), adafactor_step=st.get('step', 0),
                                  layers=[next(i for i, f in enumerate(self.full) if f is b) for b in blocks],
                                  wi=[b.layer[-1].DenseReluDense.wi_0.weight.detach().clone() for b in blocks],
                                  widths=ffn_widths(pt.model), decoder_layers=len(layer_stacks(pt.model)['decoder'])))
        return t5_batch_flops(pt, batch, widths)


def train(run_dir, pt=None, dropout:float=0.0, crash_before_step:int|None=None, **cfg):
    "FPT_CR over 10 steps with the Watcher; `crash_before_step`: the process 'dies' inside that step, before its update."
    pt = pt or tiny(dropout)
    watch = Watcher(pt)
    def step_flops(p, b, w):
        if crash_before_step is not None and watch.trainer.state['step'] + 1 == crash_before_step: raise KeyboardInterrupt
        return watch(p, b, w)
    tr = Trainer(pt, paper_schedule('fpt_cr', 10, pt.model), ITEMS, TrainConfig(**{**CFG, **cfg}), run_dir, scores=SCORES,
                 progress=False, step_flops=step_flops)
    watch.trainer = tr
    try: tr.fit()
    except KeyboardInterrupt: pass
    return tr, watch


@pytest.fixture(scope='module')
def fpt_run(tmp_path_factory):
    return train(tmp_path_factory.mktemp('fpt')/'run')


def log(run_dir, kind='step') -> list[dict]:
    return [r for r in map(json.loads, (Path(run_dir)/'log.jsonl').read_text().splitlines()) if r['kind'] == kind]


# ---------------------------------------------------------------------------------------------------------------
# Stages: what each one keeps, and where the schedule puts them

def test_each_stage_trains_the_planned_layers_and_neurons(fpt_run):
    "Layers evenly spaced (first and last kept) and, in each kept layer, the top-scoring FFN neurons of that layer."
    tr, watch = fpt_run
    assert [s['step'] for s in watch.seen] == list(range(1, 11))
    for s in watch.seen:
        layers, width = expected_at(s['step'])
        assert s['layers'] == layers, f"step {s['step']}: trained encoder layers {s['layers']}, expected {layers}"
        assert s['widths']['encoder'] == [width] * len(layers) and s['decoder_layers'] == 4
        for i, w in zip(layers, s['wi']):
            keep = SCORES.scores['encoder'][i].topk(width).indices.sort().values   # this layer's best neurons, in order
            assert torch.equal(w, watch.full_wi[i][keep]), f"step {s['step']}: layer {i} does not keep its {width} top-scoring neurons"
    assert current_stage(tr.pt.model) == FULL and ffn_widths(tr.pt.model) == dict(encoder=[128] * 4, decoder=[128] * 4)


def test_schedule_in_the_papers_proportions():
    "20/20/20/40% of the steps, rounded; the paper's 30,000 steps of T5-LARGE give its 6,000/6,000/6,000/12,000."
    model = tiny().model
    assert [p.steps for p in paper_schedule('fpt_cr', 30000, model)] == list(PAPER_STEPS['large'])
    assert [p.steps for p in paper_schedule('fpt_ld', 48, model)] == [10, 10, 10, 18]
    assert [(p.stage, p.steps) for p in paper_schedule('pt', 7, model)] == [(FULL, 7)]


def test_stages_are_quarters_rounded_half_up():
    "On 6 layers of FFN width 10: layers 1.5, 3, 4.5 -> 2, 3, 5; neurons 2.5, 5, 7.5 -> 3, 5, 8."
    from transformers import T5ForConditionalGeneration
    torch.manual_seed(0)
    m = T5ForConditionalGeneration(t5_config(d_model=8, d_ff=10, num_layers=6, num_heads=2, d_kv=4, vocab_size=16))
    assert method_stages('fpt_cr', m) == [compound_reduction(2, 3), compound_reduction(3, 5), compound_reduction(5, 8), FULL]
    assert method_stages('fpt_ld', m, decoder=True)[:3] == [layer_dropping(n, decoder=True) for n in (2, 3, 5)]
    assert method_stages('fr', m, level=3) == [ffn_reduction(8)]


def test_a_shrinking_schedule_is_refused():
    model = tiny().model
    with pytest.raises(ValueError, match='stage 2 keeps 32 encoder FFN neurons but stage 1 kept 64: stages must grow'):
        check_schedule([ffn_reduction(64), ffn_reduction(32), FULL], model, SCORES)


def test_partial_then_full_is_the_original_model():
    "A partial model computes what the full model computes with the dropped neurons zeroed; FULL gives back the original."
    pt = tiny()
    model = pt.model
    x, dec = torch.tensor([[5, 80, 17, 1]]), torch.tensor([[0, 9, 4]])
    def logits():
        with torch.no_grad(): return model(input_ids=x, decoder_input_ids=dec).logits
    full = logits()
    keep = {s: [SCORES.scores[s][i].topk(48).indices for i in range(4)] for s in ('encoder', 'decoder')}
    hooks = []
    for s, blocks in layer_stacks(model).items():
        for i, b in enumerate(blocks):
            mask = torch.zeros(128).index_fill_(0, keep[s][i], 1.0)
            hooks.append(b.layer[-1].DenseReluDense.wo.register_forward_pre_hook(lambda mod, a, mask=mask: (a[0] * mask,)))
    masked = logits()
    for h in hooks: h.remove()
    apply_stage(model, ffn_reduction(48, decoder=True), SCORES)
    torch.testing.assert_close(logits(), masked, rtol=1e-5, atol=1e-5)
    apply_stage(model, FULL)
    assert ffn_widths(model) == dict(encoder=[128] * 4, decoder=[128] * 4)
    assert torch.equal(logits(), full)


# ---------------------------------------------------------------------------------------------------------------
# The prompt and its optimizer state across expansions

def test_expansions_carry_the_prompt_and_its_optimizer_state(fpt_run):
    "One optimizer and one prompt for the whole run: at every step, Adafactor has taken every earlier step, stages included."
    tr, watch = fpt_run
    first = watch.seen[0]
    expansions = [s['step'] for a, s in zip(watch.seen, watch.seen[1:]) if s['widths'] != a['widths']]
    assert expansions == [3, 5, 7]
    for s in watch.seen:
        assert s['opt'] is first['opt'] and s['prompt'] is first['prompt'], f"step {s['step']}: a new optimizer or prompt"
        assert s['adafactor_step'] == s['step'] - 1, f"step {s['step']}: Adafactor has taken {s['adafactor_step']} steps before it"
    for key in ('exp_avg_sq_row', 'exp_avg_sq_col'):   # the factored second moments: the very same tensors, updated in place
        assert all(s['state'][key] is watch.seen[1]['state'][key] for s in watch.seen[1:])
    assert tr.opt.state[tr.pt.prompt.weight]['step'] == 10


def reference_loop(pt, phases, cfg:TrainConfig) -> tuple[torch.Tensor, list[float], int]:
    "FPT written out by hand: one Adafactor for the whole run, the model grown in place, batches epoch after epoch."
    opt, sched = make_optimizer([pt.prompt.weight], cfg)
    n_micro = cfg.batch_size // cfg.micro
    def micro_batches():
        epoch = 0
        while True:
            yield from batches(ITEMS, cfg.micro, shuffle=True, seed=cfg.seed, epoch=epoch, drop_last=True)
            epoch += 1
    it, losses = micro_batches(), []
    pt.train()
    for phase in phases:
        apply_stage(pt.model, phase.stage, SCORES)
        for _ in range(phase.steps):
            total = 0.0
            for _ in range(n_micro):
                b = next(it)
                loss = pt(b['input_ids'], b['attention_mask'], labels=b['labels']).loss
                (loss / n_micro).backward()
                total += loss.item() / n_micro
            torch.nn.utils.clip_grad_norm_([pt.prompt.weight], cfg.clip_norm)
            opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
            losses.append(total)
    return pt.prompt.weight.detach().clone(), losses, opt.state[pt.prompt.weight]['step']


def test_fpt_run_equals_the_loop_written_out_by_hand(fpt_run):
    "Ten steps over three epochs and four stages: the trainer's prompt and losses are the hand-written loop's, bit for bit."
    tr, _ = fpt_run
    pt = tiny()
    prompt, losses, steps = reference_loop(pt, paper_schedule('fpt_cr', 10, pt.model), TrainConfig(**CFG))
    assert steps == 10 and tr.state['epoch'] == 2   # 20 micro-batches of an 8-batch epoch
    assert [r['loss'] for r in log(tr.run_dir)] == losses
    assert torch.equal(tr.pt.prompt.weight.detach(), prompt)
    assert torch.equal(load_prompt(tr.run_dir/'prompt.safetensors'), prompt)


# ---------------------------------------------------------------------------------------------------------------
# Resume

def test_resume_with_dropout_is_bit_identical(fpt_run, tmp_path):
    "Dropout draws from the global RNG: a run killed mid-stage and resumed ends with the uninterrupted run's prompt."
    probe = tiny(0.1)
    probe.train()
    b = next(batches(ITEMS, 4, shuffle=False))
    losses = [probe(b['input_ids'], b['attention_mask'], labels=b['labels']).loss.item() for _ in range(2)]
    assert losses[0] != losses[1], "dropout is not active: this test would not see the RNG state"

    whole, _ = train(tmp_path/'whole', dropout=0.1, checkpoint_every=1)
    assert not torch.equal(whole.pt.prompt.weight, fpt_run[0].pt.prompt.weight)   # dropout changed the run
    cut, _ = train(tmp_path/'cut', dropout=0.1, checkpoint_every=1, crash_before_step=4)
    assert cut.state['step'] == 3 and latest_checkpoint(tmp_path/'cut'/'checkpoints').name == 'step-0000003'
    again, watch = train(tmp_path/'cut', dropout=0.1, checkpoint_every=1)   # a new process: a new model and trainer
    assert again.resumed and [s['step'] for s in watch.seen] == list(range(4, 11))
    assert torch.equal(load_prompt(tmp_path/'cut'/'prompt.safetensors'), load_prompt(tmp_path/'whole'/'prompt.safetensors'))
    assert [r['loss'] for r in log(tmp_path/'cut')] == [r['loss'] for r in log(tmp_path/'whole')]


def test_checkpoint_of_another_task_is_refused(tmp_path):
    "The run's identity (model name, task) is part of the fingerprint: the same tiny model on another task does not resume."
    def trainer(task):
        pt = tiny()
        return Trainer(pt, [Phase(FULL, 1)], ITEMS, TrainConfig(**CFG), tmp_path, progress=False, identity=dict(name='tiny', task=task))
    trainer('toy').fit()
    assert trainer('toy').begin() is True
    with pytest.raises(ValueError, match='was written by a run with other settings or inputs'): trainer('mnli').begin()   # only the task differs


# ---------------------------------------------------------------------------------------------------------------
# FLOPs and evaluation as the trainer does them

def test_evaluations_are_logged_at_the_runs_flops_and_time(tmp_path):
    """eval_flops_of_the_stage: an evaluation's record carries the run's training FLOPs and time so far, as the step it follows
    does (the plots put the scores against training FLOPs), not those of its stage alone: on FPT_CR, evaluations every 2
    steps fall in all four stages."""
    pt = tiny()
    tr = Trainer(pt, paper_schedule('fpt_cr', 10, pt.model), ITEMS, TrainConfig(**{**CFG, 'eval_every': 2}), tmp_path/'run',
                 evaluate=lambda p: dict(accuracy=50.0), metric='accuracy', scores=SCORES, progress=False)
    st = tr.fit()
    steps, evals = {r['step']: r for r in log(tmp_path/'run')}, log(tmp_path/'run', 'eval')
    assert [(e['step'], e['stage']) for e in evals] == [(2, 0), (4, 1), (6, 2), (8, 3), (10, 3)]
    for e in evals: assert (e['flops'], e['wall']) == (steps[e['step']]['flops'], steps[e['step']]['wall']), e['step']
    assert evals[-1]['flops'] == st['flops'] == sum(st['stage_flops']) > st['stage_flops'][-1]

def test_logged_flops_are_what_pytorch_counts(tmp_path):
    "FlopCounterMode around a whole run (a partial stage with the decoder reduced, then full) counts the FLOPs the log says."
    pt = tiny()
    phases = [Phase(compound_reduction(2, 64, decoder=True), 1), Phase(FULL, 2)]
    tr = Trainer(pt, phases, ITEMS, TrainConfig(**CFG), tmp_path, scores=SCORES, progress=False)
    with FlopCounterMode(display=False) as counter: st = tr.fit()
    steps = log(tmp_path)
    assert st['flops'] == steps[-1]['flops'] == counter.get_total_flops()
    assert st['stage_flops'][0] < st['stage_flops'][1] / 2   # one partial step costs less than one full step


class Scripted(nn.Module):
    "A stand-in model whose generations are known: it answers each input text with `answers[text]`, in whatever order it is asked."
    def __init__(self, answers:dict[str, str]):
        super().__init__()
        self.answers, self.asked, self.modes, self.beams = answers, [], [], []
    def generate(self, input_ids, attention_mask=None, max_new_tokens=None, num_beams=1):
        texts = [TOK.decode(ids[mask.bool()], skip_special_tokens=True) for ids, mask in zip(input_ids, attention_mask)]
        self.asked.append((len(texts), max_new_tokens)); self.modes.append(self.training); self.beams.append(num_beams)
        return TOK([self.answers[t] for t in texts], padding=True, return_tensors='pt').input_ids


def test_evaluator_scores_the_generations():
    "Ten toy rows (labels no, yes, no, yes, ...) and ten known answers: 5 right, 2 unparseable, by hand."
    rows = toy_examples('validation', 10)
    texts = [r['text'] for r in rows]
    assert [r['label'] for r in rows] == [0, 1] * 5 and len(set(texts)) == 10
    answers = ['no', 'no', 'no', 'yes', 'yes', 'yes', 'maybe', 'no thanks', '', 'yes']
    #           ok    -     ok    ok     -      ok     none     -            none  ok
    model = Scripted(dict(zip(texts, answers)))
    model.train()
    m = evaluator('toy', TOK, encode('toy', TOK, rows), rows, batch_size=4)(model)
    assert (m['accuracy'], m['unparseable'], m['total']) == (50.0, 2, 10)
    assert [n for n, _ in model.asked] == [4, 4, 2] and len({k for _, k in model.asked}) == 1   # three batches, one length limit
    assert model.modes == [False] * 3 and model.training                                        # generated in eval mode, then back
    assert model.beams == [1] * 3
    evaluator('toy', TOK, encode('toy', TOK, rows), rows, batch_size=4, num_beams=3)(model)   # beams_not_passed_to_generate
    assert model.beams[3:] == [3] * 3


# ---------------------------------------------------------------------------------------------------------------
# Batching order

def test_every_epoch_has_its_own_order():
    lengths = list(range(10, 42))
    orders = [batch_order(lengths, 4, seed=3, epoch=e, drop_last=True) for e in range(3)]
    for o in orders: assert sorted(i for g in o for i in g) == list(range(32))
    assert orders[0] != orders[1] != orders[2] != orders[0]
    assert orders[0] == batch_order(lengths, 4, seed=3, epoch=0, drop_last=True)   # and reproducible


def test_length_buckets_come_in_shuffled_order():
    "Bucketing groups items of similar length, then shuffles the groups: not longest first."
    lengths = list(np.random.default_rng(0).permutation(64) + 5)
    groups = batch_order(lengths, 4, seed=1, bucket=True)
    by_length = sorted(range(64), key=lambda i: -lengths[i])
    assert sorted(groups) == sorted(by_length[i:i + 4] for i in range(0, 64, 4))   # each group: 4 neighbours in length
    firsts = [lengths[g[0]] for g in groups]
    assert firsts != sorted(firsts, reverse=True)


# ---------------------------------------------------------------------------------------------------------------
# The recipe's settings as the trainer uses them, and the stopping and data rules (the session-19 mutation audit:
# each of these bugs passed every test before)

def test_the_trainers_optimizer_is_the_papers_adafactor(tmp_path):
    """adafactor_no_weight_decay, adafactor_scale_parameter, clip_norm_setting_ignored, clip_norm_default: the optimizer the
    trainer steps is Adafactor at a constant lr 0.3, weight decay 1e-5, no relative step, parameter scaling or warm-up; the
    step clips at the configured norm, the paper's 1.0 unless told otherwise."""
    pt = tiny()
    tr = Trainer(pt, [Phase(FULL, 2)], ITEMS, TrainConfig(**{**CFG, 'clip_norm': 0.25}), tmp_path/'run', progress=False)
    got = {k: tr.opt.defaults[k] for k in ('lr', 'weight_decay', 'relative_step', 'scale_parameter', 'warmup_init')}
    assert got == dict(lr=0.3, weight_decay=1e-5, relative_step=False, scale_parameter=False, warmup_init=False)
    assert tr.stepper.clip_norm == 0.25
    default = Trainer(tiny(), [Phase(FULL, 2)], ITEMS, TrainConfig(**CFG), tmp_path/'default', progress=False)
    assert default.stepper.clip_norm == 1.0 and (default.cfg.lr, default.cfg.weight_decay) == (0.3, 1e-5)   # the paper's, unasked
    # clipping at work: SGD at lr 1 through the trainer's step moves the prompt by exactly the clipped gradient
    tr.opt = tr.stepper.opt = torch.optim.SGD([pt.prompt.weight], lr=1.0)
    tr.stepper.sched = torch.optim.lr_scheduler.LambdaLR(tr.stepper.opt, lambda s: 1.0)
    before = pt.prompt.weight.detach().clone()
    tr.stepper(iter(list(batches(ITEMS[:8], 4, shuffle=False))), ffn_widths(pt.model))
    assert (before - pt.prompt.weight.detach()).norm().item() == pytest.approx(0.25, rel=1e-4)

def test_prompt_starts_uniform_within_one_over_root_d_model():
    "prompt_init_bound_by_length: the official init draws each value uniformly from ±sqrt(1/d_model) (d_model 64 here)."
    w = tiny().prompt.weight.detach()
    bound = (1 / 64) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound and w.shape == (4, 64)

def test_prompt_init_is_centred_and_follows_the_seed():
    """prompt_init_nonnegative, prompt_init_ignores_seed, vocab_init_first_rows: the uniform init covers both signs of
    ±sqrt(1/d_model) around 0; another seed draws another prompt (a run's --seed reaches it); `vocab` copies rows of the
    embedding drawn with the seed, not its first rows."""
    from fpt_nb.prompt import SoftPrompt, init_prompt
    model = load_t5('tiny')[0]
    bound = (1 / 64) ** 0.5
    w = PromptT5(model, prompt_length=20).prompt.weight.detach()   # 1,280 draws
    assert w.min() < -0.9 * bound and w.max() > 0.9 * bound and w.mean().abs() < 0.1 * bound
    assert (w < 0).float().mean().item() == pytest.approx(0.5, abs=0.1)
    seeds = [PromptT5(model, prompt_length=4, seed=s).prompt.weight.detach() for s in (0, 1, 0)]
    assert not torch.equal(seeds[0], seeds[1]) and torch.equal(seeds[0], seeds[2])
    emb = model.get_input_embeddings().weight.detach()
    v = [init_prompt(SoftPrompt(6, 64), 'vocab', emb, seed=s).weight.detach() for s in (0, 1)]
    rows = [[next(i for i in range(len(emb)) if torch.equal(emb[i], r)) for r in x] for x in v]   # each vector is a vocabulary row
    assert rows[0] != rows[1] and rows[0] != list(range(6))
    assert torch.equal(PromptT5(model, prompt_length=6, init='vocab', seed=1).prompt.weight.detach(), v[1])

def test_tiny_t5_has_its_own_output_head_like_lm_adapt():
    """tiny_head_tied: the gated 'tiny' T5 stands in for T5 v1.1 LM-adapt, whose output head is its own matrix (no
    tied-embedding rescaling of the decoder output); 'tiny-relu' is v1.0, with the head tied to the embedding."""
    gated, relu = load_t5('tiny')[0], load_t5('tiny-relu')[0]
    assert gated.lm_head.weight is not gated.get_input_embeddings().weight and not gated.config.tie_word_embeddings
    assert not torch.equal(gated.lm_head.weight, gated.get_input_embeddings().weight)
    assert relu.lm_head.weight is relu.get_input_embeddings().weight and relu.config.tie_word_embeddings
    assert torch.equal(load_t5('tiny')[0].lm_head.weight, gated.lm_head.weight)   # the head is seeded: the same model every time

def test_a_saved_lm_adapt_folder_keeps_its_own_head(tmp_path):
    """loaded_head_retied: a local folder shaped like google/t5-large-lm-adapt (gated, its own output head) loads with that
    head, unscaled, and keeps it when something calls tie_weights(): transformers 5 writes tie_word_embeddings=True into
    every T5 config, and tie_weights() then made the head the input embedding, another model, silently."""
    model, tok = load_t5('tiny'); model.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    loaded = load_t5(str(tmp_path))[0]
    assert not loaded.config.tie_word_embeddings and not loaded.config.scale_decoder_outputs
    loaded.tie_weights()   # as resize_token_embeddings, or a wrapper, calls it
    assert loaded.lm_head.weight is not loaded.shared.weight and torch.equal(loaded.lm_head.weight, model.lm_head.weight)

def _scripted(values):
    vals = iter(values)
    return lambda pt: dict(accuracy=next(vals))

def test_early_stop_counts_consecutive_evaluations_without_improvement(tmp_path):
    """early_stop_one_late, bad_evals_not_reset: with early_stop=2, a run stops at the second evaluation in a row that
    does not beat the best; an improvement in between starts the count again."""
    pt = tiny()
    tr = Trainer(pt, [Phase(FULL, 20)], ITEMS, TrainConfig(**{**CFG, 'eval_every': 2, 'early_stop': 2}), tmp_path/'run',
                 evaluate=_scripted([50, 40, 60, 55, 70, 65, 60, 99, 99, 99]), metric='accuracy', progress=False)
    st = tr.fit()
    # evaluations at steps 2..: 50 best, 40 bad(1), 60 best, 55 bad(1), 70 best, 65 bad(1), 60 bad(2) -> stop at step 14
    assert (st['step'], st['best'], st['best_step'], st['stopped']) == (14, 70, 10, 'early stop at step 14')

def test_a_nan_evaluation_is_never_best_over_a_number(tmp_path):
    """nan_best_sticks: a first evaluation that gives NaN is the best only until a number comes; a later NaN replaces
    nothing. (NaN >= x is False: with a plain comparison the run's best stayed NaN to the end.)"""
    nan = float('nan')
    tr = Trainer(tiny(), [Phase(FULL, 8)], ITEMS, TrainConfig(**{**CFG, 'eval_every': 2}), tmp_path/'run',
                 evaluate=_scripted([nan, 40, nan, 30]), metric='accuracy', progress=False)
    st = tr.fit()
    assert (st['best'], st['best_step'], st['best_last'], st['best_last_step']) == (40, 4, 40, 4)
    assert st['bad_evals'] == 2

def test_early_stop_waits_for_the_full_model(tmp_path):
    """early_stop_on_a_partial_stage: scores that only fall would stop a run at its second evaluation; on FPT's schedule
    the stop waits for an evaluation of the last stage (the full model): evaluations at 2, 4 and 6 (the partial stage's
    end), then 8, the first of the full model's, where it stops."""
    tr = Trainer(tiny(), [Phase(layer_dropping(2), 6), Phase(FULL, 6)], ITEMS, TrainConfig(**{**CFG, 'eval_every': 2, 'early_stop': 1}),
                 tmp_path/'run', evaluate=_scripted([50, 40, 30, 20, 10, 5]), metric='accuracy', progress=False)
    st = tr.fit()
    assert (st['step'], st['best_step'], st['stopped']) == (8, 2, 'early stop at step 8')

def test_a_sigterm_in_the_step_that_stops_early_leaves_an_early_stopped_run(tmp_path, monkeypatch):
    """early_stop_labelled_a_signal_stop (session 22): a SIGTERM inside step 8, where the run stops early, left a summary that
    said 'signal 15 at step 8', a stop to go on from, though the run had ended (a rerun trained nothing). It says the early stop
    now, and `signalled` tells the caller that a signal came (a command stops there: test_sigterm_in_the_last_step_...)."""
    from conftest import sigterm_in_step
    tr = Trainer(tiny(), [Phase(layer_dropping(2), 6), Phase(FULL, 6)], ITEMS, TrainConfig(**{**CFG, 'eval_every': 2, 'early_stop': 1}),
                 tmp_path/'run', evaluate=_scripted([50, 40, 30, 20, 10, 5]), metric='accuracy', progress=False)
    sigterm_in_step(monkeypatch, 8)
    st = tr.fit()
    assert (st['step'], st['stopped'], tr.signalled) == (8, 'early stop at step 8', 15)

def test_early_stop_counts_only_the_last_stages_evaluations(tmp_path):
    """early_stop_counts_partial_stages: with early_stop=2 and scores that only fall, the partial stage's bad evaluations
    (steps 4 and 6) do not count toward the stop: the run stops at the full model's second evaluation (step 10), not at
    its first (step 8), where three evaluations in a row had not beaten the best but only one was of the full model."""
    tr = Trainer(tiny(), [Phase(layer_dropping(2), 6), Phase(FULL, 6)], ITEMS, TrainConfig(**{**CFG, 'eval_every': 2, 'early_stop': 2}),
                 tmp_path/'run', evaluate=_scripted([50, 40, 30, 20, 10, 5]), metric='accuracy', progress=False)
    st = tr.fit()
    assert (st['step'], st['best_step'], st['bad_evals'], st['stopped']) == (10, 2, 4, 'early stop at step 10')
    assert [r['step'] for r in log(tmp_path/'run', 'eval')] == [2, 4, 6, 8, 10]

def test_an_epoch_is_only_whole_micro_batches(tmp_path):
    """partial_micro_batch_kept: 10 examples in micro-batches of 4 make 2 micro-batches an epoch (the last 2 examples
    wait for the next epoch's shuffle), so 4 steps of 2 micro-batches each span 4 epochs (numbered 0 to 3), every
    micro-batch of 4 examples."""
    seen = []
    def count(pt, b, widths): seen.append(b['input_ids'].shape[0]); return 0
    tr = Trainer(tiny(), [Phase(FULL, 4)], ITEMS[:10], TrainConfig(**CFG), tmp_path/'run', step_flops=count, progress=False)
    st = tr.fit()
    assert seen == [4] * 8 and st['epoch'] == 3

def test_layers_kept_by_score_are_the_best_in_model_order():
    """layers_by_score_lowest, score_layers_unsorted: `layer_selection='score'` keeps the required layers and the
    highest-scoring others, run in the model's order."""
    from fpt_nb.partial import select_layers
    assert select_layers(3, 6, 'score', torch.tensor([0.1, 0.5, 0.2, 0.8, 0.3, 0.9]), required=(0,)) == [0, 3, 5]
    assert select_layers(2, 4, 'score', torch.tensor([0.4, 0.1, 0.3, 0.2])) == [0, 2]

def test_a_partial_t5_keeps_layer_0_which_holds_the_position_bias():
    """t5_layer0_not_required: T5's first layer of each stack owns the relative position bias that every layer uses, so
    a partial T5 keeps it even when its score is the lowest."""
    from fpt_nb.partial import Stage
    pt = tiny()
    low_first = NeuronScores({s: torch.arange(4.0)[:, None].expand(4, 128).clone() for s in ('encoder', 'decoder')})
    apply_stage(pt.model, Stage(encoder_layers=2, layer_selection='score'), low_first)
    assert len(pt.model.encoder.block) == 2 and pt.model.encoder.block[0].layer[0].SelfAttention.has_relative_attention_bias

def test_a_models_signature_is_its_full_shape_at_every_stage():
    "signature_current_widths: files saved at a partial stage name the full model, so a resume after an expansion matches them."
    from fpt_nb.arch import model_signature
    pt = tiny()
    full = model_signature(pt.model)
    apply_stage(pt.model, compound_reduction(2, 64), SCORES)
    assert model_signature(pt.model) == full and full['widths']['encoder'] == [128] * 4


def test_generation_length_is_one_short_of_each_tasks_target_length():
    """max_new_tokens_full_length: T5's generate counts the decoder's start token, so each task generates one token fewer
    than its target length; the evaluator asks for that when not told otherwise."""
    from fpt_nb.tasks import get_task
    assert {t: get_task(t).max_new_tokens for t in ('mnli', 'qqp', 'squad2', 'record', 'xsum', 'toy')} == \
        dict(mnli=9, qqp=9, squad2=199, record=199, xsum=511, toy=7)
    rows = toy_examples('validation', 6)
    model = Scripted({r['text']: 'no' for r in rows})
    evaluator('toy', TOK, encode('toy', TOK, rows), rows, batch_size=4)(model)
    assert [k for _, k in model.asked] == [7, 7]
    evaluator('toy', TOK, encode('toy', TOK, rows), rows, batch_size=4, max_new_tokens=3)(model)
    assert [k for _, k in model.asked][2:] == [3, 3]


def test_every_fpt_method_shrinks_the_decoder_when_the_task_does():
    """layer_dropping_decoder_ignored: with the decoder recipe (SQuAD 2.0, ReCoRD, XSum)
    FPT_LD, FPT_FR and FPT_CR shrink the decoder as they shrink the encoder; a partial decoder keeps the planned layers."""
    pt = tiny()
    names = lambda m, d: [s.describe() for s in method_stages(m, pt.model, decoder=d)]
    assert names('fpt_ld', True) == [f'enc {k}L, dec {k}L' for k in (1, 2, 3)] + ['full']
    assert names('fpt_fr', True) == [f'enc ffn {f}, dec ffn {f}' for f in (32, 64, 96)] + ['full']
    assert names('fpt_cr', True) == [f'enc {k}L, enc ffn {f}, dec {k}L, dec ffn {f}' for k, f in ((1, 32), (2, 64), (3, 96))] + ['full']
    assert names('fpt_ld', False) == [f'enc {k}L' for k in (1, 2, 3)] + ['full']
    full = {s: list(b) for s, b in layer_stacks(pt.model).items()}
    apply_stage(pt.model, method_stages('fpt_ld', pt.model, decoder=True)[1], SCORES)
    assert {s: [full[s].index(b) for b in blocks] for s, blocks in layer_stacks(pt.model).items()} == dict(encoder=[0, 3], decoder=[0, 3])


def test_layers_by_score_never_keep_a_layer_twice():
    """score_layers_required_twice: when the required layer 0 also scores best, `layer_selection='score'` still keeps
    `k` distinct layers (the next best), never layer 0 a second time."""
    from fpt_nb.partial import select_layers, Stage
    assert select_layers(2, 4, 'score', torch.tensor([0.9, 0.1, 0.5, 0.3]), required=(0,)) == [0, 2]
    assert select_layers(3, 4, 'score', torch.tensor([0.9, 0.8, 0.1, 0.3]), required=(0,)) == [0, 1, 3]
    pt = tiny()
    full = list(pt.model.encoder.block)
    high_first = NeuronScores({s: (4 - torch.arange(4.0))[:, None].expand(4, 128).clone() for s in ('encoder', 'decoder')})
    apply_stage(pt.model, Stage(encoder_layers=2, layer_selection='score'), high_first)
    assert [full.index(b) for b in pt.model.encoder.block] == [0, 1]


def test_expand_refuses_a_smaller_stage():
    "expand_no_growth_check: `expand` grows a partial model; a stage smaller than the current one is refused, the model left as it was."
    from fpt_nb.partial import expand
    pt = tiny()
    apply_stage(pt.model, compound_reduction(2, 64), SCORES)
    for smaller in (compound_reduction(1, 64), compound_reduction(2, 32), layer_dropping(1)):
        with pytest.raises(ValueError, match='stages must grow'): expand(pt.model, smaller, SCORES)
    with pytest.raises(ValueError, match='^stage 2 keeps 1 encoder layers but stage 1 kept 2: stages must grow$'):   # stage 1: the model's now
        expand(pt.model, compound_reduction(1, 64), SCORES)
    assert current_stage(pt.model) == compound_reduction(2, 64) and ffn_widths(pt.model)['encoder'] == [64, 64]
    expand(pt.model, compound_reduction(3, 96), SCORES)
    assert ffn_widths(pt.model)['encoder'] == [96] * 3


@pytest.mark.parametrize('bad, says', [(dict(padding='bogus'), "unknown padding 'bogus'"),
                                       (dict(micro_batch_size=0), 'micro_batch_size must be a whole number of at least 1, or None, got 0'),
                                       (dict(lr=True), 'lr must be a positive number, got True'),
                                       (dict(prompt_length=2.5), 'prompt_length must be a whole number of at least 1, got 2.5'),
                                       (dict(decoder='yes'), "decoder must be True, False or None (the task's recipe), got 'yes'")])
def test_a_bad_setting_is_refused_before_the_run_folder_is_written(bad, says, tmp_path):
    """padding_checked_late, micro_batch_zero_taken: an unknown padding failed only at the first batch, after config.json
    was written, and the folder then refused the corrected rerun ("other settings"); micro_batch_size=0, lr=True and
    decoder='yes' were taken (as the whole batch, 1.0 and True) and recorded as given."""
    import re
    from fpt_nb.run import run_experiment
    with pytest.raises(ValueError, match=re.escape(says)):
        run_experiment('toy', 'tiny', 'fpt_ld', tmp_path/'run', steps=8, batch_size=4, train_limit=8, eval_limit=4, progress=False, **bad)
    assert not (tmp_path/'run').exists()
