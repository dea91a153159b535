"The stage plot (23_plots) as the library draws it: the notebook tests its own definitions, these import `fpt_nb.plots`."
import json
import numpy as np
import pytest
from fpt_nb.plots import read_log, stage_boundaries, plot_run, _smooth


def write_run(d, method, stages, step_flops, evals=(), paper=True):
    "A run folder as `run_experiment` leaves it: summary.json and log.jsonl with steps, expansions (the first at step 0) and evaluations."
    d.mkdir(parents=True)
    (d/'summary.json').write_text(json.dumps(dict(task='toy', model='tiny', method=method, metric='accuracy', paper_metric='paper_acc')))
    recs, flops, wall, step = [], 0.0, 0.0, 0
    for i, (name, n) in enumerate(stages):
        recs.append(dict(kind='expand', step=step, stage=i, to=name, flops=flops, wall=wall))
        for _ in range(n):
            step += 1; flops += step_flops[i]; wall += 0.5 * (i + 1)
            recs.append(dict(kind='step', step=step, stage=i, loss=10.0 / step, flops=flops, wall=wall))
            if step in evals:
                recs.append(dict(kind='eval', step=step, stage=i, flops=flops, wall=wall, accuracy=10.0 * step,
                                 **(dict(paper_acc=5.0 * step) if paper else {})))
    (d/'log.jsonl').write_text('\n'.join(map(json.dumps, recs)) + '\n')
    return d


@pytest.fixture
def runs(tmp_path):
    fpt = write_run(tmp_path/'fpt', 'fpt_ld', [('enc 1L', 2), ('enc 2L', 2), ('full', 4)], [1.0, 2.0, 4.0], evals=(2, 4, 8))
    pt = write_run(tmp_path/'pt', 'pt', [('full', 8)], [4.0], evals=(4, 8))
    return fpt, pt


def test_stages_are_marked_where_each_expansion_happened_on_both_axes(runs):
    """stage_start_marked, stage_lines_at_flops_on_wall_axis, overlay_is_the_run_itself: one dotted line per expansion
    after the start (the stage at step 0 is no boundary), at its cumulative FLOPs on the FLOPs axes and at its wall
    clock on the wall-clock axes; the overlay is the PT run's own curve."""
    fpt, pt = runs
    b = stage_boundaries(read_log(fpt))
    assert [(r['step'], r['to'], r['flops'], r['wall']) for r in b] == [(2, 'enc 2L', 2.0, 1.0), (4, 'full', 6.0, 3.0)]
    assert stage_boundaries(read_log(pt)) == []
    fig = plot_run(fpt, pt, save=False)
    loss_flops, loss_wall, metric_flops, metric_wall = fig.axes
    for ax in (loss_flops, metric_flops):
        assert [l.get_xdata()[0] for l in ax.lines if l.get_gid() == 'stage'] == [2.0, 6.0]
    for ax in (loss_wall, metric_wall):
        assert [l.get_xdata()[0] for l in ax.lines if l.get_gid() == 'stage'] == [1.0, 3.0]
    lines = {l.get_label(): l for l in loss_flops.lines}
    assert list(lines['fpt_ld'].get_xdata()) == [1, 2, 4, 6, 10, 14, 18, 22]
    assert list(lines['pt (overlay)'].get_xdata()) == [4, 8, 12, 16, 20, 24, 28, 32]
    assert not (fpt/'stages.png').exists()


def test_the_metric_panel_shows_the_papers_metric_where_it_was_recorded(runs, tmp_path):
    "metric_panel_official_first: the tables' metric, the paper's (`paper_acc`) when the evaluations hold it, else the official one."
    fpt, pt = runs
    fig = plot_run(fpt, save=False)
    line = next(l for l in fig.axes[2].lines if l.get_label() == 'fpt_ld')
    assert list(line.get_xdata()) == [2, 6, 22] and list(line.get_ydata()) == [10.0, 20.0, 40.0]
    assert fig.axes[2].get_ylabel() == 'paper_acc (validation)'
    old = write_run(tmp_path/'old', 'fpt_ld', [('full', 4)], [1.0], evals=(2, 4), paper=False)   # no paper scoring recorded
    fig = plot_run(old, save=False)
    assert fig.axes[2].get_ylabel() == 'accuracy (validation)'
    assert list(next(l for l in fig.axes[2].lines if l.get_label() == 'fpt_ld').get_ydata()) == [20.0, 40.0]


