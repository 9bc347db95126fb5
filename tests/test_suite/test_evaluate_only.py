"""Suite rows with no fine-tune (``evaluate_only=True``): the pre-training's checkpoint is
evaluated with the row's config through ``tools/test.py`` (e.g. a one-shot pruning config,
whose calibration hook prunes before the test, the calibration seed being the row's seed),
and the test's metrics are collected like a training's."""
import io
import json
import os
import os.path as osp
import sys
import textwrap

import pytest

from lbc_mmdet.suite.commands import TEST_MODULE, TRAIN_MODULE
from lbc_mmdet.suite.results import collect_metrics, read_result
from lbc_mmdet.suite.runner import SuiteRunner
from lbc_mmdet.suite.spec import SuiteError, load_suite

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ONESHOT = 'configs/demo/faster_rcnn_r50_fpn_oneshot_sparsegpt_2of4_demo.py'

SUITE = f'''
    protocol = 'finetune'
    seeds = [0, 1]
    cfg_options = {{'train_cfg.max_iters': 4}}
    pretrain = dict(config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py',
                    work_dir='__PRE__')
    suite = [
        dict(label='Dense (continued)', config='configs/demo/faster_rcnn_r50_fpn_dense_demo.py'),
        dict(label='SparseGPT 2:4 one-shot', config='{ONESHOT}', method='oneshot',
             pattern='2:4', evaluate_only=True),
        dict(label='SparseGPT 2:4 + fine-tune', config='{ONESHOT}', method='oneshot',
             pattern='2:4'),
    ]
'''

#: what tools/test.py leaves in its work dir: <work_dir>/<ts>/<ts>.json with the metrics
FAKE_TEST = textwrap.dedent('''
    import json, os, sys
    work_dir, mAP = sys.argv[1], float(sys.argv[2])
    log = os.path.join(work_dir, '20260102_000000')
    os.makedirs(log, exist_ok=True)
    with open(os.path.join(log, '20260102_000000.json'), 'w') as f:
        json.dump({'coco/bbox_mAP': mAP, 'coco/bbox_mAP_50': 0.5}, f)
''')


def _suite(tmp_path, body=SUITE):
    pre = tmp_path / 'pre'
    os.makedirs(pre / '20250101_000000' / 'vis_data')
    (pre / '20250101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps({'coco/bbox_mAP': 0.5, 'step': 2}) + '\n')
    (pre / 'iter_400.pth').write_bytes(b'weights')
    (pre / 'last_checkpoint').write_text(str(pre / 'iter_400.pth'))
    path = tmp_path / 'suite.py'
    path.write_text(textwrap.dedent(body.replace('__PRE__', str(pre))))
    return str(path), str(pre / 'iter_400.pth')


def test_evaluate_only_rows_load_and_are_checked(tmp_path):
    path, _ = _suite(tmp_path)
    runs = load_suite(path).runs
    assert [r.evaluate_only for r in runs] == [False, True, False]
    bad = tmp_path / 'bad.py'
    bad.write_text("suite = [dict(label='a', config='x.py', evaluate_only=True)]\n")
    with pytest.raises(SuiteError, match="needs protocol='finetune'"):
        load_suite(str(bad))
    bad.write_text("protocol = 'finetune'\npretrain = dict(config='x.py')\n"
                   "suite = [dict(label='a', config='x.py', evaluate_only='yes')]\n")
    with pytest.raises(SuiteError, match='True or False'):
        load_suite(str(bad))


def test_evaluate_only_command_tests_the_pretraining(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    path, ckpt = _suite(tmp_path)
    runner = SuiteRunner(load_suite(path), work_root=str(tmp_path / 'root'),
                         out=io.StringIO())
    jobs = {(j.run.label, j.seed): j for j in runner.jobs()}
    job = jobs[('SparseGPT 2:4 one-shot', 1)]
    cmd, _ = runner.command(job)
    i = cmd.index(TEST_MODULE)
    assert cmd[i + 1].endswith(ONESHOT) and cmd[i + 2] == ckpt
    assert cmd[cmd.index('--work-dir') + 1] == runner.work_dir(job.run, 1)
    opts = runner.options(job)
    assert opts['randomness.seed'] == 1 and 'load_from' not in opts  # the seed calibrates
    # tools/test.py keeps its predictions where a training's validation would
    assert f"test_evaluator.outfile_prefix={opts['val_evaluator.outfile_prefix']}" in cmd
    assert 'randomness.seed=1' in cmd and '--resume' not in cmd
    # the fine-tune row of the same config trains from the pre-training
    cmd, _ = runner.command(jobs[('SparseGPT 2:4 + fine-tune', 1)])
    assert TRAIN_MODULE in cmd and TEST_MODULE not in cmd
    assert runner.options(jobs[('SparseGPT 2:4 + fine-tune', 1)])['load_from'] == ckpt


def test_evaluate_only_metrics_are_collected(tmp_path, monkeypatch):
    path, _ = _suite(tmp_path)
    script = tmp_path / 'fake_test.py'
    script.write_text(FAKE_TEST)
    seen = []

    def command(self, job):
        real, _ = SuiteRunner.__dict__['_real_command'](self, job)
        seen.append(TEST_MODULE in real)
        wd = self.work_dir(job.run, job.seed)
        return [sys.executable, str(script), wd, str(0.2 + job.seed / 100)], {}

    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(SuiteRunner, '_real_command', SuiteRunner.command, raising=False)
    monkeypatch.setattr(SuiteRunner, 'command', command)
    runner = SuiteRunner(load_suite(path), work_root=str(tmp_path / 'root'),
                         out=io.StringIO(), only=['SparseGPT 2:4 one-shot'])
    results, failed = runner.run()
    assert not failed and seen == [True, True]
    wd = runner.work_dir(runner.suite.runs[1], 1)
    assert collect_metrics(wd)['coco/bbox_mAP'] == pytest.approx(0.21)
    result = read_result(wd)
    assert result.status == 'done' and result.metric('bbox_mAP') == pytest.approx(0.21)
    md = open(osp.join(str(tmp_path / 'root'), 'results.md')).read()
    assert '| SparseGPT 2:4 one-shot | 2:4 |' in md  # rows sharing method + pattern
