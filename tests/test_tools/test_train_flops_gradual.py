"""tools/train_flops.py follows SR-STE's gradual schedule (the LBC paper's Table 5 control)
and passes method options (``--method-opt``)."""
import json
import math

import pytest

from lbc_mmdet.accounting.analytic import schedule_flops, schedule_options
from lbc_mmdet.cli.train_flops import cli
from lbc_mmdet.layers import get_method


def _layer(method):
    return get_method(method).layers['Conv2d']


def _gradual_ratio(n, m, epochs, ti, tf):
    """The paper convention by hand: epoch e keeps M - p_e of every M weights (forward),
    input and weight gradient dense: ((M - p_e) / M + 2) / 3, averaged over the epochs;
    p_e = ceil((M - N) * (1 - (1 - (e - ti) / (tf - ti)) ** 3)) inside the window."""
    total = 0.0
    for e in range(epochs):
        if e <= ti:
            p = 0
        elif e >= tf:
            p = m - n
        else:
            p = math.ceil((m - n) * (1 - (1 - (e - ti) / (tf - ti))**3) - 1e-9)
        total += ((m - p) / m + 2) / 3
    return total / epochs


def _last_value(out):
    last = out.strip().splitlines()[-1]
    assert last.startswith('FLOPs (Train): ') and last.endswith('x')
    return float(last[len('FLOPs (Train): '):-1])


@pytest.mark.parametrize('ti,tf', [(0, 30), (0, 60), (30, 60)])
def test_srste_follows_the_gradual_schedule(ti, tf, capsys, tmp_path):
    expected = _gradual_ratio(1, 4, 120, ti, tf)
    r = schedule_flops(_layer('srste'), 1, 4, 120, ti, tf)
    assert r.determined and r.ratio == pytest.approx(expected, abs=1e-12)
    # the first epochs are dense in the forward: cost 1 at t = ti
    assert r.per_epoch[ti] == pytest.approx(1.0)
    assert r.per_epoch[-1] == pytest.approx((0.25 + 2) / 3)
    out = tmp_path / 'r.json'
    assert cli(['--method', 'srste', '--n', '1', '--m', '4', '--epochs', '120', '--ti',
                str(ti), '--tf', str(tf), '--convention', 'paper', '--json',
                str(out)]) == 0
    assert _last_value(capsys.readouterr().out) == round(expected, 2)
    assert json.load(open(out))['ratio'] == pytest.approx(expected)
    # more than the plain SR-STE (dense epochs at the start), as in the paper's Table 5
    assert expected > (0.25 + 2) / 3


def test_the_acceptance_command(capsys):
    assert cli(['--method', 'srste', '--n', '1', '--m', '4', '--epochs', '120', '--ti',
                '0', '--tf', '30', '--convention', 'paper']) == 0
    assert _last_value(capsys.readouterr().out) == 0.76  # the paper's Table 5: 0.76x


def test_method_opt_turns_the_schedule_off_and_is_checked(capsys):
    plain = (0.25 + 2) / 3
    assert 'gradual' in schedule_options(_layer('srste'))
    r = schedule_flops(_layer('srste'), 1, 4, 120, 0, 30, options=dict(gradual=False))
    assert r.ratio == pytest.approx(plain)
    assert cli(['--method', 'srste', '--n', '1', '--m', '4', '--ti', '0', '--tf', '30',
                '--method-opt', 'gradual=False']) == 0
    out = capsys.readouterr().out
    assert 'gradual=False' in out and _last_value(out) == round(plain, 2)
    # an empty window is the plain SR-STE (Table 1's --ti 0 --tf 0)
    assert schedule_flops(_layer('srste'), 1, 4, 120, 0, 0).ratio == pytest.approx(plain)
    # options a method does not take
    assert cli(['--method', 'lbc', '--method-opt', 'gradual=True']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --method-opt gradual: LBC has no such schedule option')
    assert cli(['--method', 'srste', '--method-opt', 'gradual']) == 2
    assert 'KEY=VALUE' in capsys.readouterr().err
    with pytest.raises(ValueError, match='no schedule option'):
        schedule_flops(_layer('lbc'), 1, 4, 120, 0, 30, options=dict(gradual=True))
