"FLOPs across notebooks: real partial models (05_partial) and the recorded GPU benchmark against the analytic count (03_flops)."
import json, re
from dataclasses import replace
from pathlib import Path
import pytest, torch
from fpt_nb.prompt import load_t5, PromptT5, paper_config
from fpt_nb.arch import ffn_widths
from fpt_nb.partial import apply_stage, layer_dropping, ffn_reduction, compound_reduction, FULL
from fpt_nb.flops import pt_step_flops, forward_flops, measured_flops

ROOT = Path(__file__).resolve().parents[1]
GPU_RECORD = ROOT/'results'/'perf'/'gpu_stages_h200.json'


def shape_of(model) -> dict:
    "The stage shape `fpt_nb.flops` counts from, read off a (partial) model."
    return {f'{stack}_ffn': widths for stack, widths in ffn_widths(model).items()}


@pytest.mark.parametrize('name', ['tiny', 'tiny-relu'])
@pytest.mark.parametrize('stage', [FULL, layer_dropping(2), layer_dropping(1, decoder=True), ffn_reduction(48, decoder=True),
                                   compound_reduction(3, 32), compound_reduction(2, 100, decoder=True)])
def test_partial_model_step_is_counted_exactly(name, stage):
    "A prompt-tuning step on a partial model built by `apply_stage` costs exactly what `pt_step_flops` says for its widths."
    model, _ = load_t5(name)
    pt = PromptT5(model, prompt_length=5)
    apply_stage(model, replace(stage, ffn_selection='sequence'))
    ids, labels = torch.randint(3, 300, (2, 11)), torch.randint(3, 300, (2, 4))
    shape = shape_of(model)
    measured = measured_flops(lambda: pt(ids, labels=labels).loss.backward())
    assert measured == pt_step_flops(model.config, 16, 4, batch=2, **shape)
    assert measured_flops(lambda: pt(ids, labels=labels)) == forward_flops(model.config, 16, 4, batch=2, **shape)


def parse_stage(label:str, size:str) -> dict|None:
    "The shape of a benchmark row label ('PT', 'LD 6', 'FR 704', 'CR 6/704'; encoder-only stages), or None for other rows."
    c = paper_config(size)
    if label == 'PT': return {}
    if m := re.fullmatch(r'LD (\d+)', label): return dict(encoder_ffn=[c.d_ff] * int(m[1]))
    if m := re.fullmatch(r'FR (\d+)', label): return dict(encoder_ffn=[int(m[1])] * c.num_layers)
    if m := re.fullmatch(r'CR (\d+)/(\d+)', label): return dict(encoder_ffn=[int(m[2])] * int(m[1]))
    return None


def test_gpu_benchmark_flops_match_the_count():
    "FlopCounterMode on the H200 (bf16, SDPA attention, real T5-LARGE/XL shapes) agrees exactly with the analytic count."
    record = json.loads(GPU_RECORD.read_text())
    a = record['args']
    checked = 0
    for row in record['results']:
        shape = parse_stage(row['stage'], row['size']) if 'flops' in row else None
        if shape is None: continue
        counted = pt_step_flops(paper_config(row['size']), a['input_len'] + 20, a['target_len'], batch=a['batch'], **shape)
        assert counted == row['flops'], (row['size'], row['stage'], counted, row['flops'])
        checked += 1
    assert checked >= 20, f"expected the full model and nine stages for LARGE and XL, checked {checked} rows"


@pytest.mark.parametrize('method', ['ld', 'fr', 'cr'])
def test_paper_stages_are_the_papers_shapes(method):
    """paper_stages_cr_keeps_all_layers: the paper's partial stages of T5-LARGE (24 layers, FFN 2816): LD keeps 6, 12,
    18 layers; FR 704, 1408, 2112 neurons; CR both; with the decoder reduced alike on request."""
    from fpt_nb.flops import paper_stages
    layers = [6, 12, 18] if method in ('ld', 'cr') else [24] * 3
    ffn = [704, 1408, 2112] if method in ('fr', 'cr') else [2816] * 3
    got = [(len(s['encoder_ffn']), s['encoder_ffn'][0], s['decoder_ffn']) for s in paper_stages('large', method)]
    assert got == [(n, f, None) for n, f in zip(layers, ffn)]
    assert [s['decoder_ffn'] for s in paper_stages('large', method, decoder=True)] == [[f] * n for n, f in zip(layers, ffn)]


