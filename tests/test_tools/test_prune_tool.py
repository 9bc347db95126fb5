"""``tools/prune.py``: one-shot magnitude / Wanda / SparseGPT of a dense detector (the small
dense demo Faster R-CNN on the tiny dataset): the output loads strictly into the dense
config and is exactly N:M (``tools/verify_nm.py``), the report holds the per-layer
relative output errors, and bad inputs are one ``error:`` line with exit status 2."""
import json
import os.path as osp

import pytest
import torch
from _common import data_cfg_options, fresh_mmlogger

from lbc_mmdet.cli import prune as prune_tool
from lbc_mmdet.cli import verify_nm as verify_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DENSE = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_dense_demo.py')
SMALL = {'model.backbone.base_channels': 16, 'model.neck.in_channels': [64, 128, 256, 512],
         'model.roi_head.bbox_head.fc_out_channels': 64}
SMALL_ARGS = ['model.backbone.base_channels=16', 'model.neck.in_channels=[64,128,256,512]',
              'model.roi_head.bbox_head.fc_out_channels=64']


@pytest.fixture(autouse=True)
def fresh_logger():
    with fresh_mmlogger('prune_tool'):
        yield


@pytest.fixture(scope='module')
def dense(tiny_coco, tmp_path_factory):
    from lbc_mmdet.apis import build_model
    folder = tmp_path_factory.mktemp('prune_tool')
    torch.manual_seed(0)
    _, model = build_model(DENSE, SMALL)
    path = str(folder / 'dense.pth')
    torch.save(dict(meta=dict(iter=400), state_dict=model.state_dict()), path)
    truncated = str(folder / 'truncated.pth')
    open(truncated, 'wb').write(open(path, 'rb').read()[:1000])
    opts = ['--cfg-options'] + SMALL_ARGS + data_cfg_options(tiny_coco['out_dir'])
    return dict(ckpt=path, truncated=truncated, folder=str(folder), opts=opts)


def _prune(dense, method, out, *extra):
    return prune_tool.cli([DENSE, dense['ckpt'], '--method', method, '--n', '2', '--m',
                           '4', '--calib-batches', '2', '--batch-size', '2',
                           '--heldout-batches', '1', '--seed', '0', '--out', out,
                           '--block-size', '64', *extra] + dense['opts'])


def test_three_methods_prune_load_and_verify(dense, capsys):
    from lbc_mmdet.apis import build_model
    reports = {}
    for method in ('magnitude', 'wanda', 'sparsegpt'):
        out = osp.join(dense['folder'], f'{method}.pth')
        assert _prune(dense, method, out) == 0, capsys.readouterr().err[-3000:]
        report = json.load(open(out + '.json'))
        reports[method] = report
        assert report['method'] == method and report['pattern'] == '2:4'
        # every backbone conv but the 3-channel stem, each with its error
        assert 'backbone.conv1' in report['skipped']
        assert len(report['layers']) == 52
        assert all(0 <= v['relative_output_error'] < 2 for v in report['layers'].values())
        assert report['mean_relative_output_error_backbone'] > 0
        # loads strictly into the stock dense model; exactly 2:4 for verify_nm
        _, model = build_model(DENSE, SMALL)
        ckpt = torch.load(out, map_location='cpu', weights_only=True)
        model.load_state_dict(ckpt['state_dict'], strict=True)
        assert verify_tool.cli([out, '--n', '2', '--m', '4']) == 0
    out_text = capsys.readouterr().out
    assert 'mean relative output error over the backbone' in out_text
    mean = {k: r['mean_relative_output_error_backbone'] for k, r in reports.items()}
    assert mean['sparsegpt'] < mean['magnitude'], mean
    # magnitude keeps the kept weights; sparsegpt moves them
    src = torch.load(dense['ckpt'], weights_only=True)['state_dict']
    key = 'backbone.layer2.0.conv2.weight'
    mag = torch.load(osp.join(dense['folder'], 'magnitude.pth'),
                     weights_only=True)['state_dict'][key]
    sgpt = torch.load(osp.join(dense['folder'], 'sparsegpt.pth'),
                      weights_only=True)['state_dict'][key]
    assert torch.equal(mag[mag != 0], src[key][mag != 0])
    assert not torch.allclose(sgpt[sgpt != 0], src[key][sgpt != 0])


def test_same_seed_same_output_other_seed_other(dense):
    outs = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        out = osp.join(dense['folder'], f'seed_{name}.pth')
        assert _prune(dense, 'wanda', out, '--seed', str(seed)) == 0
        outs[name] = torch.load(out, weights_only=True)['state_dict']
    key = 'backbone.layer3.0.conv2.weight'
    assert torch.equal(outs['a'][key], outs['b'][key])
    assert not torch.equal(outs['a'][key] != 0, outs['c'][key] != 0)


def _one_error(capsys, rc):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert rc == 2, err[-3000:]
    assert len(lines) == 1 and 'Traceback' not in err, err[-3000:]
    return lines[0]


