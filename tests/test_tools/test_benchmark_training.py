"""tools/benchmark_training.py end to end on a reduced model (R18, 64 px, one round)."""
import json
import os
import os.path as osp
import subprocess
import sys

from lbc_mmdet.benchmark.training import benchmark_entries

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'benchmark_training.py')
#: every registered method and variant, dense first (from the registry: no list to edit)
METHODS = benchmark_entries()


def test_help():
    proc = subprocess.run([sys.executable, '-W', 'ignore', TOOL, '--help'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert '--warmup' in proc.stdout and '--iters' in proc.stdout


def test_benchmark_training_json(tmp_path):
    out = str(tmp_path / 'bench')
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run(
        [sys.executable, '-W', 'ignore', TOOL, '--iters', '1', '--warmup', '0', '--depth',
         '18', '--img-sizes', '64', '48', '--batch-size', '1', '--removal-reps', '1',
         '--weight-side-reps', '1', '--out',
         out, '--goal', 'lbc=1.05', 'asp@48=1.10'], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(osp.join(out, 'results.json')) as f:
        res = json.load(f)
    assert osp.isfile(osp.join(out, 'results.md'))
    assert res['settings'] == dict(warmup=0, iters=1, depth=18, batch_size=1,
                                   img_sizes=[64, 48], removal_reps=1)
    assert list(res['sizes']) == ['64', '48']
    assert set(res['load']) >= {'start', 'end', 'max_trustworthy', 'trustworthy',
                                'others_cores', 'steal_cores', 'own_cores'}
    assert isinstance(res['load']['trustworthy'], bool)
    assert res['load']['own_cores'] > 0.2  # this run's own work is counted as its own
    parts = res['weight_side']  # what bounds each method's extra cost
    assert set(parts) == set(METHODS) - {'dense'}
    for name, p in parts.items():
        assert p['weights'] > 1e6 and p['weight_pass_ms'] > 0 and p['forward_weight_ms'] > 0
    assert parts['lbc']['extra_params'] == parts['lbc']['weights'] * 6 // 4  # C(4,2)/4
    assert parts['lbc']['extra_optimizer_ms'] > 0
    assert parts['srste']['extra_params'] == 0 and parts['srste']['extra_optimizer_ms'] == 0
    assert '| lbc |' in res['markdown'].split('What bounds')[1]
    rows = {r['method']: r for r in res['sizes']['48']}
    assert rows['asp']['goal'] == 1.10  # a goal for one size
    assert {r['method']: r for r in res['sizes']['64']}['asp']['goal'] is None
    assert list(rows) == METHODS
    for name, r in rows.items():
        assert r['step_ms'] > 0 and len(r['step_all_ms']) == 1
        assert r['saved_bytes'] >= r['saved_new_bytes'] > 0
        assert set(r) >= {'ratio', 'saved_ratio', 'extra_state_bytes', 'goal', 'goal_met'}
    assert rows['dense']['ratio'] == 1.0 and rows['dense']['extra_state_bytes'] == 0
    assert rows['srste']['extra_state_bytes'] == 0  # SR-STE keeps no state of its own
    for name in ('lbc', 'asp', 'bame'):
        assert rows[name]['extra_state_bytes'] > 0
    for name in ('lbc', 'asp'):
        assert isinstance(rows[name]['goal_met'], bool)
    assert '64 px:' in res['markdown'] and '48 px:' in res['markdown']
    assert rows['lbc']['goal'] == 1.05
    assert rows['srste']['goal'] is None and rows['srste']['goal_met'] is None
    ev = res['events']['lbc']  # the removal events of a short window
    assert ev['layers'] == 19 and ev['events'] >= 4 and ev['event_ms'] > 0
    assert isinstance(ev['goal_met'], bool)
    assert 'srste' not in res['events']  # no schedule: no mask-update event
    assert res['max_rss_mb'] > 0 and res['machine']['cpu_count'] >= 1
    assert '| lbc |' in res['markdown']
