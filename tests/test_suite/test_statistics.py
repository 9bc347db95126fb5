"""The suite's statistics: the paired t interval (a textbook sample), the bootstrap over
validation images (on a tiny synthetic COCO set), the pairing check."""
import contextlib
import io
import json
import math

import numpy as np
import pytest

from lbc_mmdet.suite import intervals as iv
from lbc_mmdet.suite.bootstrap import MatchTable, bootstrap_map, bootstrap_run, evaluate
from lbc_mmdet.suite.pairing import check_pairing, format_pairing, unpaired
from lbc_mmdet.suite.report import format_markdown, group_rows, table_rows
from lbc_mmdet.suite.results import RunResult
from lbc_mmdet.utils import stats

# Student (1908) / Cushny & Peebles: extra hours of sleep of 10 patients under two drugs
# (R's `sleep` data set). R: t.test(extra ~ group, data = sleep, paired = TRUE) gives the
# mean difference -1.58 and the 95 % interval [-2.4598858, -0.7001142] (group 1 - group 2).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_textbook_paired_t_interval():
    # by hand: d = group 2 - group 1 = 1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4;
    # mean 15.8 / 10 = 1.58; sum (d - 1.58)^2 = 13.616, s = sqrt(13.616 / 9) = 1.229995;
    # s / sqrt(10) = 0.388960; t(0.975, 9) = 2.262157; half-width 0.879886
    d = stats.paired_interval(SLEEP_2, SLEEP_1)
    assert d.n == 10 and math.isclose(d.mean, 1.58, abs_tol=1e-12)
    assert math.isclose(d.std, 1.229995, abs_tol=1e-6)
    assert math.isclose(d.low, 0.7001142, abs_tol=1e-6)
    assert math.isclose(d.high, 2.4598858, abs_tol=1e-6)
    assert d.verdict == stats.BETTER
    rev = stats.paired_interval(SLEEP_1, SLEEP_2)
    assert math.isclose(rev.low, -2.4598858, abs_tol=1e-6) and rev.verdict == stats.WORSE
    # an interval that holds 0: no difference shown; one pair: no interval, no verdict
    tie = stats.paired_interval([0.50, 0.52, 0.49], [0.51, 0.50, 0.50])
    assert tie.low < 0 < tie.high and tie.verdict == stats.NO_DIFFERENCE
    one = stats.paired_interval([0.5], [0.4])
    assert one.low is None and one.verdict is None and one.half_width is None
    with pytest.raises(ValueError):
        stats.paired_interval([1.0, 2.0], [1.0])


@pytest.mark.parametrize('p,df,expected', [(0.975, 9, 2.2621571628), (0.975, 2, 4.3026527297),
                                           (0.975, 1, 12.7062047362), (0.95, 30, 1.6972608944),
                                           (0.025, 4, -2.7764451052)])
def test_t_quantile_and_its_fallback(p, df, expected):
    assert math.isclose(stats.t_quantile(p, df), expected, abs_tol=1e-8)
    assert math.isclose(stats._t_quantile_fallback(p, df), expected, abs_tol=1e-8)


def test_minimal_detectable_difference_and_percentiles():
    # s = 0.01 over 3 seeds: t(0.975, 2) * sqrt(2) * 0.01 / sqrt(3) = 0.035132
    mdd = stats.minimal_detectable_difference([0.70, 0.72, 0.71])
    assert math.isclose(mdd, 4.3026527297 * math.sqrt(2) * 0.01 / math.sqrt(3), rel_tol=1e-9)
    assert stats.minimal_detectable_difference([0.7]) is None
    lo, hi = stats.percentile_interval(list(range(101)))
    assert math.isclose(lo, 2.5) and math.isclose(hi, 97.5)
    vals = np.random.default_rng(0).normal(size=57)
    assert np.allclose(stats.percentile_interval(vals), np.percentile(vals, [2.5, 97.5]))