def test_bad_inputs_are_one_error_line(dense, capsys, tmp_path):
    out = str(tmp_path / 'o.pth')
    line = _one_error(capsys, prune_tool.cli(
        [DENSE, str(tmp_path / 'none.pth'), '--out', out] + dense['opts']))
    assert 'not found' in line
    line = _one_error(capsys, prune_tool.cli(
        [DENSE, dense['truncated'], '--out', out] + dense['opts']))
    assert 'corrupt' in line or 'truncated' in line
    line = _one_error(capsys, prune_tool.cli(
        [str(tmp_path / 'missing.py'), dense['ckpt'], '--out', out]))
    assert 'missing.py' in line and 'not found' in line
    broken = tmp_path / 'broken.py'
    broken.write_text("model = dict(type='FasterRCNN'\n")
    _one_error(capsys, prune_tool.cli([str(broken), dense['ckpt'], '--out', out]))
    # a checkpoint of another model
    line = _one_error(capsys, prune_tool.cli([DENSE, dense['ckpt'], '--out', out]))
    assert 'does not' in line and 'config' in line
    line = _one_error(capsys, prune_tool.cli(
        [DENSE, dense['ckpt'], '--out', out, '--n', '4', '--m', '4']))
    assert 'need 0 < n < m' in line
    line = _one_error(capsys, _prune(dense, 'sparsegpt', out, '--block-size', '6'))
    assert 'multiple of M' in line
    line = _one_error(capsys, _prune(dense, 'wanda', out, '--calib-batches', '50'))
    assert 'training set has 8' in line
    assert not osp.exists(out)


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        prune_tool.parse_args(['--help'])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert 'sparsegpt' in text and 'wanda' in text and '--calib-batches' in text


@pytest.mark.parametrize('criterion', ['sparsegpt', 'magnitude'])
def test_oneshot_config_evaluates_a_dense_checkpoint_pruned(dense, tmp_path, criterion):
    """``tools/test.py`` with the one-shot config and the dense checkpoint: the
    calibration hook prunes before the test (a suite row with no fine-tune), magnitude
    too, from the weights alone (no schedule runs in a test)."""
    import glob

    from lbc_mmdet.cli import test as test_tool
    config = osp.join(ROOT, 'configs', 'demo',
                      'faster_rcnn_r50_fpn_oneshot_sparsegpt_2of4_demo.py')
    work = str(tmp_path / 'eval_only')
    opts = dense['opts'] + ['custom_hooks.0.batches=2', 'randomness.seed=1',
                            'model.backbone.conv_cfg.block_size=64',
                            f'model.backbone.conv_cfg.criterion={criterion}']
    assert test_tool.cli([config, dense['ckpt'], '--work-dir', work] + opts) == 0
    logs = glob.glob(osp.join(work, '*', '*.log'))
    text = open(logs[0]).read()
    assert 'CalibrationHook: calibrated 52/52 layers' in text
    assert '(seed 1)' in text
    data = 0 if criterion == 'magnitude' else 52
    assert f'52 layers ask for calibration, {data} of them for data' in text
    metrics = glob.glob(osp.join(work, '*', '*.json'))
    assert metrics and 'coco/bbox_mAP' in open(metrics[0]).read()


def test_oneshot_config_fine_tunes_from_the_dense_checkpoint(dense, tmp_path):
    """``tools/train.py`` with the one-shot config: the hook prunes the loaded dense
    weights before the first step (batches of the training dataloader's size), and the
    checkpoint holds the exact masks and the ``pruned`` flags."""
    import glob

    from lbc_mmdet.cli import train as train_tool
    from lbc_mmdet.nm import to_groups
    config = osp.join(ROOT, 'configs', 'demo',
                      'faster_rcnn_r50_fpn_oneshot_sparsegpt_2of4_demo.py')
    work = str(tmp_path / 'finetune')
    opts = dense['opts'] + [
        f"load_from={dense['ckpt']}", 'custom_hooks.0.batches=2',
        'model.backbone.conv_cfg.block_size=64', 'train_dataloader.batch_size=2',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1', 'param_scheduler.0.end=1',
        'param_scheduler.1.end=1', 'param_scheduler.1.milestones=[1]']
    assert train_tool.cli([config, '--work-dir', work] + opts) == 0
    text = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert ('CalibrationHook: 52 layers ask for calibration, 52 of them for data; 2 '
            'batches of 2 images') in text
    assert 'calibrated 52/52 layers' in text
    state = torch.load(osp.join(work, 'iter_1.pth'), map_location='cpu',
                       weights_only=True)['state_dict']
    key = 'backbone.layer3.1.conv2'
    assert bool(state[f'{key}.pruned'])
    assert bool((to_groups(state[f'{key}.mask'].int(), 4).sum(1) == 2).all())
    assert bool((state[f'{key}.weight'][~state[f'{key}.mask']] == 0).all())
