"""tools/train_flops.py: the paper's FLOPs (Train) convention for ImageNet ResNet-50."""
import os.path as osp
import subprocess
import sys

import pytest

from lbc_mmdet.accounting.analytic import resnet50_layers, schedule_flops
from lbc_mmdet.cli.train_flops import cli
from lbc_mmdet.layers import get_method

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _layer(method):
    return get_method(method).layers['Conv2d']


def test_resnet50_multiply_adds():
    layers = resnet50_layers()
    assert len(layers) == 54  # 53 convs and the classifier
    assert round(sum(x.macs for x in layers) / 1e9, 2) == 4.09  # the usual 4.09 GMACs
    assert layers[0].name == 'conv1' and layers[0].in_channels == 3
    assert layers[-1].name == 'fc' and layers[-1].macs == 2048 * 1000


# the paper's Table 1 (ResNet-50, 120 epochs): SR-STE 2:4, 1:4, 2:8, 1:16
@pytest.mark.parametrize('n,m,paper', [(2, 4, 0.83), (1, 4, 0.74), (2, 8, 0.74),
                                       (1, 16, 0.69)])
def test_srste_matches_table_1_within_0_01(n, m, paper, capsys):
    assert cli(['--method', 'srste', '--n', str(n), '--m', str(m), '--epochs', '120',
                '--ti', '0', '--tf', '0', '--convention', 'paper']) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith('FLOPs (Train): ') and last.endswith('x')
    value = float(last[len('FLOPs (Train): '):-1])
    assert abs(value - paper) <= 0.01 + 1e-9, (value, paper)


def test_lbc_determined_where_the_schedule_fixes_the_density():
    # N = 1: k alive candidates of one weight each cover k/M of the weights
    r = schedule_flops(_layer('lbc'), 1, 4, 120, 0, 60)
    assert r.determined and round(r.ratio, 3) == 0.539
    # ti = tf = 0: one candidate from the start, so N/M throughout
    r = schedule_flops(_layer('lbc'), 2, 4, 120, 0, 0)
    assert r.determined and round(r.ratio, 3) == round((2 * 0.5 + 1) / 3, 3)
    # 2:4 between ti and tf depends on the learned scores: bounds only, bracketing
    r = schedule_flops(_layer('lbc'), 2, 4, 120, 0, 60)
    assert not r.determined and r.ratio is None and r.low < r.high
    assert r.low <= 0.72 <= r.high  # the paper's figure is inside
    # hardware convention: every pass at the union; the stem counts dense
    hw = schedule_flops(_layer('lbc'), 1, 4, 120, 0, 0, convention='hardware')
    stem = resnet50_layers()[0].macs / sum(x.macs for x in resnet50_layers())
    assert abs(hw.ratio - (stem + (1 - stem) * 0.25)) < 1e-9


def test_asp_dense_until_ti_and_longer_schedules():
    r = schedule_flops(_layer('asp'), 2, 4, 200, 120, 121, baseline_epochs=120)
    assert abs(r.ratio - (120 + 80 * 2 / 3) / 120) < 1e-9


def test_undetermined_output_and_errors(capsys):
    assert cli(['--method', 'lbc', '--n', '2', '--m', '8']) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith('FLOPs (Train): not determined by the schedule alone: between')
    assert cli(['--method', 'nope']) == 2
    assert 'unknown N:M method' in capsys.readouterr().err
    assert cli(['--method', 'lbc', '--n', '4', '--m', '4']) == 2
    assert cli(['--method', 'lbc', '--ti', '10', '--tf', '5']) == 2


def test_tool_runs_as_a_script():
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'train_flops.py'),
                           '--method', 'srste', '--n', '2', '--m', '4', '--epochs', '120',
                           '--ti', '0', '--tf', '0', '--convention', 'paper'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == 'FLOPs (Train): 0.83x'