# --------------------------------------------------------------------------- bootstrap
def _tiny_coco(tmp_path, num_images=30, seed=0):
    """A synthetic ground truth (2 categories, 1-3 boxes an image) and noisy detections:
    jittered true boxes (some missed), plus false positives."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, num_images + 1):
        images.append(dict(id=i, file_name=f'{i}.png', width=100, height=100))
        for _ in range(int(rng.integers(1, 4))):
            x, y = rng.uniform(0, 60, 2)
            w, h = rng.uniform(10, 40, 2)
            cat = int(rng.integers(1, 3))
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=cat,
                             bbox=[x, y, w, h], area=w * h, iscrowd=0))
            if rng.random() < 0.85:
                j = rng.normal(0, 3, 4)
                dets.append(dict(image_id=i, category_id=cat, score=float(rng.random()),
                                 bbox=[x + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1)]))
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 70, 2)
            dets.append(dict(image_id=i, category_id=int(rng.integers(1, 3)),
                             score=float(rng.random() * 0.6), bbox=[x, y, 20.0, 20.0]))
    gt = dict(images=images, annotations=anns,
              categories=[dict(id=1, name='a'), dict(id=2, name='b')])
    gt_file, dt_prefix = tmp_path / 'gt.json', tmp_path / 'val'
    gt_file.write_text(json.dumps(gt))
    (tmp_path / 'val.bbox.json').write_text(json.dumps(dets))
    return str(gt_file), str(dt_prefix)


def test_match_table_reproduces_cocoeval(tmp_path):
    gt_file, prefix = _tiny_coco(tmp_path)
    ev = evaluate(gt_file, prefix + '.bbox.json', 'bbox')
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    table = MatchTable(ev)
    assert math.isclose(table.mean_ap(), ev.stats[0], abs_tol=1e-12)
    # counting every image twice changes nothing; dropping images changes the figure
    assert math.isclose(table.mean_ap(np.full(table.num_images, 2)), ev.stats[0],
                        abs_tol=1e-12)
    counts = np.ones(table.num_images, dtype=np.int64)
    counts[:10] = 0
    # the same as pycocotools on the 20 remaining images
    ev2 = evaluate(gt_file, prefix + '.bbox.json', 'bbox')
    ev2.params.imgIds = table.img_ids[10:]
    with contextlib.redirect_stdout(io.StringIO()):
        ev2.evaluate()
        ev2.accumulate()
        ev2.summarize()
    assert math.isclose(table.mean_ap(counts), ev2.stats[0], abs_tol=1e-12)


def test_bootstrap_interval_contains_the_full_set_map(tmp_path):
    gt_file, prefix = _tiny_coco(tmp_path)
    out = bootstrap_run(gt_file, prefix, replicates=200, seed=0)
    assert set(out) == {'bbox_mAP'}
    b = out['bbox_mAP']
    assert b['low'] < b['full'] < b['high'] and b['replicates'] == 200
    assert 0 < b['high'] - b['low'] < 0.5
    # seeded: the same replicates again; another seed other replicates
    table = MatchTable(evaluate(gt_file, prefix + '.bbox.json', 'bbox'))
    a1, a2 = bootstrap_map(table, 20, seed=1), bootstrap_map(table, 20, seed=1)
    assert np.array_equal(a1, a2) and not np.array_equal(a1, bootstrap_map(table, 20, 2))
    assert len(set(np.round(a1, 9))) > 10  # the replicates vary


# --------------------------------------------------------------------------- pairing
def _run(label, seed, mAP, ids, flips=None, method='lbc'):
    order = dict(num_batches=len(ids), img_ids=ids,
                 flips=flips or [[False] * len(b) for b in ids]) if ids else None
    return RunResult(label, 'Faster R-CNN', method, '2:4', status='done', seed=seed,
                     metrics={'coco/bbox_mAP': mAP}, data_order=order)


def test_pairing_check_catches_a_row_whose_data_order_differs():
    same = {0: [[1, 2], [3, 4]], 1: [[5, 6], [7, 8]]}
    results = [_run('Dense', s, 0.5, same[s], method='dense') for s in (0, 1)]
    results += [_run('LBC 2:4', s, 0.49, same[s]) for s in (0, 1)]
    results += [_run('SR-STE 2:4', 0, 0.48, same[0]),
                _run('SR-STE 2:4', 1, 0.48, [[5, 6], [8, 7]])]     # another order
    results += [_run('ASP 2:4', 0, 0.47, same[0], flips=[[True, False], [False, False]]),
                _run('ASP 2:4', 1, 0.47, None)]                    # not recorded
    issues = check_pairing(results, baseline='Dense')
    got = {(i.label, i.seed, i.what) for i in issues}
    assert got == {('SR-STE 2:4', 1, 'image order'), ('ASP 2:4', 0, 'flips'),
                   ('ASP 2:4', 1, 'not recorded')}
    assert unpaired(issues) == {'SR-STE 2:4': [1], 'ASP 2:4': [0]}
    text = '\n'.join(format_pairing(issues, True))
    assert 'WARNING: paired design broken' in text and 'SR-STE 2:4 (seed 1)' in text
    md = format_markdown(results, baseline='Dense')
    assert 'WARNING: paired design broken' in md and 'NOT PAIRED' in md
    rows = table_rows(group_rows(results), 'Dense', unpaired(issues))
    assert rows[3][5].startswith('-2.0†') and '†' not in rows[2][5]
    # every row the same: the check passes and says so
    ok = check_pairing(results[:4], baseline='Dense')
    assert ok == [] and 'every run saw the same' in '\n'.join(format_pairing(ok, True))


def test_intervals_of_rows_and_the_bootstrap_half_width():
    base = [_run('Dense', s, v, None, method='dense') for s, v in enumerate(SLEEP_1)]
    row = [_run('X', s, v, None) for s, v in enumerate(SLEEP_2)]
    d = iv.paired_difference(row, base, 'bbox_mAP')
    assert math.isclose(d.low, 0.7001142, abs_tol=1e-6)
    assert iv.format_difference(d, scale=1.0) == '+1.6 [+0.7, +2.5] better'
    # only the seeds both finished are paired
    row[3].status = 'failed'
    assert iv.paired_difference(row, base, 'bbox_mAP').n == 9
    for r, (lo, hi) in zip(base[:2], [(0.1, 0.3), (0.2, 0.6)]):
        r.bootstrap = {'bbox_mAP': dict(low=lo, high=hi)}
    assert math.isclose(iv.bootstrap_half_width(base, 'bbox_mAP'), 0.15)
    assert iv.bootstrap_half_width(row, 'bbox_mAP') is None


def test_extra_paired_comparisons(tmp_path):
    from test_runner import PY_SUITE, write_suite

    from lbc_mmdet.suite.spec import SuiteError, load_suite
    results = ([_run('Dense', s, v, None, method='dense') for s, v in enumerate(SLEEP_1)]
               + [_run('X', s, v, None) for s, v in enumerate(SLEEP_2)])
    md = format_markdown(results, baseline='Dense', comparisons=[('Dense', 'X')])
    lines = md.splitlines()
    i = lines.index('## Paired comparisons')
    assert lines[i + 2] == '| A | B | Δ bbox_mAP (A - B) [95 % CI] |'
    assert lines[i + 4] == '| Dense | X | -158.0 [-246.0, -70.0] worse |'  # x100
    suite = load_suite(write_suite(tmp_path, PY_SUITE + (
        "    comparisons = [('LBC 2:4', 'SR-STE 2:4')]\n")))
    assert suite.comparisons == [('LBC 2:4', 'SR-STE 2:4')]
    with pytest.raises(SuiteError, match='comparisons'):
        load_suite(write_suite(tmp_path, PY_SUITE + "    comparisons = [('LBC 2:4', 'x')]\n"))