def test_relative_flops_are_the_measured_ratios():
    "relative_flops_step_swapped: a stage's share of the full model's FLOPs, per training step and per forward, as PyTorch counts them."
    from fpt_nb.flops import relative_flops
    model, _ = load_t5('tiny')
    pt = PromptT5(model, prompt_length=5)
    ids, labels = torch.randint(3, 300, (2, 11)), torch.randint(3, 300, (2, 4))
    step = lambda: measured_flops(lambda: pt(ids, labels=labels).loss.backward())
    fwd = lambda: measured_flops(lambda: pt(ids, labels=labels))
    full_step, full_fwd = step(), fwd()
    apply_stage(model, replace(compound_reduction(2, 48), ffn_selection='sequence'))
    part_step, part_fwd = step(), fwd()
    assert part_step / full_step != pytest.approx(part_fwd / full_fwd)   # the two differ, so a swap shows
    assert relative_flops(model.config, 16, 4, shape_of(model)) == pytest.approx(part_step / full_step)
    assert relative_flops(model.config, 16, 4, shape_of(model), step=False) == pytest.approx(part_fwd / full_fwd)
    # relative_flops_denominator_all_matmuls: the linear layers' share is over the full model's linear layers
    apply_stage(model, FULL)
    full_lin = linear_flops(lambda: pt(ids, labels=labels).loss.backward())
    apply_stage(model, replace(compound_reduction(2, 48), ffn_selection='sequence'))
    part_lin = linear_flops(lambda: pt(ids, labels=labels).loss.backward())
    assert relative_flops(model.config, 16, 4, shape_of(model), linear_only=True) == pytest.approx(part_lin / full_lin)
    assert part_lin / full_lin != pytest.approx(part_step / full_step)   # the two differ, so a mixed-up denominator shows


def linear_flops(fn) -> int:
    "FLOPs PyTorch counts in matrix-matrix products (`aten.mm`: the linear layers) while running `fn()`, attention's batched products left out."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter: fn()
    return sum(v for op, v in counter.get_flop_counts()['Global'].items() if str(op) in ('aten.mm', 'aten.addmm'))


@pytest.mark.parametrize('name', ['tiny', 'tiny-relu'])
def test_linear_only_counts_the_linear_layers(name):
    "flops_linear_only_ignored: `linear_only=True` counts the linear layers' matmuls (PyTorch's `mm`), not attention's `bmm`, full and partial."
    model, _ = load_t5(name)
    pt = PromptT5(model, prompt_length=5)
    ids, labels = torch.randint(3, 300, (2, 11)), torch.randint(3, 300, (2, 4))
    for stage in (FULL, compound_reduction(2, 48, decoder=True)):
        apply_stage(model, replace(stage, ffn_selection='sequence'))
        shape = shape_of(model)
        step = linear_flops(lambda: pt(ids, labels=labels).loss.backward())
        assert step == pt_step_flops(model.config, 16, 4, batch=2, linear_only=True, **shape) < pt_step_flops(model.config, 16, 4, batch=2, **shape)
        assert linear_flops(lambda: pt(ids, labels=labels)) == forward_flops(model.config, 16, 4, batch=2, linear_only=True, **shape)


def test_schedule_flops_by_hand():
    """schedule_flops_denominator, paper_steps_xl_wrong: a schedule's FLOPs are the steps at each stage's cost over all
    the steps at the full model's; the paper trains T5-LARGE 6,000/6,000/6,000/12,000 steps and T5-XL half as many."""
    from fpt_nb.flops import schedule_flops, PAPER_STEPS
    assert PAPER_STEPS == dict(large=(6000, 6000, 6000, 12000), xl=(3000, 3000, 3000, 6000))
    assert schedule_flops([0.25, 0.5, 0.75, 1.0], PAPER_STEPS['large']) == pytest.approx((1500 + 3000 + 4500 + 12000) / 30000)
    assert schedule_flops([0.2, 0.4, 0.6, 0.8], [1, 1, 1, 1]) == pytest.approx(2.0 / 3.2)   # the last stage is the unit, whatever it costs
    assert schedule_flops([0.5, 1.0], [0, 10]) == 1.0 and schedule_flops([0.5, 1.0], [1, 0]) == 0.5   # (one step is a schedule)
    with pytest.raises(ValueError, match='one step count per stage'): schedule_flops([0.5, 1.0], [1, 2, 3])
    with pytest.raises(ValueError, match=r'steps must add up to a positive number, got \[0, 0\]'): schedule_flops([0.5, 1.0], [0, 0])   # schedule_zero_steps


@pytest.mark.parametrize('ffn,says', [
    ([128] * 5, 'encoder_ffn lists 5 layers but the model has 4: a stage keeps at most 4'),   # stack_widths_one_layer_too_many
    ([128, 0], 'encoder layer 1 keeps 0 FFN neurons: expected 1 to d_ff=128'),              # stack_width_zero_accepted
    ([129], 'encoder layer 0 keeps 129 FFN neurons: expected 1 to d_ff=128'),
    ([], 'encoder_ffn is empty: a stage keeps at least one encoder layer'),
])
def test_a_stage_the_model_cannot_have_is_refused(ffn, says):
    "A stage's shape with more layers than the model, or an FFN width of 0 or beyond d_ff, is refused by name, not counted."
    config = load_t5('tiny')[0].config
    with pytest.raises(ValueError, match=re.escape(says)): pt_step_flops(config, 16, 4, encoder_ffn=ffn)


def test_the_matmuls_count_one_example_unless_told_the_batch():
    "`matmuls` lists the products of one example's forward pass by default; `batch=n` multiplies each by n."
    from fpt_nb.flops import matmuls
    cfg = load_t5('tiny')[0].config
    one, four = (sum(m.flops for m in matmuls(cfg, 12, 3, **kw)) for kw in (dict(), dict(batch=4)))
    assert one > 0 and four == 4 * one and one == sum(m.flops for m in matmuls(cfg, 12, 3, batch=1))