def test_a_run_still_training_plots_its_tasks_paper_metric(runs):
    """paper_metric_of_a_summary_only: a run still training has a config but no summary, and a config names no paper
    metric; the panel took the official one though the evaluations hold the task's paper metric (`paper_acc`)."""
    fpt, _ = runs
    s = json.loads((fpt/'summary.json').read_text()); (fpt/'summary.json').unlink()
    (fpt/'config.json').write_text(json.dumps({k: s[k] for k in ('task', 'model', 'method')}))
    assert plot_run(fpt, save=False).axes[2].get_ylabel() == 'paper_acc (validation)'


def test_loss_is_smoothed_by_a_trailing_mean_shorter_at_the_start():
    "smooth_divides_by_the_window: the first values average only the points there are."
    np.testing.assert_allclose(_smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(_smooth([3, 6, 9, 12, 15], 3), [3, 4.5, 6, 9, 12])
    np.testing.assert_allclose(_smooth([5.0], 3), [5.0])


def test_the_runs_own_curve_is_drawn_over_the_overlay_on_log_loss_axes(runs):
    """plot_overlay_on_top, plot_loss_linear_axis: PT's grey overlay is drawn first, under the run's own curve, in every
    panel; both loss panels are on a log scale, the metric panels on a linear one."""
    fpt, pt = runs
    fig = plot_run(fpt, pt, save=False)
    for ax in fig.axes:
        labels = [l.get_label() for l in ax.lines if not l.get_label().startswith('_') and l.get_gid() != 'stage']
        assert labels == ['pt (overlay)', 'fpt_ld'], labels
    assert [ax.get_yscale() for ax in fig.axes] == ['log', 'log', 'linear', 'linear']

def test_an_overlay_without_the_runs_metric_is_left_out_of_the_metric_panels(runs, tmp_path):
    """plot_metric_length_guard: a PT run whose evaluations lack the metric shown (an older run without the paper's scoring)
    is drawn in the loss panels only; the metric panels show the run alone (before the guard: mismatched lengths, a crash)."""
    fpt, _ = runs
    old_pt = write_run(tmp_path/'old-pt', 'pt', [('full', 8)], [4.0], evals=(4, 8), paper=False)
    fig = plot_run(fpt, old_pt, save=False)
    assert [l.get_label() for l in fig.axes[2].lines if l.get_gid() != 'stage' and not l.get_label().startswith('_')] == ['fpt_ld']
    assert 'pt (overlay)' in [l.get_label() for l in fig.axes[0].lines]

def test_blank_lines_in_a_log_are_skipped(runs):
    "plot_blank_log_line: a blank line in log.jsonl (a hand edit, a tool that pads) is no record, not an error."
    fpt, _ = runs
    before = read_log(fpt)
    (fpt/'log.jsonl').write_text((fpt/'log.jsonl').read_text() + '\n   \n')
    assert read_log(fpt) == before

def test_a_plot_that_cannot_be_written_whole_leaves_the_one_there_was(runs, monkeypatch):
    """plot_written_in_place (an adversarial review): a full disk while `stages.png` was written left half an image beside a
    finished run. The plot is made in memory and written whole or not at all."""
    import errno, os
    from matplotlib.figure import Figure
    fpt, _ = runs
    plot_run(fpt)
    before = (fpt/'stages.png').read_bytes()
    (fpt/'log.jsonl').write_text((fpt/'log.jsonl').read_text().replace('"loss": 10.0', '"loss": 20.0'))   # a plot that differs
    real = Figure.savefig
    def full_disk(self, target, *a, **k):   # the disk fills halfway through the image, wherever it is written
        buf = __import__('io').BytesIO(); real(self, buf, *a, **{**k, 'format': 'png'})
        data = buf.getvalue()
        if hasattr(target, 'write'): target.write(data[:len(data) // 2])
        else: open(target, 'wb').write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(Figure, 'savefig', full_disk)
    with pytest.raises(OSError): plot_run(fpt)
    assert (fpt/'stages.png').read_bytes() == before and sorted(p.name for p in fpt.iterdir()) == ['log.jsonl', 'stages.png', 'summary.json']
