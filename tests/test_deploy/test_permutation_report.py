"""tools/permutation_report.py: kept magnitude with and without channel permutation on a
checkpoint's backbone and on random matrices."""
import json

from deploy_helpers import load_tool, run_tool

from lbc_mmdet.apis.permutation import random_report


def test_report_of_a_checkpoint_and_random_matrices(tiny_files, config_files, tmp_path,
                                                    capsys):
    out = str(tmp_path / 'perm.json')
    rc = load_tool('permutation_report').cli([
        config_files['tiny_dense'], tiny_files['exported'], '--time-limit', '0.5',
        '--random', '32x16', '--seeds', '0', '--out', out])
    assert rc == 0
    text = capsys.readouterr().out
    assert 'permutable layers:' in text and 'all prunable convs:' in text
    with open(out) as f:
        rep = json.load(f)
    model = rep['model']
    perm, prunable = model['permutable'], model['prunable']
    assert list(perm)[-1] == 'total' == list(prunable)[-1]
    # the tiny R18: 8 BasicBlock conv2 permutable, 19 prunable convs (all but the stem)
    assert perm['total']['layers'] == 8 and prunable['total']['layers'] == 19
    assert set(perm) == {'backbone.layer1', 'backbone.layer2', 'backbone.layer3',
                         'backbone.layer4', 'total'}
    for table in (perm, prunable):
        for e in table.values():
            assert e['kept_after'] >= e['kept_before'] > 0 and e['gain'] >= 0
    # what the permutation gains on the permutable layers is the whole backbone's gain
    gained = perm['total']['kept_after'] - perm['total']['kept_before']
    assert abs(prunable['total']['kept_after'] - prunable['total']['kept_before'] -
               gained) < 1e-6 * prunable['total']['total']
    assert rep['random']['matrices'][0]['shape'] == [32, 16]
    assert {m['dist'] for m in rep['random']['matrices']} == {'gaussian', 'uniform'}


def test_random_report_means_over_seeds():
    rep = random_report([(16, 8)], seeds=(0, 1), dists=('gaussian', ))
    (e, ) = rep['matrices']
    assert e['seeds'] == [0, 1] and e['kept_after'] >= e['kept_before']
    assert 0 <= e['efficacy'] <= 1 and e['kept_after'] <= e['row_bound'] + 1e-9


def test_bad_input():
    tool = load_tool('permutation_report')
    assert tool.cli([]) == 2  # nothing to measure
    assert tool.cli(['only_a_config.py']) == 2
    assert tool.cli(['--random', '8x6']) == 2  # 6 columns, M=4
    res = run_tool('permutation_report.py', '--help')
    assert res.returncode == 0 and '--random' in res.stdout
